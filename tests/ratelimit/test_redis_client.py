"""bastion's Redis client against real servers: batching per event-loop tick, NOSCRIPT
recovery, AUTH and SELECT from the URL, failing fast while down, reconnecting, timeouts."""

from __future__ import annotations

import asyncio
import datetime
import ipaddress
import os
import signal
import ssl
from collections.abc import Callable
from pathlib import Path

import pytest
import redis
import uvloop
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from bastion.backends.redis import RedisClient, RedisCommandError, RedisTarget, Script
from bastion.errors import BackendUnavailable
from bastion.ratelimit.core import Rate
from bastion.ratelimit.storage.redis import RedisLimiter
from tests.services.redis_service import RedisServer

ECHO = Script("echo", "redis.call('RPUSH', KEYS[1], ARGV[1]) return {KEYS[1], ARGV[1]}")


async def wait_until(condition: Callable[[], bool], timeout: float = 10.0) -> None:
    """Poll ``condition`` (a reconnection in the background) for at most ``timeout`` s."""
    async with asyncio.timeout(timeout):
        while not condition():
            await asyncio.sleep(0.01)


async def test_concurrent_calls_share_one_write_and_resolve_in_order(
    redis_client: RedisClient, redis_prefix: str
) -> None:
    key = redis_prefix + "order"
    flushes, commands = redis_client.flushes, redis_client.commands
    replies = await asyncio.gather(*(redis_client.evalsha(ECHO, [key], [n]) for n in range(200)))
    assert redis_client.flushes - flushes == 1  # one pipeline, one transport.write
    assert redis_client.commands - commands == 201  # the script's SCRIPT LOAD went first
    assert replies == [[key.encode(), str(n).encode()] for n in range(200)]
    # Redis ran them in the order they were issued.
    assert await redis_client.execute("LRANGE", key, 0, -1) == [str(n).encode() for n in range(200)]


async def test_each_tick_is_one_batch(redis_client: RedisClient, redis_prefix: str) -> None:
    key = redis_prefix + "ticks"

    async def caller() -> None:
        for n in range(5):
            await redis_client.evalsha(ECHO, [key], [n])

    flushes = redis_client.flushes
    await asyncio.gather(*(caller() for _ in range(50)))
    # 50 callers, 5 calls each: 5 rounds of 50 calls (never 250 writes).
    assert redis_client.flushes - flushes == 5


async def test_noscript_after_script_flush_is_recovered(
    redis_client: RedisClient, redis_prefix: str
) -> None:
    limiter = RedisLimiter(
        redis_client, "gcra", Rate(5, 60.0, 5), namespace="noscript", key_prefix=redis_prefix
    )
    assert (await limiter.hit("a")).remaining == 4
    await redis_client.execute("SCRIPT", "FLUSH")
    verdicts = await asyncio.gather(*(limiter.hit("a") for _ in range(3)))
    assert [v.remaining for v in verdicts] == [3, 2, 1]
    # The EVAL fallback put the script back: EVALSHA works again.
    assert await redis_client.execute("SCRIPT", "EXISTS", limiter._command.script.sha) == [1]


async def test_a_reply_its_decoder_refuses_fails_that_call_alone(
    redis_client: RedisClient, redis_prefix: str
) -> None:
    """Decoded calls (the limiters' path) share the batch with plain ones: a reply of the wrong
    shape fails its own call with the decoder's error, and the replies after it still reach
    their callers in order."""
    command = ECHO.command(1, 1)

    def payload(key: str, value: str) -> bytes:
        return command.head + b"".join(
            b"$%d\r\n%b\r\n" % (len(part), part) for part in (key.encode(), value.encode())
        )

    def number(reply: list[bytes]) -> int:
        return int(reply[1])

    key = redis_prefix + "decode"
    await redis_client.execute("SCRIPT", "LOAD", ECHO.source)  # no NOSCRIPT retry reorders
    results = await asyncio.gather(
        redis_client.submit(command, payload(key, "7"), number),
        redis_client.submit(command, payload(key, "seven"), number),
        redis_client.evalsha(ECHO, [key], ["8"]),
        return_exceptions=True,
    )
    assert results[0] == 7
    assert isinstance(results[1], ValueError)
    assert results[2] == [key.encode(), b"8"]
    assert await redis_client.execute("LRANGE", key, 0, -1) == [b"7", b"seven", b"8"]


async def test_a_script_error_is_a_backend_error_not_a_driver_error(
    redis_client: RedisClient, redis_prefix: str
) -> None:
    broken = Script("broken", "return redis.call('NOSUCHCOMMAND')")
    with pytest.raises(RedisCommandError) as caught:
        await redis_client.evalsha(broken, [redis_prefix + "x"], [])
    assert isinstance(caught.value, BackendUnavailable)
    assert caught.value.message == "Redis refused the command (ERR)"


