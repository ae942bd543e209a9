"""The failure policy with a real Redis stopped mid-run and started again on the same port:
closed refuses, open admits, local counts in process; one event down, one event up; recovery
without restarting anything; no password in any log line, event or error."""

from __future__ import annotations

import asyncio
import logging
import os
import signal
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass

import pytest

from bastion.backends.redis import RedisClient
from bastion.errors import BackendUnavailable
from bastion.observability.events import MemorySink
from bastion.ratelimit.core import LockoutPolicy, Rate
from bastion.ratelimit.storage.failover import (
    BackendHealth,
    FailoverLimiter,
    FailoverLockout,
    FailurePolicy,
)
from bastion.ratelimit.storage.memory import MemoryLockout, memory_limiter
from bastion.ratelimit.storage.redis import RedisLimiter, RedisLockout
from tests.services.redis_service import RedisServer

PASSWORD = "pw-9f3b1c77e2"
RATE = Rate(3, 3600.0, 3)


async def wait_until(condition: Callable[[], bool], timeout: float = 10.0) -> None:
    """Poll ``condition`` (a reconnection in the background) for at most ``timeout`` s."""
    async with asyncio.timeout(timeout):
        while not condition():
            await asyncio.sleep(0.01)


@dataclass
class Gateway:
    server: RedisServer
    client: RedisClient
    sink: MemorySink
    health: BackendHealth


@pytest.fixture
async def gateway(
    request: pytest.FixtureRequest, redis_server_factory: Callable[..., RedisServer]
) -> AsyncIterator[Gateway]:
    policy: FailurePolicy = getattr(request, "param", "closed")
    server = redis_server_factory(password=PASSWORD)
    client = RedisClient(server.url, command_timeout=1.0, backoff=(0.01, 0.05))
    sink = MemorySink()
    health = BackendHealth(sink, policy=policy)
    health.watch(client)
    await client.connect()
    yield Gateway(server, client, sink, health)
    await client.close()


def limiter_of(gateway: Gateway) -> FailoverLimiter:
    shared = RedisLimiter(gateway.client, "gcra", RATE, namespace="api", key_prefix="t:")
    local = memory_limiter("gcra", Rate(2, 3600.0, 2))
    return FailoverLimiter(shared, gateway.health, fallback=local)


async def outage_and_recovery(gateway: Gateway, during: Callable[[], Awaitable[None]]) -> None:
    gateway.server.stop()
    await wait_until(lambda: not gateway.client.up)
    await during()
    gateway.server.start()
    await wait_until(lambda: gateway.client.up)


@pytest.mark.parametrize("gateway", ["closed"], indirect=True)
async def test_closed_refuses_while_down_and_counts_in_redis_again(gateway: Gateway) -> None:
    limiter = limiter_of(gateway)
    assert (await limiter.hit("a")).remaining == 2

    async def during() -> None:
        for _ in range(20):
            with pytest.raises(BackendUnavailable):
                await limiter.hit("a")

    await outage_and_recovery(gateway, during)
    # The restarted server lost its data (no persistence): a fresh bucket, in Redis.
    assert (await limiter.hit("a")).remaining == 2
    assert gateway.sink.actions() == [
        "ratelimit.backend_unavailable",
        "ratelimit.backend_recovered",
    ]
    down, up = gateway.sink.events
    assert (down.outcome, up.outcome) == ("unknown", "success")
    assert down.fields == {"backend": "redis", "on_backend_failure": "closed"}


@pytest.mark.parametrize("gateway", ["open"], indirect=True)
async def test_open_admits_everything_while_down(gateway: Gateway) -> None:
    limiter = limiter_of(gateway)
    for remaining in (2, 1, 0):
        assert (await limiter.hit("a")).remaining == remaining
    assert not (await limiter.hit("a")).allowed

    async def during() -> None:
        for _ in range(10):
            verdict = await limiter.hit("a")
            assert verdict.allowed
            assert verdict.remaining == verdict.limit == 3

    await outage_and_recovery(gateway, during)
    assert (await limiter.hit("a")).remaining == 2
    assert gateway.sink.actions() == [
        "ratelimit.backend_unavailable",
        "ratelimit.backend_recovered",
    ]


@pytest.mark.parametrize("gateway", ["local"], indirect=True)
async def test_local_counts_in_process_while_down(gateway: Gateway) -> None:
    limiter = limiter_of(gateway)
    assert (await limiter.hit("a")).remaining == 2

    async def during() -> None:
        verdicts = [await limiter.hit("a") for _ in range(3)]
        assert [v.allowed for v in verdicts] == [True, True, False]  # the local 2/hour
        assert (await limiter.peek("a")).allowed is False

    await outage_and_recovery(gateway, during)
    assert (await limiter.hit("a")).remaining == 2
    assert gateway.sink.actions() == [
        "ratelimit.backend_unavailable",
        "ratelimit.backend_recovered",
    ]


