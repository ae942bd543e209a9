"""A real HTTP target on loopback that records what the audit sent it (and serves its OpenAPI
document, strong.yaml, at /openapi.yaml)."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

DOCUMENT = (Path(__file__).parent / "data" / "strong.yaml").read_bytes()


@dataclass
class Recorded:
    url: str
    arrivals: list[tuple[float, str, str, dict[str, str]]] = field(default_factory=list)


class _Handler(BaseHTTPRequestHandler):
    server: _Server

    def _answer(self) -> None:
        self.server.recorded.arrivals.append(
            (time.monotonic(), self.command, self.path, dict(self.headers.items()))
        )
        document = self.path == "/openapi.yaml"  # the API serves its own description
        body = DOCUMENT if document else b'{"ok": true}'
        self.send_response(200)
        self.send_header("Content-Type", "application/yaml" if document else "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    do_GET = do_POST = do_PUT = do_DELETE = do_HEAD = do_OPTIONS = _answer

    def log_message(self, format: str, *args: object) -> None:  # quiet test output
        return


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    recorded: Recorded


@pytest.fixture
def recording_target() -> Iterator[Recorded]:
    server = _Server(("127.0.0.1", 0), _Handler)
    server.recorded = Recorded(f"http://127.0.0.1:{server.server_address[1]}")
    thread = threading.Thread(target=server.serve_forever, args=(0.02,), daemon=True)
    thread.start()
    try:
        yield server.recorded
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)
