"""Config reload in real gateway processes: under a bounded loopback load no request fails, a
route added or removed takes effect, a bad config is refused with the field, the value and the
expectation while the old one stays, and every reload is in the audit log with secrets masked.
"""

from __future__ import annotations

import asyncio
import signal
from pathlib import Path
from typing import Any

import httpx
import orjson

from bastion.admin.tokens import generate, token_hash
from tests.admin.processes import Load, serve, stderr_line, write
from tests.engine.helpers import FAST_TIMEOUTS
from tests.engine.upstream_app import Upstream
from tests.ports import free_port


def gateway_doc(tmp_path: Path, routes: list[dict[str, Any]], token: str) -> dict[str, Any]:
    return {
        "listen": f"127.0.0.1:{free_port()}",
        "routes": routes,
        "admin": {
            "listen": f"127.0.0.1:{free_port()}",
            "tokens": [{"name": "deployer", "role": "operator", "token_hash": token_hash(token)}],
        },
        "events": {"sink": "none"},
        "state_dir": str(tmp_path / "state"),
        "timeouts": {**FAST_TIMEOUTS, "upstream_response": 5, "shutdown_grace": 3},
    }


def route(name: str, prefix: str, upstream: Upstream) -> dict[str, Any]:
    return {
        "name": name,
        "path_prefix": prefix,
        "upstream": upstream.url,
        "strip_prefix": True,
        "auth": {"require": "public"},
    }


def audit(tmp_path: Path) -> list[dict[str, Any]]:
    path = tmp_path / "state" / "audit.log"
    return [orjson.loads(line) for line in path.read_bytes().splitlines()]


async def test_reload_under_load_adds_and_removes_routes_with_no_failed_request(
    upstream: Upstream, upstream2: Upstream, tmp_path: Path
) -> None:
    token = generate()
    path = tmp_path / "bastion.yaml"
    doc = gateway_doc(tmp_path, [route("a", "/a", upstream)], token)
    write(path, doc)
    base, admin = f"http://{doc['listen']}", f"http://{doc['admin']['listen']}"
    headers = {"authorization": f"Bearer {token}"}
    async with serve(path) as process, httpx.AsyncClient(timeout=10) as client:
        assert (await client.get(f"{base}/b/x")).status_code == 404
        load = Load(f"{base}/a/load")
        load.start()
        await asyncio.sleep(0.3)

        # 1. Through the admin API: route b appears.
        write(path, doc | {"routes": [route("a", "/a", upstream), route("b", "/b", upstream2)]})
        r = await client.post(f"{admin}/admin/config/reload", headers=headers)
        assert r.status_code == 200, r.text
        applied = r.json()
        assert applied["ok"]
        assert applied["generation"] == 1
        paths = {c["path"] for c in applied["changes"]}
        assert "routes[b].upstream" in paths
        answer = await client.get(f"{base}/b/hello")
        assert answer.status_code == 200
        assert upstream2.seen[-1].target == "/hello"
        await asyncio.sleep(0.3)

        # 2. By SIGHUP: route b goes, and a second admin token comes (its hash is masked). A
        # request to route b already in flight finishes under the config it started with.
        slow = asyncio.create_task(client.get(f"{base}/b/slow?0.8"))
        await asyncio.sleep(0.2)
        viewer = generate()
        second = {"name": "viewer", "role": "read-only", "token_hash": token_hash(viewer)}
        as_viewer = {"authorization": f"Bearer {viewer}"}
        assert (await client.get(f"{admin}/admin/status", headers=as_viewer)).status_code == 401
        admin_section = doc["admin"] | {"tokens": [*doc["admin"]["tokens"], second]}
        write(path, doc | {"admin": admin_section})
        process.send_signal(signal.SIGHUP)
        line = await stderr_line(process, b"config reload")
        assert b"reloaded (generation 2" in line, line
        assert (await client.get(f"{base}/b/hello")).status_code == 404
        # Admin tokens reload too: the new one is admitted at once.
        assert (await client.get(f"{admin}/admin/status", headers=as_viewer)).status_code == 200
        finished = await slow
        assert finished.status_code == 200
        assert finished.text == "slow"
        await asyncio.sleep(0.3)
        await load.finish()

    assert load.errors == [], load.errors
    assert set(load.statuses) == {200}, load.statuses
    assert load.total > 100
    entries = [e for e in audit(tmp_path) if e["action"] == "config.reload"]
    assert [(e["actor"]["name"], e["outcome"]) for e in entries] == [
        ("deployer", "success"),
        ("SIGHUP", "success"),
    ]
    hup_changes = {c["path"]: c for c in entries[1]["details"]["changes"]}
    assert hup_changes["routes[b].upstream"]["change"] == "removed"
    assert hup_changes["admin.tokens[viewer].token_hash"] == {
        "path": "admin.tokens[viewer].token_hash",
        "change": "added",
        "new": "***",
    }
    assert (
        second["token_hash"].removeprefix("sha256:")
        not in (tmp_path / "state" / "audit.log").read_text()
    )


