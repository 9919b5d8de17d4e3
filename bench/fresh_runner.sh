#!/usr/bin/env bash
# A fresh CI runner: lockship with the registry as its cache against BuildKit with inline cache
# (see bench/fresh_runner.py). Usage: bench/fresh_runner.sh   (RUNS=2 rounds by default)
# Writes bench/results/fresh-runner.md and prints it. Not part of CI.
source "$(dirname "$0")/../scripts/lib.sh"
bench_setup
cd "$LOCKSHIP_ROOT/bench"
python3 fresh_runner.py "$LOCKSHIP_ROOT/target/release/lockship"
