"""A small HTTPS upstream for tests: answers every request with what it saw of the TLS session
(the client certificate's subject, if any), over keep-alive connections."""

from __future__ import annotations

import asyncio
import ssl
from dataclasses import dataclass, field

import orjson

from tests.tls.helpers import Issued


@dataclass
class TLSUpstream:
    server: asyncio.Server
    port: int
    connections: int = 0
    peers: list[str | None] = field(default_factory=list)

    @property
    def url(self) -> str:
        return f"https://localhost:{self.port}"

    def close(self) -> None:
        self.server.close()


async def start_tls_upstream(cert: Issued, *, client_ca: Issued | None = None) -> TLSUpstream:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert.cert, cert.key)
    if client_ca is not None:
        client_ca.ca.configure_trust(context)
        context.verify_mode = ssl.CERT_REQUIRED
    state: dict[str, TLSUpstream] = {}

    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        upstream = state["up"]
        upstream.connections += 1
        peer = writer.get_extra_info("peercert")
        subject = None
        if peer:
            subject = dict(item[0] for item in peer["subject"]).get("commonName")
        upstream.peers.append(subject)
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                body = orjson.dumps({"target": head.split(b" ")[1].decode(), "client": subject})
                writer.write(b"HTTP/1.1 200 OK\r\ncontent-length: %d\r\n\r\n%s" % (len(body), body))
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError, ssl.SSLError):
            pass
        finally:
            writer.close()

    server = await asyncio.start_server(answer, "127.0.0.1", 0, ssl=context)
    up = state["up"] = TLSUpstream(server, server.sockets[0].getsockname()[1])
    return up
