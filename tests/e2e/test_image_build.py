"""`yatai image build` end to end: bentos built and pushed by the real bentoml 1.4 and 1.0.20
CLIs become images in a real registry (Debian's docker-registry), on a base image built from
Debian packages. Every claim is checked with independent tools: skopeo reads the manifest and
config, the bento layer is compared with the archive byte for byte, umoci unpacks the image and
its entrypoint runs in a chroot with its env, working directory and user, and the bento answers
over HTTP. Rebuilds after a code-only change are checked in the registry's own request log.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import tarfile
import time
import uuid
from pathlib import Path

import pytest
import requests

import images
import registry as reg_api
import servers
from clients import BentoML

SCOPES = servers.ALL_SCOPES


@pytest.fixture(scope="session")
def oci_registry() -> images.Registry:
    try:
        return images.Registry(images.env_or_fail("YATAI_TEST_REGISTRY"), Path(images.env_or_fail("YATAI_TEST_REGISTRY_LOG")))
    except servers.MissingService as e:
        pytest.fail(str(e), pytrace=False)


@pytest.fixture(scope="session")
def base_image() -> str:
    try:
        return images.env_or_fail("YATAI_TEST_BASE_IMAGE")
    except servers.MissingService as e:
        pytest.fail(str(e), pytrace=False)


def registry_env(oci_registry: images.Registry, repository: str) -> dict[str, str]:
    return {
        "DOCKER_REGISTRY_SERVER": oci_registry.host,
        "DOCKER_REGISTRY_SECURE": "false",
        "DOCKER_REGISTRY_BENTO_REPOSITORY_NAME": repository,
    }


def unique_repo(prefix: str) -> str:
    return f"e2e-{prefix}-{uuid.uuid4().hex[:8]}"


def make_echo_bento(client: BentoML, tmp: Path, name: str) -> tuple[str, Path]:
    """A model and an echo bento using it, built by ``client``; returns (bento tag, project).
    The model's tag is in ``project / "model_tag"``."""
    model_tag = client.create_model(f"{name}-model", labels={"purpose": "image"})
    project = client.write_project(tmp / "project", name, model_tag, {"purpose": "image"})
    (project / "model_tag").write_text(model_tag)
    bentofile = json.loads((project / "bentofile.yaml").read_text("utf-8"))
    if client.kind.style == "legacy":
        # bentoml 1.0.20 needs the attrs/cattrs of its time (see docs/bentoml.md); a user of
        # it today pins them in the bento the same way.
        bentofile["python"]["packages"] = ["attrs==23.1.0", "cattrs==23.1.2"]
    (project / "bentofile.yaml").write_text(json.dumps(bentofile, indent=2), "utf-8")
    # Non-ASCII file names and an empty file in the bento layer.
    data = project / "data" / "données"
    data.mkdir(parents=True, exist_ok=True)
    (data / "fichier naïf.txt").write_text("contenu accentué\n", "utf-8")
    (project / "data" / "empty").write_bytes(b"")
    (project / "bentofile.yaml").write_text(
        (project / "bentofile.yaml").read_text("utf-8").replace('"*.py"', '"*.py", "data/"'), "utf-8"
    )
    return client.build(project), project


def download_archive(server: servers.YataiServer, tag: str, dest: Path) -> Path:
    name, version = tag.split(":")
    resp = server.api_with_token("GET", f"/api/v1/bento_repositories/{name}/bentos/{version}/download")
    assert resp.status_code == 200, f"download {tag}: {resp.status_code}"
    dest.write_bytes(resp.content)
    return dest


