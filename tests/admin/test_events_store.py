"""``GET /admin/events`` answered from the persistent event store, and ``bastion events
list|export --remote`` through it, with real ``bastion serve`` processes: events survive a
restart (the in-memory ring does not), and on PostgreSQL one gateway's admin API shows what
another gateway recorded."""

from __future__ import annotations

import asyncio
import csv
import io
import os
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
import yaml
from click.testing import CliRunner, Result

from bastion.auth.keys.hashing import PEPPER_ENV
from bastion.cli import events as events_cli
from bastion.cli.main import cli
from bastion.config.models import BastionConfig
from bastion.control.stored import StoredEvents
from bastion.store.events import PostgresEventStore
from tests.admin.helpers import config_doc, running, tokens
from tests.admin.processes import BASTION, serve, write
from tests.engine.upstream_app import Upstream
from tests.ports import free_port

BAD_KEYS = [f"bst_{'x' * 8}_{n}{'y' * 30}" for n in range(3)]


async def bastion(*args: str) -> tuple[int, str, str]:
    process = await asyncio.create_subprocess_exec(
        BASTION,
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env={**os.environ, "COLUMNS": "200"},
    )
    out, err = await asyncio.wait_for(process.communicate(), 60)
    assert process.returncode is not None
    return process.returncode, out.decode(), err.decode()


def run(*args: str) -> Result:
    return CliRunner().invoke(cli, list(args))


async def refuse(base: str, count: int) -> None:
    async with httpx.AsyncClient(base_url=base, timeout=10) as client:
        for key in BAD_KEYS[:count]:
            response = await client.get("/orders", headers={"x-api-key": key})
            assert response.status_code == 401


async def stored_events(admin: str, token: str, want: int) -> dict[str, Any]:
    """The admin API's answer once it holds ``want`` auth events (the store is written in
    batches, within a second)."""
    async with httpx.AsyncClient(base_url=admin, timeout=10) as client:
        for _ in range(100):
            response = await client.get(
                "/admin/events",
                params={"action": "auth."},
                headers={"authorization": f"Bearer {token}"},
            )
            assert response.status_code == 200, response.text
            doc: dict[str, Any] = response.json()
            if len(doc["events"]) >= want:
                return doc
            await asyncio.sleep(0.1)
    raise AssertionError(f"fewer than {want} events: {doc}")


def gateway(tmp_path: Path, upstream: Upstream, secrets: dict[str, str], **extra: Any) -> Path:
    doc = config_doc(tmp_path, upstream.url, secrets, **extra)
    doc["admin"]["listen"] = f"127.0.0.1:{free_port()}"
    path = tmp_path / "bastion.yaml"
    write(path, doc)
    return path


