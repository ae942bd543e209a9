"""Key changes across three gateway processes sharing PostgreSQL and Redis: a key created
through one instance is accepted by all three within one second; rotated, its replacement works
and it stops on all three within one second; revoked, it is refused by all three within one
second. The store is re-read only every 30 s, so the announcement over Redis is what makes it
this fast."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from pathlib import Path

import httpx

from tests.auth.test_revocation import keys
from tests.cluster.processes import Cluster, Instance, cluster_config
from tests.engine.upstream_app import Upstream

WITHIN = 1.0


async def statuses(client: httpx.AsyncClient, instances: list[Instance], key: str) -> list[int]:
    answers = await asyncio.gather(
        *(client.get(f"{i.url}/orders", headers={"x-api-key": key}) for i in instances)
    )
    return [a.status_code for a in answers]


async def until_all_answer(
    client: httpx.AsyncClient, instances: list[Instance], key: str, wanted: int
) -> None:
    """Poll every instance until all answer ``wanted`` (at most 5 s)."""
    deadline = time.monotonic() + 5
    while (found := await statuses(client, instances, key)) != [wanted] * len(instances):
        assert time.monotonic() < deadline, found
        await asyncio.sleep(0.02)


async def test_key_create_rotate_revoke_are_in_force_on_all_three_within_a_second(
    tmp_path: Path,
    upstream: Upstream,
    cluster_factory: Callable[..., Cluster],
    postgres_dsn: str,
    pg_schema: str,
    redis_url: str,
    redis_prefix: str,
) -> None:
    config = cluster_config(
        tmp_path,
        upstream.url,
        postgres={"dsn": postgres_dsn, "schema": pg_schema},
        redis={"url": redis_url, "key_prefix": redis_prefix},
    )
    cluster = Cluster(tmp_path / "boot", config)  # writes the config the CLI shares
    keys(cluster.config_path, "create", "--consumer", "bootstrap")  # migrates, makes the pepper
    cluster = cluster_factory(config)
    await asyncio.sleep(0.3)  # every instance subscribed to the change channel
    async with httpx.AsyncClient(timeout=2) as client:
        started = time.monotonic()  # from the start of the CLI run
        key = await asyncio.to_thread(keys, cluster.config_path, "create", "--consumer", "acme")
        await until_all_answer(client, cluster.instances, key["secret"], 200)
        accepted = time.monotonic() - started

        # A rotation without grace: the new key works and the old one stops, everywhere.
        started = time.monotonic()
        rotation = await asyncio.to_thread(
            keys, cluster.config_path, "rotate", key["id"], "--grace", "0s"
        )
        rotated = rotation["new"]
        await until_all_answer(client, cluster.instances, rotated["secret"], 200)
        await until_all_answer(client, cluster.instances, key["secret"], 401)
        switched = time.monotonic() - started

        started = time.monotonic()
        await asyncio.to_thread(keys, cluster.config_path, "revoke", rotated["id"])
        await until_all_answer(client, cluster.instances, rotated["secret"], 401)
        refused = time.monotonic() - started
    print(f"\ncreate -> accepted by 3: {accepted * 1000:.0f} ms;"
          f" rotate -> switched on 3: {switched * 1000:.0f} ms;"
          f" revoke -> refused by 3: {refused * 1000:.0f} ms")  # fmt: skip
    assert accepted < WITHIN
    assert switched < WITHIN
    assert refused < WITHIN


async def test_a_key_created_and_revoked_through_one_gateways_admin_api_is_in_force_on_all(
    tmp_path: Path,
    upstream: Upstream,
    cluster_factory: Callable[..., Cluster],
    postgres_dsn: str,
    pg_schema: str,
    redis_url: str,
    redis_prefix: str,
) -> None:
    """The operator talks to one instance only (its admin API): the key it creates there works
    on all three within a second, and revoked through another instance it stops on all three
    within a second."""
    from bastion.admin.tokens import generate, token_hash

    admin_token = generate()
    config = cluster_config(
        tmp_path,
        upstream.url,
        postgres={"dsn": postgres_dsn, "schema": pg_schema},
        redis={"url": redis_url, "key_prefix": redis_prefix},
    )
    config["admin"] = {
        "tokens": [{"name": "ops", "role": "operator", "token_hash": token_hash(admin_token)}]
    }
    cluster = Cluster(tmp_path / "boot", config)
    keys(cluster.config_path, "create", "--consumer", "bootstrap")  # migrates, makes the pepper
    cluster = cluster_factory(config)
    await asyncio.sleep(0.3)  # every instance subscribed to the change channel
    ops = {"authorization": f"Bearer {admin_token}"}
    first, second = (f"http://127.0.0.1:{i.admin_port}" for i in cluster.instances[:2])
    async with httpx.AsyncClient(timeout=2) as client:
        started = time.monotonic()
        created = await client.post(f"{first}/admin/keys", json={"consumer": "acme"}, headers=ops)
        assert created.status_code == 201, created.text
        key = created.json()
        await until_all_answer(client, cluster.instances, key["secret"], 200)
        accepted = time.monotonic() - started

        started = time.monotonic()
        revoked = await client.post(f"{second}/admin/keys/{key['id']}/revoke", headers=ops)
        assert revoked.status_code == 200, revoked.text
        await until_all_answer(client, cluster.instances, key["secret"], 401)
        refused = time.monotonic() - started
    print(f"\nadmin API create -> accepted by 3: {accepted * 1000:.0f} ms;"
          f" revoke elsewhere -> refused by 3: {refused * 1000:.0f} ms")  # fmt: skip
    assert accepted < WITHIN
    assert refused < WITHIN
