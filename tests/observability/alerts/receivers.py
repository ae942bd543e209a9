"""Real local receivers for alert delivery tests: an HTTP server that records what is POSTed
(and can fail on purpose), an SMTP server (aiosmtpd) that records messages, and test GeoIP
databases written in the MaxMind DB format (mmdb-writer)."""

from __future__ import annotations

import email
import email.policy
import ssl
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from email.message import EmailMessage
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import orjson
import pytest
import trustme
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, AuthResult, Envelope, LoginPassword, Session
from mmdb_writer import MMDBWriter
from netaddr import IPSet

from tests.ports import free_port

# Test networks (RFC 5737) placed in countries by the test database.
COUNTRIES = {
    "203.0.113.0/24": "NL",
    "198.51.100.0/24": "JP",
    "192.0.2.0/24": "BR",
    "100.64.0.0/16": "US",
}


def write_country_db(path: Path, networks: dict[str, str] = COUNTRIES) -> Path:
    writer = MMDBWriter(ip_version=6, database_type="Test-Country", ipv4_compatible=True)
    for network, code in networks.items():
        writer.insert_network(IPSet([network]), {"country": {"iso_code": code}})
    writer.to_db_file(str(path))
    return path


@pytest.fixture(scope="session")
def country_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_country_db(tmp_path_factory.mktemp("geo") / "countries.mmdb")


@dataclass
class Posted:
    path: str
    headers: dict[str, str]
    body: bytes
    at: float

    def json(self) -> Any:
        return orjson.loads(self.body)


@dataclass
class HttpReceiver:
    """Records POSTs; answers ``fail_status`` to the first ``failures`` of them."""

    port: int = 0
    received: list[Posted] = field(default_factory=list)
    attempts: list[float] = field(default_factory=list)
    failures: int = 0
    fail_status: int = 500
    arrived: threading.Condition = field(default_factory=threading.Condition)

    def url(self, path: str = "/hook") -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def wait_for(self, count: int, timeout: float = 10.0) -> list[Posted]:
        deadline = time.monotonic() + timeout
        with self.arrived:
            while len(self.received) < count:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(f"{len(self.received)} of {count} deliveries arrived")
                self.arrived.wait(left)
        return list(self.received)


@pytest.fixture
def receiver() -> Iterator[HttpReceiver]:
    state = HttpReceiver()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("content-length", "0")))
            now = time.monotonic()
            with state.arrived:
                state.attempts.append(now)
                if len(state.attempts) <= state.failures:
                    status = state.fail_status
                else:
                    status = 200
                    headers = {k.lower(): v for k, v in self.headers.items()}
                    state.received.append(Posted(self.path, headers, body, now))
                state.arrived.notify_all()
            self.send_response(status)
            self.send_header("content-length", "2")
            self.end_headers()
            self.wfile.write(b"ok")

        def log_message(self, format: str, *args: Any) -> None:
            return

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    state.port = server.server_address[1]
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    yield state
    server.shutdown()
    server.server_close()


@dataclass
class Mailbox:
    port: int = 0
    messages: list[EmailMessage] = field(default_factory=list)
    envelopes: list[tuple[str, list[str]]] = field(default_factory=list)
    logins: list[str] = field(default_factory=list)  # user names that authenticated
    arrived: threading.Condition = field(default_factory=threading.Condition)
    client_context: ssl.SSLContext | None = None  # trusts the server's certificate (TLS mode)

    def wait_for(self, count: int, timeout: float = 10.0) -> list[EmailMessage]:
        deadline = time.monotonic() + timeout
        with self.arrived:
            while len(self.messages) < count:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(f"{len(self.messages)} of {count} mails arrived")
                self.arrived.wait(left)
        return list(self.messages)


class _Handler:
    def __init__(self, box: Mailbox) -> None:
        self.box = box

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        content = envelope.original_content or b""
        parsed = email.message_from_bytes(content, policy=email.policy.default)
        box = self.box
        with box.arrived:
            box.envelopes.append((str(envelope.mail_from), list(envelope.rcpt_tos)))
            box.messages.append(parsed)  # type: ignore[arg-type]
            box.arrived.notify_all()
        return "250 OK"


SMTP_USER = "bastion"
SMTP_PASSWORD = "smtp-pw-9f3b"


@pytest.fixture
def smtp_tls_server() -> Iterator[Mailbox]:
    """A real SMTP server that requires STARTTLS (a certificate from a test CA, trustme) and
    AUTH with ``SMTP_USER`` / ``SMTP_PASSWORD`` before it accepts mail."""
    box = Mailbox()
    ca = trustme.CA()
    server_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1").configure_cert(server_context)
    box.client_context = ssl.create_default_context()
    ca.configure_trust(box.client_context)

    def authenticate(server: SMTP, session: Session, envelope: Envelope, mechanism: str,
                     auth_data: Any) -> AuthResult:  # fmt: skip
        ok = isinstance(auth_data, LoginPassword) and (
            auth_data.login == SMTP_USER.encode() and auth_data.password == SMTP_PASSWORD.encode()
        )
        if ok:
            box.logins.append(auth_data.login.decode())
        return AuthResult(success=ok, handled=False)  # aiosmtpd answers 535 itself

    box.port = free_port()
    controller = Controller(
        _Handler(box),
        hostname="127.0.0.1",
        port=box.port,
        tls_context=server_context,
        require_starttls=True,
        auth_required=True,
        authenticator=authenticate,
    )
    controller.start()
    yield box
    controller.stop()


@pytest.fixture
def smtp_server() -> Iterator[Mailbox]:
    """A real SMTP server (aiosmtpd) on a loopback port, recording what it is sent."""
    box = Mailbox()

    class Handler:
        async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
            content = envelope.original_content or b""
            parsed = email.message_from_bytes(content, policy=email.policy.default)
            with box.arrived:
                box.envelopes.append((str(envelope.mail_from), list(envelope.rcpt_tos)))
                box.messages.append(parsed)  # type: ignore[arg-type]
                box.arrived.notify_all()
            return "250 OK"

    box.port = free_port()
    controller = Controller(Handler(), hostname="127.0.0.1", port=box.port)
    controller.start()
    yield box
    controller.stop()
