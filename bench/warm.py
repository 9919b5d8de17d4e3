#!/usr/bin/env python3
"""Warm builds at the limit: the data pipeline rebuilt with a warm local cache, many times.

Called by bench/warm.sh (services, base image, release build). bench/compare.py times each
scenario once per round and pushes every build to a new tag; this times the two warm cases
the registry-cache issue sets goals for, REPEATS times each, tools taking turns so that a noisy
moment on this shared machine hits them alike:

- "unchanged, same tag": no change, pushed to the tag it pushed last time (the CI rebuild of a
  commit). Goal: 0.03 s.
- "app changed": one line of app code appended, pushed to a new tag. Goal: 0.08 s.

Against the uv pattern (bench/docker/uv.Dockerfile) on BuildKit with its cache warm, timed
without its `docker push`, as in bench/compare.py. Prints medians and minimums with lockship's
phases (median), and writes bench/results/warm.md. Not part of CI.
"""

import datetime
import os
import platform
import shutil
import statistics

import compare
from compare import WORK, build

FIXTURE = os.environ.get("FIXTURE", "data-pipeline")
REPEATS = int(os.environ.get("REPEATS", "9"))
TOOLS = ["lockship", "uv-pattern"]
SCENARIOS = ["unchanged, same tag", "app changed"]


def main():
    src = compare.prepare(FIXTURE, "base")
    main_py = next(os.path.join(d, f) for d, _, fs in os.walk(os.path.join(src, "src")) for f in fs if f == "main.py")
    caches = {tool: os.path.join(WORK, f"cache-{tool}") for tool in TOOLS}
    for tool in TOOLS:
        compare.reset(tool, caches[tool], src, keep_base=True)
        build(tool, FIXTURE, src, "same-tag", caches[tool])
    secs = {(s, t): [] for s in SCENARIOS for t in TOOLS}
    for i in range(REPEATS):
        # Who goes first alternates, so neither always follows the other's page-cache work.
        for tool in TOOLS if i % 2 == 0 else TOOLS[::-1]:
            secs[(SCENARIOS[0], tool)].append(build(tool, FIXTURE, src, "same-tag", caches[tool])[0])
    phases = []
    for i in range(REPEATS):
        with open(main_py, "a") as f:
            f.write(f"# change {i}\n")
        for tool in TOOLS if i % 2 == 0 else TOOLS[::-1]:
            secs[(SCENARIOS[1], tool)].append(build(tool, FIXTURE, src, f"app-{i}", caches[tool])[0])
        # compare.build files lockship's phases under the tag's second part.
        phases.append(compare.PHASES[(FIXTURE, "lockship", str(i))][-1])
    header = (
        f"Warm builds of {FIXTURE}, {datetime.date.today()}, {platform.machine()} Linux, {os.cpu_count()} cores, "
        f"{REPEATS} runs each, tools taking turns; lockship's times include its push to the loopback registry, "
        f"BuildKit's (the uv pattern) do not.\n\n"
    )
    lines = ["| scenario (s) | lockship median | lockship best | uv pattern median | uv pattern best | lockship / uv pattern |",
             "| --- | --- | --- | --- | --- | --- |"]
    for scenario in SCENARIOS:
        ours, theirs = secs[(scenario, "lockship")], secs[(scenario, "uv-pattern")]
        lines.append(f"| {scenario} | {statistics.median(ours):.3f} | {min(ours):.3f} | {statistics.median(theirs):.3f} | "
                     f"{min(theirs):.3f} | {statistics.median(ours) / statistics.median(theirs):.2f}× |")
    names = [name for name, _ in phases[0]]
    by_phase = " · ".join(f"{n} {statistics.median(dict(p)[n] for p in phases) * 1000:.0f}" for n in names)
    lines += ["", f"lockship's app-changed build by phase (ms, median): {by_phase}"]
    text = header + "\n".join(lines) + "\n"
    os.makedirs(os.path.join(compare.ROOT, "bench", "results"), exist_ok=True)
    open(os.path.join(compare.ROOT, "bench", "results", "warm.md"), "w").write(text)
    print(text)


if __name__ == "__main__":
    try:
        main()
    finally:
        shutil.rmtree(WORK, ignore_errors=True)
