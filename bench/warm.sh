#!/usr/bin/env bash
# Warm builds at the limit: the data pipeline unchanged (same tag) and after a one-line app
# change, REPEATS times each, against the uv pattern on BuildKit (see bench/warm.py).
# Usage: bench/warm.sh   (REPEATS=9 by default). Writes bench/results/warm.md and prints it.
# Not part of CI.
source "$(dirname "$0")/../scripts/lib.sh"
bench_setup
cd "$LOCKSHIP_ROOT/bench"
python3 warm.py "$LOCKSHIP_ROOT/target/release/lockship"