def check_image(image: images.Built, tag: str, base_image: str) -> tuple[dict, dict]:
    """skopeo's view of the pushed image: manifest, layers, entrypoint, env, user, labels."""
    summary, manifest, config = images.inspect(image.image)
    assert summary["Digest"] == image.digest, "the printed digest is the registry's"
    base_manifest = json.loads(images.skopeo("inspect", "--tls-verify=false", "--raw", f"docker://{base_image}"))
    assert manifest["mediaType"] == "application/vnd.oci.image.manifest.v1+json"
    layers = manifest["layers"]
    assert len(layers) == len(base_manifest["layers"]) + 2, "base layers + dependency layer + bento layer"
    assert [l["digest"] for l in layers[:-2]] == [l["digest"] for l in base_manifest["layers"]], "base reused by digest"
    c = config["config"]
    assert c["Entrypoint"] == ["/home/bentoml/bento/env/docker/entrypoint.sh"]
    assert not c.get("Cmd")
    assert c["User"] == "bentoml"
    assert c["WorkingDir"] == "/home/bentoml/bento"
    env = dict(e.split("=", 1) for e in c["Env"])
    assert env["BENTOML_HOME"] == "/home/bentoml/"
    assert env["BENTO_PATH"] == "/home/bentoml/bento"
    assert env["PATH"].startswith("/app/.venv/bin:")
    assert "3000/tcp" in c["ExposedPorts"]
    assert c["Labels"]["ai.yatai.bento.tag"] == tag
    assert len(config["rootfs"]["diff_ids"]) == len(layers)
    return manifest, config


def check_bento_layer(layout: Path, manifest: dict, archive: Path) -> None:
    """Every file of the archive is in the bento layer, byte for byte, owned by bentoml."""
    in_layer = images.layer_files(images.layout_blob(layout, manifest["layers"][-1]["digest"]), "home/bentoml/bento")
    in_archive = images.archive_files(archive)
    assert in_archive, "the archive holds files"
    for rel, content in in_archive.items():
        assert rel in in_layer, f"{rel} of the archive is missing from the bento layer"
        data, mode, uid, gid = in_layer[rel]
        assert data == content, f"{rel} differs between the archive and the bento layer"
        assert (uid, gid) == (1034, 1034), f"{rel} is owned by {uid}:{gid}"
    assert in_layer["env/docker/entrypoint.sh"][1] & 0o111, "the entrypoint is executable"


def serve_and_call(built: images.Built, tmp: Path, call) -> None:
    layout, bundle = tmp / "run-layout", tmp / "run-bundle"
    images.copy_to_layout(built.image, layout)
    running = images.run_image(layout, bundle)
    try:
        running.wait_ready()
        call(running.port)
    finally:
        running.stop()
        images.cleanup_bundle(bundle)


def test_bentoml14_bento_becomes_an_image_that_serves(server_for, make_client, oci_registry, base_image, tmp_path):
    server = server_for("local")
    client = make_client("bentoml14")
    tag, project = make_echo_bento(client, tmp_path, "img-echo14")
    client.login(server.endpoint, server.token)
    client.push_bento(tag)
    repo = unique_repo("b14")
    env = registry_env(oci_registry, repo)
    token = server.create_token(f"builder-{uuid.uuid4().hex[:6]}", SCOPES)
    cache = tmp_path / "cache"
    args = [tag, "--endpoint", server.endpoint, "--api-token", token, "--base-image", base_image,
            "--insecure-registry", oci_registry.host, "--cache-dir", str(cache)]

    first = images.parse_built(images.yatai_build(args, env))
    assert first.image == f"{oci_registry.host}/{repo}:yatai.{tag.replace(':', '.')}", "Yatai's tag scheme"
    assert "installed now" in first.stderr, first.stderr
    manifest, _ = check_image(first, tag, base_image)

    # The server knows the image.
    version = reg_api.get_version(server, "bento", tag)
    assert version["image_build_status"] == "success", version
    assert version["image_reference"] == first.image

    # The bento layer is the archive, byte for byte.
    layout = tmp_path / "layout"
    images.copy_to_layout(first.image, layout)
    check_bento_layer(layout, manifest, download_archive(server, tag, tmp_path / "bento.tar"))

    # Determinism: the same bento, base and requirements give the same digest, whether the
    # dependency layer comes from the local cache, the registry's, or is installed again.
    again = images.parse_built(images.yatai_build(args, env))
    assert "reused from the local cache" in again.stderr, again.stderr
    assert again.digest == first.digest
    fresh_repo = unique_repo("b14fresh")
    fresh = images.parse_built(images.yatai_build(
        [*args[:-2], "--no-cache", "--no-registry-cache", "--no-report-status"], registry_env(oci_registry, fresh_repo)))
    assert "installed now" in fresh.stderr, fresh.stderr
    assert fresh.digest == first.digest, "a build from nothing gives the same image"

    # The image runs: entrypoint, env, workdir and user from its config, and the API answers.
    def call(port: int) -> None:
        resp = requests.post(f"http://127.0.0.1:{port}/echo", json={"text": "héllo from the image"}, timeout=30)
        assert resp.status_code == 200, resp.text
        # bentoml 1.4 answers a `str` result as text/plain.
        assert resp.content.decode("utf-8") == "héllo from the image", resp.headers

    serve_and_call(first, tmp_path, call)

    # A code-only change: a new version with the same requirements, built by a fresh builder
    # (no local cache), uploads no dependency blob: the registry's log shows it.
    service = project / "service.py"
    service.write_text(service.read_text("utf-8") + "\n# a code-only change\n", "utf-8")
    tag2 = client.build(project)
    assert tag2 != tag
    client.push_bento(tag2)
    offset = oci_registry.log_size()
    second = images.parse_built(images.yatai_build(
        [tag2, *args[1:-2], "--no-cache"], env))
    pushed = images.blob_commits(oci_registry.requests_since(offset))
    deps_digest = manifest["layers"][-2]["digest"]
    m2, _ = check_image(second, tag2, base_image)
    assert m2["layers"][-2]["digest"] == deps_digest, "the same dependency layer"
    assert deps_digest not in pushed, f"the dependency layer was uploaded again: {pushed}"
    assert set(pushed) <= {m2["layers"][-1]["digest"], m2["config"]["digest"]}, pushed
    assert "reused from the registry" in second.stderr, second.stderr
    assert not any(l.startswith("PATCH") and deps_digest in l for l in oci_registry.requests_since(offset))