@pytest.mark.parametrize("gateway", ["local"], indirect=True)
async def test_one_event_per_transition_however_many_limiters_and_outages(
    gateway: Gateway,
) -> None:
    limiters = [limiter_of(gateway) for _ in range(4)]
    policy = LockoutPolicy(max_failures=2, window=60.0, base=5.0, ceiling=20.0)
    lockout = FailoverLockout(
        RedisLockout(gateway.client, policy, key_prefix="t:"),
        gateway.health,
        fallback=MemoryLockout(policy),
    )

    for outage in range(2):
        ip = f"ip{outage}"

        async def during(ip: str = ip) -> None:
            await asyncio.gather(*(lim.hit(key) for lim in limiters for key in "abcdef"))
            assert await lockout.failure(ip) == 0.0
            assert await lockout.failure(ip) == 5.0  # counted locally
            assert await lockout.locked_for(ip) > 0

        await outage_and_recovery(gateway, during)
        await asyncio.gather(*(lim.hit("a") for lim in limiters))
        assert await lockout.locked_for(ip) == 0.0  # Redis knows nothing of it
    assert (
        gateway.sink.actions()
        == [
            "ratelimit.backend_unavailable",
            "ratelimit.backend_recovered",
        ]
        * 2
    )


async def test_a_call_failing_before_the_client_notices_is_one_event(
    redis_server_factory: Callable[..., RedisServer],
) -> None:
    """Redis paused: calls time out (the client drops the connection); still one event."""
    server = redis_server_factory()
    assert server.process is not None
    client = RedisClient(server.url, command_timeout=0.2, backoff=(0.01, 0.05))
    sink = MemorySink()
    health = BackendHealth(sink, policy="open")
    health.watch(client)
    await client.connect()
    limiter = FailoverLimiter(RedisLimiter(client, "gcra", RATE, namespace="p"), health)
    os.kill(server.process.pid, signal.SIGSTOP)
    try:
        verdicts = await asyncio.gather(*(limiter.hit("a") for _ in range(20)))
        assert all(v.allowed for v in verdicts)
    finally:
        os.kill(server.process.pid, signal.SIGCONT)
    await wait_until(lambda: client.up)
    # Redis answers again (the hits sent before the timeout may have counted there meanwhile).
    assert (await limiter.hit("a")).reset_after > 0
    assert sink.actions() == ["ratelimit.backend_unavailable", "ratelimit.backend_recovered"]
    assert sink.events[0].reason == "Redis did not answer within 0.2 s"
    await client.close()


def test_local_policy_needs_a_fallback(redis_url: str) -> None:
    client = RedisClient(redis_url)
    health = BackendHealth(MemorySink(), policy="local")
    with pytest.raises(ValueError, match="fallback"):
        FailoverLimiter(RedisLimiter(client, "gcra", RATE, namespace="x"), health)


@pytest.mark.parametrize("gateway", ["closed"], indirect=True)
async def test_redis_password_never_in_logs_events_or_errors(
    gateway: Gateway, caplog: pytest.LogCaptureFixture
) -> None:
    """Regression: a backend URL's password must not reach a log line, an event or an error
    message, through connecting, failing, timing out, reconnecting or a wrong password."""
    caplog.set_level(logging.DEBUG)
    limiter = limiter_of(gateway)
    errors: list[BaseException] = []

    async def during() -> None:
        for _ in range(3):
            try:
                await limiter.hit("a")
            except BackendUnavailable as exc:
                errors.append(exc)

    await outage_and_recovery(gateway, during)
    wrong = RedisClient(
        f"redis://:{PASSWORD}x@127.0.0.1:{gateway.server.port}", connect_timeout=0.3
    )
    with pytest.raises(BackendUnavailable) as caught:
        await wrong.connect()
    await wrong.close()
    errors.append(caught.value)
    assert len(errors) == 4

    def chain(exc: BaseException | None) -> list[BaseException]:
        found = []
        while exc is not None:
            found.append(exc)
            exc = exc.__cause__ or exc.__context__
        return found

    texts = [record.getMessage() for record in caplog.records]
    texts += [record.exc_text or "" for record in caplog.records]
    texts += [f"{e!s} {e!r}" for error in errors for e in chain(error)]
    texts += [repr(event.to_ecs()) for event in gateway.sink.events]
    texts += [repr(gateway.client.target), repr(gateway.client.__dict__)]
    assert len(texts) > 10
    assert not [text for text in texts if PASSWORD in text]
