"""A signing-key rotation across three gateway processes sharing PostgreSQL and Redis: within
one second all three sign with the new key and accept each other's tokens (the store poll is
slowed to 30 s, so the Redis announcement is what makes it this fast)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path

import pytest

from bastion.auth.keys.hashing import PEPPER_ENV
from tests.auth.test_revocation import keys
from tests.auth.test_tokens_processes import SIGNING, rotation_in_force_after
from tests.cluster.processes import Cluster, cluster_config
from tests.engine.upstream_app import Upstream


async def test_a_signing_key_rotation_is_in_force_on_all_three_within_a_second(
    tmp_path: Path,
    upstream: Upstream,
    cluster_factory: Callable[..., Cluster],
    postgres_dsn: str,
    pg_schema: str,
    redis_url: str,
    redis_prefix: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv(PEPPER_ENV, "cluster-signing-test-pepper-" + "t" * 32)
    config = cluster_config(
        tmp_path,
        upstream.url,
        postgres={"dsn": postgres_dsn, "schema": pg_schema},
        redis={"url": redis_url, "key_prefix": redis_prefix},
    )
    config["auth"] = {
        "api_keys": {"refresh_interval": "30s"},
        "tokens": {"signing": {**SIGNING, "resync_interval": "30s"}},
    }
    boot = Cluster(tmp_path / "boot", config)
    key = keys(boot.config_path, "create", "--consumer", "billing")
    cluster = cluster_factory(config)
    await asyncio.sleep(0.3)  # every instance subscribed
    elapsed = await rotation_in_force_after(boot.config_path, cluster.instances, key)
    print(f"\nsigning-key rotation in force on 3 after {elapsed * 1000:.0f} ms")
    assert elapsed < 1.0
