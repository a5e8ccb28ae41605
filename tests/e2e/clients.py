"""Drive the real ``bentoml`` CLI of one client generation from the tests.

Each client generation lives in its own venv made by ``scripts/venvs.sh``.
:class:`ClientKind` holds what differs between generations (login command,
service recipe, pull flags, bento layout); :class:`BentoML` runs commands with
a private ``BENTOML_HOME`` so that tests never share a local store.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

PROJECTS = Path(__file__).resolve().parent / "projects"

#: Variables that would redirect or pre-configure a client: never inherited.
_SCRUBBED_ENV = (
    "BENTOML_HOME",
    "BENTOML_CONFIG",
    "BENTOML_CONFIG_OPTIONS",
    "BENTO_CLOUD_API_KEY",
    "BENTO_CLOUD_API_ENDPOINT",
    "BENTOML_YATAI_API_TOKEN",
    "BENTOML_YATAI_ENDPOINT",
    "VIRTUAL_ENV",
    "PYTHONPATH",
    "PYTHONHOME",
)


@dataclass(frozen=True)
class ClientKind:
    """What one bentoml client generation needs from the tests."""

    #: Short id used in test ids and ``-k`` filters, e.g. ``bentoml14``.
    id: str
    #: Version the venv must report, e.g. ``1.4.`` (prefix match).
    version_prefix: str
    #: Environment variable holding the venv path (printed by scripts/venvs.sh).
    venv_var: str
    #: Subcommand used to log in.
    login: tuple[str, ...]
    #: ``modern`` (1.4 ``@bentoml.service``) or ``legacy`` (runners + Service).
    style: str
    #: Extra ``bentoml pull`` flags needed to bring the bento's models too.
    pull_bento_flags: tuple[str, ...]
    #: False when ``bentoml pull`` of a bento leaves its models only inside the
    #: bento (``BENTO/models/NAME/VERSION``), not in the model store (1.0.20).
    bento_pull_fills_model_store: bool


CLIENT_KINDS = {
    kind.id: kind
    for kind in (
        ClientKind(
            id="bentoml14",
            version_prefix="1.4.",
            venv_var="BENTOML14",
            login=("cloud", "login"),
            style="modern",
            pull_bento_flags=("--with-models",),
            bento_pull_fills_model_store=True,
        ),
        ClientKind(
            id="bentoml11",
            version_prefix="1.1.11",
            venv_var="BENTOML11",
            login=("cloud", "login"),
            style="legacy",
            pull_bento_flags=(),
            bento_pull_fills_model_store=True,
        ),
        ClientKind(
            id="bentoml10",
            version_prefix="1.0.20",
            venv_var="BENTOML10",
            login=("yatai", "login"),
            style="legacy",
            pull_bento_flags=(),
            bento_pull_fills_model_store=False,
        ),
    )
}


@dataclass
class Result:
    """Outcome of one CLI call; ``output`` is stdout followed by stderr."""

    argv: list[str]
    returncode: int
    stdout: str
    stderr: str

    @property
    def output(self) -> str:
        return self.stdout + self.stderr

    def describe(self) -> str:
        """The command, its exit code and its output, for assertion messages."""
        return (
            f"$ {' '.join(self.argv)}\n(exit {self.returncode})\n"
            f"--- stdout ---\n{self.stdout[-6000:]}\n--- stderr ---\n{self.stderr[-6000:]}"
        )


class HttpRequest(NamedTuple):
    """One request a client made, as recorded by projects/client_hooks (times in epoch seconds)."""

    method: str
    url: str
    status: int
    start: float
    end: float


class Running:
    """A started CLI command. Its output goes to temporary files, not pipes, so
    that commands running side by side never wait for the test to read them."""

    def __init__(self, client_id: str, argv: list[str], cwd: Path, env: dict[str, str]):
        self.client_id = client_id
        self.argv = argv
        self._out = tempfile.TemporaryFile()
        self._err = tempfile.TemporaryFile()
        self.proc = subprocess.Popen(
            argv, cwd=cwd, env=env, stdin=subprocess.DEVNULL, stdout=self._out, stderr=self._err
        )

    def _result(self) -> Result:
        def text(f) -> str:
            f.seek(0)
            return f.read().decode("utf-8", errors="replace")

        return Result(self.argv, self.proc.returncode, text(self._out), text(self._err))

    def wait(self, check: bool = True, timeout: float = 900) -> Result:
        """Wait for the command; with ``check`` a non-zero exit fails the test."""
        try:
            self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            raise AssertionError(f"{self.client_id}: timed out after {timeout}s\n{self._result().describe()}") from None
        result = self._result()
        self._out.close()
        self._err.close()
        if check and result.returncode != 0:
            raise AssertionError(f"{self.client_id}: command failed\n{result.describe()}")
        return result


class BentoML:
    """One client generation with its own local store (``BENTOML_HOME``)."""

    def __init__(self, kind: ClientKind, venv: Path, home: Path, workdir: Path):
        self.kind = kind
        self.venv = venv
        self.home = home
        self.workdir = workdir
        #: When set, every HTTP request of the client is appended to this file.
        self.http_trace_file: Path | None = None
        #: When set, the client sends at most this many bytes per second.
        self.upload_rate: int | None = None
        home.mkdir(parents=True, exist_ok=True)
        workdir.mkdir(parents=True, exist_ok=True)

    # -- running -------------------------------------------------------------
    def env(self) -> dict[str, str]:
        """Environment for the client: private store, no telemetry, wide output."""
        env = {k: v for k, v in os.environ.items() if k not in _SCRUBBED_ENV}
        env.update(
            BENTOML_HOME=str(self.home),
            BENTOML_DO_NOT_TRACK="True",
            PATH=f"{self.venv / 'bin'}{os.pathsep}{env.get('PATH', '')}",
            PYTHONUTF8="1",
            PYTHONIOENCODING="utf-8",
            LANG="C.UTF-8",
            LC_ALL="C.UTF-8",
            # rich wraps lines at 80 columns when not on a terminal, which
            # would split the messages the tests look for.
            COLUMNS="400",
            TERM="dumb",
            NO_COLOR="1",
        )
        hooks = {
            "YATAI_E2E_HTTP_TRACE": self.http_trace_file and str(self.http_trace_file),
            "YATAI_E2E_UPLOAD_RATE": self.upload_rate and str(self.upload_rate),
        }
        hooks = {k: v for k, v in hooks.items() if v}
        if hooks:
            env.update(hooks, PYTHONPATH=str(PROJECTS / "client_hooks"))
        return env

    def trace_http(self, path: Path) -> None:
        """Record the client's HTTP requests into ``path`` (projects/client_hooks)."""
        path.write_text("", "utf-8")
        self.http_trace_file = path

    def pace_uploads(self, bytes_per_second: int) -> None:
        """Slow everything the client sends down to ``bytes_per_second`` (projects/client_hooks)."""
        self.upload_rate = bytes_per_second

    def http_requests(self) -> list[HttpRequest]:
        """Every request recorded since :meth:`trace_http`, in the order they ended."""
        assert self.http_trace_file is not None, "trace_http() was not called"
        out = []
        for line in self.http_trace_file.read_text("utf-8").splitlines():
            method, url, status, start, end = line.split("\t")
            out.append(HttpRequest(method, url, int(status), float(start), float(end)))
        return out

    def run(self, *args: str, check: bool = True, cwd: Path | None = None, timeout: float = 900) -> Result:
        """Run ``bentoml ARGS``; with ``check`` a non-zero exit fails the test."""
        return self._exec([str(self.venv / "bin" / "bentoml"), *args], check, cwd, timeout)

    def python(self, *args: str, check: bool = True, timeout: float = 900) -> Result:
        """Run the venv's python (used to save models through the Python API)."""
        return self._exec([str(self.venv / "bin" / "python"), *args], check, None, timeout)

    def _exec(self, argv: list[str], check: bool, cwd: Path | None, timeout: float) -> Result:
        return self._spawn(argv, cwd).wait(check, timeout)

    def _spawn(self, argv: list[str], cwd: Path | None = None) -> Running:
        return Running(self.kind.id, argv, cwd or self.workdir, self.env())

    def start(self, *args: str) -> Running:
        """Start ``bentoml ARGS`` without waiting (to run clients at the same time)."""
        return self._spawn([str(self.venv / "bin" / "bentoml"), *args])

    # -- remote --------------------------------------------------------------
    @property
    def config_file(self) -> Path:
        """Where every generation keeps endpoint + token: ``$BENTOML_HOME/.yatai.yaml``."""
        return self.home / ".yatai.yaml"

    def login(self, endpoint: str, token: str, check: bool = True) -> Result:
        """Log in non-interactively (``--endpoint`` + ``--api-token``, no prompt)."""
        result = self.run(*self.kind.login, "--endpoint", endpoint, "--api-token", token, check=check)
        if check:
            saved = self.config_file.read_text("utf-8") if self.config_file.exists() else ""
            assert token in saved and endpoint in saved, (
                f"login did not store endpoint + token in {self.config_file}\n{result.describe()}"
            )
        return result

    def push_bento(self, tag: str, check: bool = True, force: bool = False) -> Result:
        """``bentoml push [--force] TAG`` (pushes the bento's models first)."""
        return self.run("push", *self.push_flags(force), tag, check=check)

    @staticmethod
    def push_flags(force: bool) -> tuple[str, ...]:
        """``--force`` (re-upload even when the server has the version) is spelled alike in 1.0-1.4."""
        return ("--force",) if force else ()

    def pull_bento(self, tag: str, check: bool = True) -> Result:
        """``bentoml pull TAG``, with the flags that also bring its models."""
        return self.run("pull", *self.kind.pull_bento_flags, tag, check=check)

    def push_model(self, tag: str, check: bool = True) -> Result:
        """``bentoml models push TAG``."""
        return self.run("models", "push", tag, check=check)

    def pull_model(self, tag: str, check: bool = True) -> Result:
        """``bentoml models pull TAG``."""
        return self.run("models", "pull", tag, check=check)

    # -- local store ---------------------------------------------------------
    def delete_bento(self, tag: str) -> None:
        """``bentoml delete -y TAG``, checked to remove the directory."""
        self.run("delete", "-y", tag)
        assert not self.bento_dir(tag).exists(), f"{tag} still on disk after delete"

    def delete_model(self, tag: str) -> None:
        """``bentoml models delete -y TAG``, checked to remove the directory."""
        self.run("models", "delete", "-y", tag)
        assert not self.model_dir(tag).exists(), f"{tag} still on disk after delete"

    def model_dir(self, tag: str) -> Path:
        """Where the local store keeps a model: ``$BENTOML_HOME/models/NAME/VERSION``."""
        name, version = tag.split(":", 1)
        return self.home / "models" / name / version

    def bento_dir(self, tag: str) -> Path:
        """Where the local store keeps a bento: ``$BENTOML_HOME/bentos/NAME/VERSION``."""
        name, version = tag.split(":", 1)
        return self.home / "bentos" / name / version

    def bento_model_dir(self, bento_tag: str, model_tag: str) -> Path:
        """Where a model pulled along with a bento lands (see ``bento_pull_fills_model_store``)."""
        if self.kind.bento_pull_fills_model_store:
            return self.model_dir(model_tag)
        name, version = model_tag.split(":", 1)
        return self.bento_dir(bento_tag) / "models" / name / version

    def list_bentos(self) -> str:
        """Output of ``bentoml list``."""
        return self.run("list").output

    def list_models(self) -> str:
        """Output of ``bentoml models list``."""
        return self.run("models", "list").output

    # -- making things -------------------------------------------------------
    def create_model(
        self,
        name: str,
        *,
        labels: dict[str, str],
        payload: Path | None = None,
        random_files: dict[str, int] | None = None,
    ) -> str:
        """Save a model through the client's Python API; returns its tag."""
        spec = {
            "name": name,
            "style": self.kind.style,
            "labels": labels,
            "payload": str(payload) if payload else None,
            "random_files": random_files or {},
        }
        result = self.python(str(PROJECTS / "make_model.py"), json.dumps(spec))
        match = re.search(r"^MODEL_TAG=(\S+)$", result.stdout, re.MULTILINE)
        assert match, f"no model tag printed\n{result.describe()}"
        tag = match.group(1)
        assert self.model_dir(tag).is_dir(), f"model {tag} not at {self.model_dir(tag)}"
        return tag

    def write_project(self, project: Path, service_name: str, model_tag: str, labels: dict[str, str]) -> Path:
        """Write a build context: service.py for this generation + bentofile.yaml."""
        project.mkdir(parents=True, exist_ok=True)
        template = (PROJECTS / f"service_{self.kind.style}.py.in").read_text("utf-8")
        source = template.replace("__SERVICE_NAME__", service_name).replace("__MODEL_TAG__", model_tag)
        (project / "service.py").write_text(source, "utf-8")
        service = "service:Echo" if self.kind.style == "modern" else "service:svc"
        bentofile = {
            "service": service,
            "include": ["*.py", "data/"],
            "labels": labels,
            "description": "Yatai e2e test bento",
            # Locking resolves bentoml itself against PyPI (1.4 does it by
            # default); the build must work offline.
            "python": {"lock_packages": False},
        }
        # JSON is valid YAML; keeping the runner free of a YAML dependency.
        (project / "bentofile.yaml").write_text(json.dumps(bentofile, ensure_ascii=False, indent=2), "utf-8")
        return project

    def build(self, project: Path) -> str:
        """``bentoml build`` offline in ``project``; returns the bento tag."""
        result = self.run("build", "-o", "tag", cwd=project)
        # 1.1 / 1.4 print ``__tag__:NAME:VERSION``; 1.0 prints the bare tag last.
        match = re.search(r"__tag__:(\S+)", result.stdout) or re.search(
            r"^([a-z0-9_.-]+:[a-z0-9_.-]+)\s*\Z", result.stdout, re.MULTILINE
        )
        assert match, f"no bento tag printed\n{result.describe()}"
        tag = match.group(1)
        assert self.bento_dir(tag).is_dir(), f"bento {tag} not at {self.bento_dir(tag)}"
        return tag

    def version(self) -> str:
        """The version ``bentoml --version`` reports."""
        out = self.run("--version").stdout
        return out.strip().rsplit(" ", 1)[-1]


