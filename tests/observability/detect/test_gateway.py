"""Detectors behind the real gateway (the engine on a loopback port, the assembly's tee and
``monitor`` guard, API keys): a consumer coming from a new country through a trusted proxy's
X-Forwarded-For, a 401 spike and credential stuffing, each alert delivered to a real webhook."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from bastion.auth.apikey import ApiKeyGuard
from bastion.auth.assembly import auth_guards
from bastion.auth.keys.format import generate
from bastion.auth.keys.hashing import KeyHasher
from bastion.auth.keys.manager import KeyManager
from bastion.config.types import HostPort
from bastion.engine.server import GatewayServer
from bastion.observability.detect.assembly import monitored_events, monitoring_guards
from bastion.observability.detect.guard import MonitorGuard
from bastion.observability.detect.tee import MonitoredSink
from bastion.observability.ecs import security_line
from bastion.observability.events import MemorySink, SecurityEvent
from bastion.observability.redact import Redactor
from bastion.pipeline.chain import GuardChain
from bastion.pipeline.decisions import ALLOW, Decision
from bastion.pipeline.guard import Guard, Phase
from bastion.pipeline.request import Request
from bastion.pipeline.routing import Route, Router
from bastion.store import MemoryKeyStore
from tests.auth.helpers import FakeClock, auth_config
from tests.engine.upstream_app import Upstream
from tests.observability.alerts.receivers import HttpReceiver
from tests.observability.helpers import check_line


@dataclass
class Gateway:
    server: GatewayServer
    chain: GuardChain
    events: MemorySink
    tee: MonitoredSink
    base: str

    def alerts(self) -> list[SecurityEvent]:
        return [e for e in self.events.events if e.action.startswith("alert.")]

    async def get(self, path: str, **headers: str) -> httpx.Response:
        async with httpx.AsyncClient(base_url=self.base) as client:
            return await client.get(path, headers=headers)


Start = Callable[..., Awaitable[Gateway]]


@pytest.fixture
async def start(
    upstream: Upstream,
    memory_store: MemoryKeyStore,
    hasher: KeyHasher,
    clock: FakeClock,
    country_db: Path,
    receiver: HttpReceiver,
) -> AsyncIterator[Start]:
    """Starts a gateway wired as ``bastion serve`` wires it (tee in front of the sink, the
    ``monitor`` guard from the assembly), with alerts to the local webhook receiver."""
    started: list[Gateway] = []

    async def make(*extra: Guard, **sections: Any) -> Gateway:
        monitoring = {
            "enabled": True,
            "detectors": {"new_country": {"database": str(country_db)}},
            "alerts": {"sinks": [{"type": "webhook", "url": receiver.url()}]},
        }
        config = auth_config(upstream.url, monitoring=monitoring, **sections)
        inner = MemorySink()
        tee = monitored_events(config, inner)
        assert isinstance(tee, MonitoredSink)
        tee.monitor.clock = clock  # windows must not turn during a test
        guards = auth_guards(
            config, tee, clock=clock, key_store=lambda: (memory_store, hasher), start=False
        )
        guards += monitoring_guards(config, tee)
        routes = [Route.from_config(r) for r in config.routes]
        chain = GuardChain([Router(routes), *guards, *extra], tee)
        await chain.start()
        next(g for g in guards if isinstance(g, ApiKeyGuard)).sync.refresh()
        server = GatewayServer(config=config, chain=chain, listen=HostPort("127.0.0.1", 0))
        await server.start()
        gateway = Gateway(server, chain, inner, tee, f"http://127.0.0.1:{server.port}")
        started.append(gateway)
        return gateway

    yield make
    for gateway in started:
        await gateway.server.shutdown(1.0)
        await gateway.chain.close()


TRUSTED = {"proxy": {"trusted_proxies": ["127.0.0.1/32"]}}


async def test_new_country_through_a_trusted_proxy(
    start: Start, keys: KeyManager, receiver: HttpReceiver, upstream: Upstream
) -> None:
    gateway = await start(**TRUSTED)
    assert [g.name for g in gateway.chain.guards][-1] == "monitor"
    issued = keys.create("acme")
    next(g for g in gateway.chain.guards if isinstance(g, ApiKeyGuard)).sync.refresh()
    for _ in range(5):  # the consumer's usual country, through the load balancer
        home = await gateway.get(
            "/orders", **{"x-api-key": issued.secret, "x-forwarded-for": "203.0.113.10"}
        )
        assert home.status_code == 200
    assert gateway.alerts() == []
    away = await gateway.get(
        "/orders", **{"x-api-key": issued.secret, "x-forwarded-for": "198.51.100.99"}
    )
    assert away.status_code == 200
    [posted] = receiver.wait_for(1)
    doc = posted.json()
    assert doc["alert"] == "alert.new_country"
    assert doc["evidence"] == {
        "consumer": "acme",
        "ip": "198.51.100.99",
        "country": "JP",
        "known_countries": ["NL"],
    }
    [event] = gateway.alerts()
    assert event.action == "alert.new_country"
    assert event.client_ip == "198.51.100.99"
    assert event.user_id == "acme"
    assert issued.secret not in str(event.to_ecs())
    # Written as an ECS alert: the line every sink gets and the document the admin API shows.
    line = check_line(security_line(event, Redactor())[0])
    assert (line["event"]["kind"], line["event"]["dataset"]) == ("alert", "bastion.alert")
    assert event.to_ecs()["event"]["kind"] == "alert"


async def test_x_forwarded_for_from_an_untrusted_peer_changes_no_country(
    start: Start, keys: KeyManager, receiver: HttpReceiver
) -> None:
    gateway = await start()  # no trusted proxies: the header is not believed
    issued = keys.create("acme")
    next(g for g in gateway.chain.guards if isinstance(g, ApiKeyGuard)).sync.refresh()
    for address in ("203.0.113.10", "198.51.100.99", "192.0.2.1"):
        response = await gateway.get(
            "/orders", **{"x-api-key": issued.secret, "x-forwarded-for": address}
        )
        assert response.status_code == 200
    assert gateway.alerts() == []
    assert gateway.tee.monitor.dispatcher.flush()
    assert receiver.attempts == []
    guard = next(g for g in gateway.chain.guards if isinstance(g, MonitorGuard))
    assert guard.monitor.new_country is not None
    assert ("acme", "127.0.0.1") in guard.monitor.new_country.pairs


async def test_401_spike_and_credential_stuffing_from_one_address(
    start: Start, receiver: HttpReceiver
) -> None:
    gateway = await start(**TRUSTED)
    for _ in range(30):  # thirty different well-formed keys that do not exist
        response = await gateway.get(
            "/orders", **{"x-api-key": generate().secret, "x-forwarded-for": "198.51.100.66"}
        )
        assert response.status_code == 401
    actions = {e.action for e in gateway.alerts()}
    assert {"alert.spike", "alert.credential_stuffing"} <= actions
    stuffing = next(e for e in gateway.alerts() if e.action == "alert.credential_stuffing")
    assert stuffing.client_ip == "198.51.100.66"
    assert stuffing.fields["distinct"] == 10
    spike = next(e for e in gateway.alerts() if e.action == "alert.spike")
    assert spike.fields["scope"] == "ip"
    assert spike.fields["count"] == 30
    posted = receiver.wait_for(len(gateway.alerts()))
    assert {p.json()["alert"] for p in posted} == actions


class _Completions:
    """A guard with a completion hook of its own, which the chain still calls."""

    name = "completions"
    phase = Phase.LOG
    requires_body = False

    def __init__(self) -> None:
        self.fail_open = True
        self.seen = 0

    def check(self, request: Request) -> Decision:
        return ALLOW

    def on_complete(self, request: Request, status: int, bytes_sent: int, seconds: float) -> None:
        self.seen += 1


async def test_the_engine_feeds_each_exchange_to_the_detectors_once(
    start: Start, keys: KeyManager
) -> None:
    """The engine hands the ``monitor`` guard (the chain's exchange observer) each exchange
    itself and runs the chain's other completion hooks: the detectors count each exchange once,
    not twice."""
    hook = _Completions()
    gateway = await start(hook)
    issued = keys.create("acme")
    next(g for g in gateway.chain.guards if isinstance(g, ApiKeyGuard)).sync.refresh()
    for _ in range(7):
        response = await gateway.get("/orders", **{"x-api-key": issued.secret})
        assert response.status_code == 200
    guard = next(g for g in gateway.chain.guards if isinstance(g, MonitorGuard))
    assert gateway.chain.observer is guard
    assert hook.seen == 7
    assert guard.monitor.payload is not None
    assert guard.monitor.payload.sizes("api", "response") == 7
    assert guard.monitor.new_country is not None
    assert ("acme", "127.0.0.1") in guard.monitor.new_country.pairs


async def test_a_failing_detector_never_fails_the_exchange(
    start: Start, caplog: pytest.LogCaptureFixture
) -> None:
    gateway = await start()

    def stopped() -> float:
        raise RuntimeError("the clock stopped")

    gateway.tee.monitor.clock = stopped
    response = await gateway.get("/orders")
    assert response.status_code == 200
    assert "exchange observer failed: RuntimeError" in caplog.text
