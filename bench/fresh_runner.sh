#!/usr/bin/env bash
# A fresh CI runner: lockship with the registry as its cache against BuildKit with inline cache
# (see bench/fresh_runner.py). Usage: bench/fresh_runner.sh   (RUNS=2 rounds by default)
# Writes bench/results/fresh-runner.md and prints it. Not part of CI.
source "$(dirname "$0")/../scripts/lib.sh"
ensure_tools
start_registry
export_index
start_dockerd
make_base 3.11-bookworm-pip python3,python3-pip,python3-venv,ca-certificates LOCKSHIP_BENCH_BASE
make_base 3.11-bookworm-build python3,python3-pip,python3-venv,python3-dev,build-essential,ca-certificates LOCKSHIP_BENCH_BUILDER
cd "$LOCKSHIP_ROOT"
cargo build --release --quiet
cd bench && python3 fresh_runner.py "$LOCKSHIP_ROOT/target/release/lockship"