async def test_auth_and_database_from_the_url(
    redis_server_factory: Callable[..., RedisServer],
) -> None:
    server = redis_server_factory(password="s3cret-pass")
    client = RedisClient(f"redis://:s3cret-pass@127.0.0.1:{server.port}/2")
    await client.connect()
    try:
        limiter = RedisLimiter(client, "gcra", Rate(3, 60.0, 3), namespace="auth", key_prefix="t:")
        assert (await limiter.hit("a")).remaining == 2
    finally:
        await client.close()
    check = redis.Redis(port=server.port, password="s3cret-pass", db=2)
    try:
        assert check.exists(limiter.redis_key("a")) == 1
        assert check.dbsize() == 1
    finally:
        check.close()
    db0 = redis.Redis(port=server.port, password="s3cret-pass", db=0)
    try:
        assert db0.dbsize() == 0
    finally:
        db0.close()


async def test_user_and_password_from_the_url(
    redis_server_factory: Callable[..., RedisServer],
) -> None:
    server = redis_server_factory(password="admin-pass")
    admin = RedisClient(f"redis://:admin-pass@127.0.0.1:{server.port}")
    await admin.connect()
    await admin.execute("ACL", "SETUSER", "gateway", "on", ">gw%pass", "~*", "+@all")
    await admin.close()
    client = RedisClient(f"redis://gateway:gw%25pass@127.0.0.1:{server.port}")
    await client.connect()
    assert await client.execute("ACL", "WHOAMI") == b"gateway"
    await client.close()


async def test_wrong_password_is_backend_unavailable(
    redis_server_factory: Callable[..., RedisServer],
) -> None:
    server = redis_server_factory(password="right-pass")
    client = RedisClient(f"redis://:wrong-pass@127.0.0.1:{server.port}", connect_timeout=0.5)
    with pytest.raises(BackendUnavailable) as caught:
        await client.connect()
    await client.close()
    assert "wrong-pass" not in str(caught.value)
    assert isinstance(caught.value.__cause__, RedisCommandError)
    assert caught.value.__cause__.message == "Redis refused the credentials"


async def test_no_server_fails_at_connect_within_the_timeout() -> None:
    from tests.ports import free_port

    client = RedisClient(f"redis://127.0.0.1:{free_port()}", connect_timeout=0.3)
    with pytest.raises(BackendUnavailable, match=r"could not be reached within 0\.3 s"):
        await client.connect()
    await client.close()


async def test_down_fails_fast_then_reconnects_without_restart(
    redis_server_factory: Callable[..., RedisServer],
) -> None:
    server = redis_server_factory()
    client = RedisClient(server.url, backoff=(0.01, 0.1))
    states: list[bool] = []
    client.add_listener(lambda up, error: states.append(up))
    await client.connect()
    assert states == [True]
    in_flight = client.execute("BLPOP", "never", 0)  # stays in flight until the server goes
    await asyncio.sleep(0)
    server.stop()
    with pytest.raises(BackendUnavailable, match="connection lost"):
        await in_flight
    assert states == [True, False]
    assert not client.up
    # While down, every call fails at once, without a connection attempt of its own.
    for _ in range(1000):
        with pytest.raises(BackendUnavailable, match="reconnecting"):
            client.execute("PING")
    server.start()  # same port
    await wait_until(lambda: client.up)
    assert states == [True, False, True]
    assert await client.execute("PING") == b"PONG"
    await client.close()
    assert states == [True, False, True]  # closing on purpose is no outage


async def test_an_unanswered_batch_times_out_and_the_client_reconnects(
    redis_server_factory: Callable[..., RedisServer],
) -> None:
    server = redis_server_factory()
    assert server.process is not None
    client = RedisClient(server.url, command_timeout=0.2, backoff=(0.01, 0.1))
    await client.connect()
    os.kill(server.process.pid, signal.SIGSTOP)
    try:
        calls = [client.execute("PING") for _ in range(10)]
        results = await asyncio.gather(*calls, return_exceptions=True)
        assert all(isinstance(r, BackendUnavailable) for r in results)
        assert str(results[0]) == "Redis did not answer within 0.2 s"
        assert not client.up
    finally:
        os.kill(server.process.pid, signal.SIGCONT)
    await wait_until(lambda: client.up)
    assert await client.execute("PING") == b"PONG"
    await client.close()


async def test_closed_client_refuses_calls(redis_url: str) -> None:
    client = RedisClient(redis_url)
    await client.connect()
    await client.close()
    with pytest.raises(BackendUnavailable, match="closed"):
        client.execute("PING")


