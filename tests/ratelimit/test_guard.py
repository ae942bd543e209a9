"""The rate-limit guards through the real chain, real memory limiters and a fake clock."""

from __future__ import annotations

import base64
from typing import Any

import orjson

from bastion.config.loader import build_config
from bastion.config.models import BastionConfig
from bastion.observability.events import MemorySink
from bastion.pipeline.chain import GuardChain
from bastion.pipeline.decisions import Allow, Decision, Deny
from bastion.pipeline.identity import IDENTITY, Identity
from bastion.pipeline.problem import problem_response
from bastion.pipeline.request import ClientAddress, Headers, Request
from bastion.pipeline.routing import Route, Router
from bastion.ratelimit.assembly import ratelimit_guards


class FakeClock:
    def __init__(self, now: float = 1000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


UPSTREAM = "http://127.0.0.1:9"


def config(rate_limit: dict[str, Any], routes: list[dict[str, Any]] | None = None) -> BastionConfig:
    routes = routes or [{"name": "api", "upstream": UPSTREAM}]
    return build_config({"routes": routes, "rate_limit": rate_limit})


def chain_for(cfg: BastionConfig, clock: FakeClock, events: MemorySink | None = None) -> GuardChain:
    events = events if events is not None else MemorySink()
    router = Router([Route.from_config(route) for route in cfg.routes])
    return GuardChain([router, *ratelimit_guards(cfg, events, clock=clock)], events)


def request(
    path: str = "/x",
    ip: str = "198.51.100.7",
    method: str = "GET",
    identity: Identity | None = None,
    headers: list[tuple[bytes, bytes]] | None = None,
) -> Request:
    req = Request(
        method=method,
        path=path,
        query="",
        headers=Headers([(b"host", b"api.test"), *(headers or [])]),
        client=ClientAddress(ip, 40000),
        request_id="rid",
    )
    if identity is not None:
        req.state[IDENTITY] = identity
    return req


def consumer(name: str, tier: str | None = None, key_id: str | None = None) -> Identity:
    return Identity(consumer=name, method="api_key", key_id=key_id, tier=tier)


def headers_of(decision: Decision) -> dict[str, str]:
    return dict(decision.headers)


async def run(chain: GuardChain, req: Request | None = None) -> Decision:
    return await chain.run(req if req is not None else request())


PER_IP = {"policies": [{"name": "per-ip", "rate": "3/minute"}]}


async def test_admits_up_to_the_limit_then_429_with_retry_after_and_headers() -> None:
    clock = FakeClock()
    chain = chain_for(config(PER_IP), clock)
    seen = []
    for _ in range(3):
        decision = await run(chain)
        assert isinstance(decision, Allow)
        seen.append(headers_of(decision))
    assert [h["ratelimit"] for h in seen] == [
        '"per-ip";r=2;t=20',
        '"per-ip";r=1;t=40',
        '"per-ip";r=0;t=60',
    ]
    assert {h["ratelimit-policy"] for h in seen} == {'"per-ip";q=3;w=60'}

    refused = await run(chain)
    assert isinstance(refused, Deny)
    assert refused.status == 429
    assert refused.code == "ratelimit.exceeded"
    headers = headers_of(refused)
    assert headers["retry-after"] == "20"
    assert headers["ratelimit"] == '"per-ip";r=0;t=20'
    body = orjson.loads(problem_response(refused, "rid").body)
    assert body["violated-policies"] == ["per-ip"]


async def test_retry_after_is_never_early() -> None:
    clock = FakeClock()
    chain = chain_for(config(PER_IP), clock)
    for _ in range(3):
        await run(chain)
    refused = await run(chain)
    assert isinstance(refused, Deny)
    wait = int(headers_of(refused)["retry-after"])
    clock.advance(wait - 0.001)
    assert isinstance(await run(chain), Deny)
    clock.advance(0.001)
    assert isinstance(await run(chain), Allow)


async def test_each_client_ip_has_its_own_quota() -> None:
    clock = FakeClock()
    chain = chain_for(config(PER_IP), clock)
    for _ in range(3):
        await run(chain, request(ip="198.51.100.1"))
    assert isinstance(await run(chain, request(ip="198.51.100.1")), Deny)
    assert isinstance(await run(chain, request(ip="198.51.100.2")), Allow)


async def test_consumer_key_counts_per_consumer_and_anonymous_per_ip() -> None:
    clock = FakeClock()
    cfg = config({"policies": [{"name": "per-consumer", "rate": "2/minute", "key": ["consumer"]}]})
    chain = chain_for(cfg, clock)
    for ip in ("198.51.100.1", "198.51.100.2"):
        assert isinstance(await run(chain, request(ip=ip, identity=consumer("acme"))), Allow)
    # the same consumer from a third address is still over its quota
    assert isinstance(await run(chain, request(ip="198.51.100.3", identity=consumer("acme"))), Deny)
    assert isinstance(await run(chain, request(identity=consumer("globex"))), Allow)
    # an anonymous client is limited by its IP, apart from consumers
    for _ in range(2):
        assert isinstance(await run(chain, request(ip="198.51.100.1")), Allow)
    assert isinstance(await run(chain, request(ip="198.51.100.1")), Deny)


async def test_a_consumer_named_like_an_ip_key_does_not_share_its_quota() -> None:
    clock = FakeClock()
    cfg = config({"policies": [{"name": "c", "rate": "1/minute", "key": ["consumer"]}]})
    chain = chain_for(cfg, clock)
    assert isinstance(await run(chain, request(ip="198.51.100.1")), Allow)
    spoof = consumer("198.51.100.1")
    assert isinstance(await run(chain, request(ip="198.51.100.9", identity=spoof)), Allow)


async def test_tiers_choose_the_rate_and_unlimited_sends_no_headers() -> None:
    clock = FakeClock()
    cfg = config(
        {
            "policies": [
                {
                    "name": "plan",
                    "rate": "1/minute",
                    "key": ["consumer"],
                    "tiers": {"gold": "3/minute", "internal": "unlimited"},
                }
            ]
        }
    )
    chain = chain_for(cfg, clock)
    gold = [await run(chain, request(identity=consumer("g", "gold"))) for _ in range(4)]
    assert [isinstance(d, Allow) for d in gold] == [True, True, True, False]
    assert headers_of(gold[0])["ratelimit-policy"] == '"plan";q=3;w=60'
    free = [await run(chain, request(identity=consumer("f", "free"))) for _ in range(2)]
    assert [isinstance(d, Allow) for d in free] == [True, False]
    internal = [await run(chain, request(identity=consumer("i", "internal"))) for _ in range(50)]
    assert all(isinstance(d, Allow) and not d.headers for d in internal)


async def test_api_key_partition_counts_each_key_of_a_consumer() -> None:
    clock = FakeClock()
    cfg = config({"policies": [{"name": "k", "rate": "1/minute", "key": ["api_key"]}]})
    chain = chain_for(cfg, clock)
    one = consumer("acme", key_id="key1")
    two = consumer("acme", key_id="key2")
    assert isinstance(await run(chain, request(identity=one)), Allow)
    assert isinstance(await run(chain, request(identity=one)), Deny)
    assert isinstance(await run(chain, request(identity=two)), Allow)


async def test_route_overrides_methods_and_route_filters() -> None:
    clock = FakeClock()
    routes = [
        {
            "name": "search",
            "upstream": UPSTREAM,
            "path_prefix": "/search",
            "rate_limits": {"per-ip": "1/minute"},
        },
        {
            "name": "health",
            "upstream": UPSTREAM,
            "path_prefix": "/health",
            "rate_limits": {"per-ip": "off"},
        },
        {"name": "api", "upstream": UPSTREAM, "path_prefix": "/"},
    ]
    cfg = config(
        {
            "policies": [
                {"name": "per-ip", "rate": "10/minute"},
                {"name": "writes", "rate": "1/minute", "methods": ["POST"], "routes": ["api"]},
            ]
        },
        routes,
    )
    chain = chain_for(cfg, clock)
    assert isinstance(await run(chain, request("/search/a")), Allow)
    assert isinstance(await run(chain, request("/search/a")), Deny)
    # the override has its own counter: the policy's own quota is untouched
    assert isinstance(await run(chain, request("/x")), Allow)
    health = [await run(chain, request("/health")) for _ in range(20)]
    assert all(isinstance(d, Allow) for d in health)
    # writes on "api" only
    assert isinstance(await run(chain, request("/x", method="POST")), Allow)
    refused = await run(chain, request("/x", method="POST"))
    assert isinstance(refused, Deny)
    assert headers_of(refused)["ratelimit"].startswith('"writes"')
    assert isinstance(await run(chain, request("/x", method="GET")), Allow)


async def test_several_policies_report_the_tightest_and_list_all() -> None:
    clock = FakeClock()
    cfg = config(
        {
            "policies": [
                {"name": "minute", "rate": "10/minute"},
                {"name": "second", "rate": "2/s"},
            ]
        }
    )
    chain = chain_for(cfg, clock)
    decision = await run(chain)
    headers = headers_of(decision)
    assert headers["ratelimit-policy"] == '"minute";q=10;w=60, "second";q=2;w=1'
    assert headers["ratelimit"] == '"second";r=1;t=1'


async def test_a_global_limit_counts_everyone_together() -> None:
    clock = FakeClock()
    chain = chain_for(config({"policies": [{"name": "global", "rate": "2/s", "key": []}]}), clock)
    assert isinstance(await run(chain, request(ip="198.51.100.1")), Allow)
    assert isinstance(await run(chain, request(ip="198.51.100.2")), Allow)
    assert isinstance(await run(chain, request(ip="198.51.100.3")), Deny)


async def test_every_refusal_is_one_security_event_without_the_key() -> None:
    clock = FakeClock()
    events = MemorySink()
    chain = chain_for(config(PER_IP), clock, events)
    for _ in range(5):
        await run(chain, request(identity=consumer("acme")))
    refusals = [e for e in events.events if e.action == "ratelimit.exceeded"]
    assert len(refusals) == 2
    event = refusals[0]
    assert event.status == 429
    assert event.user_id == "acme"
    assert event.fields["policy"] == "per-ip"
    assert event.client_ip == "198.51.100.7"


async def test_legacy_headers_by_option() -> None:
    clock = FakeClock()
    chain = chain_for(config({**PER_IP, "legacy_headers": True, "headers": False}), clock)
    headers = headers_of(await run(chain))
    assert "ratelimit" not in headers
    assert headers["x-ratelimit-limit"] == "3"
    assert headers["x-ratelimit-remaining"] == "2"


async def test_no_policies_means_no_rate_limit_guard() -> None:
    cfg = config({"login": {"enabled": False}})
    assert ratelimit_guards(cfg, MemorySink()) == []


# -- concurrency ------------------------------------------------------------------------------


async def test_concurrency_slots_are_freed_when_the_response_completes() -> None:
    clock = FakeClock()
    cfg = config({"concurrency": {"max_in_flight": 2}, "login": {"enabled": False}})
    chain = chain_for(cfg, clock)
    first, second, third = request(), request(), request()
    assert isinstance(await run(chain, first), Allow)
    assert isinstance(await run(chain, second), Allow)
    refused = await run(chain, third)
    assert isinstance(refused, Deny)
    assert refused.code == "ratelimit.concurrency"
    assert headers_of(refused)["retry-after"] == "1"
    chain.on_complete(first, 200, 10, 0.01)
    chain.on_complete(third, 429, 10, 0.01)  # refused: held nothing, frees nothing
    assert isinstance(await run(chain, request()), Allow)
    assert isinstance(await run(chain, request()), Deny)


async def test_concurrency_counts_per_consumer() -> None:
    clock = FakeClock()
    cfg = config({"concurrency": {"max_in_flight": 1}, "login": {"enabled": False}})
    chain = chain_for(cfg, clock)
    assert isinstance(await run(chain, request(identity=consumer("a"))), Allow)
    assert isinstance(await run(chain, request(identity=consumer("b"))), Allow)
    assert isinstance(await run(chain, request(identity=consumer("a"))), Deny)


# -- login ------------------------------------------------------------------------------------


def basic(user: str) -> list[tuple[bytes, bytes]]:
    token = base64.b64encode(f"{user}:a-password".encode()).decode()
    return [(b"authorization", f"Basic {token}".encode())]


LOGIN = {"login": {"max_failures": 3, "window": "10m", "lockout": "30s", "max_lockout": "2m"}}


async def fail(chain: GuardChain, req: Request) -> Decision:
    decision = await chain.run(req)
    chain.on_complete(req, 401 if isinstance(decision, Allow) else 429, 0, 0.0)
    return decision


async def test_token_endpoint_locks_out_after_failures_with_growing_back_off() -> None:
    clock = FakeClock()
    events = MemorySink()
    chain = chain_for(config(LOGIN), clock, events)
    for _ in range(3):
        assert isinstance(await fail(chain, request("/oauth/token", headers=basic("svc"))), Allow)
    locked = await chain.run(request("/oauth/token", headers=basic("svc")))
    assert isinstance(locked, Deny)
    assert locked.code == "ratelimit.login_locked"
    assert headers_of(locked)["retry-after"] == "30"
    assert [e.fields["locked"] for e in events.events if e.action == "ratelimit.lockout"] == [
        "ip",
        "acct",
    ]
    clock.advance(30)
    for _ in range(3):
        await fail(chain, request("/oauth/token", headers=basic("svc")))
    again = await chain.run(request("/oauth/token", headers=basic("svc")))
    assert isinstance(again, Deny)
    assert headers_of(again)["retry-after"] == "60"  # the second lockout in a row is doubled


async def test_the_account_stays_locked_from_another_ip() -> None:
    clock = FakeClock()
    chain = chain_for(config(LOGIN), clock)
    for ip in ("198.51.100.1", "198.51.100.2", "198.51.100.3"):
        await fail(chain, request("/oauth/token", ip=ip, headers=basic("victim")))
    other = await chain.run(request("/oauth/token", ip="198.51.100.4", headers=basic("victim")))
    assert isinstance(other, Deny)
    fine = await chain.run(request("/oauth/token", ip="198.51.100.4", headers=basic("someone")))
    assert isinstance(fine, Allow)


async def test_a_success_clears_the_account_but_not_the_ip() -> None:
    clock = FakeClock()
    chain = chain_for(config(LOGIN), clock)
    for _ in range(2):
        await fail(chain, request("/oauth/token", headers=basic("svc")))
    ok = request("/oauth/token", headers=basic("svc"))
    await chain.run(ok)
    chain.on_complete(ok, 200, 0, 0.0)
    # the IP has 2 failures left on its count; one more locks it, whatever the account
    await fail(chain, request("/oauth/token", headers=basic("other")))
    assert isinstance(await chain.run(request("/oauth/token", headers=basic("third"))), Deny)


async def test_login_routes_and_other_paths() -> None:
    clock = FakeClock()
    routes = [
        {"name": "signin", "upstream": UPSTREAM, "path_prefix": "/signin", "login": True},
        {"name": "api", "upstream": UPSTREAM},
    ]
    chain = chain_for(config(LOGIN, routes), clock)
    for _ in range(5):
        assert isinstance(await fail(chain, request("/api/x")), Allow)  # not a login path
    for _ in range(3):
        await fail(chain, request("/signin"))
    assert isinstance(await chain.run(request("/signin")), Deny)


async def test_login_lockout_can_be_disabled() -> None:
    clock = FakeClock()
    chain = chain_for(config({"login": {"enabled": False}}), clock)
    for _ in range(10):
        assert isinstance(await fail(chain, request("/oauth/token")), Allow)


async def test_a_repeated_remaining_and_reset_reuses_its_decision_and_values_stay_exact() -> None:
    clock = FakeClock()
    chain = chain_for(config(PER_IP), clock)
    first = await run(chain, request(ip="192.0.2.1"))
    again = await run(chain, request(ip="192.0.2.2"))  # another key at the same point: same answer
    later = await run(chain, request(ip="192.0.2.1"))
    assert isinstance(first, Allow)
    assert isinstance(later, Allow)
    # built once per quota, then remembered: the very same header value
    assert headers_of(again)["ratelimit"] is headers_of(first)["ratelimit"]
    assert headers_of(first)["ratelimit"] == '"per-ip";r=2;t=20'
    assert headers_of(later)["ratelimit"] == '"per-ip";r=1;t=40'
    clock.advance(60)
    assert headers_of(await run(chain, request(ip="192.0.2.1")))["ratelimit"] == (
        '"per-ip";r=2;t=20'
    )
