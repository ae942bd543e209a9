"""Certificates (trustme), a gateway serving TLS through the real engine, and TLS clients."""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import trustme

from bastion.config.models import BastionConfig
from bastion.config.types import HostPort
from bastion.engine.server import GatewayServer
from bastion.observability.events import MemorySink
from bastion.pipeline.chain import GuardChain
from bastion.pipeline.guard import Guard
from bastion.pipeline.routing import Route, Router
from bastion.tls.server import ServerTLS
from tests.engine.helpers import make_config, read_until_close


@dataclass
class Issued:
    """A certificate and its key as files, and the CA that issued it."""

    ca: trustme.CA
    cert: Path
    key: Path

    def files(self) -> dict[str, str]:
        return {"cert": str(self.cert), "key": str(self.key)}


def issue(
    ca: trustme.CA,
    directory: Path,
    name: str,
    *identities: str,
    key_type: trustme.KeyType = trustme.KeyType.ECDSA,
    **kwargs: Any,
) -> Issued:
    leaf = ca.issue_cert(*(identities or (name,)), key_type=key_type, **kwargs)
    directory.mkdir(parents=True, exist_ok=True)
    cert, key = directory / f"{name}.pem", directory / f"{name}-key.pem"
    leaf.cert_chain_pems[0].write_to_path(str(cert))
    for extra in leaf.cert_chain_pems[1:]:
        extra.write_to_path(str(cert), append=True)
    leaf.private_key_pem.write_to_path(str(key))
    key.chmod(0o600)
    return Issued(ca, cert, key)


def tls_config(upstream_url: str, state_dir: Path, **tls: Any) -> BastionConfig:
    return make_config(upstream_url, state_dir=str(state_dir), tls={"enabled": True, **tls})


@dataclass
class TLSGateway:
    server: GatewayServer
    tls: ServerTLS
    events: MemorySink

    @property
    def port(self) -> int:
        return self.server.port

    async def close(self) -> None:
        await self.server.shutdown(1.0)


async def start_tls_gateway(
    config: BastionConfig,
    guards: Sequence[Guard] = (),
    routes: Sequence[Route] | None = None,
) -> TLSGateway:
    if routes is None:
        routes = [Route.from_config(r) for r in config.routes]
    events = MemorySink()
    chain = GuardChain([Router(routes), *guards], events)
    tls = ServerTLS(config.tls, config.state_dir)
    server = GatewayServer(
        config=config,
        chain=chain,
        listen=HostPort("127.0.0.1", 0),
        ssl=tls.load(),
    )
    await server.start()
    return TLSGateway(server, tls, events)


def client_context(
    ca: trustme.CA | Path | None = None,
    *,
    minimum: ssl.TLSVersion | None = None,
    maximum: ssl.TLSVersion | None = None,
    ciphers: str | None = None,
    alpn: Sequence[str] = (),
) -> ssl.SSLContext:
    """A client context trusting ``ca`` (a trustme CA or a PEM file); old versions and weak
    suites need OpenSSL's security level 0 on the client to be offered at all."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    if isinstance(ca, trustme.CA):
        ca.configure_trust(context)
    elif ca is not None:
        context.load_verify_locations(cafile=str(ca))
    else:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    if ciphers is not None or (minimum is not None and minimum < ssl.TLSVersion.TLSv1_2):
        context.set_ciphers((ciphers or "DEFAULT") + ":@SECLEVEL=0")
    if minimum is not None:
        context.minimum_version = minimum
    if maximum is not None:
        context.maximum_version = maximum
    if alpn:
        context.set_alpn_protocols(list(alpn))
    return context


async def tls_request(
    port: int,
    context: ssl.SSLContext,
    data: bytes = b"GET / HTTP/1.1\r\nhost: localhost\r\nconnection: close\r\n\r\n",
    *,
    server_hostname: str = "localhost",
    timeout: float = 5.0,
) -> tuple[bytes, ssl.SSLObject]:
    """Handshake, send ``data``, read until the server closes: the bytes and the SSL object."""
    reader, writer = await asyncio.wait_for(
        asyncio.open_connection("127.0.0.1", port, ssl=context, server_hostname=server_hostname),
        timeout,
    )
    ssl_object = writer.get_extra_info("ssl_object")
    try:
        writer.write(data)
        await writer.drain()
        return await read_until_close(reader, timeout=timeout), ssl_object
    finally:
        writer.close()


async def handshake(
    port: int, context: ssl.SSLContext, *, server_hostname: str = "localhost"
) -> ssl.SSLObject:
    """Only the handshake; raises ``ssl.SSLError`` (or a connection error) when refused."""
    _, writer = await asyncio.wait_for(
        asyncio.open_connection("127.0.0.1", port, ssl=context, server_hostname=server_hostname),
        5.0,
    )
    ssl_object: ssl.SSLObject = writer.get_extra_info("ssl_object")
    writer.close()
    return ssl_object


def fields_of(response: bytes) -> dict[str, str]:
    head = response.partition(b"\r\n\r\n")[0]
    fields: dict[str, str] = {}
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        fields[name.decode().lower()] = value.decode("latin-1").strip()
    return fields


# uvloop closes a connection whose handshake failed without flushing OpenSSL's alert, so the
# client sees either the alert or a reset: both are a refused handshake.
REFUSED = (ssl.SSLError, ConnectionResetError)


async def control_server(cert: Issued, **settings: object) -> tuple[asyncio.Server, int]:
    """A permissive TLS server (old versions, every suite) with the same certificate."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert.cert, cert.key)
    context.set_ciphers("ALL:@SECLEVEL=0")
    context.minimum_version = ssl.TLSVersion.MINIMUM_SUPPORTED

    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.close()

    server = await asyncio.start_server(answer, "127.0.0.1", 0, ssl=context)
    return server, server.sockets[0].getsockname()[1]
