"""Bento -> image in the registry: yatai image build against buildah, in the same run.

Three cases, each timed end to end (push included) for both builders:

1. first build on a fresh builder (no local state at all);
2. a code-only rebuild on a fresh builder (a new bento version, same requirements; yatai's
   dependency layer comes back from the registry by its cache key, buildah starts empty);
3. the same code-only rebuild with buildah's layer cache warm (yatai still fresh).

A "fresh builder" has empty caches: yatai runs with --no-cache and its own empty uv/pip caches;
buildah gets new --root/--runroot storage. Both push to the same registry, on the same base.
"""

from __future__ import annotations

import datetime
import json
import os
import platform
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
REGISTRY = os.environ["YATAI_TEST_REGISTRY"]
BASE = os.environ["YATAI_TEST_BASE_IMAGE"]
YATAI = os.environ["YATAI_BIN"]
VENV = Path(sys.executable).parent
CA = "/etc/ssl/certs/ca-certificates.crt"

SERVICE = '''import bentoml


@bentoml.service(name="bench-echo")
class Echo:
    @bentoml.api
    def echo(self, text: str) -> str:
        return text
'''


def run(argv: list[str], env: dict | None = None, cwd: Path | None = None) -> subprocess.CompletedProcess:
    proc = subprocess.run(argv, env={**os.environ, **(env or {})}, cwd=cwd, capture_output=True, text=True)
    if proc.returncode != 0:
        sys.exit(f"bench: {' '.join(argv[:4])} failed:\n{proc.stderr[-3000:]}\n{proc.stdout[-2000:]}")
    return proc


def timed(fn) -> float:
    t = time.monotonic()
    fn()
    return time.monotonic() - t


class Bento:
    def __init__(self, work: Path):
        self.home = work / "bentoml-home"
        self.project = work / "project"
        self.project.mkdir(parents=True)
        (self.project / "service.py").write_text(SERVICE)
        (self.project / "bentofile.yaml").write_text('service: "service:Echo"\ninclude: ["*.py"]\n')
        self.env = {"BENTOML_HOME": str(self.home), "BENTOML_DO_NOT_TRACK": "True"}

    def build(self) -> tuple[str, Path]:
        out = run([str(VENV / "bentoml"), "build", "-o", "tag"], self.env, self.project).stdout
        tag = re.search(r"__tag__:(\S+)", out).group(1)
        name, version = tag.split(":")
        return tag, self.home / "bentos" / name / version

    def export(self, tag: str, dest: Path) -> Path:
        run([str(VENV / "bentoml"), "export", tag, str(dest)], self.env)
        return dest

    def change_code(self, n: int) -> None:
        with open(self.project / "service.py", "a") as f:
            f.write(f"\n# code-only change {n}\n")


def yatai_build(tag: str, archive: Path, repo: str, work: Path) -> None:
    caches = tempfile.mkdtemp(dir=work)
    run(
        [YATAI, "image", "build", tag, "--download-url", str(archive), "--base-image", BASE, "--no-cache"],
        {
            "DOCKER_REGISTRY_SERVER": REGISTRY,
            "DOCKER_REGISTRY_SECURE": "false",
            "DOCKER_REGISTRY_BENTO_REPOSITORY_NAME": repo,
            "UV_CACHE_DIR": caches,
            "PIP_CACHE_DIR": caches,
        },
    )


