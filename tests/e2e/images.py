"""The image builder under test, and independent tools to look at what it pushed.

The registry (Debian's ``docker-registry``) and the base image (built from Debian packages by
``scripts/base-image.sh``) are started by ``scripts/test`` through ``scripts/lib/services.sh``;
the tests read them from the environment and fail, saying how to start them, when missing.
Images are read back with ``skopeo`` and unpacked with ``umoci``, and run with ``unshare`` +
``chroot`` as root: nothing here uses the builder's own code to check the builder.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import tarfile
import time
import urllib.parse
from dataclasses import dataclass
from pathlib import Path

import requests

import servers

HOW_TO = (
    "The image-builder tests need a registry and the test base image: run `scripts/test --e2e-only`, or\n"
    "  source scripts/lib/services.sh && ensure_image_tools && ensure_registry && ensure_base_image\n"
    "which installs docker-registry, skopeo, umoci, buildah and debootstrap with apt, starts the registry on a\n"
    "free 127.0.0.1 port and exports YATAI_TEST_REGISTRY, YATAI_TEST_REGISTRY_LOG and YATAI_TEST_BASE_IMAGE."
)


def env_or_fail(name: str) -> str:
    value = os.environ.get(name)
    if not value:
        raise servers.MissingService(f"{name} is not set.\n{HOW_TO}")
    return value


@dataclass
class Registry:
    """A running registry: ``host:port`` and the file its request log goes to."""

    host: str
    log: Path

    def log_size(self) -> int:
        return self.log.stat().st_size

    def requests_since(self, offset: int) -> list[str]:
        """Request lines (method and path) the registry logged after byte ``offset``."""
        with open(self.log, "rb") as f:
            f.seek(offset)
            text = f.read().decode("utf-8", "replace")
        return re.findall(r'"((?:GET|HEAD|PUT|PATCH|POST|DELETE) /v2/[^ "]*)', text)

    def tags(self, repository: str) -> list[str]:
        resp = requests.get(f"http://{self.host}/v2/{repository}/tags/list", timeout=10)
        if resp.status_code == 404:
            return []
        resp.raise_for_status()
        return resp.json().get("tags") or []


def blob_commits(lines: list[str]) -> list[str]:
    """Digests of the blob uploads completed in ``lines`` (the final PUT carries ``digest=``)."""
    out = []
    for line in lines:
        if line.startswith("PUT ") and "/blobs/uploads/" in line:
            query = urllib.parse.urlparse(line.split(" ", 1)[1]).query
            out += urllib.parse.parse_qs(query).get("digest", [])
    return out


@dataclass
class Built:
    image: str
    digest: str
    stdout: str
    stderr: str


def yatai_build(args: list[str], env: dict[str, str], check: bool = True, timeout: float = 900) -> subprocess.CompletedProcess:
    """Run ``yatai image build ARGS`` with ``env`` added to a clean environment."""
    full = {k: v for k, v in os.environ.items() if not k.startswith("DOCKER_REGISTRY_")}
    full.update(env)
    proc = subprocess.run(
        [str(servers.yatai_bin()), "image", "build", *args],
        env=full,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    if check:
        assert proc.returncode == 0, f"yatai image build {' '.join(args)} failed ({proc.returncode}):\n{proc.stderr}\n{proc.stdout}"
    return proc


def parse_built(proc: subprocess.CompletedProcess) -> Built:
    image = re.search(r"^image: (\S+)$", proc.stdout, re.MULTILINE)
    digest = re.search(r"^digest: (sha256:[0-9a-f]{64})$", proc.stdout, re.MULTILINE)
    assert image and digest, f"no image/digest printed last:\n{proc.stdout}\n{proc.stderr}"
    lines = [l for l in proc.stdout.strip().splitlines() if l]
    assert lines[-1].startswith("digest: "), f"the digest must be printed last:\n{proc.stdout}"
    return Built(image.group(1), digest.group(1), proc.stdout, proc.stderr)


def skopeo(*args: str) -> str:
    proc = subprocess.run(["skopeo", *args], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, f"skopeo {' '.join(args)}: {proc.stderr}"
    return proc.stdout


def inspect(image: str) -> tuple[dict, dict, dict]:
    """``(skopeo inspect, raw manifest, config)`` of an image in the test registry."""
    ref = f"docker://{image}"
    summary = json.loads(skopeo("inspect", "--tls-verify=false", ref))
    manifest = json.loads(skopeo("inspect", "--tls-verify=false", "--raw", ref))
    config = json.loads(skopeo("inspect", "--tls-verify=false", "--config", ref))
    return summary, manifest, config


def copy_to_layout(image: str, layout: Path, name: str = "img") -> None:
    skopeo("copy", "-q", "--src-tls-verify=false", f"docker://{image}", f"oci:{layout}:{name}")


def layout_blob(layout: Path, digest: str) -> Path:
    algo, hexd = digest.split(":", 1)
    return layout / "blobs" / algo / hexd


def layer_files(layer: Path, prefix: str) -> dict[str, tuple[bytes, int, int, int]]:
    """``{relative path: (content, mode, uid, gid)}`` of the regular files under ``prefix``."""
    out = {}
    with tarfile.open(layer, "r:gz") as tar:
        for m in tar:
            name = m.name.lstrip("./")
            if m.isfile() and name.startswith(prefix + "/"):
                out[name[len(prefix) + 1 :]] = (tar.extractfile(m).read(), m.mode, m.uid, m.gid)
    return out


def archive_files(archive: Path) -> dict[str, bytes]:
    """``{relative path: content}`` of the regular files of a bento archive (tar or tar.gz)."""
    out = {}
    with tarfile.open(archive, "r:*") as tar:
        for m in tar:
            if m.isfile():
                out[m.name.removeprefix("./")] = tar.extractfile(m).read()
    return out


class Running:
    """An image's entrypoint running in a chroot of its unpacked root filesystem."""

    def __init__(self, proc: subprocess.Popen, log: Path, port: int):
        self.proc, self.log, self.port = proc, log, port

    def wait_ready(self, path: str = "/readyz", timeout: float = 240) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"the image's entrypoint exited with {self.proc.returncode}:\n{self.log_tail()}")
            try:
                if requests.get(f"http://127.0.0.1:{self.port}{path}", timeout=2).status_code == 200:
                    return
            except requests.RequestException:
                pass
            time.sleep(1)
        raise AssertionError(f"the bento in the image was not ready within {timeout}s:\n{self.log_tail()}")

    def log_tail(self, n: int = 60) -> str:
        try:
            return "\n".join(self.log.read_text("utf-8", "replace").splitlines()[-n:])
        except OSError as e:
            return f"(no log: {e})"

    def stop(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout=20)


