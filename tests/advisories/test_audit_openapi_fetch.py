"""Regression: ``bastion audit --openapi URL`` followed redirects anywhere (a document host could
send the auditor to fetch from another host, e.g. an internal one) and read the whole body into
memory before checking its size."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from bastion.audit import openapi
from bastion.errors import ConfigError

DOCUMENT = b'openapi: 3.0.3\ninfo: {title: t, version: "1"}\npaths: {}\n'


class Handler(BaseHTTPRequestHandler):
    other = ""

    def do_GET(self) -> None:
        if self.path == "/elsewhere":
            self.send_response(302)
            self.send_header("location", f"{self.other}/openapi.yaml")
            self.end_headers()
        elif self.path == "/moved":
            self.send_response(301)
            self.send_header("location", "/openapi.yaml")
            self.end_headers()
        elif self.path == "/huge":
            self.send_response(200)
            self.end_headers()
            chunk = b"#" * 65536
            try:
                for _ in range(2000):  # 128 MiB, more than the limit, never all sent
                    self.wfile.write(chunk)
            except OSError:
                pass
        else:
            self.send_response(200)
            self.send_header("content-length", str(len(DOCUMENT)))
            self.end_headers()
            self.wfile.write(DOCUMENT)

    def log_message(self, format: str, *args: object) -> None:
        return None


@pytest.fixture
def servers() -> Iterator[tuple[str, str]]:
    started = []
    for _ in range(2):
        server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        started.append(server)
    Handler.other = f"http://127.0.0.1:{started[1].server_address[1]}"
    yield tuple(f"http://127.0.0.1:{s.server_address[1]}" for s in started)  # type: ignore[misc]
    for server in started:
        server.shutdown()
        server.server_close()


def test_a_redirect_to_another_origin_is_refused(servers: tuple[str, str]) -> None:
    with pytest.raises(ConfigError, match="redirected to another origin"):
        openapi.load(f"{servers[0]}/elsewhere")


def test_a_redirect_on_the_same_origin_is_followed(servers: tuple[str, str]) -> None:
    assert openapi.load(f"{servers[0]}/moved")["openapi"] == "3.0.3"


def test_an_oversized_document_is_refused_while_reading(servers: tuple[str, str]) -> None:
    with pytest.raises(ConfigError, match="larger than"):
        openapi.load(f"{servers[0]}/huge")
