#!/usr/bin/env bash
# Side-by-side benchmark: lockship (release build) against Docker BuildKit with the Dockerfiles
# users write today (bench/docker/uv.Dockerfile and wheel.Dockerfile), on the same base image
# (bookworm + python3 + pip + venv, made with mmdebstrap), the same fixtures (bench/fixtures) and
# the same machine, in one run. Network stays on loopback and the package index: builds use
# --network host, the registry listens on 127.0.0.1, dockerd runs without its bridge.
# Usage: bench/compare.sh   (RUNS=3 rounds by default; FIXTURES="small-cli" for a quick run)
# Writes bench/results/latest.md and prints it, then, when the data pipeline is among the
# fixtures, bench/warm.sh's repeated warm runs (bench/results/warm.md). Not part of CI.
source "$(dirname "$0")/../scripts/lib.sh"
bench_setup
cd "$LOCKSHIP_ROOT"
python3 bench/compare.py "$LOCKSHIP_ROOT/target/release/lockship"
# The warm goals in repeated runs (same services, same machine): see bench/warm.py.
case " ${FIXTURES:-data-pipeline} " in
    *" data-pipeline "*) (cd bench && python3 warm.py "$LOCKSHIP_ROOT/target/release/lockship") ;;
esac
