"""Serving the weak APIs for real: uvicorn on a loopback socket (TLS with trustme certificates
where asked), bare TLS endpoints for handshake-only checks, and canned plain-HTTP listeners."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import ssl
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import trustme
import uvicorn
from starlette.types import ASGIApp


@dataclass
class Served:
    url: str
    port: int
    stop: Callable[[], Any]

    async def close(self) -> None:
        result = self.stop()
        if asyncio.iscoroutine(result):
            await result


async def serve_app(app: ASGIApp, context: ssl.SSLContext | None = None) -> Served:
    """``app`` on 127.0.0.1 (named ``localhost`` in the URL, so certificates match)."""
    sock = socket.socket()
    # inherited by accepted connections: uvicorn writes a response head and body separately,
    # and with Nagle's algorithm each exchange would wait out the client's delayed ACK (40 ms)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    config = uvicorn.Config(
        app,
        log_level="error",
        lifespan="off",
        access_log=False,
        timeout_graceful_shutdown=1,
        ssl_context_factory=(lambda _config, _default: context) if context else None,
    )
    server = uvicorn.Server(config)
    server.install_signal_handlers = lambda: None  # type: ignore[method-assign]
    task = asyncio.create_task(server.serve(sockets=[sock]))
    for _ in range(500):
        if server.started or task.done():
            break
        await asyncio.sleep(0.01)
    if task.done():
        task.result()  # raises what stopped it

    async def stop() -> None:
        server.should_exit = True
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.wait_for(task, 5)
        sock.close()

    scheme = "https" if context else "http"
    return Served(f"{scheme}://localhost:{port}", port, stop)


def server_context(
    cert: trustme.LeafCert | tuple[str, str],
    *,
    legacy: bool = False,
    ciphers: str = "ECDHE+AESGCM:ECDHE+CHACHA20",
) -> ssl.SSLContext:
    """TLS 1.2+ with the Mozilla intermediate suites by default; ``legacy`` also speaks TLS
    1.0/1.1 and every suite the local OpenSSL has (security level 0). ``cert`` is a trustme
    leaf or (certificate file, key file)."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    if legacy:
        context.minimum_version = ssl.TLSVersion.MINIMUM_SUPPORTED
        context.set_ciphers("ALL:@SECLEVEL=0")
    else:
        context.minimum_version = ssl.TLSVersion.TLSv1_2
        context.set_ciphers(ciphers)
    if isinstance(cert, trustme.LeafCert):
        cert.configure_cert(context)
    else:
        context.load_cert_chain(*cert)
    return context


async def bare_tls(context: ssl.SSLContext) -> Served:
    """A TLS endpoint that handshakes and hangs up: enough for version, suite and certificate
    checks (which never send a request)."""

    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.close()

    server = await asyncio.start_server(answer, "127.0.0.1", 0, ssl=context)
    port = server.sockets[0].getsockname()[1]

    def stop() -> None:
        server.close()

    return Served(f"https://localhost:{port}", port, stop)


async def canned_http(response: bytes) -> Served:
    """A plain-HTTP listener answering every request with ``response``."""

    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(ConnectionError, asyncio.IncompleteReadError):
            await reader.readuntil(b"\r\n\r\n")
            writer.write(response)
            await writer.drain()
        writer.close()

    server = await asyncio.start_server(answer, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]

    def stop() -> None:
        server.close()

    return Served(f"http://localhost:{port}", port, stop)
