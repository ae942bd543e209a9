"""Certificate reload: new handshakes get the new certificate, connections already open keep
going, a broken set leaves the old one serving, and nothing fails under load meanwhile."""

from __future__ import annotations

import asyncio
import os
import signal
import ssl
from pathlib import Path

import pytest
import trustme

from bastion.tls.server import CertificateSet
from tests.engine.helpers import read_until_close
from tests.engine.upstream_app import Upstream
from tests.tls.helpers import (
    Issued,
    TLSGateway,
    client_context,
    handshake,
    issue,
    start_tls_gateway,
    tls_config,
)

KEEP_ALIVE = b"GET / HTTP/1.1\r\nhost: localhost\r\n\r\n"


def der(path: Path) -> bytes:
    return ssl.PEM_cert_to_DER_cert(path.read_text().split("-----END CERTIFICATE-----")[0]
                                    + "-----END CERTIFICATE-----\n")  # fmt: skip


def replace_files(target: Issued, source: Issued) -> None:
    """Swap the files in place the way deployment tools do (write aside, rename over)."""
    for src, dst in ((source.cert, target.cert), (source.key, target.key)):
        aside = dst.with_suffix(".new")
        aside.write_bytes(src.read_bytes())
        os.replace(aside, dst)


async def served_der(gateway: TLSGateway, ca: trustme.CA) -> bytes:
    ssl_object = await handshake(gateway.port, client_context(ca))
    value = ssl_object.getpeercert(True)
    assert value is not None
    return value


async def read_response(reader: asyncio.StreamReader) -> bytes:
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
    length = 0
    for line in head.split(b"\r\n"):
        if line.lower().startswith(b"content-length:"):
            length = int(line.split(b":")[1])
    return head + await asyncio.wait_for(reader.readexactly(length), 5)


@pytest.fixture
def ca() -> trustme.CA:
    return trustme.CA()


async def test_reload_serves_the_new_certificate_and_keeps_open_connections(
    upstream: Upstream, ca: trustme.CA, tmp_path: Path
) -> None:
    live = issue(ca, tmp_path, "live", "localhost")
    first = der(live.cert)
    config = tls_config(upstream.url, tmp_path / "state", certificates=[live.files()])
    gateway = await start_tls_gateway(config)
    try:
        reader, writer = await asyncio.open_connection(
            "127.0.0.1", gateway.port, ssl=client_context(ca), server_hostname="localhost"
        )
        writer.write(KEEP_ALIVE)
        assert (await read_response(reader)).startswith(b"HTTP/1.1 200 ")

        renewed = issue(ca, tmp_path / "next", "live", "localhost")
        replace_files(live, renewed)
        assert gateway.tls.reload() is True
        assert gateway.tls.reload() is False  # nothing changed since

        assert await served_der(gateway, ca) == der(renewed.cert) != first
        writer.write(KEEP_ALIVE)  # the connection opened before the reload still serves
        assert (await read_response(reader)).startswith(b"HTTP/1.1 200 ")
        assert writer.get_extra_info("ssl_object").getpeercert(True) == first
        writer.close()
    finally:
        await gateway.close()


async def test_a_broken_certificate_set_leaves_the_old_one_serving(
    upstream: Upstream, ca: trustme.CA, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    live = issue(ca, tmp_path, "live", "localhost")
    config = tls_config(upstream.url, tmp_path / "state", certificates=[live.files()])
    gateway = await start_tls_gateway(config)
    try:
        other = issue(ca, tmp_path / "other", "other", "localhost")
        live.key.write_bytes(other.key.read_bytes())  # a key that does not match
        assert gateway.tls.reload() is False
        assert "reload failed" in caplog.text
        assert await served_der(gateway, ca) == der(live.cert)
        live.cert.write_bytes(other.cert.read_bytes())  # the matching certificate arrives
        assert gateway.tls.reload() is True
        assert await served_der(gateway, ca) == der(other.cert)
    finally:
        await gateway.close()


async def test_changed_files_are_picked_up_by_polling_and_sighup(
    upstream: Upstream, ca: trustme.CA, tmp_path: Path
) -> None:
    live = issue(ca, tmp_path, "live", "localhost")
    config = tls_config(
        upstream.url, tmp_path / "state", certificates=[live.files()], reload_interval=0.02
    )
    gateway = await start_tls_gateway(config)
    reloaded = asyncio.Event()

    def note(_: CertificateSet) -> None:
        reloaded.set()

    gateway.tls.on_reload.append(note)
    stop = asyncio.Event()
    watcher = asyncio.create_task(gateway.tls.watch(stop))
    try:
        renewed = issue(ca, tmp_path / "next", "live", "localhost")
        replace_files(live, renewed)
        await asyncio.wait_for(reloaded.wait(), 5)  # the poll saw the change
        assert await served_der(gateway, ca) == der(renewed.cert)

        reloaded.clear()
        count = gateway.tls.reloads
        os.kill(os.getpid(), signal.SIGHUP)  # forces a reload even without a change
        await asyncio.wait_for(reloaded.wait(), 5)
        assert gateway.tls.reloads == count + 1
    finally:
        stop.set()
        await watcher
        await gateway.close()


async def test_reloading_under_load_fails_no_request(
    upstream: Upstream, ca: trustme.CA, tmp_path: Path
) -> None:
    live = issue(ca, tmp_path, "live", "localhost")
    config = tls_config(upstream.url, tmp_path / "state", certificates=[live.files()])
    gateway = await start_tls_gateway(config)
    context = client_context(ca)
    done = asyncio.Event()
    counts = {"ok": 0, "failed": 0}
    certificates: set[bytes] = set()

    async def keep_alive_client() -> None:
        reader, writer = await asyncio.open_connection(
            "127.0.0.1", gateway.port, ssl=context, server_hostname="localhost"
        )
        while not done.is_set():
            writer.write(KEEP_ALIVE)
            response = await read_response(reader)
            counts["ok" if response.startswith(b"HTTP/1.1 200 ") else "failed"] += 1
        writer.close()

    async def new_connection_client() -> None:
        while not done.is_set():
            reader, writer = await asyncio.open_connection(
                "127.0.0.1", gateway.port, ssl=context, server_hostname="localhost"
            )
            certificates.add(writer.get_extra_info("ssl_object").getpeercert(True))
            writer.write(b"GET / HTTP/1.1\r\nhost: localhost\r\nconnection: close\r\n\r\n")
            await writer.drain()
            response = await read_until_close(reader)
            counts["ok" if response.startswith(b"HTTP/1.1 200 ") else "failed"] += 1
            writer.close()

    clients = [asyncio.create_task(keep_alive_client()) for _ in range(4)]
    clients += [asyncio.create_task(new_connection_client()) for _ in range(4)]
    try:
        for generation in range(5):
            before = counts["ok"]
            while counts["ok"] < before + 40:  # traffic flows between reloads
                await asyncio.sleep(0.005)
            renewed = issue(ca, tmp_path / f"gen{generation}", "live", "localhost")
            replace_files(live, renewed)
            assert gateway.tls.reload() is True
        before = counts["ok"]
        while counts["ok"] < before + 40:
            await asyncio.sleep(0.005)
    finally:
        done.set()
        results = await asyncio.gather(*clients, return_exceptions=True)
        await gateway.close()
    assert [r for r in results if r is not None] == []  # no client saw an error
    assert counts["failed"] == 0
    assert counts["ok"] >= 240
    assert len(certificates) >= 3  # new connections met several generations of certificate
