#!/usr/bin/env bash
# Create (idempotently) the Python venvs holding the real bentoml clients that
# tests/e2e drives, and print where they are:
#
#   eval "$(scripts/venvs.sh)"    # sets BENTOML14, BENTOML11, BENTOML10
#   "$BENTOML14/bin/pytest" tests/e2e
#
#   bentoml14  bentoml 1.4.x (current client) + pytest + requests: also runs the tests
#   bentoml11  bentoml 1.1.11 (first cloud client generation)
#   bentoml10  bentoml 1.0.20 (Yatai 1.0 era client)
#
# Each venv lives OUTSIDE the clone, in ${YATAI_VENV_CACHE:-$HOME/.cache/yatai/venvs}/<name>-<hash>,
# where <hash> covers the Python version and every pin below, so changing a pin
# makes a new venv and an unchanged one is reused. Every package is pinned
# (a full `pip freeze` of a working venv, used as constraints), so that a fresh
# machine gets exactly what was tested. Needs python3 3.11 (or PYTHON=...) and
# pip access to PyPI. Progress goes to stderr; stdout carries only the exports.
set -euo pipefail

PYTHON="${PYTHON:-python3}"
CACHE="${YATAI_VENV_CACHE:-$HOME/.cache/yatai/venvs}"

die() { echo "venvs.sh: error: $*" >&2; exit 1; }
log() { echo "venvs.sh: $*" >&2; }

command -v "$PYTHON" >/dev/null || die "$PYTHON not found (set PYTHON=/path/to/python3.11)"
PYVER="$("$PYTHON" -c 'import sys; print("%d.%d" % sys.version_info[:2])')" \
    || die "$PYTHON does not run (set PYTHON=/path/to/python3.11)"
[ "$PYVER" = "3.11" ] || die "$PYTHON is Python $PYVER; the pins below were resolved for 3.11 (set PYTHON=python3.11)"

# For each venv: the bentoml version it must report, what is installed, and the
# full lock applied as pip constraints (`pip freeze --all` of the tested venv).
BENTOML14_VERSION="1.4.40"
BENTOML14_REQS="bentoml==1.4.40 pytest==9.2.0 requests==2.34.2"
BENTOML14_LOCK="
a2wsgi==1.10.10 aiohappyeyeballs==2.7.1 aiohttp==3.14.5 aiohttp-asgi-connector==1.2.0
aiosignal==1.4.0 aiosqlite==0.22.1 annotated-types==0.8.0 anyio==4.16.0 asgiref==3.13.0
attrs==26.1.0 bentoml==1.4.40 cattrs==23.1.2 certifi==2026.10.19.post1 charset-normalizer==3.5.3
click==8.5.1 click-option-group==0.5.10 cloudpickle==3.1.3 frozenlist==1.8.0 fsspec==2026.9.0
h11==0.16.0 httpcore==1.0.9 httpx==0.28.1 httpx-ws==0.9.0 idna==3.20 iniconfig==2.3.1 Jinja2==3.1.6
kantoku==0.18.3 markdown-it-py==4.3.0 MarkupSafe==3.0.4 mdurl==0.1.2 multidict==7.2.1 numpy==2.4.6
nvidia-ml-py==13.615.71 opentelemetry-api==1.45.1 opentelemetry-instrumentation==0.66b1
opentelemetry-instrumentation-aiohttp-client==0.66b1 opentelemetry-instrumentation-asgi==0.66b1
opentelemetry-sdk==1.45.1 opentelemetry-semantic-conventions==0.66b1 opentelemetry-util-http==0.66b1
packaging==26.4 pathspec==1.1.1 pip-requirements-parser==32.0.1 pluggy==1.7.0
prometheus_client==0.26.0 propcache==0.5.4 psutil==7.2.2 pydantic==2.14.4 pydantic_core==2.50.5
Pygments==2.21.0 pyparsing==3.3.3 pytest==9.2.0 python-dateutil==4.0.0 python-json-logger==4.2.0
python-multipart==0.0.34 PyYAML==6.0.4 pyzmq==27.3.0 requests==2.34.2 rich==15.0.0
rich-toolkit==0.20.6 schema==0.7.8 setuptools==65.5.0 simple-di==0.1.5 starlette==1.10.0
tomli_w==1.2.0 tornado==6.6.1 typing-inspection==0.4.5 typing_extensions==4.16.0 tzdata==2026.6
urllib3==2.8.0 uvicorn==0.54.0 watchfiles==1.3.0 wrapt==2.5.2 wsproto==1.3.2 yarl==1.25.1"

