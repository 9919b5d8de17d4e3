#!/usr/bin/env bash
# Shows that a change to lockship's code changed no image: builds every fixture (the bench's
# small-cli and data-pipeline, the tests' hello-cli and data-app; uv.lock and requirements.txt
# each) with lockship built from REV (default: main) and from the work tree, on the same base and
# SOURCE_DATE_EPOCH, with cold caches, and prints each image digest side by side.
# Usage: bench/digests.sh [REV]; LOCKSHIP_BEFORE=BINARY uses a binary already built from REV.
# Not part of CI.
source "$(dirname "$0")/../scripts/lib.sh"
REV="${1:-main}"
ensure_tools
start_registry
make_base
export_index
cd "$LOCKSHIP_ROOT"
work="$(mktemp -d)"
_cleanup_dirs+=("$work")
before="${LOCKSHIP_BEFORE:-}"
if [ -z "$before" ]; then
    log "building lockship at $REV (release)"
    git worktree add --quiet --detach "$work/before" "$REV"
    (cd "$work/before" && CARGO_TARGET_DIR="$work/target-before" cargo build --release --quiet)
    git worktree remove --force "$work/before"
    before="$work/target-before/release/lockship"
fi
log "building lockship at the work tree (release)"
cargo build --release --quiet
python3 bench/digests.py "$before" "$LOCKSHIP_ROOT/target/release/lockship" "$REV"
