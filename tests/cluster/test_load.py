"""Load across three gateway processes: a global limit holds exactly, and losing one
instance mid-load costs only the requests that were in flight on it."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import httpx
from click.testing import CliRunner

from bastion.cli.main import cli
from tests.cluster.processes import LIMIT, Cluster, cluster_config
from tests.engine.upstream_app import Upstream


def shared_config(
    tmp_path: Path, upstream: Upstream, dsn: str, schema: str, redis_url: str, prefix: str
) -> dict[str, object]:
    """The cluster's config, its PostgreSQL schema upgraded first (as a deployment's one-shot
    ``bastion db upgrade`` does): a gateway is not ready on a schema behind its release."""
    config = cluster_config(
        tmp_path,
        upstream.url,
        postgres={"dsn": dsn, "schema": schema},
        redis={"url": redis_url, "key_prefix": prefix},
    )
    boot = Cluster(tmp_path / "boot", config)  # writes the config file
    upgraded = CliRunner().invoke(cli, ["db", "upgrade", "--config", str(boot.config_path)])
    assert upgraded.exit_code == 0, upgraded.output
    return config


async def test_a_global_limit_holds_exactly_across_three_instances(
    tmp_path: Path,
    upstream: Upstream,
    cluster_factory: Callable[..., Cluster],
    postgres_dsn: str,
    pg_schema: str,
    redis_url: str,
    redis_prefix: str,
) -> None:
    cluster = cluster_factory(
        shared_config(tmp_path, upstream, postgres_dsn, pg_schema, redis_url, redis_prefix)
    )
    total = LIMIT * 5
    limits = httpx.Limits(max_connections=48)
    async with httpx.AsyncClient(timeout=10, limits=limits) as client:

        async def one(n: int) -> tuple[int, int]:
            instance = n % 3
            answer = await client.get(f"{cluster.instances[instance].url}/limited/{n}")
            return instance, answer.status_code

        results = await asyncio.gather(*(one(n) for n in range(total)))
    statuses = Counter(status for _, status in results)
    admitted_by = Counter(instance for instance, status in results if status == 200)
    print(f"\nadmitted {statuses[200]} of {total} (limit {LIMIT}), per instance {admitted_by}")
    assert statuses[200] + statuses[429] == total
    assert statuses[200] == LIMIT
    assert len(admitted_by) == 3  # every instance admitted some: the limit is shared, not split
    assert len([s for s in upstream.seen if s.target.startswith("/limited")]) == LIMIT


async def test_killing_one_instance_mid_load_loses_only_its_in_flight_requests(
    tmp_path: Path,
    upstream: Upstream,
    cluster_factory: Callable[..., Cluster],
    postgres_dsn: str,
    pg_schema: str,
    redis_url: str,
    redis_prefix: str,
) -> None:
    """Four clients per instance, each with one keep-alive connection and one request at a
    time, as behind a load balancer. One instance is SIGKILLed mid-load (once it has served
    30 requests); its clients see at most their one in-flight request fail, then move to the
    survivors (as a balancer would). Every other request, before and after, is answered 200."""
    cluster = cluster_factory(
        shared_config(tmp_path, upstream, postgres_dsn, pg_schema, redis_url, redis_prefix)
    )
    victim = cluster.instances[2]
    per_instance, enough = 4, 30
    failures: list[tuple[int, str]] = []
    answered: Counter[tuple[int, int]] = Counter()
    after_kill: Counter[int] = Counter()
    killed, done = asyncio.Event(), asyncio.Event()

    async def worker(home: int, n: int) -> None:
        target = home
        async with httpx.AsyncClient(timeout=5, limits=httpx.Limits(max_connections=1)) as c:
            while not done.is_set():
                url = f"{cluster.instances[target].url}/public/{home}-{n}"
                try:
                    answer = await c.get(url)
                except httpx.TransportError as exc:
                    failures.append((target, type(exc).__name__))
                    target = (home + 1 + n % 2) % 3  # a survivor takes over
                    assert target != 2
                    continue
                answered[(target, answer.status_code)] += 1
                if killed.is_set():
                    after_kill[target] += 1

    async def until(condition: Callable[[], bool]) -> None:
        async with asyncio.timeout(20):
            while not condition():
                await asyncio.sleep(0.01)

    async def kill_midway() -> None:
        """Kill once the victim is serving; stop once both survivors served after it."""
        try:
            await until(lambda: answered[(2, 200)] >= enough)
            await asyncio.to_thread(victim.kill)
            killed.set()
            await until(lambda: min(after_kill[0], after_kill[1]) >= enough)
        finally:
            done.set()

    await asyncio.gather(
        kill_midway(), *(worker(h, n) for h in range(3) for n in range(per_instance))
    )
    print(f"\nanswered {sum(answered.values())}: {dict(answered)}; failed: {failures}")
    assert {status for _, status in answered} == {200}
    assert all(target == 2 for target, _ in failures)  # only the killed instance failed
    assert len(failures) <= per_instance  # at most one in flight per client of it
    assert after_kill[0] >= enough  # the survivors kept serving
    assert after_kill[1] >= enough
    # Whatever reached the upstream was answered, except at most the requests in flight.
    reached = len([s for s in upstream.seen if s.target.startswith("/public/")])
    assert sum(answered.values()) <= reached <= sum(answered.values()) + len(failures)
