"""Redis, then PostgreSQL, going away under three gateway processes and coming back: the
configured policy (fail closed) holds on every instance during a Redis outage, what does not
need the missing backend keeps working, and full service resumes without restarting anything,
the key-change channel and the key store connections included."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from pathlib import Path

import httpx

from tests.auth.test_revocation import keys
from tests.cluster.processes import Cluster, Instance, cluster_config
from tests.cluster.test_keys import statuses, until_all_answer
from tests.engine.upstream_app import Upstream
from tests.services.postgres_service import PostgresCluster
from tests.services.redis_service import RedisServer


async def limited(client: httpx.AsyncClient, instances: list[Instance]) -> list[int]:
    answers = await asyncio.gather(*(client.get(f"{i.url}/limited") for i in instances))
    return [a.status_code for a in answers]


async def test_redis_restart_fails_closed_then_service_resumes_without_restart(
    tmp_path: Path,
    upstream: Upstream,
    cluster_factory: Callable[..., Cluster],
    redis_server_factory: Callable[..., RedisServer],
    postgres_dsn: str,
    pg_schema: str,
) -> None:
    server = redis_server_factory()
    config = cluster_config(
        tmp_path,
        upstream.url,
        postgres={"dsn": postgres_dsn, "schema": pg_schema},
        redis={"url": server.url, "key_prefix": "cluster:"},
    )
    boot = Cluster(tmp_path / "boot", config)
    key = keys(boot.config_path, "create", "--consumer", "acme")
    cluster = cluster_factory(config)
    instances = cluster.instances
    async with httpx.AsyncClient(timeout=3) as client:
        assert await limited(client, instances) == [200, 200, 200]

        server.stop()
        deadline = time.monotonic() + 5
        while (during := await limited(client, instances)) != [503, 503, 503]:
            assert time.monotonic() < deadline, during  # closed: nothing admitted uncounted
            await asyncio.sleep(0.05)
        refused = await client.get(f"{instances[0].url}/limited")
        assert refused.headers["content-type"] == "application/problem+json"
        assert "retry-after" in refused.headers
        # API keys live in PostgreSQL and in each instance's memory: unaffected.
        await until_all_answer(client, instances, key["secret"], 200)
        assert [(await client.get(f"{i.url}/public")).status_code for i in instances] == [200] * 3

        server.start()  # the same port: the instances reconnect by themselves
        deadline = time.monotonic() + 10
        while (after := await limited(client, instances)) != [200, 200, 200]:
            assert time.monotonic() < deadline, after
            await asyncio.sleep(0.1)
        assert all(i.alive for i in instances)

        # The change channel is back too. The store is re-read every 30 s, so an instance
        # learns of a new key only from the channel, or from the store read it makes once it
        # has subscribed again (listeners retry with a backoff of at most 5 s): once all three
        # accept the new key, all three are listening, and a revocation arrives at once.
        fresh = await asyncio.to_thread(keys, boot.config_path, "create", "--consumer", "late")
        deadline = time.monotonic() + 8
        while (found := await statuses(client, instances, fresh["secret"])) != [200] * 3:
            assert time.monotonic() < deadline, found
            await asyncio.sleep(0.1)
        started = time.monotonic()
        await asyncio.to_thread(keys, boot.config_path, "revoke", fresh["id"])
        await until_all_answer(client, instances, fresh["secret"], 401)
        assert time.monotonic() - started < 1.0


async def test_postgres_restart_keeps_keys_served_then_changes_flow_again(
    tmp_path: Path,
    upstream: Upstream,
    cluster_factory: Callable[..., Cluster],
    postgres_cluster_factory: Callable[[], PostgresCluster],
    redis_url: str,
    redis_prefix: str,
) -> None:
    """PostgreSQL (a private server) stopped under three gateways: each keeps serving the
    keys it knows (the last known state); once it is back, a key created afterwards is in
    force on all three within a second, without restarting any of them."""
    database = postgres_cluster_factory()
    config = cluster_config(
        tmp_path,
        upstream.url,
        postgres={"dsn": database.dsn, "schema": "bastion"},
        redis={"url": redis_url, "key_prefix": redis_prefix},
    )
    boot = Cluster(tmp_path / "boot", config)
    key = keys(boot.config_path, "create", "--consumer", "acme")
    instances = cluster_factory(config).instances
    async with httpx.AsyncClient(timeout=3) as client:
        await until_all_answer(client, instances, key["secret"], 200)

        await asyncio.to_thread(database.stop)
        for _ in range(3):  # a while into the outage: still served, from memory
            assert await statuses(client, instances, key["secret"]) == [200] * 3
            await asyncio.sleep(0.2)
        await asyncio.to_thread(database.start)  # same port; every old connection is gone

        started = time.monotonic()
        fresh = await asyncio.to_thread(keys, boot.config_path, "create", "--consumer", "late")
        await until_all_answer(client, instances, fresh["secret"], 200)
        assert time.monotonic() - started < 1.0
        assert all(i.alive for i in instances)
