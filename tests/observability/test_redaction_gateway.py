"""Redaction through the real gateway: secrets planted in every place a client can put them
never reach any sink (stdout, the rotated files, an Elasticsearch ``_bulk`` receiver, the event
store), and every line every sink got matches the documented field set."""

from __future__ import annotations

import asyncio
import base64
import signal
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import orjson
import pytest

from tests.engine.upstream_app import Upstream, start_upstream
from tests.observability.helpers import bulk_receiver, check_line
from tests.ports import free_port

BASTION = str(Path(sys.executable).parent / "bastion")

BEARER = "Tk9BearerSecret4711ab"
COOKIE = "Ck9CookieSecret4712cd"
QUERY_KEY = "Qk9QuerySecret4713ef"
QUERY_TOKEN = "Qt9TokenSecret4714gh"
PATH_SECRET = "Ps9PathSecret4715ijKLmnOPqrST"
PASSWORD = "Pw9PasswordSecret4716uv"
BASIC = "Ba9BasicSecret4717wx"
CUSTOM = "Cu9CustomSecret4718yz"
REFUSED = "bst_AAAAAAAAAAAA_" + "Rf9RefusedSecret4719" + "z" * 18
# A key-shaped Host value: the gateway takes it (a valid reg-name) and logs it lower-cased.
HOST = "bst_hhhhhhhhhhhh_" + "hs9hostsecret4720" + "h" * 20


@pytest.fixture
async def upstream() -> AsyncIterator[Upstream]:
    up = await start_upstream()
    yield up
    assert up.server is not None
    up.server.close()


async def bastion(*args: str) -> bytes:
    process = await asyncio.create_subprocess_exec(
        BASTION, *args, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
    )
    out, err = await asyncio.wait_for(process.communicate(), 30)
    assert process.returncode == 0, err
    return out


async def plant_secrets(base: str, key: str) -> int:
    """Every place a client can put a secret; the number of requests sent."""
    valid = {"x-api-key": key}
    basic = base64.b64encode(f"alice:{BASIC}".encode()).decode()
    async with httpx.AsyncClient(base_url=base) as client:
        answers = [
            await client.get("/orders", headers=valid),
            await client.get("/orders", headers={"authorization": f"Bearer {BEARER}"}),
            await client.get("/orders", headers={**valid, "cookie": f"session={COOKIE}"}),
            await client.get(f"/orders?api_key={QUERY_KEY}"),
            await client.get(f"/orders?x=1&access_token={QUERY_TOKEN}", headers=valid),
            await client.get(f"/orders/{PATH_SECRET}", headers=valid),
            await client.post("/orders", headers=valid, json={"user": "a", "password": PASSWORD}),
            await client.get("/orders", headers={"x-api-key": REFUSED}),
            await client.get("/orders", headers={"authorization": f"Basic {basic}"}),
            await client.get("/orders", headers={**valid, "x-internal-ref": CUSTOM}),
            await client.get("/orders", headers={**valid, "host": HOST}),
        ]
        for n in range(20):  # enough lines to rotate the file a few times
            answers.append(await client.get(f"/orders/{n}", headers=valid))
    statuses = [a.status_code for a in answers]
    assert statuses[0] == 200
    assert statuses[5] == 200
    assert statuses[6] == 200
    assert statuses[1] == 401
    assert statuses[7] == 401
    assert statuses[3] in (400, 401)
    assert statuses[10] == 200  # the Host value is valid: the request was served, and logged
    return len(answers)


def secrets(key: str) -> list[bytes]:
    found = [BEARER, COOKIE, QUERY_KEY, QUERY_TOKEN, PATH_SECRET, PASSWORD, BASIC, CUSTOM]
    found += [REFUSED, REFUSED.rpartition("_")[2], key, key.rpartition("_")[2]]
    found += [HOST, HOST.rpartition("_")[2]]
    found.append(base64.b64encode(f"alice:{BASIC}".encode()).decode())
    return [s.encode() for s in found]


