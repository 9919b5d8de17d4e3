# Shared by scripts/test, scripts/example and bench/: installs what lockship's tests and examples
# need, and starts/stops the real services they run against, all bound to 127.0.0.1.
# Source it; it defines functions and cleans up what it started (by PID) on exit.

set -euo pipefail

LOCKSHIP_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
LOCKSHIP_TEST_CACHE="${LOCKSHIP_TEST_CACHE:-$HOME/.cache/lockship-test}"
mkdir -p "$LOCKSHIP_TEST_CACHE"
_started_pids=()
_cleanup_dirs=()

_cleanup() {
    for pid in "${_started_pids[@]}"; do
        kill "$pid" 2>/dev/null || true
    done
    for pid in "${_started_pids[@]}"; do
        for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.2; done
    done
    for d in "${_cleanup_dirs[@]}"; do rm -rf "$d"; done
}
trap _cleanup EXIT

log() { echo "[lockship-setup] $*" >&2; }

# Installs Debian's registry, Docker engine, mmdebstrap, skopeo, umoci and Chromium, and uv, if
# missing.
ensure_tools() {
    local missing=()
    command -v docker-registry >/dev/null || missing+=(docker-registry)
    command -v dockerd >/dev/null || missing+=(docker.io)
    command -v mmdebstrap >/dev/null || missing+=(mmdebstrap)
    command -v skopeo >/dev/null || missing+=(skopeo)
    command -v umoci >/dev/null || missing+=(umoci)
    command -v htpasswd >/dev/null || missing+=(apache2-utils)
    # Renders `--report` pages in the report tests.
    command -v chromium >/dev/null || missing+=(chromium)
    # Reads zstd layers (dockerd 20.10 cannot) in the compression tests.
    command -v podman >/dev/null || missing+=(podman)
    if [ ${#missing[@]} -gt 0 ]; then
        log "installing ${missing[*]}"
        apt-get update -qq
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
    fi
    if ! command -v uv >/dev/null; then
        log "installing uv"
        python3 -m pip install -q uv
    fi
    ensure_py_tool pypiserver "pypiserver==2.4.2 passlib==1.7.4"
    ensure_py_tool poetry "poetry==2.5.1"
    ensure_py_tool pipenv "pipenv==2026.10.3"
}

# Installs a Python tool at a pinned version into its own venv under the test cache (once) and
# exports LOCKSHIP_TEST_TOOLS, the directory holding one venv per tool.
ensure_py_tool() {
    local name="$1" spec="$2"
    export LOCKSHIP_TEST_TOOLS="$LOCKSHIP_TEST_CACHE/tools"
    local venv="$LOCKSHIP_TEST_TOOLS/$name" stamp="$LOCKSHIP_TEST_TOOLS/$name/.lockship-spec"
    if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$spec" ]; then
        return 0
    fi
    log "installing $spec"
    rm -rf "$venv"
    python3 -m venv "$venv"
    # shellcheck disable=SC2086
    "$venv/bin/pip" install -q $spec
    echo "$spec" > "$stamp"
}

_free_port() {
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()'
}

# Starts the reference registry on 127.0.0.1 and exports LOCKSHIP_TEST_REGISTRY=127.0.0.1:PORT.
start_registry() {
    local port dir
    port="$(_free_port)"
    dir="$(mktemp -d)"
    _cleanup_dirs+=("$dir")
    cat > "$dir/config.yml" <<YML
version: 0.1
log:
  level: error
storage:
  filesystem:
    rootdirectory: $dir/data
  delete:
    enabled: true
http:
  addr: 127.0.0.1:$port
YML
    docker-registry serve "$dir/config.yml" > "$dir/registry.log" 2>&1 &
    _started_pids+=($!)
    for _ in $(seq 1 100); do
        if curl -fsS "http://127.0.0.1:$port/v2/" >/dev/null 2>&1; then
            export LOCKSHIP_TEST_REGISTRY="127.0.0.1:$port"
            log "registry on $LOCKSHIP_TEST_REGISTRY"
            return 0
        fi
        sleep 0.1
    done
    cat "$dir/registry.log" >&2
    return 1
}

# Starts dockerd without its bridge (no traffic leaves loopback) unless one already answers.
start_dockerd() {
    if docker info >/dev/null 2>&1; then
        return 0
    fi
    log "starting dockerd"
    dockerd --bridge=none --iptables=false --ip-forward=false --ip-masq=false \
        > "$LOCKSHIP_TEST_CACHE/dockerd.log" 2>&1 &
    _started_pids+=($!)
    for _ in $(seq 1 150); do
        docker info >/dev/null 2>&1 && return 0
        sleep 0.2
    done
    tail -20 "$LOCKSHIP_TEST_CACHE/dockerd.log" >&2
    return 1
}

# Makes a Debian bookworm image with python3 (the stand-in for python:3.11-slim, which cannot be
# pulled here) and pushes it to the loopback registry as python:TAG (default 3.11-bookworm).
# Extra Debian packages come as a comma list (the benchmarks add pip and venv for Dockerfiles).
# Exports the reference as LOCKSHIP_TEST_BASE (or the variable named by the third argument).
make_base() {
    local tag="${1:-3.11-bookworm}" packages="${2:-python3,ca-certificates}" var="${3:-LOCKSHIP_TEST_BASE}"
    local rootfs="$LOCKSHIP_TEST_CACHE/rootfs-$tag.tar"
    if [ ! -f "$rootfs" ]; then
        log "building a bookworm root file system ($packages) with mmdebstrap (about a minute)"
        # mmdebstrap picks the output format from the extension: keep `.tar` last.
        local partial="$LOCKSHIP_TEST_CACHE/rootfs-$tag.partial.tar"
        rm -rf "$partial" "$rootfs"
        mmdebstrap --quiet --variant=minbase --include="$packages" bookworm "$partial"
        mv "$partial" "$rootfs"
    fi
    local dir
    dir="$(mktemp -d)"
    _cleanup_dirs+=("$dir")
    umoci init --layout "$dir/oci"
    umoci new --image "$dir/oci:base"
    umoci raw add-layer --image "$dir/oci:base" "$rootfs"
    umoci config --image "$dir/oci:base" --os linux --architecture amd64 \
        --config.env PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
        --config.env LANG=C.UTF-8 --config.cmd python3
    local ref="$LOCKSHIP_TEST_REGISTRY/python:$tag"
    skopeo copy --quiet --dest-tls-verify=false "oci:$dir/oci:base" "docker://$ref"
    export "$var=$ref"
    log "base image $ref"
}

# The package index the tests use for locks without URLs: uv's own default, read at run time.
export_index() {
    if [ -z "${UV_DEFAULT_INDEX:-}${UV_INDEX_URL:-}${PIP_INDEX_URL:-}" ]; then
        UV_DEFAULT_INDEX="$(python3 -c 'from pip._internal.models.index import PyPI; print(PyPI.simple_url)')"
        export UV_DEFAULT_INDEX
    fi
}

# bench_setup: what the BuildKit comparisons need: the tools, a loopback registry, the index,
# dockerd, the bench's base (bookworm + python3 + pip + venv) and its builder (with compilers,
# for sdists, for lockship and the Dockerfiles' build stage alike), and lockship's release build.
bench_setup() {
    ensure_tools
    start_registry
    export_index
    start_dockerd
    make_base 3.11-bookworm-pip python3,python3-pip,python3-venv,ca-certificates LOCKSHIP_BENCH_BASE
    make_base 3.11-bookworm-build python3,python3-pip,python3-venv,python3-dev,build-essential,ca-certificates LOCKSHIP_BENCH_BUILDER
    (cd "$LOCKSHIP_ROOT" && cargo build --release --quiet)
}