BENTOML11_VERSION="1.1.11"
BENTOML11_REQS="bentoml==1.1.11 setuptools==65.5.0"
BENTOML11_LOCK="
aiohappyeyeballs==2.7.1 aiohttp==3.14.5 aiosignal==1.4.0 anyio==4.16.0 appdirs==1.4.4
asgiref==3.13.0 attrs==26.1.0 bentoml==1.1.11 build==1.6.1 cattrs==23.1.2 certifi==2026.10.19.post1
charset-normalizer==3.5.3 circus==0.19.0 click==8.5.1 click-option-group==0.5.10 cloudpickle==3.1.3
deepmerge==4.0.0 Deprecated==1.3.1 frozenlist==1.8.0 fs==2.4.16 h11==0.16.0 httpcore==1.0.9
httpx==0.28.1 idna==3.20 importlib-metadata==6.11.0 inflection==0.5.1 Jinja2==3.1.6
markdown-it-py==4.3.0 MarkupSafe==3.0.4 mdurl==0.1.2 multidict==7.2.1 numpy==2.4.6
nvidia-ml-py==11.525.150 opentelemetry-api==1.20.0 opentelemetry-instrumentation==0.41b0
opentelemetry-instrumentation-aiohttp-client==0.41b0 opentelemetry-instrumentation-asgi==0.41b0
opentelemetry-sdk==1.20.0 opentelemetry-semantic-conventions==0.41b0 opentelemetry-util-http==0.41b0
packaging==26.4 pathspec==1.1.1 pip-requirements-parser==32.0.1 pip-tools==7.6.2
prometheus_client==0.26.0 propcache==0.5.4 psutil==7.2.2 Pygments==2.21.0 pyparsing==3.3.3
pyproject_hooks==1.3.3 python-dateutil==4.0.0 python-json-logger==4.2.0 python-multipart==0.0.34
PyYAML==6.0.4 pyzmq==27.3.0 requests==2.34.2 rich==15.0.0 schema==0.7.8 setuptools==65.5.0
simple-di==0.1.5 six==1.17.0 starlette==1.10.0 tornado==6.6.1 typing_extensions==4.16.0
tzdata==2026.6 urllib3==2.8.0 uvicorn==0.54.0 watchfiles==1.3.0 wheel==0.48.0 wrapt==1.17.3
yarl==1.25.1 zipp==4.1.2"

