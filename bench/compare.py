#!/usr/bin/env python3
"""lockship next to Docker BuildKit on the same fixtures, base image and machine, in one run.

Called by bench/compare.sh, which starts the loopback registry and dockerd and makes the base.
For each fixture and each of RUNS rounds: cold with the base image not local either (BuildKit
pulls it, lockship pulls and inspects it), cold (every cache empty, base image present), warm
with no change, one line of app code changed, one small dependency added. Prints and writes a
markdown table with lockship / BuildKit ratios (against the faster Dockerfile pattern).

lockship builds each fixture three times: from uv.lock (with bytecode, the default), from uv.lock
with --no-bytecode, and from a poetry.lock that the real poetry made with the same versions (the
project's dependencies pinned to what uv resolved), to show that reading poetry.lock (its files
looked up on the index) costs no more than reading uv.lock. The uv pattern runs twice too:
without bytecode, and with UV_COMPILE_BYTECODE=1 as uv's Docker guide recommends.

After the rounds, each tool's cold image starts STARTS times (`python -c 'import …'` of the
fixture's heaviest packages, a fresh container each time, network off): what bytecode buys.

"Base image present" means for BuildKit that the daemon holds the base (pulled and unpacked);
for lockship, that its cache holds what pulling the base leaves there (its config, layers, the
facts read from them and, when the build compiles bytecode, the base's interpreter, unpacked in
the same pass over the layers, as a pull unpacks them for the daemon), primed with
`lockship build --dry-run`. Every other cache is emptied: build caches and
cache mounts for BuildKit; for lockship its whole cache dir, including the uv cache its app
wheel build uses (UV_CACHE_DIR points inside it).
"""

import datetime
import json
import os
import platform
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
LOCKSHIP = sys.argv[1]
REGISTRY = os.environ["LOCKSHIP_TEST_REGISTRY"]
BASE = os.environ["LOCKSHIP_BENCH_BASE"]
BUILDER = os.environ["LOCKSHIP_BENCH_BUILDER"]
RUNS = int(os.environ.get("RUNS", "3"))
FIXTURES = os.environ.get("FIXTURES", "small-cli data-pipeline sdist-cli").split()
DOCKER = "/usr/bin/docker"  # Debian's client: BuildKit without buildx
CUTOFF = "2025-06-01"
ADDED = "six>=1.16"
WORK = tempfile.mkdtemp(prefix="lockship-bench-")
PHASES = {}  # (fixture, tool, the tag's second part) → lockship's --format json timings, one per build
TOOLS = ["lockship", "lockship-no-bytecode", "lockship-poetry", "uv-pattern", "uv-bytecode-pattern", "wheel-pattern"]
LABELS = {
    "lockship": "lockship",
    "lockship-no-bytecode": "lockship, --no-bytecode",
    "lockship-poetry": "lockship, poetry.lock",
    "uv-pattern": "uv pattern",
    "uv-bytecode-pattern": "uv pattern, UV_COMPILE_BYTECODE=1",
    "wheel-pattern": "wheel pattern",
}
DOCKERFILES = 3  # TOOLS[3:] are BuildKit's
STARTS = int(os.environ.get("STARTS", "7"))
IMPORTS = {
    "data-pipeline": "import pandas, pyarrow, sklearn",
    "small-cli": "import rich.console, httpx, pydantic",
    "sdist-cli": "import markupsafe._speedups, docopt, rich.console",
}
POETRY = os.path.join(os.environ["LOCKSHIP_TEST_TOOLS"], "poetry", "bin", "poetry")
INDEX = os.environ["UV_DEFAULT_INDEX"]
SCENARIOS = ["cold, base not local", "cold", "warm", "app changed", "dependency added"]


def run(cmd, cwd=None, env=None):
    """Runs cmd; returns (seconds, stdout). Fails loudly with the command's stderr."""
    start = time.monotonic()
    proc = subprocess.run(cmd, cwd=cwd, env={**os.environ, **(env or {})}, capture_output=True, text=True)
    secs = time.monotonic() - start
    if proc.returncode != 0:
        sys.exit(f"bench: {' '.join(cmd)} failed:\n{proc.stderr[-3000:]}")
    return secs, proc.stdout