def test_server_with_a_registry_builds_the_image_itself(make_client, oci_registry, base_image, tmp_path):
    """`yatai serve` with the DOCKER_REGISTRY_* settings builds images itself: the bento page's
    "Build image" button (a real form post with its CSRF token) marks the bento pending, the
    server builds it in the background from its own storage (the bento and the model it uses),
    the status ends in success with the image reference, and skopeo finds that image in the
    registry, with the bento layer equal to the pushed archive."""
    repo = unique_repo("srv")
    env = {**registry_env(oci_registry, repo), "YATAI_IMAGE_BUILDER_BASE_IMAGE": base_image}
    workdir = tmp_path / "server"
    workdir.mkdir()
    server = servers.start_server("local", None, workdir, extra_env=env)
    try:
        client = make_client("bentoml14")
        tag, _ = make_echo_bento(client, tmp_path, "srv-echo14")
        client.login(server.endpoint, server.token)
        client.push_bento(tag)
        name, version = tag.split(":")
        api_path = f"/api/v1/bento_repositories/{name}/bentos/{version}/build_image"

        # The admin's browser: the bento page offers the button; clicking it posts the form.
        page = server.admin.get(f"{server.endpoint}/bentos/{name}/{version}", timeout=30)
        assert page.status_code == 200, page.text
        assert 'id="build-image"' in page.text, "builds are enabled: the page offers the button"
        csrf = re.search(r'name="csrf" value="([^"]+)"', page.text).group(1)
        resp = server.admin.post(f"{server.endpoint}/bentos/{name}/{version}/build_image",
                                 data={"csrf": csrf}, timeout=30, allow_redirects=False)
        assert resp.status_code == 303, f"{resp.status_code} {resp.text[:500]}"
        assert resp.headers["location"] == f"/bentos/{name}/{version}"
        first = reg_api.get_version(server, "bento", tag)["image_build_status"]
        assert first in ("pending", "building"), first

        # A second request while it builds is refused.
        again = server.api_with_token("POST", api_path)
        assert again.status_code == 409, f"{again.status_code} {again.text}"
        assert "already" in again.json()["message"], again.text

        deadline = time.monotonic() + 900
        while True:
            version_json = reg_api.get_version(server, "bento", tag)
            if version_json["image_build_status"] in ("success", "failed") or time.monotonic() > deadline:
                break
            time.sleep(1)
        assert version_json["image_build_status"] == "success", f"{version_json}\n{server.log_tail()}"
        expected = f"{oci_registry.host}/{repo}:yatai.{tag.replace(':', '.')}"
        assert version_json["image_reference"] == expected, version_json

        # The image is in the registry, as independent tools see it.
        summary, _, _ = images.inspect(expected)
        built = images.Built(expected, summary["Digest"], "", "")
        manifest, _ = check_image(built, tag, base_image)
        layout = tmp_path / "layout"
        images.copy_to_layout(expected, layout)
        check_bento_layer(layout, manifest, download_archive(server, tag, tmp_path / "bento.tar"))
        log = server.log_path.read_text("utf-8", errors="replace")
        assert "image build succeeded" in log, server.log_tail()
    finally:
        server.stop()


