#!/usr/bin/env bash
# Create (idempotently) the Python venv holding the offline validators the Rust tests call, and print where it is:
#
#   eval "$(scripts/validators-venv.sh)"    # sets YATAI_VALIDATORS_VENV
#
#   kubernetes-validate   Kubernetes objects against the schemas of Kubernetes 1.37 (shipped in the package)
#   check-jsonschema      instances against a JSON schema (our CRDs' openAPIV3Schema)
#   helm-sdkpy            Helm 4's own library (lint) in a wheel, for `helm lint` of deploy/helm
#
# The venv lives OUTSIDE the clone, in ${YATAI_VENV_CACHE:-$HOME/.cache/yatai/venvs}/validators-<hash>, where <hash>
# covers the Python version and every pin below: a changed pin makes a new venv, an unchanged one is reused.
# helm-sdkpy declares Python >= 3.12 but its Python part is plain cffi over a bundled shared library and runs on
# 3.11 (the tests prove it by linting), hence --ignore-requires-python for it alone.
set -euo pipefail

PYTHON="${PYTHON:-python3}"
CACHE="${YATAI_VENV_CACHE:-$HOME/.cache/yatai/venvs}"

die() { echo "validators-venv.sh: error: $*" >&2; exit 1; }
log() { echo "validators-venv.sh: $*" >&2; }

command -v "$PYTHON" >/dev/null || die "$PYTHON not found (set PYTHON=/path/to/python3)"
PYVER="$("$PYTHON" -c 'import sys; print("%d.%d" % sys.version_info[:2])')" || die "$PYTHON does not run"

REQS="kubernetes-validate==1.37.0 check-jsonschema==0.39.0"
HELM_REQ="helm-sdkpy==0.1.32"
LOCK="
attrs==26.1.0 certifi==2026.10.19.post1 cffi==2.1.1 charset-normalizer==3.5.3 check-jsonschema==0.39.0
click==8.5.1 helm-sdkpy==0.1.32 idna==3.20 importlib_resources==7.1.0 jsonschema==4.26.0
jsonschema-specifications==2025.9.1 kubernetes-validate==1.37.0 packaging==26.4 pycparser==3.12 PyYAML==6.0.4
referencing==0.37.0 regress==2026.9.1 requests==2.34.2 rpds-py==2026.9.1 ruamel.yaml==0.19.1
typing_extensions==4.16.0 urllib3==2.8.0"

hash="$(printf 'python %s\nreqs %s\nhelm %s\nlock %s\n' "$PYVER" "$REQS" "$HELM_REQ" "$LOCK" | sha256sum | cut -c1-12)"
dir="$CACHE/validators-$hash"

venv_ok() {
    [ -f "$dir/.yatai-venv-complete" ] && [ -x "$dir/bin/kubernetes-validate" ] && [ -x "$dir/bin/check-jsonschema" ] \
        && "$dir/bin/python" -c 'import helm_sdkpy' 2>/dev/null
}

if ! venv_ok; then
    mkdir -p "$CACHE" || die "cannot create $CACHE"
    exec 9>"$dir.lock" && flock 9 || die "cannot lock $dir.lock"
    if ! venv_ok; then
        log "creating $dir"
        rm -rf "$dir"
        "$PYTHON" -m venv "$dir" || die "$PYTHON -m venv $dir failed"
        # shellcheck disable=SC2086 # one pin per word
        printf '%s\n' $LOCK > "$dir/constraints.txt"
        # shellcheck disable=SC2086
        "$dir/bin/python" -m pip install --disable-pip-version-check --no-input -q -c "$dir/constraints.txt" $REQS >&2 \
            || die "pip install into $dir failed"
        "$dir/bin/python" -m pip install --disable-pip-version-check --no-input -q --ignore-requires-python \
            -c "$dir/constraints.txt" "$HELM_REQ" >&2 || die "pip install $HELM_REQ into $dir failed"
        touch "$dir/.yatai-venv-complete"
    fi
    exec 9>&-
fi
log "validators: $dir"
echo "export YATAI_VALIDATORS_VENV=$dir"
