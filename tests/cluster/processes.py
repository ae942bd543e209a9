"""Gateway processes for the cluster tests: ``bastion serve`` on loopback ports, each with its
own admin listener (the readiness probe a load balancer would use), logs to a file rather than
a pipe nobody drains, each in its own session so that cleanup reaches every child."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import yaml

from tests.ports import free_port

START_TIMEOUT = 20.0


@dataclass
class Instance:
    process: subprocess.Popen[bytes]
    port: int
    admin_port: int
    log: Path

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def alive(self) -> bool:
        return self.process.poll() is None

    def kill(self) -> None:
        """SIGKILL: no graceful shutdown, as when a machine dies."""
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait(5)

    def output(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""


class Cluster:
    """``n`` gateways sharing one config file (and so its Redis and PostgreSQL)."""

    def __init__(self, directory: Path, config: dict[str, Any]) -> None:
        self.directory = directory
        self.config = config
        self.instances: list[Instance] = []
        directory.mkdir(parents=True, exist_ok=True)
        self.config_path = directory / "bastion.yaml"
        self.config_path.write_text(yaml.safe_dump(config))

    def start(self, n: int, *, probe: str = "readyz") -> Cluster:
        for index in range(n):
            self.instances.append(self._launch(index))
        deadline = time.monotonic() + START_TIMEOUT
        for instance in self.instances:
            while not self._ready(instance, probe):
                if not instance.alive or time.monotonic() > deadline:
                    self.stop()
                    raise AssertionError(f"gateway did not become ready:\n{instance.output()}")
                time.sleep(0.05)
        return self

    def _launch(self, index: int) -> Instance:
        port, admin = free_port(), free_port()
        log = self.directory / f"gateway-{index}.log"
        with log.open("wb") as sink:
            process = subprocess.Popen(
                [sys.executable, "-c", "from bastion.cli.main import main; main()", "serve",
                 "--config", str(self.config_path), "--listen", f"127.0.0.1:{port}",
                 "--admin-listen", f"127.0.0.1:{admin}"],
                stdout=sink, stderr=subprocess.STDOUT, start_new_session=True,
                env=os.environ.copy(),
            )  # fmt: skip
        return Instance(process, port, admin, log)

    @staticmethod
    def _ready(instance: Instance, probe: str = "readyz") -> bool:
        try:
            answer = httpx.get(f"http://127.0.0.1:{instance.admin_port}/{probe}", timeout=0.5)
        except httpx.HTTPError:
            return False
        return answer.status_code == 200

    def stop(self) -> None:
        for instance in self.instances:
            if instance.alive:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(instance.process.pid, signal.SIGTERM)
        for instance in self.instances:
            try:
                instance.process.wait(5)
            except subprocess.TimeoutExpired:
                instance.kill()


def cli(config: Path, *args: str, timeout: float = 30.0) -> subprocess.CompletedProcess[str]:
    """``bastion ARGS --config CONFIG`` in a process of its own."""
    return subprocess.run(
        [sys.executable, "-c", "from bastion.cli.main import main; main()", *args,
         "--config", str(config)],
        capture_output=True, text=True, timeout=timeout, env=os.environ.copy(), check=False,
    )  # fmt: skip


LIMIT = 40
"""The global limit on ``/limited``: this many requests per hour across the whole cluster."""


def cluster_config(
    directory: Path, upstream: str, *, postgres: dict[str, str], redis: dict[str, str]
) -> dict[str, Any]:
    """Three routes on one upstream: ``/orders`` needs an API key, ``/public`` needs nothing,
    ``/limited`` is public under one global limit counted in Redis (refused while Redis is
    away: the default fail-closed policy). Key changes reach instances through Redis only:
    the store is re-read every 30 s, too slow for any one-second assertion."""
    return {
        "state_dir": str(directory / "state"),
        "routes": [
            {"name": "orders", "upstream": upstream, "path_prefix": "/orders",
             "auth": {"require": "required"}},
            {"name": "public", "upstream": upstream, "path_prefix": "/public",
             "auth": {"require": "public"}},
            {"name": "limited", "upstream": upstream, "path_prefix": "/limited",
             "auth": {"require": "public"}},
        ],
        "postgres": postgres,
        "redis": {**redis, "connect_timeout": "0.2s", "command_timeout": "0.5s"},
        "rate_limit": {
            "storage": "redis",
            "on_backend_failure": "closed",
            "login": {"enabled": False},
            "policies": [
                {"name": "global", "rate": f"{LIMIT}/hour", "key": [], "routes": ["limited"]}
            ],
        },
        "auth": {"api_keys": {"refresh_interval": "30s"}},
        "events": {"sink": "none"},
        "timeouts": {"shutdown_grace": "1s"},
    }  # fmt: skip