def prepare(fixture, variant):
    """A working copy of the fixture, locked (uv.lock and a hashed requirements.txt)."""
    path = os.path.join(WORK, f"{fixture}-{variant}")
    shutil.copytree(os.path.join(ROOT, "bench", "fixtures", fixture), path)
    pyproject = os.path.join(path, "pyproject.toml")
    text = open(pyproject).read()
    open(pyproject, "w").write(text.replace("@BUILDER@", BUILDER))
    if variant == "added":
        text = open(os.path.join(path, "pyproject.toml")).read()
        open(os.path.join(path, "pyproject.toml"), "w").write(text.replace("dependencies = [", f'dependencies = ["{ADDED}", ', 1))
    cutoff = {"UV_EXCLUDE_NEWER": CUTOFF}
    run(["uv", "lock", "--quiet", "--python", "3.11"], cwd=path, env=cutoff)
    run(["uv", "pip", "compile", "--quiet", "pyproject.toml", "--generate-hashes", "--python-version", "3.11",
         "--python-platform", "x86_64-manylinux_2_36", "-o", "requirements.txt"], cwd=path, env=cutoff)
    # The Dockerfiles' index traffic goes through this machine's TLS proxy: they need its CA.
    shutil.copy("/etc/ssl/certs/ca-certificates.crt", os.path.join(path, "bench-ca.crt"))
    prepare_poetry(path)
    return path


def prepare_poetry(path):
    """A copy of the locked fixture at `path`-poetry with a poetry.lock of the same versions."""
    poetry = f"{path}-poetry"
    shutil.copytree(path, poetry)
    pins = [line.split()[0] for line in open(os.path.join(path, "requirements.txt")) if re.match(r"^[A-Za-z0-9]", line)]
    pyproject = open(os.path.join(poetry, "pyproject.toml")).read()
    pyproject = re.sub(r"dependencies = \[.*?\]", "dependencies = " + json.dumps(pins), pyproject, count=1, flags=re.S)
    # Poetry reaches the index through a declared source only.
    pyproject += f'\n[[tool.poetry.source]]\nname = "idx"\nurl = "{INDEX}"\npriority = "primary"\n'
    open(os.path.join(poetry, "pyproject.toml"), "w").write(pyproject)
    for name in ("uv.lock", "requirements.txt"):
        os.remove(os.path.join(poetry, name))
    run([POETRY, "lock", "--no-interaction", "--quiet"], cwd=poetry, env={"POETRY_CACHE_DIR": os.path.join(WORK, "poetry-cache")})


def manifest(repo, tag):
    req = urllib.request.Request(
        f"http://{REGISTRY}/v2/{repo}/manifests/{tag}",
        headers={"Accept": "application/vnd.oci.image.manifest.v1+json, application/vnd.docker.distribution.manifest.v2+json"},
    )
    with urllib.request.urlopen(req, timeout=30) as resp:
        return json.load(resp), resp.headers.get("Docker-Content-Digest")


def build(tool, fixture, src, tag, cache):
    """Builds and pushes; returns (seconds of the build, peak RSS KiB or None, repo)."""
    repo = f"bench/{tool}-{fixture}"
    ref = f"{REGISTRY}/{repo}:{tag}"
    if tool.startswith("lockship"):
        rss = os.path.join(WORK, "rss")
        flags = ["--no-bytecode"] if tool == "lockship-no-bytecode" else []
        secs, out = run(["/usr/bin/time", "-f", "%M", "-o", rss, LOCKSHIP, "build", src, "--base", BASE, "--push", ref,
                         "--no-test", "--format", "json", *flags], env=lockship_env(cache))
        PHASES.setdefault((fixture, tool, tag.split("-")[1]), []).append(json.loads(out)["timings"])
        return secs, int(open(rss).read().split()[-1]), repo
    dockerfile = os.path.join(ROOT, "bench", "docker", f"{tool.split('-')[0]}.Dockerfile")
    bytecode = "1" if tool == "uv-bytecode-pattern" else "0"
    # Only a fixture with sdists needs compilers in the build stage.
    builder = BUILDER if "@BUILDER@" in open(os.path.join(ROOT, "bench", "fixtures", fixture, "pyproject.toml")).read() else BASE
    secs, _ = run([DOCKER, "build", "--quiet", "--network", "host", "-f", dockerfile, "--build-arg", f"BASE={BASE}",
                   "--build-arg", f"BUILDER={builder}", "--build-arg", f"UV_COMPILE_BYTECODE={bytecode}", "-t", ref, src],
                  env={"DOCKER_BUILDKIT": "1"})
    push_secs, _ = run([DOCKER, "push", "--quiet", ref])
    return secs, push_secs, repo


def lockship_env(cache):
    return {"LOCKSHIP_CACHE_DIR": cache, "SOURCE_DATE_EPOCH": "0", "UV_CACHE_DIR": os.path.join(cache, "uv")}


