"""A docker-compose deployment of the repository's own docker-compose.yml, for the compose tests:
a real Docker engine, the real images (built from deploy/Dockerfile on stand-in bases when no
registry answers), Redis published on a loopback port so the test reads runs and events
directly."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import time
from pathlib import Path
from typing import Any

from orchestrator.storage.redis import RedisInstance

REPO = Path(__file__).resolve().parents[2]
CODE = Path(__file__).resolve().parent / "code"
PROJECT = "orchestrator-compose-test"
PASSWORD = "composetest0123456789"
OPT_IN = "ORCHESTRATOR_TEST_DOCKER"


def docker_binary() -> str:
    """The engine's own CLI when Debian's docker.io is installed (another client may come
    first on PATH), else whatever ``docker`` is."""
    if Path("/usr/bin/docker").exists():
        return "/usr/bin/docker"
    found = shutil.which("docker")
    if found is None:
        raise RuntimeError("no docker CLI on PATH: install docker.io (see DOCKER-FACTS)")
    return found


def compose_command() -> list[str]:
    if shutil.which("docker-compose"):
        return ["docker-compose"]
    return [docker_binary(), "compose"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def engine_problem() -> str | None:
    """None when the Docker engine answers, else why not."""
    try:
        out = subprocess.run(
            [docker_binary(), "info", "--format", "{{.ServerVersion}}"],
            capture_output=True,
            text=True,
            timeout=30,
        )
    except (OSError, RuntimeError, subprocess.TimeoutExpired) as exc:
        return f"docker info failed: {exc}"
    if out.returncode != 0:
        return f"docker info exited {out.returncode}: {out.stderr.strip()[-400:]}"
    return None


class Compose:
    """One compose project from the repository root, with the test's code folder mounted."""

    def __init__(self, code_dir: Path, workers: int = 3):
        self.code_dir = code_dir
        self.workers = workers
        self.redis_port = free_port()
        self.ui_port = free_port()
        self.env = {
            **os.environ,
            "COMPOSE_PROJECT_NAME": PROJECT,
            "REDIS_PASSWORD": PASSWORD,
            "REDIS_HOST_PORT": str(self.redis_port),
            "UI_PORT": str(self.ui_port),
            "ORCHESTRATOR_CODE_DIR": str(code_dir),
            "ORCHESTRATOR_CODE_LOCATIONS": "distributed.py,deploy_jobs.py",
            # a killed worker's step comes back after its lease: short, to keep the suite short
            "ORCHESTRATOR_LEASE_SECONDS": "8",
            "ORCHESTRATOR_HEARTBEAT_INTERVAL": "2",
            "ORCHESTRATOR_WORKER_STOP_GRACE": "60s",
            "DOCKER": docker_binary(),
        }
        self.env.pop("ORCHESTRATOR_REDIS_URL", None)
        self.env.pop("ORCHESTRATOR_BROKER_URL", None)
        self.files = ["-f", "docker-compose.yml", "-f", "deploy/compose.publish-redis.yml"]

    # -- commands ------------------------------------------------------------------------------

    def run(
        self, *args: str, check: bool = True, timeout: float = 600, files: bool = True
    ) -> subprocess.CompletedProcess[str]:
        argv = [*compose_command(), *(self.files if files else []), *args]
        out = subprocess.run(
            argv, cwd=REPO, env=self.env, capture_output=True, text=True, timeout=timeout
        )
        if check and out.returncode != 0:
            raise AssertionError(
                f"{' '.join(argv)} exited {out.returncode}\n{out.stdout[-3000:]}\n"
                f"{out.stderr[-3000:]}"
            )
        return out

    def docker(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        out = subprocess.run([docker_binary(), *args], capture_output=True, text=True, timeout=300)
        if check and out.returncode != 0:
            raise AssertionError(f"docker {' '.join(args)}: {out.stderr.strip()}")
        return out

    def cli(self, *args: str) -> str:
        """A one-off command in a new container of the image (``run --rm cli``)."""
        return self.run("run", "--rm", "-T", "cli", *args).stdout

    def exec(self, *args: str) -> str:
        """A command in the running coordinator container (cheaper than a new container)."""
        return self.run("exec", "-T", "coordinator", "orchestrator", *args).stdout

    def launch(self, file: str, job: str, *extra: str, one_off: bool = False) -> str:
        argv = ("job", "launch", "-f", file, "-j", job, *extra)
        out = self.cli(*argv) if one_off else self.exec(*argv)
        return out.strip().splitlines()[-1]

    # -- life cycle ----------------------------------------------------------------------------

    def build(self) -> None:
        subprocess.run(
            ["bash", "deploy/build-standins.sh"],
            cwd=REPO,
            env=self.env,
            check=True,
            timeout=900,
        )
        self.run("build", timeout=900)

    def up(self, workers: int | None = None) -> None:
        self.run("up", "-d", "--scale", f"worker={workers or self.workers}")

    def down(self, volumes: bool = False) -> None:
        self.run("down", "--remove-orphans", *(["-v"] if volumes else []), check=False)

    def containers(self, service: str) -> list[str]:
        """Ids of the service's running containers."""
        out = self.run("ps", "-q", service).stdout.split()
        running = []
        for cid in out:
            state = self.docker("inspect", "-f", "{{.State.Running}}", cid).stdout.strip()
            if state == "true":
                running.append(cid)
        return running

    def hostname(self, container: str) -> str:
        return self.docker("inspect", "-f", "{{.Config.Hostname}}", container).stdout.strip()

    def container_of_worker(self, worker: str) -> str:
        """The container whose hostname is the host part of a step's worker
        (``<node>@<hostname> pid <pid>``)."""
        host = worker.split(" pid ")[0].partition("@")[2]
        for cid in self.containers("worker"):
            if self.hostname(cid) == host:
                return cid
        raise AssertionError(f"no running worker container has hostname {host!r}")

    def health(self, container: str) -> str:
        return self.docker(
            "inspect", "-f", "{{if .State.Health}}{{.State.Health.Status}}{{end}}", container
        ).stdout.strip()

    def volumes(self) -> list[str]:
        label = f"label=com.docker.compose.project={PROJECT}"
        out = self.docker("volume", "ls", "-q", "--filter", label)
        return out.stdout.split()

    def logs(self) -> str:
        return self.run("logs", "--no-color", "--tail", "60", check=False).stdout

    # -- reading the deployment --------------------------------------------------------------

    def instance(self) -> RedisInstance:
        return RedisInstance.from_url(
            f"redis://:{PASSWORD}@127.0.0.1:{self.redis_port}/0", patience=None
        )

    def wait_redis(self, bound: float = 120) -> RedisInstance:
        deadline = time.monotonic() + bound
        while True:
            try:
                inst = RedisInstance.from_url(
                    f"redis://:{PASSWORD}@127.0.0.1:{self.redis_port}/0", patience=2.0
                )
                inst.client.ping()
                inst.close()
                return self.instance()
            except Exception:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.5)


def dump(value: Any) -> str:
    return json.dumps(value, indent=1, default=str)
