"""The admin API through the real admin listener: tokens and roles, keys and consumers, signing
keys, events, the audit log; problem+json with stable codes; no secret in the audit log."""

from __future__ import annotations

from pathlib import Path

import httpx
import orjson

from bastion.config.models import BastionConfig
from bastion.control.audit import audit_path
from bastion.observability.events import SecurityEvent
from tests.admin.helpers import config_doc, running, tokens
from tests.engine.upstream_app import Upstream


def bearer(token: str) -> dict[str, str]:
    return {"authorization": f"Bearer {token}"}


async def test_calls_without_a_valid_token_are_refused_and_audited(
    upstream: Upstream, tmp_path: Path
) -> None:
    secrets = tokens()
    config = BastionConfig.model_validate(config_doc(tmp_path, upstream.url, secrets))
    async with running(config) as gw, httpx.AsyncClient(base_url=gw.admin_url) as client:
        for headers in ({}, bearer("bsa_" + "x" * 43), {"authorization": secrets["ops"]}):
            r = await client.get("/admin/keys", headers=headers)
            assert r.status_code == 401
            assert r.headers["content-type"] == "application/problem+json"
            assert r.headers["www-authenticate"].startswith("Bearer")
            assert r.json()["code"] == "admin.unauthenticated"
        # A token in the query string is no token at all.
        r = await client.get("/admin/keys", params={"token": secrets["root"]})
        assert r.status_code == 401
        # health and metrics stay open to probes
        assert (await client.get("/healthz")).status_code == 200
        r = await client.get("/admin/nothing-here", headers=bearer(secrets["viewer"]))
        assert (r.status_code, r.json()["code"]) == (404, "admin.not_found")
        r = await client.delete("/admin/keys", headers=bearer(secrets["viewer"]))
        assert (r.status_code, r.json()["code"]) == (405, "admin.method_not_allowed")
        assert r.headers["allow"] == "GET, POST"
    entries = [orjson.loads(line) for line in audit_path(config).read_bytes().splitlines()]
    refused = [e for e in entries if e["actor"]["name"] == "anonymous"]
    assert len(refused) == 4
    assert all(e["outcome"] == "failure" and e["status"] == 401 for e in refused)
    assert [e["action"] for e in refused] == ["keys.list"] * 4
    text = audit_path(config).read_text()
    assert all(secret not in text for secret in secrets.values())
    assert audit_path(config).stat().st_mode & 0o077 == 0


async def test_no_configured_token_closes_the_admin_api(upstream: Upstream, tmp_path: Path) -> None:
    config = BastionConfig.model_validate(config_doc(tmp_path, upstream.url, {}))
    async with running(config) as gw, httpx.AsyncClient(base_url=gw.admin_url) as client:
        r = await client.get("/admin/status", headers=bearer("bsa_anything"))
        assert r.status_code == 401
        assert "admin.tokens" in r.json()["detail"]


