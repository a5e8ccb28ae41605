# Starts (and installs where missing) the services the tests need. Sourced by scripts/test.
# Every function fails loudly; nothing is skipped silently.

YATAI_CACHE="${YATAI_CACHE:-$HOME/.cache/yatai}"
MOTO_PIN="moto[server]==5.2.5"
# The API fuzzer of the reliability suite, with every package it pulls in pinned (a `pip freeze`
# of a working venv), so that a fresh machine fuzzes with exactly what was tested.
SCHEMATHESIS_PINS="schemathesis==4.32.5 anyio==4.16.0 certifi==2026.10.19.post1 charset-normalizer==3.5.3
click==8.5.1 graphql-core==3.3.2 harfile==0.6.0 hypothesis==6.170.17 hypothesis-graphql==0.13.5 idna==3.20
iniconfig==2.3.1 jsonschema_rs==0.60.3 markdown-it-py==4.3.0 MarkupSafe==3.0.4 mdurl==0.1.2 packaging==26.4
pluggy==1.7.0 Pygments==2.21.0 pyrate-limiter==4.5.1 pytest==9.2.0 PyYAML==6.0.4 requests==2.34.2 rich==15.0.0
sortedcontainers==2.4.0 typing_extensions==4.16.0 urllib3==2.8.0 Werkzeug==3.1.9"
S3_PORT="${YATAI_TEST_S3_PORT:-5055}"

log() { printf '\033[1m==> %s\033[0m\n' "$*" >&2; }
die() { printf 'error: %s\n' "$*" >&2; exit 1; }

as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }

apt_install() {
    log "installing $* with apt-get"
    as_root apt-get update -qq >/dev/null || die "apt-get update failed"
    DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -qq "$@" >/dev/null || die "apt-get install $* failed"
}

# PostgreSQL on 127.0.0.1:5432 with trust auth for the user postgres.
ensure_postgres() {
    if pg_isready -q -h 127.0.0.1 -p 5432 2>/dev/null; then return; fi
    if [ ! -d /etc/postgresql ] || [ -z "$(ls /etc/postgresql 2>/dev/null)" ]; then
        apt_install postgresql postgresql-client
        local v; v=$(ls /etc/postgresql | sort -V | tail -n1)
        # Local test cluster: trust connections from this machine only.
        as_root sed -i -E 's/^(host\s+all\s+all\s+(127\.0\.0\.1\/32|::1\/128)\s+)\S+/\1trust/' "/etc/postgresql/$v/main/pg_hba.conf"
    fi
    log "starting PostgreSQL"
    as_root pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | sort -V | tail -n1)" main start || true
    for _ in $(seq 1 30); do pg_isready -q -h 127.0.0.1 -p 5432 && break; sleep 1; done
    pg_isready -q -h 127.0.0.1 -p 5432 || die "PostgreSQL does not answer on 127.0.0.1:5432"
    psql -h 127.0.0.1 -U postgres -c 'SELECT 1' -qtA postgres >/dev/null || die "cannot log in to PostgreSQL as postgres on 127.0.0.1 (trust auth is needed)"
}

# Drops the test databases earlier runs left behind (the Rust tests keep theirs, so that a
# failing test's data can be looked at). Why: each run leaves about 200, some 8 MB each, and
# they add up over runs on one machine: disk, and a checkpoint that syncs all their files (seen
# here: 336 of them, a 3-minute checkpoint, and an end-to-end teardown that timed out waiting for
# it). A database still in use (a run going on beside this one) is kept.
drop_stale_test_databases() {
    local names; names=$(psql -h 127.0.0.1 -U postgres -qAt -d postgres -c \
        "SELECT datname FROM pg_database WHERE datname LIKE 'yatai\_test\_%' OR datname LIKE 'yatai\_e2e\_%'") \
        || die "cannot list the databases of PostgreSQL on 127.0.0.1"
    [ -n "$names" ] || return 0
    log "dropping $(wc -l <<<"$names") test databases left by earlier runs"
    local name
    while read -r name; do
        psql -h 127.0.0.1 -U postgres -qAt -d postgres -c "DROP DATABASE IF EXISTS \"$name\"" >/dev/null 2>&1 || true
    done <<<"$names"
}

# A Python venv in the cache, keyed by its pins: venv_for NAME PIN... -> prints its path.
venv_for() {
    local name=$1; shift
    local key; key=$(printf '%s\n' "$@" | sha256sum | cut -c1-12)
    local dir="$YATAI_CACHE/venvs/$name-$key"
    if [ ! -x "$dir/bin/python" ] || [ ! -f "$dir/.complete" ]; then
        log "creating venv $name ($*)"
        rm -rf "$dir"
        python3 -m venv "$dir" || die "python3 -m venv failed (install python3-venv)"
        "$dir/bin/pip" install -q --disable-pip-version-check "$@" >&2 || die "pip install $* failed"
        touch "$dir/.complete"
    fi
    echo "$dir"
}

