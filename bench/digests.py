"""Builds every fixture with two lockship binaries and prints their image digests side by side.

Called by bench/digests.sh, which starts the registry and base image and builds both binaries.
Each build gets a cold cache of its own, the same base and the same SOURCE_DATE_EPOCH; a fixture
is locked once (uv with the bench's cutoff date) and built from its uv.lock and from a hashed
requirements.txt. Exits non-zero if any digest differs.
"""

import os
import shutil
import subprocess
import sys
import tempfile

BEFORE, AFTER, REV = sys.argv[1:4]
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BASE = os.environ["LOCKSHIP_TEST_BASE"]
CUTOFF = "2025-06-01"
FIXTURES = [
    ("bench", "small-cli"),
    ("bench", "data-pipeline"),
    ("tests", "hello-cli"),
    ("tests", "data-app"),
]
WORK = tempfile.mkdtemp(prefix="lockship-digests-")


def run(cmd, cwd=None, env=None):
    proc = subprocess.run(cmd, cwd=cwd, env={**os.environ, **(env or {})}, capture_output=True, text=True)
    if proc.returncode != 0:
        sys.exit(f"digests: {' '.join(cmd)} failed:\n{proc.stderr[-3000:]}")
    return proc.stdout.strip()


def locked(where, name):
    src = os.path.join(ROOT, where, "fixtures", name)
    path = os.path.join(WORK, name)
    shutil.copytree(src, path)
    cutoff = {"UV_EXCLUDE_NEWER": CUTOFF}
    run(["uv", "lock", "--quiet", "--python", "3.11"], cwd=path, env=cutoff)
    run(["uv", "pip", "compile", "--quiet", "pyproject.toml", "--generate-hashes", "--python-version", "3.11",
         "--python-platform", "x86_64-manylinux_2_36", "-o", "requirements.txt"], cwd=path, env=cutoff)
    return path


def build(binary, project, tag):
    cache = os.path.join(WORK, f"cache-{tag}")
    out = os.path.join(WORK, f"out-{tag}")
    return run([binary, "build", project, "--base", BASE, "--output", f"oci:{out}"],
               env={"LOCKSHIP_CACHE_DIR": cache, "SOURCE_DATE_EPOCH": "1700000000"})


def main():
    rows, same = [], True
    for where, name in FIXTURES:
        path = locked(where, name)
        for kind, drop in (("uv.lock", "requirements.txt"), ("requirements.txt", "uv.lock")):
            project = os.path.join(WORK, f"{name}-{kind}")
            shutil.copytree(path, project)
            os.remove(os.path.join(project, drop))
            before = build(BEFORE, project, f"{name}-{kind}-before")
            after = build(AFTER, project, f"{name}-{kind}-after")
            same &= before == after
            rows.append((f"{where}/{name}", kind, before, after, "yes" if before == after else "NO"))
    print(f"image digests, lockship at {REV} and at the work tree, same base and SOURCE_DATE_EPOCH")
    print()
    print("| fixture | lock | before | after | same |")
    print("| --- | --- | --- | --- | --- |")
    for row in rows:
        print("| " + " | ".join(row) + " |")
    shutil.rmtree(WORK, ignore_errors=True)
    sys.exit(0 if same else 1)


main()