def reset(tool, cache, src, keep_base):
    """Empties every cache; keep_base leaves the base image pulled (see the module doc)."""
    if tool.startswith("lockship"):
        shutil.rmtree(cache, ignore_errors=True)
        if keep_base:
            run([LOCKSHIP, "build", src, "--base", BASE, "--dry-run"], env=lockship_env(cache))
            shutil.rmtree(os.path.join(cache, "uv"), ignore_errors=True)
    else:
        run([DOCKER, "builder", "prune", "-af"])
        if not keep_base:
            run([DOCKER, "image", "rm", "--force", BASE])


def one_round(fixture, round_no, results, digests):
    for tool in TOOLS:
        src = os.path.join(WORK, f"{fixture}-work")
        suffix = "-poetry" if tool == "lockship-poetry" else ""
        cache = os.path.join(WORK, f"cache-{tool}")
        previous = None
        for scenario in SCENARIOS:
            if scenario.startswith("cold"):
                shutil.rmtree(src, ignore_errors=True)
                shutil.copytree(os.path.join(WORK, f"{fixture}-base{suffix}"), src)
                reset(tool, cache, src, keep_base=scenario == "cold")
                previous = None
            if scenario == "app changed":
                main = next(os.path.join(d, f) for d, _, fs in os.walk(os.path.join(src, "src")) for f in fs if f == "main.py")
                with open(main, "a") as f:
                    f.write(f"# change {round_no}\n")
            if scenario == "dependency added":
                added = os.path.join(WORK, f"{fixture}-added{suffix}")
                for name in ("pyproject.toml", "poetry.lock") if suffix else ("pyproject.toml", "uv.lock", "requirements.txt"):
                    shutil.copy(os.path.join(added, name), os.path.join(src, name))
            tag = f"r{round_no}-{SCENARIOS.index(scenario)}"
            secs, extra, repo = build(tool, fixture, src, tag, cache)
            m, digest = manifest(repo, tag)
            layers = {l["digest"]: l["size"] for l in m["layers"]}
            pushed = sum(s for d, s in layers.items() if previous is None or d not in previous) + m["config"]["size"]
            cell = results.setdefault((fixture, scenario, tool), {"secs": [], "rss": [], "push": [], "layers": 0, "compressed": 0, "pushed": []})
            cell["secs"].append(secs)
            # lockship's extra is its peak RSS (its push is inside secs); BuildKit's is its push.
            cell["rss" if tool.startswith("lockship") else "push"].append(extra)
            cell["layers"] = len(layers)
            cell["compressed"] = sum(layers.values())
            cell["pushed"].append(pushed)
            if scenario.startswith("cold"):
                digests.setdefault((fixture, tool), set()).add(m["config"]["digest"] if not tool.startswith("lockship") else digest)
            previous = layers
            print(f"bench: {fixture} {tool} {scenario}: {secs:.2f}s", file=sys.stderr)


def uncompressed(tool, fixture):
    ref = f"{REGISTRY}/bench/{tool}-{fixture}:r1-1"
    run([DOCKER, "pull", "--quiet", ref])
    _, size = run([DOCKER, "image", "inspect", "--format", "{{.Size}}", ref])
    return int(size)


def start_time(tool, fixture):
    """Median seconds for a fresh container of the cold image to import the fixture's heaviest
    packages (pulled by `uncompressed` first). Tools take turns run by run, so a noisy moment
    on this shared machine hits them alike."""
    ref = f"{REGISTRY}/bench/{tool}-{fixture}:r1-1"
    cmd = [DOCKER, "run", "--rm", "--network", "none", "--entrypoint", "/opt/venv/bin/python", ref, "-c", IMPORTS[fixture]]
    run(cmd)  # the first start also warms the page cache with the image's files
    return cmd


def start_times(fixture):
    cmds = {tool: start_time(tool, fixture) for tool in TOOLS}
    times = {tool: [] for tool in TOOLS}
    for _ in range(STARTS):
        for tool, cmd in cmds.items():
            times[tool].append(run(cmd)[0])
    return {tool: statistics.median(t) for tool, t in times.items()}


def ratio(ours, theirs):
    return f"{ours / theirs:.2f}×" if theirs else "n/a"