# An S3 server (moto) on 127.0.0.1:$S3_PORT; exports YATAI_TEST_S3_ENDPOINT, and
# YATAI_TEST_MOTO_SERVER for tests that start a moto of their own (with authentication on).
ensure_s3() {
    export YATAI_TEST_S3_ENDPOINT="http://127.0.0.1:$S3_PORT"
    local venv; venv=$(venv_for moto "$MOTO_PIN")
    export YATAI_TEST_MOTO_SERVER="$venv/bin/moto_server"
    if curl -fsS -o /dev/null "$YATAI_TEST_S3_ENDPOINT/moto-api/" 2>/dev/null; then return; fi
    log "starting the S3 server (moto) on 127.0.0.1:$S3_PORT"
    mkdir -p "$YATAI_CACHE"
    nohup "$venv/bin/moto_server" -H 127.0.0.1 -p "$S3_PORT" >"$YATAI_CACHE/moto.log" 2>&1 &
    MOTO_PID=$!
    for _ in $(seq 1 60); do curl -fsS -o /dev/null "$YATAI_TEST_S3_ENDPOINT/moto-api/" 2>/dev/null && return; sleep 0.5; done
    die "the S3 server did not start; see $YATAI_CACHE/moto.log"
}

# schemathesis (the OpenAPI fuzzer) in a cached venv keyed by its pins; exports YATAI_TEST_SCHEMATHESIS.
ensure_schemathesis() {
    local venv
    # shellcheck disable=SC2086 # one pin per word
    venv=$(venv_for schemathesis $SCHEMATHESIS_PINS)
    export YATAI_TEST_SCHEMATHESIS="$venv/bin/st"
}

# --- image builder ------------------------------------------------------------------------
UV_PIN="uv==0.13.9"

# The independent tools the image-builder tests check images with, and what builds the base.
ensure_image_tools() {
    local missing=() pair
    for pair in docker-registry:docker-registry skopeo:skopeo umoci:umoci buildah:buildah \
                debootstrap:debootstrap htpasswd:apache2-utils; do
        command -v "${pair%%:*}" >/dev/null || missing+=("${pair#*:}")
    done
    [ ${#missing[@]} -eq 0 ] || apt_install "${missing[@]}"
    # uv installs wheels for the image in seconds; the builder finds it on PATH.
    local venv; venv=$(venv_for uv "$UV_PIN")
    export PATH="$venv/bin:$PATH"
}

# A free TCP port on 127.0.0.1.
free_port() {
    python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# Debian's docker-registry on a free 127.0.0.1 port, its data and log in a fresh directory;
# exports YATAI_TEST_REGISTRY (host:port) and YATAI_TEST_REGISTRY_LOG (its request log).
ensure_registry() {
    if [ -n "${YATAI_TEST_REGISTRY:-}" ] && curl -fsS -o /dev/null "http://$YATAI_TEST_REGISTRY/v2/"; then return; fi
    local port dir
    port=$(free_port)
    dir=$(mktemp -d "${TMPDIR:-/tmp}/yatai-registry.XXXXXX")
    cat >"$dir/config.yml" <<YAML
version: 0.1
log:
  level: info
  accesslog:
    disabled: false
storage:
  filesystem:
    rootdirectory: $dir/data
  delete:
    enabled: true
http:
  addr: 127.0.0.1:$port
YAML
    log "starting docker-registry on 127.0.0.1:$port"
    nohup docker-registry serve "$dir/config.yml" >"$dir/registry.log" 2>&1 &
    REGISTRY_PID=$!
    for _ in $(seq 1 50); do curl -fsS -o /dev/null "http://127.0.0.1:$port/v2/" 2>/dev/null && break; sleep 0.2; done
    curl -fsS -o /dev/null "http://127.0.0.1:$port/v2/" || die "docker-registry did not start; see $dir/registry.log"
    export YATAI_TEST_REGISTRY="127.0.0.1:$port" YATAI_TEST_REGISTRY_LOG="$dir/registry.log"
}

# The test base image (scripts/base-image.sh, cached) pushed to the test registry; exports
# YATAI_TEST_BASE_IMAGE and YATAI_TEST_BASE_OCI (the cached layout, for tests that need their own registry).
ensure_base_image() {
    local layout
    layout=$(scripts/base-image.sh) || die "cannot build the base image (scripts/base-image.sh)"
    skopeo copy -q --dest-tls-verify=false "oci:$layout:python" "docker://$YATAI_TEST_REGISTRY/yatai-test/python:3.11" >&2 \
        || die "cannot push the base image to $YATAI_TEST_REGISTRY"
    export YATAI_TEST_BASE_IMAGE="$YATAI_TEST_REGISTRY/yatai-test/python:3.11" YATAI_TEST_BASE_OCI="$layout"
}