async def test_a_bad_config_is_refused_and_the_running_one_stays(
    upstream: Upstream, tmp_path: Path
) -> None:
    token = generate()
    path = tmp_path / "bastion.yaml"
    doc = gateway_doc(tmp_path, [route("a", "/a", upstream)], token)
    write(path, doc)
    base, admin = f"http://{doc['listen']}", f"http://{doc['admin']['listen']}"
    headers = {"authorization": f"Bearer {token}"}
    async with serve(path), httpx.AsyncClient(timeout=10) as client:
        bad = route("a", "/a", upstream) | {"upstream": "ftp://files.example"}
        write(path, doc | {"routes": [bad], "workers": 0})
        r = await client.post(f"{admin}/admin/config/reload", headers=headers)
        assert r.status_code == 422
        assert r.headers["content-type"] == "application/problem+json"
        refused = r.json()
        assert refused["code"] == "admin.reload_refused"
        problems = "\n".join(refused["problems"])
        assert "routes[0].upstream: got 'ftp://files.example'" in problems
        assert "workers: got 0" in problems
        assert (await client.get(f"{base}/a/still")).status_code == 200

        moved = doc | {"listen": f"127.0.0.1:{free_port()}"}
        write(path, moved)
        r = await client.post(f"{admin}/admin/config/reload", headers=headers)
        assert r.status_code == 422
        assert r.json()["problems"] == [
            "listen: changed; expected it unchanged for a reload (restart instead)"
        ]
        assert (await client.get(f"{base}/a/still")).status_code == 200
        status = await client.get(f"{admin}/admin/status", headers=headers)
        assert status.json()["config_generation"] == 0
    outcomes = [e["outcome"] for e in audit(tmp_path) if e["action"] == "config.reload"]
    assert outcomes == ["failure", "failure"]


async def test_workers_reload_on_sighup_to_the_supervisor(
    upstream: Upstream, upstream2: Upstream, tmp_path: Path
) -> None:
    token = generate()
    path = tmp_path / "bastion.yaml"
    doc = gateway_doc(tmp_path, [route("a", "/a", upstream)], token) | {"workers": 2}
    write(path, doc)
    base, admin = f"http://{doc['listen']}", f"http://{doc['admin']['listen']}"
    async with serve(path) as process:
        load = Load(f"{base}/a/load", clients=4)
        load.start()
        await asyncio.sleep(0.3)
        write(path, doc | {"routes": [route("a", "/a", upstream), route("b", "/b", upstream2)]})
        process.send_signal(signal.SIGHUP)
        line = await stderr_line(process, b"config reload")
        assert b"reloaded (generation 1" in line, line
        assert not (tmp_path / "state" / "run" / "reload.json").exists()  # config at rest: no
        # Fresh connections land on both workers (SO_REUSEPORT): every one knows route b.
        for _ in range(12):
            async with httpx.AsyncClient(timeout=10) as client:
                assert (await client.get(f"{base}/b/x")).status_code == 200
        await asyncio.sleep(0.2)
        await load.finish()
        headers = {"authorization": f"Bearer {token}"}
        async with httpx.AsyncClient(timeout=10) as client:
            r = await client.get(f"{admin}/admin/status", headers=headers)
            assert r.json()["config_generation"] == 1
            assert r.json()["routes"] == ["a", "b"]
            # A worker's security events reach the supervisor's events query (within ~1 s).
            assert (await client.get(f"{base}/nowhere")).status_code == 404
            found: list[object] = []
            for _ in range(40):
                r = await client.get(
                    f"{admin}/admin/events", params={"action": "route."}, headers=headers
                )
                found = r.json()["events"]
                if found:
                    break
                await asyncio.sleep(0.1)
            assert [e["url"]["path"] for e in found] == ["/nowhere"]  # type: ignore[index]
    assert load.errors == [], load.errors
    assert set(load.statuses) == {200}, load.statuses