def table(results, digests, sizes, starts):
    mib = lambda b: f"{b / 1048576:.2f}"
    kib = lambda b: f"{b / 1024:.0f}"
    secs = lambda s: "" if s is None else f"{s:.2f}"
    names = " | ".join(LABELS[t] for t in TOOLS)
    rule = "| --- " * (len(TOOLS) + 3) + "|"
    lines = [f"| fixture | scenario (s) | {names} | lockship / faster |", rule]
    for fixture in FIXTURES:
        for scenario in SCENARIOS:
            med = [statistics.median(results[(fixture, scenario, t)]["secs"]) for t in TOOLS]
            lines.append(f"| {fixture} | {scenario} | {' | '.join(f'{m:.2f}' for m in med)} | {ratio(med[0], min(med[DOCKERFILES:]))} |")
    lines += ["", f"| fixture | metric | {names} | lockship / smaller |", rule]
    for fixture in FIXTURES:
        rows = [
            ("image, uncompressed (MiB)", [sizes[(fixture, t)] for t in TOOLS], mib),
            ("image, compressed (MiB)", [results[(fixture, "cold", t)]["compressed"] for t in TOOLS], mib),
            ("layers", [results[(fixture, "cold", t)]["layers"] for t in TOOLS], str),
            (f"container start, `{IMPORTS[fixture]}` (s, median of {STARTS})", [starts[(fixture, t)] for t in TOOLS], secs),
            ("BuildKit's untimed `docker push` after cold (s)", [None] * DOCKERFILES + [statistics.median(results[(fixture, "cold", t)]["push"]) for t in TOOLS[DOCKERFILES:]], secs),
            ("pushed after app change (KiB)", [statistics.median(results[(fixture, "app changed", t)]["pushed"]) for t in TOOLS], kib),
            ("pushed after dependency added (KiB)", [statistics.median(results[(fixture, "dependency added", t)]["pushed"]) for t in TOOLS], kib),
        ]
        for name, values, fmt in rows:
            cmp = ratio(values[0], min(values[DOCKERFILES:])) if values[0] is not None else ""
            lines.append(f"| {fixture} | {name} | {' | '.join(fmt(v) for v in values)} | {cmp} |")
        for scenario in ("cold", "cold, base not local"):
            by_tool = []
            for tool in TOOLS[:DOCKERFILES]:
                rounds = PHASES[(fixture, tool, str(SCENARIOS.index(scenario)))]
                names = [name for name, _ in rounds[0]]
                by_tool.append(" · ".join(f"{n} {statistics.median(dict(r)[n] for r in rounds):.2f}" for n in names))
            lines.append(f"| {fixture} | lockship {scenario}, by phase (s) | {' | '.join(by_tool)} |{' |' * (len(TOOLS) - DOCKERFILES + 1)}")
        rss = [max(max(results[(fixture, s, t)]["rss"]) for s in SCENARIOS) for t in TOOLS[:DOCKERFILES]]
        lines.append(f"| {fixture} | lockship peak RSS (MiB) | {' | '.join(f'{r / 1024:.0f}' for r in rss)} |{' |' * (len(TOOLS) - DOCKERFILES + 1)}")
        same = ["yes" if len(digests[(fixture, t)]) == 1 else f"no ({len(digests[(fixture, t)])} digests)" for t in TOOLS]
        note = "" if RUNS > 1 else " (needs RUNS ≥ 2)"
        lines.append(f"| {fixture} | same digest across clean builds{note} | {' | '.join(same)} | |")
    return "\n".join(lines) + "\n"


def main():
    results, digests, sizes, starts = {}, {}, {}, {}
    for fixture in FIXTURES:
        prepare(fixture, "base")
        prepare(fixture, "added")
        for r in range(1, RUNS + 1):
            one_round(fixture, r, results, digests)
        for tool in TOOLS:
            sizes[(fixture, tool)] = uncompressed(tool, fixture)
        for tool, secs in start_times(fixture).items():
            starts[(fixture, tool)] = secs
    header = (
        f"lockship vs Docker BuildKit, {datetime.date.today()}, {platform.machine()} Linux, {os.cpu_count()} cores, "
        f"median of {RUNS} rounds; lockship's times include its push to the loopback registry, BuildKit's do not "
        f"(its `docker push` times are listed below). \"cold\": every cache empty, base image present; "
        f"\"cold, base not local\": BuildKit pulls the base, lockship pulls and inspects it.\n\n"
    )
    text = header + table(results, digests, sizes, starts)
    os.makedirs(os.path.join(ROOT, "bench", "results"), exist_ok=True)
    open(os.path.join(ROOT, "bench", "results", "latest.md"), "w").write(text)
    print(text)
    shutil.rmtree(WORK, ignore_errors=True)


if __name__ == "__main__":
    main()
