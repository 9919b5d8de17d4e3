#!/usr/bin/env bash
# Multi-platform benchmark: lockship cold builds of the bench fixtures on a Debian-package base
# (bookworm + python3, for amd64 and arm64), one platform against two in one build, pushed to the
# loopback registry, in one run. BuildKit cannot take part on this machine: a two-platform
# Dockerfile build runs its RUN steps for arm64 under QEMU, and this host has no binfmt emulator.
# Usage: bench/platforms.sh   (RUNS=3 rounds by default; FIXTURES="small-cli" for a quick run)
# Writes bench/results/platforms.md and prints it. Not part of CI.
source "$(dirname "$0")/../scripts/lib.sh"
ensure_tools
start_registry
export_index
cd "$LOCKSHIP_ROOT"
cargo build --release --quiet
python3 bench/platforms.py "$LOCKSHIP_ROOT/target/release/lockship"
