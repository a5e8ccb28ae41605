#!/usr/bin/env bash
# Installs what the browser tests (tests/browser) need and prints where their node_modules is:
#
#   YATAI_NODE_MODULES="$(scripts/browser-deps.sh)"
#
# - Debian's `chromium` (the tests drive /usr/bin/chromium; nothing is downloaded by Playwright)
#   and `tmux` (the pseudo-terminal that answers the bentoml CLI's login menu), with apt-get
#   when missing (as root, or through sudo);
# - the npm packages of tests/browser/package-lock.json, installed with `npm ci` into
#   ${YATAI_CACHE:-$HOME/.cache/yatai}/node-<hash>, OUTSIDE the clone, where <hash> covers the
#   lockfile, package.json and the Node major version: an unchanged lockfile reuses the directory.
#
# Progress goes to stderr; stdout carries only the node_modules path.
set -euo pipefail
cd "$(dirname "$0")/.."

CACHE="${YATAI_CACHE:-$HOME/.cache/yatai}"
SRC=tests/browser

die() { echo "browser-deps.sh: error: $*" >&2; exit 1; }
log() { echo "browser-deps.sh: $*" >&2; }
as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo -n "$@"; fi; }

# System packages: only those missing, one apt-get update first.
missing=()
[ -x /usr/bin/chromium ] || missing+=(chromium)
command -v tmux >/dev/null || missing+=(tmux)
if [ ${#missing[@]} -gt 0 ]; then
    command -v apt-get >/dev/null || die "missing ${missing[*]} and no apt-get: install them by hand (Debian package names)"
    log "installing ${missing[*]} with apt-get"
    as_root apt-get update -qq >&2 || die "apt-get update failed (run as root or with passwordless sudo)"
    DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -qq --no-install-recommends "${missing[@]}" >&2 \
        || die "apt-get install ${missing[*]} failed"
fi
[ -x /usr/bin/chromium ] || die "/usr/bin/chromium is still missing after apt-get install chromium"
command -v tmux >/dev/null || die "tmux is still missing after apt-get install tmux"

command -v node >/dev/null || die "node is missing: install Node.js 20 or newer"
command -v npm >/dev/null || die "npm is missing: install npm (Node.js 20 or newer)"
node_major="$(node -p 'process.versions.node.split(".")[0]')"
[ "$node_major" -ge 20 ] || die "node $(node --version) is too old: the tests need Node.js 20 or newer"
[ -f "$SRC/package-lock.json" ] || die "$SRC/package-lock.json is missing"

hash="$(cat "$SRC/package.json" "$SRC/package-lock.json" <(echo "node $node_major") | sha256sum | cut -c1-12)"
dir="$CACHE/node-$hash"

if [ ! -f "$dir/.complete" ]; then
    mkdir -p "$CACHE" || die "cannot create $CACHE"
    # One installer at a time per lockfile; a waiting one then finds it done.
    exec 9>"$dir.lock" && flock 9 || die "cannot lock $dir.lock"
    if [ ! -f "$dir/.complete" ]; then
        log "npm ci into $dir"
        rm -rf "$dir" && mkdir -p "$dir" || die "cannot (re)create $dir"
        cp "$SRC/package.json" "$SRC/package-lock.json" "$dir/"
        # --ignore-scripts: playwright-core needs no install step (no browser download).
        (cd "$dir" && npm ci --ignore-scripts --no-audit --no-fund --loglevel=error >&2) \
            || die "npm ci in $dir failed (needs access to the npm registry)"
        [ -f "$dir/node_modules/playwright-core/package.json" ] || die "npm ci did not install playwright-core into $dir"
        touch "$dir/.complete"
    fi
    exec 9>&-
fi
log "node_modules: $dir/node_modules (playwright-core $(node -p "require('$dir/node_modules/playwright-core/package.json').version"))"
echo "$dir/node_modules"
