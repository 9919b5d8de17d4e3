#!/usr/bin/env bash
# Benchmarks lockship builds of the small (hello-cli) and data (numpy + pandas) fixtures:
# cold (empty cache), warm with no change, and after a one-line app change; median wall time of
# RUNS runs and peak memory. The peer in the same run is `uv pip install --target` of the same
# lock into a directory: the dependency install that any Dockerfile build does at least once.
# Prints a markdown table. Not part of CI (timings on shared machines are noisy).
source "$(dirname "$0")/../scripts/lib.sh"
RUNS="${RUNS:-5}"
ensure_tools
start_registry
make_base
export_index
cd "$LOCKSHIP_ROOT"
cargo build --release --quiet
bin="$LOCKSHIP_ROOT/target/release/lockship"
work="$(mktemp -d)"
_cleanup_dirs+=("$work")

# median SECONDS... : prints the median of the given numbers.
median() { printf '%s\n' "$@" | sort -g | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }

# timed CMD... : runs CMD, prints "seconds peak_kib".
timed() {
    local t0 t1
    t0=$(date +%s.%N)
    /usr/bin/time -f %M -o "$work/mem" "$@" >/dev/null 2>"$work/err" || { cat "$work/err" >&2; return 1; }
    t1=$(date +%s.%N)
    echo "$(echo "$t1 - $t0" | bc) $(cat "$work/mem")"
}

printf '| fixture | scenario | lockship median (s) | peak RSS (MiB) | peer: uv pip install --target (s) |\n'
printf '| --- | --- | --- | --- | --- |\n'
for fixture in hello-cli data-app; do
    proj="$work/$fixture"
    rm -rf "$proj"; cp -r "tests/fixtures/$fixture" "$proj"; rm -f "$proj/uv.lock"
    (cd "$proj" && uv lock --quiet --exclude-newer 2025-06-01 --python 3.11)
    build() { timed env LOCKSHIP_CACHE_DIR="$work/cache-$fixture" SOURCE_DATE_EPOCH=0 "$bin" build "$proj" --base "$LOCKSHIP_TEST_BASE" --push "$LOCKSHIP_TEST_REGISTRY/bench/$fixture:1"; }
    cold=(); warm=(); change=(); peer=(); mem=0
    for i in $(seq 1 "$RUNS"); do
        rm -rf "$work/cache-$fixture"
        read -r s m < <(build); cold+=("$s"); mem=$(( m > mem ? m : mem ))
        read -r s m < <(build); warm+=("$s")
        echo "# change $i" >> "$(find "$proj" -name '*.py' -path '*main*' | head -1)"
        read -r s m < <(build); change+=("$s"); mem=$(( m > mem ? m : mem ))
        rm -rf "$work/peer" "$work/uvcache"
        read -r s m < <(timed env UV_CACHE_DIR="$work/uvcache" uv pip install --quiet --target "$work/peer" --python-version 3.11 --python-platform x86_64-manylinux_2_36 -r "$proj/requirements.txt"); peer+=("$s")
    done
    printf '| %s | cold | %.2f | %s | %.2f |\n' "$fixture" "$(median "${cold[@]}")" "$((mem / 1024))" "$(median "${peer[@]}")"
    printf '| %s | warm, no change | %.2f | | |\n' "$fixture" "$(median "${warm[@]}")"
    printf '| %s | app changed | %.2f | | |\n' "$fixture" "$(median "${change[@]}")"
done
