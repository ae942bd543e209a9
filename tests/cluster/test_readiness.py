"""What ``/readyz`` says about the key store (docs/operations.md, "Readiness"): a gateway that
has never read its keys (PostgreSQL down at start) would refuse every keyed request, so it is
not ready, with one process or with workers; one that read them and then lost the store keeps
serving the keys it knows, and stays ready."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import psycopg
import pytest
from psycopg import sql

from bastion.auth.keys.hashing import PEPPER_ENV
from tests.auth.test_revocation import keys
from tests.cluster.processes import Cluster, cli, cluster_config
from tests.engine.upstream_app import Upstream
from tests.ports import free_port


async def test_postgresql_down_at_start_is_not_ready_with_workers_too(
    tmp_path: Path,
    upstream: Upstream,
    cluster_factory: Callable[..., Cluster],
    redis_url: str,
    redis_prefix: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv(PEPPER_ENV, "readiness-test-pepper-" + "r" * 32)
    dsn = f"postgresql://postgres@127.0.0.1:{free_port()}/test?connect_timeout=1"
    config = cluster_config(
        tmp_path,
        upstream.url,
        postgres={"dsn": dsn},
        redis={"url": redis_url, "key_prefix": redis_prefix},
    )
    config["workers"] = 2
    gateway = cluster_factory(config, 1, probe="healthz").instances[0]
    async with httpx.AsyncClient(timeout=2) as client:
        refused = await client.get(f"{gateway.url}/orders", headers={"x-api-key": "bk_" + "x" * 40})
        assert refused.status_code == 503
        for _ in range(15):  # every worker publishes its readiness each second
            ready = await client.get(f"http://127.0.0.1:{gateway.admin_port}/readyz")
            assert ready.status_code == 503
            await asyncio.sleep(0.1)
        assert (await client.get(f"{gateway.url}/public")).status_code == 200


async def test_a_gateway_that_read_its_keys_stays_ready_when_the_store_breaks(
    tmp_path: Path,
    upstream: Upstream,
    cluster_factory: Callable[..., Cluster],
    postgres_dsn: str,
    pg_schema: str,
    redis_url: str,
    redis_prefix: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv(PEPPER_ENV, "readiness-test-pepper-" + "r" * 32)
    config = cluster_config(
        tmp_path,
        upstream.url,
        postgres={"dsn": postgres_dsn, "schema": pg_schema},
        redis={"url": redis_url, "key_prefix": redis_prefix},
    )
    config["auth"] = {"api_keys": {"refresh_interval": "0.2s"}}
    cluster = cluster_factory(config, 0)
    config_path = cluster.config_path
    upgraded = await asyncio.to_thread(cli, config_path, "db", "upgrade")
    assert upgraded.returncode == 0, upgraded.stderr
    key = await asyncio.to_thread(keys, config_path, "create", "--consumer", "acme")
    gateway = cluster.start(1).instances[0]  # started = ready (keys read)
    headers = {"x-api-key": key["secret"]}
    table = sql.SQL("{}.api_keys").format(sql.Identifier(pg_schema))
    async with httpx.AsyncClient(timeout=2) as client:
        assert (await client.get(f"{gateway.url}/orders", headers=headers)).status_code == 200
        with psycopg.connect(postgres_dsn, autocommit=True) as conn:  # every read now fails
            conn.execute(sql.SQL("ALTER TABLE {} RENAME TO api_keys_away").format(table))
        try:
            deadline = time.monotonic() + 5
            while "the key store cannot be read" not in gateway.output():
                assert time.monotonic() < deadline, gateway.output()
                await asyncio.sleep(0.05)
            ready = await client.get(f"http://127.0.0.1:{gateway.admin_port}/readyz")
            assert ready.status_code == 200
            assert (await client.get(f"{gateway.url}/orders", headers=headers)).status_code == 200
        finally:
            with psycopg.connect(postgres_dsn, autocommit=True) as conn:
                away = sql.SQL("{}.api_keys_away").format(sql.Identifier(pg_schema))
                conn.execute(sql.SQL("ALTER TABLE {} RENAME TO api_keys").format(away))
