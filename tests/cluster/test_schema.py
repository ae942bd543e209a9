"""A gateway started on a PostgreSQL schema that is behind its release: it changes nothing,
answers requests with keys 503 (failing closed), is not ready (/readyz 503) and says which
command fixes it; once the schema is upgraded it is ready and serves keys without a restart."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

from bastion.auth.keys.hashing import PEPPER_ENV
from bastion.store import migrate_postgres
from tests.auth.test_revocation import keys
from tests.cluster.processes import Cluster, cli, cluster_config
from tests.engine.upstream_app import Upstream


async def test_a_gateway_waits_for_bastion_db_upgrade_and_then_serves_keys(
    tmp_path: Path,
    upstream: Upstream,
    cluster_factory: Callable[..., Cluster],
    postgres_dsn: str,
    pg_schema: str,
    redis_url: str,
    redis_prefix: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    config = cluster_config(
        tmp_path,
        upstream.url,
        postgres={"dsn": postgres_dsn, "schema": pg_schema},
        redis={"url": redis_url, "key_prefix": redis_prefix},
    )
    config["auth"] = {"api_keys": {"refresh_interval": "0.2s"}}
    monkeypatch.setenv(PEPPER_ENV, "cluster-schema-test-pepper-" + "s" * 32)
    gateway = cluster_factory(config, 1, probe="healthz").instances[0]
    ready = f"http://127.0.0.1:{gateway.admin_port}/readyz"
    async with httpx.AsyncClient(timeout=2) as client:
        assert (await client.get(ready)).status_code == 503  # it could refuse every key
        refused = await client.get(f"{gateway.url}/orders", headers={"x-api-key": "bk_" + "x" * 40})
        assert refused.status_code == 503  # keys unknown: closed, and not the client's fault
        assert refused.json()["code"] == "guard.unavailable"
        deadline = time.monotonic() + 5
        while "run `bastion db upgrade`" not in gateway.output():
            assert time.monotonic() < deadline, gateway.output()
            await asyncio.sleep(0.05)
        assert migrate_postgres.status(postgres_dsn, pg_schema).current == 0  # left as it was

        config_path = tmp_path / "cluster-0" / "bastion.yaml"
        upgraded = await asyncio.to_thread(cli, config_path, "db", "upgrade")
        assert upgraded.returncode == 0, upgraded.stderr
        key = await asyncio.to_thread(keys, config_path, "create", "--consumer", "acme")
        deadline = time.monotonic() + 3
        while (await client.get(ready)).status_code != 200:
            assert time.monotonic() < deadline
            await asyncio.sleep(0.05)
        deadline = time.monotonic() + 3
        while (
            await client.get(f"{gateway.url}/orders", headers={"x-api-key": key["secret"]})
        ).status_code != 200:
            assert time.monotonic() < deadline
            await asyncio.sleep(0.05)
    assert gateway.alive
    assert postgres_dsn not in gateway.output()