def test_bentoml10_runners_bento_becomes_an_image_that_serves(make_client, oci_registry, base_image, tmp_path):
    client = make_client("bentoml10")
    tag, _ = make_echo_bento(client, tmp_path, "img-echo10")
    # From a download URL this time (a file, as `bentoml export TAG FILE.tar.gz` writes it): no server needed,
    # the 1.0 bento carries its models.
    archive = tmp_path / "echo10.tar.gz"
    client.run("export", tag, str(archive))
    repo = unique_repo("b10")
    built = images.parse_built(images.yatai_build(
        [tag, "--download-url", f"file://{archive}", "--base-image", base_image,
         "--insecure-registry", oci_registry.host, "--cache-dir", str(tmp_path / "cache")],
        registry_env(oci_registry, repo)))
    manifest, _ = check_image(built, tag, base_image)
    layout = tmp_path / "layout"
    images.copy_to_layout(built.image, layout)
    check_bento_layer(layout, manifest, archive)

    def call(port: int) -> None:
        resp = requests.post(f"http://127.0.0.1:{port}/echo", data="hello runners".encode(),
                             headers={"content-type": "text/plain"}, timeout=30)
        assert resp.status_code == 200, resp.text
        assert resp.text == "hello runners"

    serve_and_call(built, tmp_path, call)


# -- bad input: one clear error each, and no tag pushed --------------------------------------


def expect_failure(args: list[str], env: dict[str, str], *needles: str) -> str:
    proc = images.yatai_build(args, env, check=False)
    assert proc.returncode != 0, f"expected a failure:\n{proc.stdout}\n{proc.stderr}"
    errors = [l for l in proc.stderr.splitlines() if l.startswith("error:")]
    assert len(errors) == 1, f"one error line expected:\n{proc.stderr}"
    for n in needles:
        assert n.lower() in errors[0].lower(), f"{n!r} not in {errors[0]!r}"
    assert "panicked" not in proc.stderr
    return errors[0]


def assert_no_bento_tag(oci_registry: images.Registry, repo: str) -> None:
    assert [t for t in oci_registry.tags(repo) if t.startswith("yatai.")] == [], "no tag may be half-pushed"


def test_unknown_and_not_uploaded_bentos(server_for, oci_registry, base_image, tmp_path):
    server = server_for("local")
    repo = unique_repo("bad")
    env = registry_env(oci_registry, repo)
    common = ["--endpoint", server.endpoint, "--api-token", server.token, "--base-image", base_image, "--no-cache"]
    expect_failure(["no-such-bento:v1", *common], env, "no-such-bento:v1", "not found")
    reg_api.create_version(server, "bento", "half-pushed:v1", {"service": "s:svc"}, "uploading")
    expect_failure(["half-pushed:v1", *common], env, "half-pushed:v1", "not uploaded")
    assert_no_bento_tag(oci_registry, repo)


def test_download_that_is_not_a_bento(oci_registry, base_image, tmp_path):
    repo = unique_repo("bad")
    page = tmp_path / "page.html"
    page.write_text("<html>404 not found</html>" * 50)
    expect_failure(["x:v1", "--download-url", f"file://{page}", "--base-image", base_image, "--no-cache"],
                   registry_env(oci_registry, repo), "not a", "tar")
    assert_no_bento_tag(oci_registry, repo)


