"""Real servers for middleware tests: uvicorn on a 127.0.0.1 port-0 socket in a thread.

Each test serves its own app, so nothing leaks between tests; the server stops when the test ends.
uvicorn's own proxy-header handling and ``Server`` banner are off, as docs/middleware.md advises:
bastion decides who the client is and which banner is sent.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any, ClassVar

import pytest
import uvicorn

from bastion.asgi.types import ASGIApp
from bastion.pipeline import ALLOW, Decision, Deny, Phase, Request

Serve = Callable[..., str]


class _ServerThread:
    def __init__(self, app: ASGIApp, **options: Any) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        settings: dict[str, Any] = {
            "lifespan": "off",
            "log_level": "warning",
            "proxy_headers": False,
            "server_header": False,
            "ws": "websockets-sansio",
            "timeout_graceful_shutdown": 1,
        }
        settings.update(options)
        self.server = uvicorn.Server(uvicorn.Config(app, **settings))
        self.thread = threading.Thread(target=self.server.run, args=([self.sock],), daemon=True)

    def start(self) -> str:
        self.thread.start()
        deadline = time.monotonic() + 5
        while not self.server.started:
            if not self.thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("uvicorn did not start")
            time.sleep(0.005)
        host, port = self.sock.getsockname()[:2]
        return f"http://{host}:{port}"

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(5)
        self.sock.close()


@pytest.fixture
def serve() -> Iterator[Serve]:
    """``serve(app, **uvicorn_options) -> base URL``; every server started is stopped after."""
    servers: list[_ServerThread] = []

    def start(app: ASGIApp, **options: Any) -> str:
        server = _ServerThread(app, **options)
        servers.append(server)
        return server.start()

    yield start
    for server in servers:
        server.stop()


class DenyPrefix:
    """Denies every path under ``prefix`` with 403 ``authz.forbidden``."""

    name: ClassVar[str] = "test.deny_prefix"
    phase: ClassVar[Phase] = Phase.AUTHORIZE
    requires_body: ClassVar[bool] = False

    def __init__(self, prefix: str = "/admin") -> None:
        self.fail_open = False
        self.prefix = prefix

    def check(self, request: Request) -> Decision:
        if request.path.startswith(self.prefix):
            return Deny(403, "authz.forbidden", "Forbidden", "This path is not for you.")
        return ALLOW
