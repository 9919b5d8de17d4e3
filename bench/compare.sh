#!/usr/bin/env bash
# Side-by-side benchmark: lockship (release build) against Docker BuildKit with the Dockerfiles
# users write today (bench/docker/uv.Dockerfile and wheel.Dockerfile), on the same base image
# (bookworm + python3 + pip + venv, made with mmdebstrap), the same fixtures (bench/fixtures) and
# the same machine, in one run. Network stays on loopback and the package index: builds use
# --network host, the registry listens on 127.0.0.1, dockerd runs without its bridge.
# Usage: bench/compare.sh   (RUNS=3 rounds by default; FIXTURES="small-cli" for a quick run)
# Writes bench/results/latest.md and prints it. Not part of CI.
source "$(dirname "$0")/../scripts/lib.sh"
bench_setup
cd "$LOCKSHIP_ROOT"
python3 bench/compare.py "$LOCKSHIP_ROOT/target/release/lockship"