def bento_with_requirement(make_client, tmp_path: Path, line: str) -> tuple[str, Path]:
    """A 1.4 bento archive whose requirements hold ``line``."""
    client = make_client("bentoml14")
    tag, project = make_echo_bento(client, tmp_path, "img-badreq")
    src = client.bento_dir(tag)
    work = tmp_path / "bad-bento"
    shutil.copytree(src, work)
    # bentoml 1.4 bentos do not carry their models: put it where a pull would.
    model_tag = (project / "model_tag").read_text()
    model_name, model_version = model_tag.split(":")
    shutil.copytree(client.model_dir(model_tag), work / "models" / model_name / model_version)
    req = work / "env" / "python" / "requirements.txt"
    req.write_text(req.read_text("utf-8") + f"{line}\n", "utf-8")
    archive = tmp_path / "bad.bento"
    with tarfile.open(archive, "w:gz") as tar:
        for p in sorted(work.rglob("*")):
            tar.add(p, arcname=p.relative_to(work).as_posix(), recursive=False)
    return tag, archive


def test_requirement_that_cannot_resolve_names_the_package(make_client, oci_registry, base_image, tmp_path):
    tag, archive = bento_with_requirement(make_client, tmp_path, "yatai-no-such-package-e2e==9.9.9")
    repo = unique_repo("bad")
    expect_failure([tag, "--download-url", str(archive), "--base-image", base_image, "--no-cache",
                    "--insecure-registry", oci_registry.host],
                   registry_env(oci_registry, repo), "yatai-no-such-package-e2e")
    assert_no_bento_tag(oci_registry, repo)


@pytest.fixture
def auth_registry(tmp_path):
    """A second docker-registry that wants HTTP basic credentials (htpasswd)."""
    if not shutil.which("htpasswd"):
        pytest.fail("htpasswd is missing: apt-get install apache2-utils (scripts/lib/services.sh ensure_image_tools)", pytrace=False)
    port = servers.free_port()
    root = tmp_path / "auth-registry"
    root.mkdir()
    subprocess.run(["htpasswd", "-Bbc", str(root / "htpasswd"), "builder", "right-password"], check=True, capture_output=True)
    (root / "config.yml").write_text(
        "version: 0.1\nstorage:\n  filesystem:\n    rootdirectory: %s\nhttp:\n  addr: 127.0.0.1:%d\n"
        "auth:\n  htpasswd:\n    realm: yatai-e2e\n    path: %s\n" % (root / "data", port, root / "htpasswd"))
    proc = subprocess.Popen(["docker-registry", "serve", str(root / "config.yml")], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        for _ in range(50):
            try:
                if requests.get(f"http://127.0.0.1:{port}/v2/", timeout=1).status_code == 401:
                    break
            except requests.RequestException:
                pass
            import time
            time.sleep(0.2)
        yield images.Registry(f"127.0.0.1:{port}", root / "none.log")
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def test_registry_that_refuses_the_credentials(auth_registry, base_image, tmp_path):
    env = {**registry_env(auth_registry, "bad"), "DOCKER_REGISTRY_USERNAME": "builder", "DOCKER_REGISTRY_PASSWORD": "wrong"}
    expect_failure(["x:v1", "--download-url", "https://127.0.0.1:1/never-fetched", "--base-image", base_image, "--no-cache"],
                   env, "refused the credentials", "DOCKER_REGISTRY_PASSWORD")


def test_registry_that_is_down(base_image, tmp_path):
    env = {"DOCKER_REGISTRY_SERVER": f"127.0.0.1:{servers.free_port()}", "DOCKER_REGISTRY_SECURE": "false"}
    expect_failure(["x:v1", "--download-url", "https://127.0.0.1:1/never-fetched", "--base-image", base_image, "--no-cache"],
                   env, "cannot reach the registry")


def test_build_timeout(make_client, oci_registry, base_image, tmp_path):
    tag, archive = bento_with_requirement(make_client, tmp_path, "# nothing added")
    repo = unique_repo("bad")
    expect_failure([tag, "--download-url", str(archive), "--base-image", base_image, "--no-cache",
                    "--no-registry-cache", "--timeout", "1"],
                   registry_env(oci_registry, repo), "did not finish within 1s")
    assert_no_bento_tag(oci_registry, repo)