@pytest.mark.parametrize(
    ("url", "target"),
    [
        ("redis://localhost", RedisTarget("localhost", 6379)),
        ("redis://h:7000/3", RedisTarget("h", 7000, db=3)),
        ("rediss://u:p%40ss@h", RedisTarget("h", 6379, tls=True, username="u", password="p@ss")),
        ("redis://:pw@h/0", RedisTarget("h", 6379, password="pw")),
        ("unix:///run/redis.sock?db=4", RedisTarget("", 6379, path="/run/redis.sock", db=4)),
    ],
)
def test_url_forms(url: str, target: RedisTarget) -> None:
    assert RedisTarget.parse(url) == target


@pytest.mark.parametrize(
    "url",
    ["http://:hunter2@h", "redis://:hunter2@h/db", "redis://:hunter2@h:port", "redis://:hunter2@"],
)
def test_bad_urls_are_refused_without_echoing_them(url: str) -> None:
    with pytest.raises(ValueError, match="Redis URL") as caught:
        RedisTarget.parse(url)
    assert "hunter2" not in str(caught.value)


def test_target_repr_hides_the_password() -> None:
    assert "hunter2" not in repr(RedisTarget.parse("redis://user:hunter2@h"))


def write_ca_and_server_certificate(directory: Path) -> tuple[Path, Path, Path]:
    """A CA, and a certificate it signed for 127.0.0.1: (CA file, server chain, server key)."""
    now = datetime.datetime.now(datetime.UTC)

    def build(subject: str, issuer: x509.Name | None, key: ec.EllipticCurvePrivateKey,
              signer: ec.EllipticCurvePrivateKey, ca: bool) -> x509.Certificate:  # fmt: skip
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)])
        builder = (
            x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(issuer or name)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
        )
        if not ca:
            builder = builder.add_extension(
                x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
                critical=False,
            )
        else:
            builder = builder.add_extension(
                x509.KeyUsage(False, False, False, False, False, True, True, False, False),
                critical=True,
            )
        return builder.sign(signer, hashes.SHA256())

    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca = build("bastion test CA", None, ca_key, ca_key, ca=True)
    server_key = ec.generate_private_key(ec.SECP256R1())
    server = build("127.0.0.1", ca.subject, server_key, ca_key, ca=False)
    pem = serialization.Encoding.PEM
    paths = directory / "ca.pem", directory / "server.pem", directory / "server.key"
    paths[0].write_bytes(ca.public_bytes(pem))
    paths[1].write_bytes(server.public_bytes(pem))
    paths[2].write_bytes(
        server_key.private_bytes(
            pem, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    return paths


async def test_rediss_refuses_a_server_certificate_it_cannot_verify(
    redis_server_factory: Callable[..., RedisServer], tmp_path: Path
) -> None:
    _, chain, key = write_ca_and_server_certificate(tmp_path)
    server = redis_server_factory(tls=(chain, key))
    client = RedisClient(server.url, connect_timeout=0.5)
    assert server.url.startswith("rediss://")
    with pytest.raises(BackendUnavailable) as caught:
        await client.connect()
    await client.close()
    cause = caught.value.__cause__
    assert isinstance(cause, BackendUnavailable)
    assert isinstance(cause.__cause__, ssl.SSLCertVerificationError)


async def test_rediss_with_a_trusted_certificate(
    redis_server_factory: Callable[..., RedisServer],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    ca, chain, key = write_ca_and_server_certificate(tmp_path)
    server = redis_server_factory(tls=(chain, key))
    monkeypatch.setenv("SSL_CERT_FILE", str(ca))  # the system trust store, as OpenSSL reads it
    client = RedisClient(server.url)
    await client.connect()
    limiter = RedisLimiter(client, "gcra", Rate(2, 60.0, 2), namespace="tls", key_prefix="t:")
    assert [(await limiter.hit("a")).remaining for _ in range(2)] == [1, 0]
    await client.close()


def test_batching_on_uvloop(redis_url: str, redis_prefix: str) -> None:
    """The gateway's event loop: the same one-write-per-tick batching."""

    async def run() -> None:
        client = RedisClient(redis_url)
        await client.connect()
        limiter = RedisLimiter(
            client, "sliding_log", Rate(10, 60.0, 10), namespace="uv", key_prefix=redis_prefix
        )
        await limiter.peek("warm")  # loads the script
        flushes = client.flushes
        verdicts = await asyncio.gather(*(limiter.hit("a") for _ in range(30)))
        assert client.flushes - flushes == 1
        assert sum(v.allowed for v in verdicts) == 10
        await client.close()

    uvloop.run(run())
