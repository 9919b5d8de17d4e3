#!/usr/bin/env python3
"""Cold builds for one platform against two platforms in one build, in the same run.

Called by bench/platforms.sh, which starts the loopback registry. Each fixture is locked once
with uv (a universal lock serves both platforms) and given a Debian-package base; its base
locks for amd64 and arm64 are resolved once, before timing, so that every build reads the same
pinned packages. Then, for each of RUNS rounds, with every cache empty each time: linux/amd64
alone, linux/arm64 alone, and both in one build (`--platform linux/amd64,linux/arm64`), each
pushed to the registry. The table gives the medians and the ratio of two platforms to one, the
issue's bound being 1.5×; "separate builds" is the sum of the two single-platform builds, what
two invocations into empty caches cost.
"""

import datetime
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
LOCKSHIP = sys.argv[1]
REGISTRY = os.environ["LOCKSHIP_TEST_REGISTRY"]
RUNS = int(os.environ.get("RUNS", "3"))
FIXTURES = os.environ.get("FIXTURES", "small-cli data-pipeline").split()
CUTOFF = "2025-06-01"
WORK = tempfile.mkdtemp(prefix="lockship-bench-platforms-")
BASE = '\n[tool.lockship.base]\ndebian = "bookworm"\npackages = ["python3"]\n'
MODES = {
    "linux/amd64": ["--platform", "linux/amd64"],
    "linux/arm64": ["--platform", "linux/arm64"],
    "both": ["--platform", "linux/amd64,linux/arm64"],
}


def run(cmd, cwd=None, env=None):
    """Runs cmd; returns (seconds, stdout). Fails loudly with the command's stderr."""
    start = time.monotonic()
    proc = subprocess.run(cmd, cwd=cwd, env={**os.environ, **(env or {})}, capture_output=True, text=True)
    secs = time.monotonic() - start
    if proc.returncode != 0:
        sys.exit(f"bench: {' '.join(cmd)} failed:\n{proc.stderr[-3000:]}")
    return secs, proc.stdout


def prepare(fixture):
    """The fixture on the Debian base, locked, with both architectures' base locks."""
    path = os.path.join(WORK, fixture)
    shutil.copytree(os.path.join(ROOT, "bench", "fixtures", fixture), path)
    pyproject = os.path.join(path, "pyproject.toml")
    with open(pyproject, "a") as f:
        f.write(BASE)
    run(["uv", "lock", "--quiet", "--python", "3.11"], cwd=path, env={"UV_EXCLUDE_NEWER": CUTOFF})
    cache = os.path.join(WORK, "prime-cache")
    run([LOCKSHIP, "build", path, "--dry-run", *MODES["both"]], env=env(cache))
    shutil.rmtree(cache, ignore_errors=True)
    return path


def env(cache):
    return {"LOCKSHIP_CACHE_DIR": cache, "SOURCE_DATE_EPOCH": "0", "UV_CACHE_DIR": os.path.join(cache, "uv")}


def build(path, fixture, mode, round_no):
    cache = os.path.join(WORK, "cache")
    shutil.rmtree(cache, ignore_errors=True)
    # A repository of its own, so that the push uploads every blob (none there from before).
    ref = f"{REGISTRY}/bench-platforms/{fixture}-{mode.replace('/', '-')}-{round_no}:1"
    rss = os.path.join(WORK, "rss")
    secs, out = run(["/usr/bin/time", "-f", "%M", "-o", rss, LOCKSHIP, "build", path, *MODES[mode], "--push", ref,
                     "--no-test", "--format", "json"], env=env(cache))
    report = json.loads(out)
    pushed = report["pushed"][0]["uploaded_bytes"]
    print(f"bench: {fixture} {mode} round {round_no}: {secs:.2f}s", file=sys.stderr)
    return secs, int(open(rss).read().split()[-1]), pushed, report["digest"]


def main():
    rows = []
    for fixture in FIXTURES:
        path = prepare(fixture)
        results = {mode: [] for mode in MODES}
        for r in range(1, RUNS + 1):
            for mode in MODES:
                results[mode].append(build(path, fixture, mode, r))
        med = {mode: statistics.median(x[0] for x in runs) for mode, runs in results.items()}
        rss = {mode: max(x[1] for x in runs) / 1024 for mode, runs in results.items()}
        pushed = {mode: statistics.median(x[2] for x in runs) / 1048576 for mode, runs in results.items()}
        same = all(len({x[3] for x in runs}) == 1 for runs in results.values())
        separate = med["linux/amd64"] + med["linux/arm64"]
        rows.append(
            f"| {fixture} | {med['linux/amd64']:.2f} | {med['linux/arm64']:.2f} | {med['both']:.2f} | "
            f"{med['both'] / med['linux/amd64']:.2f}× | {separate:.2f} | "
            f"{pushed['linux/amd64']:.1f} / {pushed['both']:.1f} | "
            f"{rss['linux/amd64']:.0f} / {rss['both']:.0f} | {'yes' if same else 'no'} |"
        )
    header = (
        f"lockship multi-platform, {datetime.date.today()}, {platform.machine()} Linux, {os.cpu_count()} cores, "
        f"median of {RUNS} rounds, every cache empty, pushed to the loopback registry, Debian bookworm base.\n\n"
        "| fixture | amd64 (s) | arm64 (s) | both, one build (s) | both / amd64 | separate builds (s) | "
        "pushed MiB, amd64 / both | peak RSS MiB, amd64 / both | same digests across rounds |\n"
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- |\n"
    )
    text = header + "\n".join(rows) + "\n"
    os.makedirs(os.path.join(ROOT, "bench", "results"), exist_ok=True)
    open(os.path.join(ROOT, "bench", "results", "platforms.md"), "w").write(text)
    print(text)
    shutil.rmtree(WORK, ignore_errors=True)


if __name__ == "__main__":
    main()
