#!/usr/bin/env bash
# Layer compression: gzip (multi-member, the default), gzip-single and zstd, compared in one run
# on layer size, build time and pull-and-unpack time (see bench/compression.py).
# Usage: bench/compression.sh   (RUNS=3 rounds by default; FIXTURES="small-cli" for a quick run)
# Writes bench/results/compression.md and prints it. Not part of CI.
source "$(dirname "$0")/../scripts/lib.sh"
bench_setup
command -v zstd >/dev/null || DEBIAN_FRONTEND=noninteractive apt-get install -y -qq zstd >/dev/null
cd "$LOCKSHIP_ROOT/bench"
python3 compression.py "$LOCKSHIP_ROOT/target/release/lockship"
