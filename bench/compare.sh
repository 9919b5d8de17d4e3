#!/usr/bin/env bash
# Side-by-side benchmark: lockship (release build) against Docker BuildKit with the Dockerfiles
# users write today (bench/docker/uv.Dockerfile and wheel.Dockerfile), on the same base image
# (bookworm + python3 + pip + venv, made with mmdebstrap), the same fixtures (bench/fixtures) and
# the same machine, in one run. Network stays on loopback and the package index: builds use
# --network host, the registry listens on 127.0.0.1, dockerd runs without its bridge.
# Usage: bench/compare.sh   (RUNS=3 rounds by default; FIXTURES="small-cli" for a quick run)
# Writes bench/results/latest.md and prints it. Not part of CI.
source "$(dirname "$0")/../scripts/lib.sh"
ensure_tools
start_registry
export_index
start_dockerd
make_base 3.11-bookworm-pip python3,python3-pip,python3-venv,ca-certificates LOCKSHIP_BENCH_BASE
# The builder for sdists, for lockship and the Dockerfiles' build stage alike.
make_base 3.11-bookworm-build python3,python3-pip,python3-venv,python3-dev,build-essential,ca-certificates LOCKSHIP_BENCH_BUILDER
cd "$LOCKSHIP_ROOT"
cargo build --release --quiet
python3 bench/compare.py "$LOCKSHIP_ROOT/target/release/lockship"