async def test_the_events_query_reads_the_store_and_survives_a_restart(
    upstream: Upstream, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(PEPPER_ENV, raising=False)  # no key, no pepper: the store holds events only
    secrets = tokens()
    path = gateway(tmp_path, upstream, secrets)
    doc = yaml.safe_load(path.read_text())
    base, admin = f"http://{doc['listen']}", f"http://{doc['admin']['listen']}"
    async with serve(path):
        await refuse(base, 3)
        found = await stored_events(admin, secrets["viewer"], 3)
        assert found["source"] == "store"
    async with serve(path):  # a new process: its ring is empty, the store is not
        # The state store file made by the events is not mistaken for a key store without its
        # pepper: keys are still simply unknown (401), and the gateway is ready.
        await refuse(base, 1)
        async with httpx.AsyncClient(timeout=5) as client:
            assert (await client.get(f"{admin}/readyz")).status_code == 200
        found = await stored_events(admin, secrets["viewer"], 4)
        assert found["source"] == "store"
        events = found["events"]
        assert [e["event"]["action"] for e in events] == ["auth.invalid_credentials"] * 4
        stamps = [e["@timestamp"] for e in events]
        assert stamps == sorted(stamps, reverse=True)  # newest first
        for key in BAD_KEYS:
            assert key not in orjson.dumps(found).decode()

        token_file = tmp_path / "viewer.token"
        token_file.write_text(secrets["viewer"])
        token_file.chmod(0o600)
        remote = ("--remote", admin, "--admin-token-file", str(token_file))
        code, out, err = await bastion("events", "list", "--kind", "auth", "--json", *remote)
        assert code == 0, err
        lines = [orjson.loads(line) for line in out.splitlines()]
        assert [d["event"]["action"] for d in lines] == ["auth.invalid_credentials"] * 4
        assert [d["@timestamp"] for d in lines] == sorted(stamps)  # oldest first, as locally

        monkeypatch.setattr(events_cli, "PAGE", 3)  # pages of 3: two calls, one boundary
        paged = run("events", "list", "--json", *remote)
        assert paged.exit_code == 0, paged.output
        assert [orjson.loads(line) for line in paged.output.splitlines()] == lines

        # In process from here (the console script ran above): the same command, less start-up.
        exported = run("events", "export", "--format", "csv", "--limit", "2", "--outcome",
                       "failure", *remote)  # fmt: skip
        assert exported.exit_code == 0, exported.output
        rows = list(csv.reader(io.StringIO(exported.output)))
        assert rows[0][:4] == ["timestamp", "dataset", "action", "outcome"]
        assert [r[2] for r in rows[1:]] == ["auth.invalid_credentials"] * 2
        assert {r[7] for r in rows[1:]} == {"401"}

        none = run("events", "list", "--kind", "ratelimit", *remote)
        assert (none.exit_code, none.output.strip()) == (0, "no events match")

        token_file.write_text("bsa_" + "A" * 43)
        refused = run("events", "list", *remote)
        assert refused.exit_code == 1
        assert "admin.unauthenticated" in refused.output


async def test_one_gateway_shows_what_another_recorded_in_postgresql(
    upstream: Upstream, tmp_path: Path, postgres_dsn: str, pg_schema: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    monkeypatch.setenv("BASTION_API_KEY_PEPPER", "events-store-test-pepper-" + "p" * 32)
    secrets = tokens()
    postgres = {"dsn": postgres_dsn, "schema": pg_schema}
    paths: list[Path] = []
    docs: list[dict[str, Any]] = []
    for name in ("a", "b"):
        (tmp_path / name).mkdir()
        paths.append(gateway(tmp_path / name, upstream, secrets, postgres=postgres))
        docs.append(yaml.safe_load(paths[-1].read_text()))
    upgraded = run("db", "upgrade", "--config", str(paths[0]))
    assert upgraded.exit_code == 0, upgraded.output
    async with serve(paths[0]), serve(paths[1]):
        await refuse(f"http://{docs[0]['listen']}", 2)
        found = await stored_events(f"http://{docs[1]['admin']['listen']}", secrets["viewer"], 2)
        assert found["source"] == "store"
        assert [e["event"]["action"] for e in found["events"]] == ["auth.invalid_credentials"] * 2


async def test_an_unreadable_store_falls_back_to_the_ring(
    upstream: Upstream, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    secrets = tokens()
    config = BastionConfig.model_validate(config_doc(tmp_path, upstream.url, secrets))
    down = f"postgresql://bastion:hunter2@127.0.0.1:{free_port()}/x?connect_timeout=1"
    source = StoredEvents(lambda: PostgresEventStore(down, "bastion", connect_timeout=1))
    async with running(config) as gw:
        gw.plane.event_source = lambda: source
        await refuse(gw.base, 1)
        found = await stored_events(gw.admin_url, secrets["viewer"], 1)
    assert found["source"] == "memory"
    assert [e["event"]["action"] for e in found["events"]] == ["auth.invalid_credentials"]
    assert "the event store cannot be read" in caplog.text
    assert "hunter2" not in caplog.text