async def test_no_secret_reaches_any_sink(upstream: Upstream, tmp_path: Path) -> None:
    state, logs = tmp_path / "state", tmp_path / "logs"
    created = await bastion(
        "keys", "create", "--consumer", "alice", "--state-dir", str(state), "--json"
    )
    key = orjson.loads(created)["secret"]
    listen, admin = free_port(), free_port()
    with bulk_receiver() as receiver:
        config = tmp_path / "bastion.yaml"
        config.write_text(
            f"""
routes:
  - name: orders
    upstream: {upstream.url}
    path_prefix: /orders
state_dir: {state}
timeouts: {{shutdown_grace: 2s}}
events:
  sink: [stdout, file, http]
  path: {logs / "events.jsonl"}
  rotation: {{max_bytes: 2KiB}}
  http: {{url: "{receiver.url}", flush_interval: 50ms}}
  redact: {{fields: [x_internal_ref]}}
"""
        )
        process = await asyncio.create_subprocess_exec(
            BASTION,
            "serve",
            "--config",
            str(config),
            "--listen",
            f"127.0.0.1:{listen}",
            "--admin-listen",
            f"127.0.0.1:{admin}",
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        try:
            assert process.stderr is not None
            assert process.stdout is not None
            while b"listening on" not in (
                line := await asyncio.wait_for(process.stderr.readline(), 15)
            ):
                assert line, "the gateway exited"
            sent = await plant_secrets(f"http://127.0.0.1:{listen}", key)
            async with httpx.AsyncClient() as client:
                metrics = (await client.get(f"http://127.0.0.1:{admin}/metrics")).text
            process.send_signal(signal.SIGTERM)
            stdout = await asyncio.wait_for(process.stdout.read(), 15)
            assert await asyncio.wait_for(process.wait(), 15) == 0
        finally:
            if process.returncode is None:
                process.kill()
                await process.wait()
        bulk = receiver.bodies()
        bulk_docs = receiver.documents()

    files = sorted(logs.iterdir())
    assert len(files) >= 3, "the file sink rotated"
    file_lines = [line for path in files for line in path.read_bytes().splitlines()]
    store = b"".join(p.read_bytes() for p in state.glob("keys.db*"))
    assert b"auth.invalid_credentials" in store, "the event store holds the refusals"
    places = {"stdout": stdout, "files": b"\n".join(file_lines), "bulk": bulk, "store": store}
    for secret in secrets(key):
        for place, data in places.items():
            assert secret not in data, f"{secret.decode()} reached {place}"

    for lines in (stdout.splitlines(), file_lines, bulk_docs):
        docs = [check_line(line) for line in lines]
        access = [d for d in docs if d["event"]["dataset"] == "bastion.access"]
        security = {d["event"]["action"] for d in docs if d["event"]["dataset"] != "bastion.access"}
        assert len(access) == sent
        assert {"auth.credentials_in_query", "auth.invalid_credentials"} <= security
    for expected in (
        'bastion_auth_outcomes_total{action="auth.invalid_credentials",outcome="failure"} 1.0',
        'bastion_upstream_response_duration_seconds_count{route="orders"} 26.0',
        'bastion_events_dropped_total{stage="buffer"} 0.0',
    ):
        assert expected in metrics
    assert all(secret not in metrics.encode() for secret in secrets(key))
    docs = [orjson.loads(line) for line in stdout.splitlines()]
    refused = [
        d
        for d in docs
        if d["event"]["dataset"] == "bastion.access" and d["event"]["outcome"] == "failure"
    ]
    assert {d["bastion"]["route"] for d in refused} == {"orders"}
    assert {d["user"]["id"] for d in docs if d["http"]["request"]["method"] == "POST"} == {"alice"}
    paths = {d["url"]["path"] for d in docs}
    assert "/orders/[REDACTED]" in paths
    assert "/orders/7" in paths
