#!/usr/bin/env bash
# Builds the small Python base image the image-builder tests and the benchmark use, from
# Debian's packages (no image can be pulled from outside here): a minbase bookworm with python3 and
# pip (what python:3.X-slim offers a Dockerfile), as an OCI image layout. Cached OUTSIDE the clone, keyed by this script's hash:
#
#   dir=$(scripts/base-image.sh)     # prints the layout directory; the image is oci:$dir:python
#
# Needs root, debootstrap and umoci (scripts/lib/services.sh installs them). About 40 s the
# first time, instant afterwards. Progress goes to stderr; stdout carries only the path.
set -euo pipefail

CACHE="${YATAI_CACHE:-$HOME/.cache/yatai}"
MIRROR="${DEBIAN_MIRROR:-http://deb.debian.org/debian}"
die() { echo "base-image.sh: error: $*" >&2; exit 1; }
log() { echo "base-image.sh: $*" >&2; }

hash="$(sha256sum "$0" | cut -c1-12)"
dir="$CACHE/base-image/python-bookworm-$hash"
if [ -f "$dir/.complete" ]; then echo "$dir"; exit 0; fi

[ "$(id -u)" = 0 ] || die "debootstrap needs root"
command -v debootstrap >/dev/null || die "debootstrap is missing (apt-get install debootstrap)"
command -v umoci >/dev/null || die "umoci is missing (apt-get install umoci)"

mkdir -p "$CACHE/base-image"
exec 9>"$dir.lock" && flock 9 || die "cannot lock $dir.lock"
if [ -f "$dir/.complete" ]; then echo "$dir"; exit 0; fi

work="$(mktemp -d "$CACHE/base-image/build.XXXXXX")"
trap 'rm -rf "$work"' EXIT
log "debootstrap bookworm (minbase + python3, pip) from $MIRROR"
debootstrap --variant=minbase --include=python3,python3-pip bookworm "$work/rootfs" "$MIRROR" >"$work/debootstrap.log" 2>&1 \
    || { tail -20 "$work/debootstrap.log" >&2; die "debootstrap failed"; }
# What an image does not need: package caches, logs, machine identity.
rm -rf "$work/rootfs/var/cache/apt/archives/"*.deb "$work/rootfs/var/lib/apt/lists/"* \
       "$work/rootfs/var/log/"* "$work/rootfs/etc/machine-id"
pyver="$(chroot "$work/rootfs" python3 -c 'import sys; print("%d.%d.%d" % sys.version_info[:3])')" \
    || die "python3 does not run in the new root"

log "packing it as an OCI image (python $pyver)"
umoci init --layout "$work/oci"
umoci new --image "$work/oci:python"
umoci unpack --image "$work/oci:python" "$work/bundle" >/dev/null
rm -rf "$work/bundle/rootfs"
mv "$work/rootfs" "$work/bundle/rootfs"
umoci repack --image "$work/oci:python" --history.created_by "debootstrap --variant=minbase --include=python3,python3-pip bookworm" "$work/bundle"
umoci config --image "$work/oci:python" --no-history \
    --config.env "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin" \
    --config.env "LANG=C.UTF-8" --config.env "PYTHON_VERSION=$pyver" \
    --config.cmd python3 --config.label "org.opencontainers.image.description=debootstrap bookworm minbase + python3 + pip"
umoci gc --layout "$work/oci"

rm -rf "$dir"
mv "$work/oci" "$dir"
touch "$dir/.complete"
log "done: oci:$dir:python"
echo "$dir"
