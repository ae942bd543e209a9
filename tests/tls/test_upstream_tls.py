"""TLS to upstreams: verified by default, a private CA, a client certificate, SPKI pins, and
per-route settings; a wrong certificate is 502 ``upstream.tls_failed`` and a security event."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson
import pytest
import trustme

from bastion.config.models import BastionConfig
from bastion.observability.events import MemorySink
from bastion.tls.certs import leaf_facts
from tests.engine.helpers import FAST_TIMEOUTS, head_and_body, raw, start_gateway, status_of
from tests.tls.helpers import issue
from tests.tls.tls_upstream import TLSUpstream, start_tls_upstream


def config_for(routes: list[dict[str, Any]], **tls: Any) -> BastionConfig:
    return BastionConfig.model_validate(
        {
            "routes": routes,
            "timeouts": FAST_TIMEOUTS | {"upstream_connect": 2.0, "upstream_response": 2.0},
            "admin": {"enabled": False},
            "events": {"sink": "none"},
            "tls": tls,
        }
    )


async def get(
    config: BastionConfig, path: str = "/", times: int = 1
) -> tuple[list[bytes], MemorySink]:
    gateway = await start_gateway(config)
    events = gateway.chain.events
    assert isinstance(events, MemorySink)
    try:
        answers = []
        for _ in range(times):
            answers.append(
                await raw(
                    gateway.port,
                    f"GET {path} HTTP/1.1\r\nhost: gw\r\nconnection: close\r\n\r\n".encode(),
                )
            )
        return answers, events
    finally:
        await gateway.shutdown(1.0)


@pytest.fixture
def ca() -> trustme.CA:
    return trustme.CA()


@pytest.fixture
async def upstream_tls(ca: trustme.CA, tmp_path: Path) -> TLSUpstream:
    up = await start_tls_upstream(issue(ca, tmp_path / "up", "upstream", "localhost"))
    yield up  # type: ignore[misc]
    up.close()


def ca_file(ca: trustme.CA, tmp_path: Path) -> str:
    path = tmp_path / "upstream-ca.pem"
    ca.cert_pem.write_to_path(str(path))
    return str(path)


async def test_a_private_ca_verifies_the_upstream(
    upstream_tls: TLSUpstream, ca: trustme.CA, tmp_path: Path
) -> None:
    config = config_for(
        [{"name": "api", "upstream": upstream_tls.url}], upstream={"ca": ca_file(ca, tmp_path)}
    )
    answers, _ = await get(config, "/orders", times=3)
    for answer in answers:
        assert status_of(answer) == 200
        assert orjson.loads(head_and_body(answer)[1])["target"] == "/orders"
    assert upstream_tls.connections == 1  # the verified connection is pooled and reused


async def test_verification_is_on_by_default(upstream_tls: TLSUpstream) -> None:
    """The system trust store does not know the test CA: the upstream is refused."""
    config = config_for([{"name": "api", "upstream": upstream_tls.url}])
    [answer], events = await get(config)
    assert status_of(answer) == 502
    assert b'"code":"upstream.tls_failed"' in answer
    assert b"certificate" not in head_and_body(answer)[1].lower()  # no internals to the client
    event = events.events[-1]
    assert event.action == "upstream.tls_failed"
    assert "certificate verify failed" in event.reason
    assert event.fields == {"route": "api", "upstream": f"localhost:{upstream_tls.port}"}


async def test_a_certificate_for_another_name_is_refused(ca: trustme.CA, tmp_path: Path) -> None:
    up = await start_tls_upstream(issue(ca, tmp_path / "up", "other", "other.example.test"))
    try:
        config = config_for(
            [{"name": "api", "upstream": up.url}], upstream={"ca": ca_file(ca, tmp_path)}
        )
        [answer], events = await get(config)
    finally:
        up.close()
    assert status_of(answer) == 502
    assert b"upstream.tls_failed" in answer
    assert (
        "Hostname mismatch" in events.events[-1].reason
        or "hostname" in events.events[-1].reason.lower()
    )


async def test_server_name_names_the_certificate_to_expect(ca: trustme.CA, tmp_path: Path) -> None:
    up = await start_tls_upstream(issue(ca, tmp_path / "up", "svc", "svc.internal"))
    try:
        config = config_for(
            [{"name": "api", "upstream": f"https://127.0.0.1:{up.port}"}],
            upstream={"ca": ca_file(ca, tmp_path), "server_name": "svc.internal"},
        )
        [answer], _ = await get(config)
    finally:
        up.close()
    assert status_of(answer) == 200


async def test_verify_false_is_a_spelled_out_choice(upstream_tls: TLSUpstream) -> None:
    config = config_for([{"name": "api", "upstream": upstream_tls.url}], upstream={"verify": False})
    [answer], _ = await get(config)
    assert status_of(answer) == 200


async def test_a_client_certificate_is_presented(ca: trustme.CA, tmp_path: Path) -> None:
    server = issue(ca, tmp_path / "up", "upstream", "localhost")
    client = issue(ca, tmp_path / "client", "gateway", "gateway.internal", common_name="bastion-gw")
    up = await start_tls_upstream(server, client_ca=client)
    try:
        without = config_for(
            [{"name": "api", "upstream": up.url}], upstream={"ca": ca_file(ca, tmp_path)}
        )
        [refused], _ = await get(without)
        assert status_of(refused) == 502  # the upstream wants a certificate
        with_cert = config_for(
            [{"name": "api", "upstream": up.url}],
            upstream={
                "ca": ca_file(ca, tmp_path),
                "client_cert": str(client.cert),
                "client_key": str(client.key),
            },
        )
        [answer], _ = await get(with_cert)
    finally:
        up.close()
    assert status_of(answer) == 200
    assert orjson.loads(head_and_body(answer)[1])["client"] == "bastion-gw"


async def test_spki_pins(upstream_tls: TLSUpstream, ca: trustme.CA, tmp_path: Path) -> None:
    right = leaf_facts(tmp_path / "up" / "upstream.pem").pin
    backup = leaf_facts(issue(ca, tmp_path / "b", "backup", "localhost").cert).pin
    wrong = leaf_facts(issue(trustme.CA(), tmp_path / "w", "wrong", "localhost").cert).pin
    trusted = ca_file(ca, tmp_path)
    routes = [{"name": "api", "upstream": upstream_tls.url}]

    [answer], _ = await get(config_for(routes, upstream={"ca": trusted, "pins": [backup, right]}))
    assert status_of(answer) == 200

    [answer], events = await get(config_for(routes, upstream={"ca": trusted, "pins": [wrong]}))
    assert status_of(answer) == 502
    assert b"upstream.tls_failed" in answer
    event = events.events[-1]
    assert event.action == "upstream.tls_failed"
    assert "matches no configured pin" in event.reason
    assert right in event.reason  # the key that was met, for the operator


async def test_routes_can_have_their_own_upstream_settings(
    upstream_tls: TLSUpstream, ca: trustme.CA, tmp_path: Path
) -> None:
    wrong = leaf_facts(issue(trustme.CA(), tmp_path / "w", "wrong", "localhost").cert).pin
    config = config_for(
        [
            {"name": "pinned", "upstream": upstream_tls.url, "path_prefix": "/pinned"},
            {"name": "plain", "upstream": upstream_tls.url, "path_prefix": "/plain"},
        ],
        upstream={"ca": ca_file(ca, tmp_path)},
        upstream_routes={"pinned": {"ca": ca_file(ca, tmp_path), "pins": [wrong]}},
    )
    [refused], _ = await get(config, "/pinned/x")
    [served], _ = await get(config, "/plain/x")
    assert status_of(refused) == 502
    assert status_of(served) == 200


def test_bad_upstream_tls_files_fail_at_start(tmp_path: Path) -> None:
    from bastion.errors import ConfigError
    from bastion.tls.upstream import check_upstream_tls

    missing = tmp_path / "nope.pem"
    config = config_for(
        [{"name": "api", "upstream": "https://localhost:1"}], upstream={"ca": str(missing)}
    )
    with pytest.raises(ConfigError, match="not a readable PEM CA bundle"):
        check_upstream_tls(config)


def test_upstream_routes_must_name_routes() -> None:
    with pytest.raises(ValueError, match="unknown route"):
        config_for([{"name": "api", "upstream": "https://x"}], upstream_routes={"apj": {}})
