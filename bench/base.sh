#!/usr/bin/env bash
# Benchmarks lockship's Debian-package base against the same packages installed by mmdebstrap
# and turned into an image with `docker import` (the usual way to get a base without pulling
# one), in one run: base size (compressed and uncompressed) and build time, cold and warm.
# No registry Python image is at hand on this machine to compare against.
# Prints a markdown table. Not part of CI.
source "$(dirname "$0")/../scripts/lib.sh"
ensure_tools
start_dockerd
cd "$LOCKSHIP_ROOT"
cargo build --release --quiet
bin="$LOCKSHIP_ROOT/target/release/lockship"
work="$(mktemp -d)"
_cleanup_dirs+=("$work")
now() { date +%s.%N; }
mib() { echo "scale=1; $1 / 1048576" | bc; }

proj="$work/hello-cli"
cp -r tests/fixtures/hello-cli "$proj"; rm -f "$proj/uv.lock" "$proj/lockship-base.lock"
(cd "$proj" && uv lock --quiet --exclude-newer 2025-06-01 --python 3.11)

t0=$(now)
LOCKSHIP_CACHE_DIR="$work/cache" "$bin" build "$proj" --output "docker:$work/img.tar" --format json > "$work/cold.json"
t1=$(now)
LOCKSHIP_CACHE_DIR="$work/cache" "$bin" build "$proj" --output "docker:$work/img.tar" --format json > "$work/warm.json"
t2=$(now)
base_gz=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["layers"][0]["size"])' "$work/warm.json")
base_tar=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["layers"][0]["uncompressed_size"])' "$work/warm.json")
base_secs=$(python3 -c 'import json,sys; print(dict(json.load(open(sys.argv[1]))["timings"])["base"])' "$work/warm.json")
packages=$(grep -c '^\[\[package\]\]' "$proj/lockship-base.lock")

t3=$(now)
mmdebstrap --quiet --variant=minbase --include=python3,ca-certificates bookworm "$work/rootfs.tar"
docker import "$work/rootfs.tar" lockship-bench/mmdebstrap:bookworm >/dev/null
t4=$(now)
mm_tar=$(stat -c %s "$work/rootfs.tar")
mm_gz=$(gzip -6 -c "$work/rootfs.tar" | wc -c)

printf '| base | packages | compressed (MiB) | uncompressed (MiB) | cold build (s) | warm (s) |\n'
printf '| --- | --- | --- | --- | --- | --- |\n'
printf '| lockship Debian base (python3) | %s | %s | %s | %.1f (whole image) | %.3f (base phase of a %.2f s image build) |\n' \
    "$packages" "$(mib "$base_gz")" "$(mib "$base_tar")" "$(echo "$t1 - $t0" | bc)" "$base_secs" "$(echo "$t2 - $t1" | bc)"
printf '| mmdebstrap minbase + python3 + docker import | %s | %s | %s | %.1f | n/a (no cache) |\n' \
    "$(tar -tf "$work/rootfs.tar" 2>/dev/null | grep -c 'var/lib/dpkg/info/.*\.list$' || true)" "$(mib "$mm_gz")" "$(mib "$mm_tar")" "$(echo "$t4 - $t3" | bc)"
docker rmi -f lockship-bench/mmdebstrap:bookworm >/dev/null 2>&1 || true
