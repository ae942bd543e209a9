"""Applying a config to a running listener (:class:`LiveChain`): rate-limit counters carry over
when their settings did not change (a reload never resets a limit) and start afresh when they
did; a route's own upstream TLS settings still apply to its new upstream after a reload."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import trustme

from bastion.assembly import build_gateway_chain
from bastion.config.models import BastionConfig
from bastion.config.types import HostPort
from bastion.control.swap import LiveChain
from bastion.engine.server import GatewayServer
from bastion.observability.events import MemorySink
from tests.engine.helpers import FAST_TIMEOUTS
from tests.engine.upstream_app import Upstream
from tests.tls.helpers import issue
from tests.tls.tls_upstream import start_tls_upstream


def config(tmp_path: Path, **data: Any) -> BastionConfig:
    return BastionConfig.model_validate(
        {
            "admin": {"enabled": False},
            "events": {"sink": "none"},
            "state_dir": str(tmp_path / "state"),
            "auth": {"enabled": False},
            "timeouts": FAST_TIMEOUTS | {"upstream_connect": 2.0, "upstream_response": 2.0},
            **data,
        }
    )


@asynccontextmanager
async def live(first: BastionConfig) -> AsyncIterator[tuple[LiveChain, str]]:
    events = MemorySink()
    chain = build_gateway_chain(first, events)
    await chain.start()
    server = GatewayServer(config=first, chain=chain, listen=HostPort("127.0.0.1", 0))
    await server.start()
    swap = LiveChain(server, first, events)
    try:
        yield swap, f"http://127.0.0.1:{server.port}"
    finally:
        await server.shutdown(1.0)
        await swap.close()
        await swap.chain.close()


def routes(upstream: Upstream, *names: str) -> list[dict[str, Any]]:
    return [{"name": n, "upstream": upstream.url, "path_prefix": f"/{n}"} for n in names]


async def test_rate_limit_counters_survive_a_reload_unless_the_limit_changed(
    upstream: Upstream, tmp_path: Path
) -> None:
    per_ip = {"policies": [{"name": "per-ip", "rate": "3/minute"}]}
    first = config(tmp_path, routes=routes(upstream, "a"), rate_limit=per_ip)
    async with live(first) as (swap, base), httpx.AsyncClient(base_url=base) as client:
        assert [(await client.get("/a/x")).status_code for _ in range(3)] == [200] * 3
        # A route added: the limit is unchanged, so its counters carry over.
        await swap.apply(config(tmp_path, routes=routes(upstream, "a", "b"), rate_limit=per_ip))
        assert (await client.get("/a/x")).status_code == 429
        assert (await client.get("/b/x")).status_code == 429  # the same per-IP budget
        # The limit itself changed: a new limiter, its own fresh budget.
        raised = {"policies": [{"name": "per-ip", "rate": "5/minute"}]}
        await swap.apply(config(tmp_path, routes=routes(upstream, "a", "b"), rate_limit=raised))
        statuses = [(await client.get("/a/x")).status_code for _ in range(6)]
        assert statuses == [200] * 5 + [429]


async def test_a_routes_own_upstream_tls_applies_to_its_new_upstream(tmp_path: Path) -> None:
    from bastion.tls.certs import leaf_facts

    ca = trustme.CA()
    up = await start_tls_upstream(issue(ca, tmp_path / "up", "upstream", "localhost"))
    ca_path = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(ca_path))
    wrong = leaf_facts(issue(trustme.CA(), tmp_path / "w", "wrong", "localhost").cert).pin
    tls = {
        "upstream": {"ca": str(ca_path)},
        "upstream_routes": {"pinned": {"ca": str(ca_path), "pins": [wrong]}},
    }

    def with_upstream(url: str) -> BastionConfig:
        return config(
            tmp_path,
            routes=[
                {"name": "pinned", "upstream": url, "path_prefix": "/pinned"},
                {"name": "open", "upstream": up.url, "path_prefix": "/open"},
            ],
            tls=tls,
        )

    try:
        async with (
            live(with_upstream(up.url)) as (swap, base),
            httpx.AsyncClient(base_url=base) as client,
        ):
            assert (await client.get("/pinned/x")).status_code == 502
            assert (await client.get("/open/x")).status_code == 200
            # The route's upstream changes (a base path): a new URL, the same route settings.
            await swap.apply(with_upstream(up.url + "/v2"))
            refused = await client.get("/pinned/x")
            assert refused.status_code == 502
            assert refused.json()["code"] == "upstream.tls_failed"
            assert (await client.get("/open/x")).status_code == 200
    finally:
        up.close()