def buildah_build(bento_dir: Path, root: Path, image: str, work: Path) -> None:
    """buildah bud + push of BentoML's Dockerfile with FROM pointed at the base image. The RUN
    steps reach PyPI through this machine's proxy, whose CA only the host bundle has: it is
    mounted in and named by the usual variables (and Debian's pip may install system-wide)."""
    ctx = work / f"ctx-{time.monotonic_ns()}"
    shutil.copytree(bento_dir, ctx)
    dockerfile = ctx / "env" / "docker" / "Dockerfile"
    text = dockerfile.read_text()
    env_line = (
        "ENV SSL_CERT_FILE=/run/host-ca.pem PIP_CERT=/run/host-ca.pem REQUESTS_CA_BUNDLE=/run/host-ca.pem "
        "UV_NATIVE_TLS=true PIP_BREAK_SYSTEM_PACKAGES=1"
    )
    text, n = re.subn(r"^FROM \S+(.*)$", lambda m: f"FROM {BASE}{m.group(1)}\n{env_line}", text, count=1, flags=re.MULTILINE)
    assert n == 1, "the Dockerfile has a FROM"
    dockerfile.write_text(text)
    storage = ["--root", str(root / "root"), "--runroot", str(root / "run")]
    run(["buildah", *storage, "bud", "--isolation", "chroot", "--tls-verify=false", "--layers",
         "-v", f"{CA}:/run/host-ca.pem:ro", "-f", str(dockerfile), "-t", image, str(ctx)])
    run(["buildah", *storage, "push", "--tls-verify=false", image, f"docker://{image}"])
    shutil.rmtree(ctx, ignore_errors=True)


def main() -> None:
    work = Path(tempfile.mkdtemp(prefix="yatai-bench-image-"))
    try:
        bento = Bento(work)
        tag1, dir1 = bento.build()
        arch1 = bento.export(tag1, work / "b1.tar.gz")
        stamp = str(int(time.time()))
        results = {}

        # 1. first build, fresh builders
        results["first build, fresh builder"] = (
            timed(lambda: yatai_build(tag1, arch1, f"bench-yatai-{stamp}", work)),
            timed(lambda: buildah_build(dir1, work / "buildah-warm", f"{REGISTRY}/bench-buildah-{stamp}:{tag1.replace(':', '.')}", work)),
        )
        # 2. code-only rebuild, fresh builders (yatai: empty local state; buildah: new storage)
        bento.change_code(1)
        tag2, dir2 = bento.build()
        arch2 = bento.export(tag2, work / "b2.tar.gz")
        results["code-only rebuild, fresh builder"] = (
            timed(lambda: yatai_build(tag2, arch2, f"bench-yatai-{stamp}", work)),
            timed(lambda: buildah_build(dir2, work / f"buildah-fresh", f"{REGISTRY}/bench-buildah-{stamp}:{tag2.replace(':', '.')}", work)),
        )
        # 3. code-only rebuild, buildah's cache warm (from case 1), yatai fresh again
        bento.change_code(2)
        tag3, dir3 = bento.build()
        arch3 = bento.export(tag3, work / "b3.tar.gz")
        results["code-only rebuild, buildah cache warm"] = (
            timed(lambda: yatai_build(tag3, arch3, f"bench-yatai-{stamp}", work)),
            timed(lambda: buildah_build(dir3, work / "buildah-warm", f"{REGISTRY}/bench-buildah-{stamp}:{tag3.replace(':', '.')}", work)),
        )
        goals = {"first build, fresh builder": ">= 3x", "code-only rebuild, fresh builder": ">= 10x",
                 "code-only rebuild, buildah cache warm": ">= 1x"}
        load = os.getloadavg()
        lines = [
            f"### {datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M} UTC, image build "
            f"({os.cpu_count()} CPUs, load {load[0]:.1f}/{load[1]:.1f}, {platform.machine()})",
            "",
            "| case | yatai image build | buildah bud + push | ratio (buildah / yatai) | goal |",
            "|---|---|---|---|---|",
        ]
        for case, (ours, peer) in results.items():
            lines.append(f"| {case} | {ours:.1f} s | {peer:.1f} s | {peer / ours:.1f}x | {goals[case]} |")
        text = "\n".join(lines) + "\n"
        print(text)
        results_md = REPO / "bench" / "RESULTS.md"
        if not results_md.exists():
            results_md.write_text("# Benchmark results\n\nAppended by the benchmark commands, newest last.\n\n")
        with open(results_md, "a") as f:
            f.write(text + "\n")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
