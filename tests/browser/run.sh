#!/usr/bin/env bash
# Runs the dashboard tests in real headless Chromium (node:test, TAP output ending with
# `# pass N` / `# fail N`; exits non-zero when any test fails).
#
#   YATAI_BIN=target/debug/yatai tests/browser/run.sh [test files...]
#
# Installs what is missing first (scripts/browser-deps.sh: chromium, tmux, npm packages in a
# cache outside the clone) and uses the bentoml 1.4 venv of scripts/venvs.sh (BENTOML14, created
# when not set). Screenshots and logs go to ${YATAI_TEST_OUTPUT:-test-output}/{screenshots,logs}.
set -euo pipefail
cd "$(dirname "$0")/../.."

YATAI_NODE_MODULES="$(scripts/browser-deps.sh)"
export YATAI_NODE_MODULES
if [ -z "${BENTOML14:-}" ]; then
    eval "$(scripts/venvs.sh)"
fi
export BENTOML14
export YATAI_BIN="${YATAI_BIN:-$PWD/target/debug/yatai}"
[ -x "$YATAI_BIN" ] || { echo "error: the yatai binary is missing: $YATAI_BIN; build it with \`cargo build\` (or set YATAI_BIN)" >&2; exit 1; }

if [ $# -eq 0 ]; then set -- tests/browser/*.test.mjs; fi
exec node --test --test-reporter=tap --test-concurrency=1 "$@"
