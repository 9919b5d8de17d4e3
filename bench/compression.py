#!/usr/bin/env python3
"""gzip against gzip-single and zstd for the layers lockship writes, in the same run.

Called by bench/compression.sh (registry, index, base image and release build ready). For each
fixture: locked once, then a warm cache is made by one build with bytecode (wheels downloaded,
base pulled). Each round and compression then starts from a copy of that cache and builds with
--no-bytecode, so no layer of the measured build is cached: the time is installing, compressing
and pushing the layers. Then:
- size: the blobs of the layers lockship wrote (not the base's), as pushed;
- pull and unpack: each of those blobs fetched from the loopback registry and unpacked with GNU
  tar (gzip through `tar -z`, zstd through `tar --zstd`), one after another, as a runtime pulls.
Medians of RUNS rounds.
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
import urllib.request

import compare  # noqa: E402  (reads LOCKSHIP_* from the environment bench_setup exports)

RUNS = int(os.environ.get("RUNS", "3"))
FIXTURES = os.environ.get("FIXTURES", "small-cli data-pipeline").split()
COMPRESSIONS = ["gzip", "gzip-single", "zstd"]


def with_compression(src, name):
    """A copy of the fixture at src with `compression = name` in its [tool.lockship] table."""
    dest = f"{src}-{name}"
    shutil.rmtree(dest, ignore_errors=True)
    shutil.copytree(src, dest)
    path = os.path.join(dest, "pyproject.toml")
    text = open(path).read()
    if "[tool.lockship]\n" in text:
        text = text.replace("[tool.lockship]\n", f'[tool.lockship]\ncompression = "{name}"\n', 1)
    else:
        text += f'\n[tool.lockship]\ncompression = "{name}"\n'
    open(path, "w").write(text)
    return dest


def own_layers(repo, tag):
    manifest, _ = compare.manifest(repo, tag)
    return [l for l in manifest["layers"] if "dev.lockship.layer.key" in l.get("annotations", {})]


def pull_and_unpack(repo, layers):
    """Seconds to fetch and unpack every layer, one after another."""
    dest = tempfile.mkdtemp(prefix="lockship-bench-unpack-")
    start = time.monotonic()
    for layer in layers:
        flag = "--zstd" if layer["mediaType"].endswith("+zstd") else "-z"
        url = f"http://{compare.REGISTRY}/v2/{repo}/blobs/{layer['digest']}"
        with urllib.request.urlopen(url, timeout=120) as resp:
            proc = subprocess.run(["tar", "-x", flag, "-C", dest], input=resp.read(), capture_output=True)
        if proc.returncode != 0:
            sys.exit(f"bench: unpacking {layer['digest']} failed: {proc.stderr.decode()[-500:]}")
    secs = time.monotonic() - start
    shutil.rmtree(dest, ignore_errors=True)
    return secs


def main():
    results = {}
    for fixture in FIXTURES:
        src = compare.prepare(fixture, "base")
        warm = os.path.join(compare.WORK, f"warm-{fixture}")
        compare.run([compare.LOCKSHIP, "build", src, "--base", compare.BASE, "--output",
                     f"oci:{compare.WORK}/warm-{fixture}.oci"], env=compare.lockship_env(warm))
        for name in COMPRESSIONS:
            variant = with_compression(src, name)
            for round_no in range(1, RUNS + 1):
                cache = os.path.join(compare.WORK, "cache-run")
                shutil.rmtree(cache, ignore_errors=True)
                shutil.copytree(warm, cache, symlinks=True)
                repo = f"bench/compression-{fixture}-{name}-{round_no}-{os.getpid()}"
                secs, _ = compare.run([compare.LOCKSHIP, "build", variant, "--base", compare.BASE, "--no-bytecode",
                                       "--no-test", "--push", f"{compare.REGISTRY}/{repo}:1"],
                                      env=compare.lockship_env(cache))
                layers = own_layers(repo, "1")
                cell = results.setdefault((fixture, name), {"build": [], "size": [], "pull": []})
                cell["build"].append(secs)
                cell["size"].append(sum(l["size"] for l in layers))
                cell["pull"].append(pull_and_unpack(repo, layers))
                print(f"bench: {fixture} {name} round {round_no}: {secs:.2f}s", file=sys.stderr)
    mib = lambda b: f"{b / 1048576:.1f}"
    med = statistics.median
    lines = [
        f"Layer compression, {datetime.date.today()}, {platform.machine()} Linux, {os.cpu_count()} cores, "
        f"median of {RUNS} rounds. Layers lockship writes (not the base's); build = install, compress and push "
        "with every wheel cached; pull and unpack = fetch from the loopback registry and unpack with GNU tar.\n",
        "| fixture | compression | layers (MiB) | vs gzip | build (s) | vs gzip | pull and unpack (s) | vs gzip |",
        "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for fixture in FIXTURES:
        g = results[(fixture, "gzip")]
        for name in COMPRESSIONS:
            c = results[(fixture, name)]
            ratio = lambda key: f"{med(c[key]) / med(g[key]):.2f}×"
            lines.append(f"| {fixture} | {name} | {mib(med(c['size']))} | {ratio('size')} | {med(c['build']):.2f} | "
                         f"{ratio('build')} | {med(c['pull']):.2f} | {ratio('pull')} |")
    table = "\n".join(lines) + "\n"
    os.makedirs(os.path.join(compare.ROOT, "bench", "results"), exist_ok=True)
    open(os.path.join(compare.ROOT, "bench", "results", "compression.md"), "w").write(table)
    print(table)
    shutil.rmtree(compare.WORK, ignore_errors=True)


if __name__ == "__main__":
    main()