# 1.0.20 needs cattrs/attrs of its time: with newer ones it writes a bento.yaml
# without name/version and cannot read its own store. setuptools stays below the
# versions without pkg_resources, which fs (pyfilesystem2, used by 1.0/1.1) imports.
BENTOML10_VERSION="1.0.20"
BENTOML10_REQS="bentoml==1.0.20 cattrs==23.1.2 attrs==23.1.0 setuptools==65.5.0"
BENTOML10_LOCK="
aiohappyeyeballs==2.7.1 aiohttp==3.14.5 aiosignal==1.4.0 anyio==4.16.0 appdirs==1.4.4
asgiref==3.13.0 attrs==23.1.0 bentoml==1.0.20 build==1.6.1 cattrs==23.1.2 certifi==2026.10.19.post1
charset-normalizer==3.5.3 circus==0.19.0 click==8.5.1 click-option-group==0.5.10 cloudpickle==3.1.3
deepmerge==4.0.0 Deprecated==1.3.1 frozenlist==1.8.0 fs==2.4.16 h11==0.16.0 idna==3.20 Jinja2==3.1.6
markdown-it-py==4.3.0 MarkupSafe==3.0.4 mdurl==0.1.2 multidict==7.2.1 numpy==2.4.6
opentelemetry-api==1.14.0 opentelemetry-instrumentation==0.35b0
opentelemetry-instrumentation-aiohttp-client==0.35b0 opentelemetry-instrumentation-asgi==0.35b0
opentelemetry-sdk==1.14.0 opentelemetry-semantic-conventions==0.35b0 opentelemetry-util-http==0.35b0
packaging==26.4 pathspec==1.1.1 pip-requirements-parser==32.0.1 pip-tools==7.6.2
prometheus_client==0.26.0 propcache==0.5.4 psutil==7.2.2 Pygments==2.21.0 pynvml==11.5.3
pyparsing==3.3.3 pyproject_hooks==1.3.3 python-dateutil==4.0.0 python-json-logger==4.2.0
python-multipart==0.0.34 PyYAML==6.0.4 pyzmq==27.3.0 requests==2.34.2 rich==15.0.0 schema==0.7.8
setuptools==65.5.0 simple-di==0.1.5 six==1.17.0 starlette==0.25.0 tornado==6.6.1
typing_extensions==4.16.0 tzdata==2026.6 urllib3==2.8.0 uvicorn==0.54.0 watchfiles==1.3.0
wheel==0.48.0 wrapt==1.17.3 yarl==1.25.1"

# venv_ok DIR VERSION: the venv is complete and its bentoml reports VERSION.
venv_ok() {
    [ -f "$1/.yatai-venv-complete" ] && [ -x "$1/bin/bentoml" ] || return 1
    [ "$(bentoml_version "$1")" = "bentoml, version $2" ]
}

bentoml_version() {
    BENTOML_DO_NOT_TRACK=True "$1/bin/bentoml" --version 2>/dev/null
}

# create_venv DIR VERSION REQS LOCK: (re)create DIR from scratch.
create_venv() {
    local dir="$1" version="$2" reqs="$3" lock="$4" reported
    log "creating $dir (bentoml $version)"
    rm -rf "$dir" || die "cannot remove the incomplete $dir"
    "$PYTHON" -m venv "$dir" || die "$PYTHON -m venv $dir failed"
    # shellcheck disable=SC2086 # one constraint / requirement per word
    printf '%s\n' $lock > "$dir/constraints.txt" || die "cannot write $dir/constraints.txt"
    # shellcheck disable=SC2086
    "$dir/bin/python" -m pip install --disable-pip-version-check --no-input -q \
        -c "$dir/constraints.txt" $reqs >&2 || die "pip install into $dir failed"
    reported="$(bentoml_version "$dir")" || die "$dir/bin/bentoml --version failed"
    [ "$reported" = "bentoml, version $version" ] \
        || die "$dir/bin/bentoml --version says '$reported', expected $version"
    touch "$dir/.yatai-venv-complete" || die "cannot mark $dir complete"
}

# make_venv NAME: print `export NAME=DIR` for venv NAME, creating it when needed.
make_venv() {
    local upper version reqs lock hash dir
    upper="$(echo "$1" | tr '[:lower:]' '[:upper:]')"
    local v="${upper}_VERSION" r="${upper}_REQS" l="${upper}_LOCK"
    version="${!v}" reqs="${!r}" lock="${!l}"
    hash="$(printf 'python %s\nreqs %s\nlock %s\n' "$PYVER" "$reqs" "$lock" | sha256sum | cut -c1-12)"
    dir="$CACHE/$1-$hash"

    if ! venv_ok "$dir" "$version"; then
        mkdir -p "$CACHE" || die "cannot create $CACHE"
        # One creator at a time per venv; a waiting one then finds it done.
        exec 9>"$dir.lock" && flock 9 || die "cannot lock $dir.lock"
        venv_ok "$dir" "$version" || create_venv "$dir" "$version" "$reqs" "$lock"
        exec 9>&-
    fi
    log "$1: $dir: $(bentoml_version "$dir")"
    echo "export $upper=$dir"
}

for name in bentoml14 bentoml11 bentoml10; do
    make_venv "$name"
done