def find_venvs(repo: Path) -> dict[str, Path]:
    """Venv paths by variable name; runs ``scripts/venvs.sh`` for missing ones.

    ``eval "$(scripts/venvs.sh)"`` before pytest sets BENTOML14/11/10; when any
    is unset the script is run here (it is idempotent and fast once cached).
    """
    names = [kind.venv_var for kind in CLIENT_KINDS.values()]
    found = {n: Path(os.environ[n]) for n in names if os.environ.get(n)}
    if len(found) < len(names):
        script = repo / "scripts" / "venvs.sh"
        proc = subprocess.run(["bash", str(script)], capture_output=True, text=True, timeout=3600)
        if proc.returncode != 0:
            raise RuntimeError(
                f"{script} failed (exit {proc.returncode}); run it by hand to see why:\n{proc.stderr[-4000:]}"
            )
        for line in proc.stdout.splitlines():
            m = re.match(r"export (\w+)=(.+)$", line.strip())
            if m and m.group(1) in names and m.group(1) not in found:
                found[m.group(1)] = Path(m.group(2).strip("'\""))
    for name in names:
        bin_path = found.get(name, Path("/nonexistent")) / "bin" / "bentoml"
        if not bin_path.exists():
            raise RuntimeError(f'{name}: no bentoml at {bin_path}; run `eval "$(scripts/venvs.sh)"`')
    return found
