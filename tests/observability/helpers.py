"""What the event tests share: the documented JSON Schema, and a real local ``_bulk`` receiver."""

from __future__ import annotations

import http.server
import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from bastion.observability.ecs import AccessRecord
from bastion.observability.writer import NATIVE

SCHEMA_PATH = Path(__file__).parents[2] / "docs" / "logging.schema.json"


@cache
def validator() -> jsonschema.Draft202012Validator:
    schema = json.loads(SCHEMA_PATH.read_text())
    jsonschema.Draft202012Validator.check_schema(schema)
    return jsonschema.Draft202012Validator(schema)


def check_line(line: bytes | str) -> dict[str, Any]:
    """The parsed line; fails the test if it does not match the documented field set."""
    doc: dict[str, Any] = json.loads(line)
    errors = sorted(validator().iter_errors(doc), key=lambda e: list(e.path))
    assert not errors, f"{doc}: " + "; ".join(f"{list(e.path)}: {e.message}" for e in errors)
    return doc


ACCESS_FIELDS = ("ts", "method", "path", "status", "body_in", "bytes_out", "seconds", "ip", "rid",
                 "route", "user", "host", "upstream", "peer")  # fmt: skip
"""The fields of the engine's access record (:data:`bastion.observability.ecs.AccessRecord`)."""


WRITERS = [pytest.param(False, id="python")]
"""The event writers a test of lines runs against: the Python formatter, and the C one where
it is built."""
if NATIVE is not None:
    WRITERS.append(pytest.param(True, id="native"))

PLAIN_ACCESS: dict[str, object] = {
    "ts": 1_764_000_000.5, "method": b"GET", "path": b"/", "status": 200, "body_in": 0,
    "bytes_out": 10, "seconds": 0.001, "ip": "127.0.0.1", "rid": b"x-request-id: abc\r\n",
    "route": "api", "user": None, "host": "", "upstream": 0.0005, "peer": "127.0.0.1",
}  # fmt: skip
"""An access record with nothing to redact or escape, for tests that change one field."""


def access_record(defaults: dict[str, object], **changes: object) -> AccessRecord:
    """The access record of ``defaults`` with ``changes``, both by field name (every field of
    :data:`ACCESS_FIELDS`, no other)."""
    values = {**defaults, **changes}
    assert set(values) == set(ACCESS_FIELDS), sorted(set(values) ^ set(ACCESS_FIELDS))
    return tuple(values[name] for name in ACCESS_FIELDS)  # type: ignore[return-value]


@dataclass
class BulkReceiver:
    """An HTTP server answering ``POST /_bulk`` like Elasticsearch. ``script`` holds the
    answers to give first: an HTTP status, or ``"items:<status>"`` (200 with every item
    refused with that status)."""

    port: int = 0
    requests: list[tuple[str, dict[str, str], bytes]] = field(default_factory=list)
    script: list[int | str] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def documents(self) -> list[bytes]:
        """The documents accepted (every second line of the bodies answered 200 without
        item errors)."""
        with self.lock:
            return [line for _, _, body in self.requests for line in body.splitlines()[1::2]]

    def bodies(self) -> bytes:
        with self.lock:
            return b"".join(body for _, _, body in self.requests)


def _handler(receiver: BulkReceiver) -> type[http.server.BaseHTTPRequestHandler]:
    class Handler(http.server.BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:
            return None

        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers["content-length"]))
            with receiver.lock:
                answer = receiver.script.pop(0) if receiver.script else 200
                if answer == 200:
                    receiver.requests.append((self.path, dict(self.headers.items()), body))
            if isinstance(answer, str):
                status = int(answer.partition(":")[2])
                count = len(body.splitlines()) // 2
                items = [{"create": {"status": status}} for _ in range(count)]
                payload = json.dumps({"errors": True, "items": items}).encode()
                code = 200
            else:
                payload = json.dumps({"errors": False, "items": []}).encode()
                code = answer
            self.send_response(code)
            self.send_header("content-type", "application/json")
            self.send_header("content-length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

    return Handler


@contextmanager
def bulk_receiver() -> Iterator[BulkReceiver]:
    receiver = BulkReceiver()
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _handler(receiver))
    receiver.port = server.server_address[1]
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield receiver
    finally:
        server.shutdown()
        server.server_close()
