"""Redis for the tests: the shared server at 127.0.0.1:6379, or one started for the run.

- ``redis_url`` (session): ``redis://127.0.0.1:6379`` when it answers PING, otherwise a private
  ``redis-server`` started for the session in a temporary directory (no persistence) and
  stopped at the end. Tests never skip: without ``redis-server`` installed they fail, saying so.
- ``redis_client``: bastion's :class:`RedisClient`, connected to ``redis_url``.
- ``redis_prefix``: a key prefix of its own for each test; its keys are deleted afterwards.
- ``redis_server_factory``: private servers on free ports, for tests that stop, restart or
  reconfigure a server (``--requirepass``); every one is killed at the end of the test.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import ssl
import subprocess
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path

import pytest
import redis

from bastion.backends.redis import RedisClient
from tests.ports import free_port

SHARED_HOST = "127.0.0.1"
SHARED_PORT = 6379


def answers_ping(host: str, port: int, timeout: float = 0.5, *, tls: bool = False) -> bool:
    """True when something on ``host:port`` answers a Redis ``PING`` (or asks to authenticate);
    with ``tls``, over TLS without checking the certificate (only readiness is asked)."""
    try:
        with socket.create_connection((host, port), timeout=timeout) as raw:
            sock = raw
            if tls:
                context = ssl.create_default_context()
                context.check_hostname = False
                context.verify_mode = ssl.CERT_NONE
                sock = context.wrap_socket(raw)
            sock.sendall(b"PING\r\n")
            reply = sock.recv(64)
    except OSError:
        return False
    return reply.startswith((b"+PONG", b"-NOAUTH"))


def redis_server_binary() -> str:
    binary = shutil.which("redis-server")
    if binary is None:
        pytest.fail(
            "redis-server is not installed and no Redis answers at 127.0.0.1:6379: the Redis "
            "tests need one of them (apt-get install redis-server)",
            pytrace=False,
        )
    return binary


class RedisServer:
    """A private ``redis-server`` on 127.0.0.1, without persistence, in its own directory.

    ``stop()`` and ``start()`` again keep the port, so that clients can reconnect to it.
    """

    def __init__(
        self,
        directory: Path,
        *,
        password: str | None = None,
        args: tuple[str, ...] = (),
        tls: tuple[Path, Path] | None = None,
    ):
        self.directory = directory
        self.password = password
        self.args = args
        self.tls = tls  # (certificate chain, key): TLS only, no plain port
        self.port = 0
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        auth = f":{self.password}@" if self.password is not None else ""
        scheme = "rediss" if self.tls else "redis"
        return f"{scheme}://{auth}127.0.0.1:{self.port}"

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def start(self) -> RedisServer:
        """Start on the server's port (a free one the first time); wait until it answers."""
        binary = redis_server_binary()
        for _ in range(5):
            port = self.port or free_port()
            if self._launch(binary, port):
                self.port = port
                return self
            if self.port:
                break
        raise RuntimeError(f"redis-server did not start; see {self.directory / 'redis.log'}")

    def _launch(self, binary: str, port: int) -> bool:
        if self.tls is None:
            ports = ["--port", str(port)]
        else:
            ports = [
                "--port",
                "0",
                "--tls-port",
                str(port),
                "--tls-auth-clients",
                "no",
                "--tls-cert-file",
                str(self.tls[0]),
                "--tls-key-file",
                str(self.tls[1]),
            ]
        command = [
            binary,
            *ports,
            "--bind", "127.0.0.1",
            "--save", "",
            "--appendonly", "no",
            "--dir", str(self.directory),
            "--logfile", str(self.directory / "redis.log"),
            *self.args,
        ]  # fmt: skip
        if self.password is not None:
            command += ["--requirepass", self.password]
        self.process = subprocess.Popen(
            command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True
        )
        deadline = time.monotonic() + 10.0
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                return False  # the port was taken meanwhile, most likely
            if answers_ping("127.0.0.1", port, timeout=0.2, tls=self.tls is not None):
                return True
            time.sleep(0.02)
        self.kill()
        return False

    def stop(self) -> None:
        """Stop the server (SIGTERM, SIGKILL after 5 s); clients see their connection close."""
        process = self.process
        if process is None or process.poll() is not None:
            return
        process.terminate()
        try:
            process.wait(5.0)
        except subprocess.TimeoutExpired:
            self.kill()

    def kill(self) -> None:
        process = self.process
        if process is not None and process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            process.wait()


@pytest.fixture(scope="session")
def redis_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The Redis every test may share, each in its own key prefix."""
    if answers_ping(SHARED_HOST, SHARED_PORT):
        yield f"redis://{SHARED_HOST}:{SHARED_PORT}"
        return
    server = RedisServer(tmp_path_factory.mktemp("redis")).start()
    try:
        yield server.url
    finally:
        server.stop()
        server.kill()


@pytest.fixture
def redis_prefix(redis_url: str) -> Iterator[str]:
    """A key prefix no other test uses; every key under it is deleted after the test."""
    prefix = f"test:{uuid.uuid4().hex[:12]}:"
    yield prefix
    client = redis.Redis.from_url(redis_url)
    try:
        keys = list(client.scan_iter(match=f"{prefix}*", count=1000))
        if keys:
            client.delete(*keys)
    finally:
        client.close()


@pytest.fixture
def redis_server_factory(tmp_path: Path) -> Iterator[Callable[..., RedisServer]]:
    """``factory(password=None, args=(), tls=None)`` starts a private server (TLS only with
    ``tls=(certificate_chain, key)``); all are killed at the end."""
    servers: list[RedisServer] = []

    def factory(
        *,
        password: str | None = None,
        args: tuple[str, ...] = (),
        tls: tuple[Path, Path] | None = None,
    ) -> RedisServer:
        directory = tmp_path / f"redis-{len(servers)}"
        directory.mkdir()
        server = RedisServer(directory, password=password, args=args, tls=tls)
        servers.append(server)
        return server.start()

    yield factory
    for server in servers:
        server.kill()


@pytest.fixture
async def redis_client(redis_url: str) -> AsyncIterator[RedisClient]:
    """bastion's own client, connected to ``redis_url``; closed after the test."""
    client = RedisClient(redis_url, command_timeout=2.0)
    await client.connect()
    yield client
    await client.close()