def run_image(layout: Path, bundle: Path, name: str = "img") -> Running:
    """Unpack the image with umoci and start its entrypoint the way a runtime would: its env,
    working directory and user (uid/gid as umoci resolved them from the image's /etc/passwd),
    in a chroot with a private mount and PID namespace. Serves on a free port given as $PORT
    (the variable BentoML's entrypoint maps to BENTOML_PORT, as Yatai does)."""
    if os.geteuid() != 0:
        raise servers.MissingService("running an image needs root (umoci unpack, unshare, chroot)")
    subprocess.run(["umoci", "unpack", "--image", f"{layout}:{name}", str(bundle)], check=True, capture_output=True)
    spec = json.loads((bundle / "config.json").read_text())
    proc_spec = spec["process"]
    rootfs = bundle / "rootfs"
    port = servers.free_port()
    env = [e for e in proc_spec["env"]] + [f"PORT={port}"]
    uid, gid = proc_spec["user"]["uid"], proc_spec["user"]["gid"]
    inner = " ".join(
        [
            f"mount -t proc proc {rootfs}/proc &&",
            f"mount --rbind /dev {rootfs}/dev &&",
            f"mount -t tmpfs tmpfs {rootfs}/tmp &&",
            # What every container runtime provides: the host's name resolution files.
            f"touch {rootfs}/etc/hosts {rootfs}/etc/resolv.conf &&",
            f"mount --bind /etc/hosts {rootfs}/etc/hosts &&",
            f"mount --bind /etc/resolv.conf {rootfs}/etc/resolv.conf &&",
            f"exec chroot --userspec={uid}:{gid} {rootfs}",
            "/usr/bin/env -i",
            *[shell_quote(e) for e in env],
            f"/usr/bin/env -C {shell_quote(proc_spec['cwd'])}",
            *[shell_quote(a) for a in proc_spec["args"]],
        ]
    )
    log = bundle / "run.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            ["unshare", "--mount", "--pid", "--fork", "--kill-child", "sh", "-c", inner],
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    return Running(proc, log, port)


def shell_quote(s: str) -> str:
    return "'" + s.replace("'", "'\\''") + "'"


def cleanup_bundle(bundle: Path) -> None:
    shutil.rmtree(bundle, ignore_errors=True)