async def test_roles_and_the_key_lifecycle(upstream: Upstream, tmp_path: Path) -> None:
    secrets = tokens()
    config = BastionConfig.model_validate(config_doc(tmp_path, upstream.url, secrets))
    async with (
        running(config) as gw,
        httpx.AsyncClient(base_url=gw.admin_url) as client,
        httpx.AsyncClient(base_url=gw.base) as api,
    ):
        viewer, ops, root = (bearer(secrets[n]) for n in ("viewer", "ops", "root"))
        body = {"consumer": "acme", "scopes": ["orders:read"], "tier": "gold", "expires": "30d"}
        r = await client.post("/admin/keys", json=body, headers=viewer)
        assert (r.status_code, r.json()["code"]) == (403, "admin.forbidden")

        r = await client.post("/admin/keys", json=body, headers=ops)
        assert r.status_code == 201, r.text
        created = r.json()
        secret, key_id = created["secret"], created["id"]
        assert created["consumer"] == "acme"
        assert created["status"] == "active"
        assert created["scopes"] == ["orders:read"]

        # The key works on the public listener within the key sync interval.
        for _ in range(40):
            if (await api.get("/x", headers={"x-api-key": secret})).status_code == 200:
                break
            await _pause()
        assert (await api.get("/x", headers={"x-api-key": secret})).status_code == 200

        listed = (await client.get("/admin/keys", headers=viewer)).json()["keys"]
        assert [k["id"] for k in listed] == [key_id]
        assert "secret" not in listed[0]
        assert "hash" not in listed[0]
        shown = (await client.get(f"/admin/keys/{key_id}", headers=viewer)).json()
        assert shown["id"] == key_id
        assert "secret" not in shown
        consumers = (await client.get("/admin/consumers", headers=viewer)).json()["consumers"]
        assert consumers == [{"consumer": "acme", "keys": 1, "active": 1}]
        consumer = (await client.get("/admin/consumers/acme", headers=viewer)).json()
        assert [k["id"] for k in consumer["keys"]] == [key_id]

        r = await client.post(f"/admin/keys/{key_id}/rotate", json={"grace": "1h"}, headers=ops)
        assert r.status_code == 201
        rotation = r.json()
        assert rotation["old"]["status"] == "grace"
        assert rotation["old"]["replaced_by"] == rotation["new"]["id"]
        assert rotation["new"]["secret"].startswith(secret[:4])

        r = await client.post(f"/admin/keys/{key_id}/revoke", headers=ops)
        assert r.status_code == 200
        assert r.json()["status"] == "revoked"
        for _ in range(40):
            if (await api.get("/x", headers={"x-api-key": secret})).status_code == 401:
                break
            await _pause()
        assert (await api.get("/x", headers={"x-api-key": secret})).status_code == 401

        r = await client.get("/admin/keys/bk_nosuchkey", headers=viewer)
        assert (r.status_code, r.json()["code"]) == (404, "admin.key_unknown")
        r = await client.post("/admin/keys", json={"consumer": "a b"}, headers=ops)
        assert (r.status_code, r.json()["code"]) == (400, "admin.invalid_request")
        r = await client.post("/admin/keys", json={"consumer": "a", "colour": 1}, headers=ops)
        assert r.status_code == 400
        assert r.json()["errors"][0]["pointer"] == "/colour"
        r = await client.post("/admin/keys", content=b"{nope", headers=ops)
        assert (r.status_code, r.json()["code"]) == (400, "admin.invalid_request")

        # The audit log is for admins only, and holds every call, never a secret.
        r = await client.get("/admin/audit", headers=ops)
        assert r.status_code == 403
        entries = (await client.get("/admin/audit", headers=root)).json()["entries"]
        actions = [(e["action"], e["actor"]["name"], e["outcome"]) for e in entries]
        assert ("keys.create", "viewer", "failure") in actions
        assert ("keys.create", "ops", "success") in actions
        assert ("keys.rotate", "ops", "success") in actions
        assert ("keys.revoke", "ops", "success") in actions
        revoke = next(e for e in entries if e["action"] == "keys.revoke")
        assert revoke["target"] == key_id
    text = audit_path(config).read_text()
    assert secret not in text
    assert rotation["new"]["secret"] not in text
    # Every call was a security event too, into the configured sinks.
    assert "admin.keys.create" in gw.sink.actions()


async def test_signing_keys_and_events(upstream: Upstream, tmp_path: Path) -> None:
    secrets = tokens()
    config = BastionConfig.model_validate(config_doc(tmp_path, upstream.url, secrets))
    async with (
        running(config) as gw,
        httpx.AsyncClient(base_url=gw.admin_url) as client,
        httpx.AsyncClient(base_url=gw.base) as api,
    ):
        ops, root = bearer(secrets["ops"]), bearer(secrets["root"])
        before = (await client.get("/admin/signing-keys", headers=ops)).json()
        assert (await client.post("/admin/signing-keys/rotate", headers=ops)).status_code == 403
        r = await client.post(
            "/admin/signing-keys/rotate", json={"revoke_previous": False}, headers=root
        )
        assert r.status_code == 201
        kid = r.json()["kid"]
        after = (await client.get("/admin/signing-keys", headers=ops)).json()
        assert kid in [k["kid"] for k in after["keys"]]
        assert kid in [k["kid"] for k in after["jwks"]["keys"]]
        assert len(after["keys"]) == len(before["keys"]) + 1
        assert all("private" not in orjson.dumps(k).decode() for k in after["keys"])

        # Refusals on the public port are security events the admin API can query.
        for _ in range(3):
            assert (await api.get("/x")).status_code == 401
        gw.recent.emit(SecurityEvent("alert.credential_stuffing", "unknown", 1.0, "detector"))
        r = await client.get("/admin/events", params={"action": "auth."}, headers=ops)
        found = r.json()["events"]
        assert len(found) >= 3
        assert all(e["event"]["action"].startswith("auth.") for e in found)
        assert found[0]["source"]["ip"] == "127.0.0.1"
        r = await client.get("/admin/events", params={"action": "alert."}, headers=ops)
        assert [e["event"]["action"] for e in r.json()["events"]] == ["alert.credential_stuffing"]
        r = await client.get("/admin/events", params={"ip": "10.9.9.9"}, headers=ops)
        assert r.json()["events"] == []
        r = await client.get("/admin/events", params={"limit": "0"}, headers=ops)
        assert (r.status_code, r.json()["code"]) == (400, "admin.invalid_request")
        shown = (await client.get("/admin/config", headers=ops)).json()["config"]
        assert shown["routes[api].path_prefix"] == "/"
        assert shown["admin.tokens[ops].token_hash"] == "***"
        assert shown["admin.tokens[ops].role"] == "operator"
        status = (await client.get("/admin/status", headers=ops)).json()
        assert status["routes"] == ["api"]
        assert status["config_generation"] == 0


