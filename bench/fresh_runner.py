#!/usr/bin/env python3
"""A fresh CI runner: lockship with the registry as its cache against BuildKit with inline cache.

Called by bench/fresh_runner.sh (services, base image, release build). For the data pipeline
(FIXTURES to change it), each tool first builds commit 1 and pushes it. Then, for each scenario,
every local cache is emptied first, as on a new runner: lockship's whole cache directory;
BuildKit's builder cache and every local image, the base included. The image of commit 1 is in
the registry, and each tool is pointed at it: lockship with `--cache-from` (its push targets
are read the same way, but each scenario pushes a new tag), BuildKit with `--cache-from` of an
image built with BUILDKIT_INLINE_CACHE=1 (the uv pattern of bench/docker/uv.Dockerfile; the
docker-container driver that `mode=max` needs cannot be installed here without Docker Hub).

Scenarios: the same commit; one line of app code changed; one small dependency added. For each:
seconds (median of RUNS), and the bytes that came from the package index and from the loopback
registry, read from this machine's interface counters around the build (the index is reached
through the network interface, the registry over loopback; both directions of loopback count
once). BuildKit's `docker push` after the build is listed apart, as in bench/compare.py.
Writes bench/results/fresh-runner.md and prints it. Not part of CI.
"""

import datetime
import os
import platform
import shutil
import statistics
import sys

import compare
from compare import BASE, DOCKER, REGISTRY, run

FIXTURES = os.environ.get("FIXTURES", "data-pipeline").split()
RUNS = int(os.environ.get("RUNS", "2"))
SCENARIOS = ["unchanged", "app changed", "dependency added"]
TOOLS = ["lockship", "buildkit"]


def counters():
    """(bytes received on loopback, bytes received on every other interface)."""
    lo = other = 0
    for line in open("/proc/net/dev").read().splitlines()[2:]:
        name, data = line.split(":", 1)
        received = int(data.split()[0])
        if name.strip() == "lo":
            lo += received
        else:
            other += received
    return lo, other


def fresh(tool, cache):
    """Empties every local cache, as on a new runner."""
    if tool == "lockship":
        shutil.rmtree(cache, ignore_errors=True)
    else:
        run([DOCKER, "builder", "prune", "-af"])
        run([DOCKER, "system", "prune", "-af"])
        images = run([DOCKER, "images", "-q"])[1].split()
        if images:
            run([DOCKER, "image", "rm", "--force", *images])


def build(tool, src, ref, cache_from, cache):
    """Builds src and pushes it to ref; returns (seconds of the build, BuildKit's push seconds)."""
    if tool == "lockship":
        cmd = [compare.LOCKSHIP, "build", src, "--base", BASE, "--push", ref, "--no-test", "--format", "json"]
        if cache_from:
            cmd += ["--cache-from", cache_from]
        return run(cmd, env=compare.lockship_env(cache))[0], None
    dockerfile = os.path.join(compare.ROOT, "bench", "docker", "uv.Dockerfile")
    cmd = [DOCKER, "build", "--quiet", "--network", "host", "-f", dockerfile, "--build-arg", f"BASE={BASE}",
           "--build-arg", "UV_COMPILE_BYTECODE=1", "--build-arg", "BUILDKIT_INLINE_CACHE=1", "-t", ref, src]
    if cache_from:
        cmd[2:2] = ["--cache-from", cache_from]
    secs = run(cmd, env={"DOCKER_BUILDKIT": "1"})[0]
    return secs, run([DOCKER, "push", "--quiet", ref])[0]


def source(fixture, scenario, round_no):
    """The working copy for a scenario: commit 1, commit 1 with main.py edited, or with a dependency."""
    src = os.path.join(compare.WORK, f"{fixture}-run")
    shutil.rmtree(src, ignore_errors=True)
    variant = "added" if scenario == "dependency added" else "base"
    shutil.copytree(os.path.join(compare.WORK, f"{fixture}-{variant}"), src)
    if scenario == "app changed":
        main = next(os.path.join(d, f) for d, _, fs in os.walk(os.path.join(src, "src")) for f in fs if f == "main.py")
        with open(main, "a") as f:
            f.write(f"# change {round_no}\n")
    return src


def main():
    results = {}
    for fixture in FIXTURES:
        compare.prepare(fixture, "base")
        compare.prepare(fixture, "added")
        for tool in TOOLS:
            cache = os.path.join(compare.WORK, f"cache-{tool}")
            seed = f"{REGISTRY}/bench/fresh-{tool}-{fixture}:commit1"
            fresh(tool, cache)
            build(tool, source(fixture, "unchanged", 0), seed, None, cache)
            for round_no in range(1, RUNS + 1):
                for i, scenario in enumerate(SCENARIOS):
                    src = source(fixture, scenario, round_no)
                    fresh(tool, cache)
                    ref = f"{REGISTRY}/bench/fresh-{tool}-{fixture}:r{round_no}-{i}"
                    lo, other = counters()
                    secs, push = build(tool, src, ref, seed, cache)
                    lo2, other2 = counters()
                    cell = results.setdefault((fixture, scenario, tool), {"secs": [], "push": [], "index": [], "registry": []})
                    cell["secs"].append(secs)
                    cell["push"].append(push)
                    cell["index"].append(other2 - other)
                    cell["registry"].append(lo2 - lo)
                    print(f"bench: {fixture} {tool} {scenario}: {secs:.2f}s", file=sys.stderr)
    mib = lambda b: f"{b / 1048576:.1f}"
    lines = [
        f"Fresh runner: lockship with the registry as its cache vs BuildKit with inline cache, {datetime.date.today()}, "
        f"{platform.machine()} Linux, {os.cpu_count()} cores, median of {RUNS} rounds. Every local cache empty, "
        f"commit 1's image in the loopback registry; lockship's time includes its push, BuildKit's does not.\n",
        "| fixture | scenario | lockship (s) | BuildKit (s) | lockship / BuildKit | BuildKit's `docker push` (s) "
        "| from the index, lockship / BuildKit (MiB) | from the registry, lockship / BuildKit (MiB) |",
        "| --- " * 8 + "|",
    ]
    for fixture in FIXTURES:
        for scenario in SCENARIOS:
            cell = {t: results[(fixture, scenario, t)] for t in TOOLS}
            med = {t: statistics.median(cell[t]["secs"]) for t in TOOLS}
            data = lambda k: " / ".join(mib(statistics.median(cell[t][k])) for t in TOOLS)
            lines.append(
                f"| {fixture} | {scenario} | {med['lockship']:.2f} | {med['buildkit']:.2f} | "
                f"{med['lockship'] / med['buildkit']:.2f}× | {statistics.median(cell['buildkit']['push']):.2f} | "
                f"{data('index')} | {data('registry')} |"
            )
    text = "\n".join(lines) + "\n"
    os.makedirs(os.path.join(compare.ROOT, "bench", "results"), exist_ok=True)
    open(os.path.join(compare.ROOT, "bench", "results", "fresh-runner.md"), "w").write(text)
    print(text)
    shutil.rmtree(compare.WORK, ignore_errors=True)


if __name__ == "__main__":
    main()