async def _pause() -> None:
    import asyncio

    await asyncio.sleep(0.05)


async def test_dashboard_data_lists_certificates_and_keys_near_expiry(
    upstream: Upstream, tmp_path: Path
) -> None:
    import datetime as dt

    import trustme

    from bastion.admin.dashboard import data
    from tests.tls.helpers import issue

    now = dt.datetime.now(dt.UTC)
    ca = trustme.CA()
    soon = issue(ca, tmp_path / "certs", "soon", "soon.test", not_after=now + dt.timedelta(days=5))
    later = issue(
        ca, tmp_path / "certs", "later", "later.test", not_after=now + dt.timedelta(days=200)
    )
    tls = {
        "enabled": True,
        "certificates": [
            {"cert": str(soon.cert), "key": str(soon.key)},
            {"cert": str(later.cert), "key": str(later.key)},
        ],
        "expiry_warning": "14d",
    }
    config = BastionConfig.model_validate(config_doc(tmp_path, upstream.url, tokens(), tls=tls))
    async with running(config) as gw:
        short = await gw.plane.keys.create("acme", (), None, "", 86400.0)
        await gw.plane.keys.create("acme", (), None, "", 90 * 86400.0)
        found = (await data(gw.plane))["expiring"]
    certificates = {c["file"]: c for c in found["certificates"]}
    assert certificates["soon.pem"]["warning"] is True
    assert 4.5 < certificates["soon.pem"]["days_left"] <= 5
    assert certificates["later.pem"]["warning"] is False
    assert [k["id"] for k in found["keys"]] == [short["id"]]
    assert [k["state"] for k in found["signing_keys"]] == ["current"]
    assert found["errors"] == []


async def test_a_dashboard_session_reads_the_dashboard_and_nothing_else(
    upstream: Upstream, tmp_path: Path
) -> None:
    secrets = tokens()
    config = BastionConfig.model_validate(config_doc(tmp_path, upstream.url, secrets))
    async with running(config) as gw, httpx.AsyncClient(base_url=gw.admin_url) as client:
        # A login form posted from another site is refused (login CSRF).
        r = await client.post(
            "/dashboard/login",
            data={"token": secrets["root"]},
            headers={"origin": "https://evil.example"},
        )
        assert r.status_code == 401
        assert "set-cookie" not in r.headers
        r = await client.post(
            "/dashboard/login", data={"token": secrets["root"]}, headers={"origin": gw.admin_url}
        )
        assert r.status_code == 303
        assert client.cookies.get("bastion_admin")
        assert (await client.get("/dashboard/data")).status_code == 200
        # The admin API itself takes only the token in Authorization, never the cookie.
        assert (await client.get("/admin/keys")).status_code == 401
        r = await client.post("/admin/keys", json={"consumer": "mallory"})
        assert (r.status_code, r.json()["code"]) == (401, "admin.unauthenticated")
        r = await client.post("/admin/config/reload")
        assert r.status_code == 401
        await client.post("/dashboard/logout")
        assert (await client.get("/dashboard/data")).status_code == 401
