"""Field-level encryption: JWE round trips (checked with joserfc, an independent JOSE library),
rotation, refusals, JSON pointers, the gateway guard, and the CLI."""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

import orjson
import pytest
from click.testing import CliRunner
from joserfc import jwe
from joserfc.jwk import OctKey

from bastion.cli.main import cli
from bastion.config.models import BastionConfig
from bastion.fields import (
    FieldEncryptionError,
    KeyRing,
    decrypt,
    decrypt_fields,
    encrypt,
    encrypt_fields,
    load_key_ring,
    token_kid,
)
from bastion.tls.field_guard import FieldEncryptionGuard
from tests.engine.helpers import FAST_TIMEOUTS, raw, start_gateway, status_of
from tests.engine.upstream_app import Upstream


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


@pytest.fixture
def ring() -> KeyRing:
    ring = KeyRing()
    ring.add("k1")
    return ring


@pytest.mark.parametrize(
    "value", ["4111 1111 1111 1111", "", "ünïcødé ✓", 42, 3.5, True, None, {"a": [1, "b"]}, [1, 2]]
)
def test_round_trip_keeps_the_json_type(ring: KeyRing, value: Any) -> None:
    token = encrypt(value, ring)
    assert token.count(".") == 4
    assert token.split(".")[1] == ""  # dir: no encrypted key
    assert decrypt(token, ring) == value
    assert encrypt(value, ring) != token  # a fresh IV every time


def test_tokens_are_standard_jwe(ring: KeyRing) -> None:
    """joserfc decrypts bastion's token, and bastion decrypts joserfc's."""
    key = OctKey.import_key(ring.keys["k1"])
    token = encrypt({"number": "4111"}, ring)
    opened = jwe.decrypt_compact(token, key, algorithms=["dir", "A256GCM"])
    assert opened.protected == {"alg": "dir", "enc": "A256GCM", "kid": "k1", "cty": "json"}
    assert orjson.loads(opened.plaintext or b"") == {"number": "4111"}
    theirs = jwe.encrypt_compact(
        {"alg": "dir", "enc": "A256GCM", "kid": "k1"},
        b'"from joserfc"',
        key,
        algorithms=["dir", "A256GCM"],
    )
    assert decrypt(theirs, ring) == "from joserfc"


def test_rotation_keeps_old_values_readable_until_the_key_is_retired(ring: KeyRing) -> None:
    old = encrypt("old", ring)
    ring.add("k2")
    new = encrypt("new", ring)
    assert (token_kid(old), token_kid(new)) == ("k1", "k2")
    assert decrypt(old, ring) == "old"
    assert decrypt(new, ring) == "new"
    with pytest.raises(Exception, match="primary"):
        ring.retire("k2")
    ring.retire("k1")
    with pytest.raises(FieldEncryptionError, match="not in the key ring"):
        decrypt(old, ring)
    assert decrypt(new, ring) == "new"
    again = KeyRing.from_json(ring.to_json())
    assert again.keys == ring.keys
    assert again.primary == "k2"


def test_json_pointers(ring: KeyRing) -> None:
    doc = {
        "card": {"number": "4111", "cvc": "123"},
        "items": [{"sku": "a", "serial": "s1"}, {"sku": "b", "serial": "s2"}],
        "a/b": {"m~n": "escaped"},
        "kept": "clear",
    }
    done = encrypt_fields(
        doc, ["/card/number", "/card/cvc", "/items/*/serial", "/a~1b/m~0n", "/missing/x"], ring
    )
    assert done == ["/card/number", "/card/cvc", "/items/0/serial", "/items/1/serial", "/a~1b/m~0n"]
    assert doc["kept"] == "clear"
    assert doc["items"][0]["sku"] == "a"
    assert doc["card"]["number"] != "4111"
    decrypt_fields(doc, ["/card/number", "/card/cvc", "/items/*/serial", "/a~1b/m~0n"], ring)
    assert doc["card"] == {"number": "4111", "cvc": "123"}
    assert [i["serial"] for i in doc["items"]] == ["s1", "s2"]
    assert doc["a/b"] == {"m~n": "escaped"}


def test_the_ring_file_is_0600_and_holds_no_secret_in_listings(tmp_path: Path) -> None:
    path = tmp_path / "keys" / "field-keys.json"
    ring = load_key_ring(path, create=True)
    assert (path.stat().st_mode & 0o777) == 0o600
    assert ring.primary in ring.keys
    assert load_key_ring(path).keys == ring.keys


def gateway_config(upstream: Upstream, tmp_path: Path, **rules: Any) -> BastionConfig:
    return BastionConfig.model_validate(
        {
            "routes": [
                {"name": "payments", "upstream": upstream.url, "path_prefix": "/payments"},
                {"name": "other", "upstream": upstream.url, "path_prefix": "/other"},
            ],
            "timeouts": FAST_TIMEOUTS,
            "admin": {"enabled": False},
            "events": {"sink": "none"},
            "state_dir": str(tmp_path),
            "tls": {
                "field_encryption": {
                    "rules": [
                        {"route": "payments", "pointers": ["/card/number", "/card/cvc"], **rules}
                    ]
                }
            },
        }
    )


def post(path: str, body: bytes, content_type: str = "application/json") -> bytes:
    return (
        f"POST {path} HTTP/1.1\r\nhost: gw\r\ncontent-type: {content_type}\r\n"
        f"content-length: {len(body)}\r\nconnection: close\r\n\r\n"
    ).encode() + body


async def test_the_gateway_encrypts_fields_before_the_upstream(
    upstream: Upstream, tmp_path: Path
) -> None:
    config = gateway_config(upstream, tmp_path)
    guard = FieldEncryptionGuard(config)
    gateway = await start_gateway(config, guards=[guard])
    order = {"card": {"number": "4111 1111 1111 1111", "cvc": "123"}, "amount": 1250}
    try:
        answer = await raw(gateway.port, post("/payments/charge", orjson.dumps(order)))
        untouched = await raw(gateway.port, post("/other/x", orjson.dumps(order)))
    finally:
        await gateway.shutdown(1.0)
    assert status_of(answer) == 200
    seen = upstream.seen[0]
    received = orjson.loads(seen.body)
    assert seen.body_bytes == len(seen.body)  # the new length was sent
    assert received["amount"] == 1250
    assert b"4111" not in seen.body
    assert b'"123"' not in seen.body
    ring = load_key_ring(tmp_path / "field-keys.json")
    decrypt_fields(received, ["/card/number", "/card/cvc"], ring)
    assert received == order
    assert status_of(untouched) == 200
    assert orjson.loads(upstream.seen[1].body) == order


async def test_bodies_that_are_not_json_are_refused_not_forwarded(
    upstream: Upstream, tmp_path: Path
) -> None:
    config = gateway_config(upstream, tmp_path)
    gateway = await start_gateway(config, guards=[FieldEncryptionGuard(config)])
    try:
        form = await raw(
            gateway.port, post("/payments/x", b"card=4111", "application/x-www-form-urlencoded")
        )
        broken = await raw(gateway.port, post("/payments/x", b'{"card": '))
        get = await raw(
            gateway.port, b"GET /payments/x HTTP/1.1\r\nhost: gw\r\nconnection: close\r\n\r\n"
        )
    finally:
        await gateway.shutdown(1.0)
    assert status_of(form) == 415
    assert b"fields.unsupported_media_type" in form
    assert status_of(broken) == 400
    assert b"fields.invalid_json" in broken
    assert b"4111" not in form + broken  # never echoed
    assert status_of(get) == 200  # methods outside the rule pass as they are
    assert [s.method for s in upstream.seen] == ["GET"]


async def test_a_rotated_ring_is_picked_up_without_restart(
    upstream: Upstream, tmp_path: Path
) -> None:
    config = gateway_config(upstream, tmp_path)
    now = [0.0]
    guard = FieldEncryptionGuard(config, clock=lambda: now[0])
    first = guard.ring.primary
    result = CliRunner().invoke(
        cli, ["fields", "keygen", "--state-dir", str(tmp_path), "--kid", "next"]
    )
    assert result.exit_code == 0, result.output
    now[0] = 10.0
    gateway = await start_gateway(config, guards=[guard])
    try:
        await raw(gateway.port, post("/payments/x", b'{"card": {"number": "1"}}'))
    finally:
        await gateway.shutdown(1.0)
    token = orjson.loads(upstream.seen[0].body)["card"]["number"]
    assert token_kid(token) == "next"
    assert first in guard.ring.keys  # the old key still decrypts


def test_cli_keygen_encrypt_decrypt_retire(tmp_path: Path) -> None:
    runner = CliRunner()
    args = ["--keys-file", str(tmp_path / "ring.json")]
    made = runner.invoke(cli, ["fields", "keygen", *args, "--kid", "a"])
    assert made.exit_code == 0, made.output
    ring_text = (tmp_path / "ring.json").read_text()
    secret = json.loads(ring_text)["keys"][0]["k"]
    assert secret not in made.output
    token = runner.invoke(cli, ["fields", "encrypt", *args, "4111 1111"]).output.strip()
    assert token_kid(token) == "a"
    assert runner.invoke(cli, ["fields", "decrypt", *args, token]).output == "4111 1111\n"
    number = runner.invoke(cli, ["fields", "encrypt", *args, "--json", '{"n": 5}']).output.strip()
    assert (
        runner.invoke(cli, ["fields", "decrypt", *args], input=number + "\n").output == '{"n":5}\n'
    )
    runner.invoke(cli, ["fields", "keygen", *args, "--kid", "b"])
    listed = runner.invoke(cli, ["fields", "list", *args]).output
    assert "a  created" in listed
    assert "b  created" in listed
    assert "(primary)" in listed.splitlines()[1]
    assert secret not in listed
    assert runner.invoke(cli, ["fields", "retire", *args, "a"]).exit_code == 0
    failed = runner.invoke(cli, ["fields", "decrypt", *args, token])
    assert failed.exit_code == 1
    assert "not in the key ring" in failed.output
    assert runner.invoke(cli, ["fields", "retire", *args, "b"]).exit_code == 2  # the primary


def test_rules_must_name_routes_and_pointers() -> None:
    with pytest.raises(ValueError, match="unknown route"):
        BastionConfig.model_validate(
            {
                "routes": [{"name": "api", "upstream": "http://x"}],
                "tls": {"field_encryption": {"rules": [{"route": "apx", "pointers": ["/a"]}]}},
            }
        )
    with pytest.raises(ValueError, match="not a JSON pointer"):
        BastionConfig.model_validate(
            {
                "tls": {
                    "field_encryption": {"rules": [{"route": "api", "pointers": ["card.number"]}]}
                }
            }
        )


def response_config(upstream: Upstream, tmp_path: Path, **extra: Any) -> BastionConfig:
    config = gateway_config(upstream, tmp_path, direction="both")
    if extra:
        config = config.model_copy(update={"limits": config.limits.model_copy(update=extra)})
    return config


def get(path: str, method: str = "GET") -> bytes:
    return f"{method} {path} HTTP/1.1\r\nhost: gw\r\nconnection: close\r\n\r\n".encode()


def json_reply(body: bytes, *, chunked: bool = False, extra: bytes = b"") -> list[bytes]:
    head = b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\n" + extra
    if not chunked:
        return [head + b"content-length: %d\r\n\r\n" % len(body) + body]
    half = len(body) // 2
    return [
        head + b"transfer-encoding: chunked\r\n\r\n",
        b"%x\r\n%s\r\n" % (half, body[:half]),
        b"%x\r\n%s\r\n0\r\n\r\n" % (len(body) - half, body[half:]),
    ]


def body_of(answer: bytes) -> bytes:
    return answer.partition(b"\r\n\r\n")[2]


def header_of(answer: bytes, name: bytes) -> bytes | None:
    for line in answer.partition(b"\r\n\r\n")[0].split(b"\r\n")[1:]:
        key, _, value = line.partition(b":")
        if key.strip().lower() == name:
            return value.strip()
    return None


@pytest.mark.parametrize("chunked", [False, True], ids=["content-length", "chunked"])
async def test_a_response_rule_decrypts_what_the_upstream_stored(
    upstream: Upstream, tmp_path: Path, chunked: bool
) -> None:
    config = response_config(upstream, tmp_path)
    guard = FieldEncryptionGuard(config)
    order = {"card": {"number": "4111 1111 1111 1111", "cvc": "123"}, "amount": 1250}
    gateway = await start_gateway(config, guards=[guard])
    try:
        await raw(gateway.port, post("/payments/charge", orjson.dumps(order)))
        stored = upstream.seen[0].body  # what the upstream keeps: ciphertext
        assert b"4111" not in stored
        upstream.replies["/payments/orders/1"] = json_reply(stored, chunked=chunked)
        answer = await raw(gateway.port, get("/payments/orders/1"))
        upstream.replies["/other/orders/1"] = json_reply(stored)
        elsewhere = await raw(gateway.port, get("/other/orders/1"))
    finally:
        await gateway.shutdown(1.0)
    assert status_of(answer) == 200
    body = body_of(answer)
    assert orjson.loads(body) == order
    assert header_of(answer, b"content-length") == str(len(body)).encode()
    assert header_of(answer, b"transfer-encoding") is None
    assert header_of(answer, b"content-type") == b"application/json"
    # a route without a response rule streams the stored ciphertext through untouched
    assert body_of(elsewhere) == stored


async def test_a_response_that_cannot_be_decrypted_is_refused_not_sent(
    upstream: Upstream, tmp_path: Path
) -> None:
    config = response_config(upstream, tmp_path)
    plain = orjson.dumps({"card": {"number": "4111 1111 1111 1111"}})
    upstream.replies["/payments/plain"] = json_reply(plain)
    gateway = await start_gateway(config, guards=[FieldEncryptionGuard(config)])
    try:
        answer = await raw(gateway.port, get("/payments/plain"))
    finally:
        await gateway.shutdown(1.0)
    assert status_of(answer) == 502
    assert b"upstream.response_unprocessable" in answer
    assert b"4111" not in answer


async def test_responses_the_rule_cannot_read_pass_through_untouched(
    upstream: Upstream, tmp_path: Path
) -> None:
    config = response_config(upstream, tmp_path)
    gzipped = b"\x1f\x8b\x08\x00not really gzip"
    upstream.replies["/payments/gz"] = json_reply(gzipped, extra=b"content-encoding: gzip\r\n")
    upstream.replies["/payments/text"] = [
        b"HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\ncontent-length: 5\r\n\r\nhello"
    ]
    gateway = await start_gateway(config, guards=[FieldEncryptionGuard(config)])
    try:
        gz = await raw(gateway.port, get("/payments/gz"))
        text = await raw(gateway.port, get("/payments/text"))
        head = await raw(gateway.port, get("/payments/text", "HEAD"))
    finally:
        await gateway.shutdown(1.0)
    assert body_of(gz) == gzipped
    assert body_of(text) == b"hello"
    assert status_of(head) == 200
    assert body_of(head) == b""


async def test_a_held_response_over_the_body_limit_is_refused(
    upstream: Upstream, tmp_path: Path
) -> None:
    config = response_config(upstream, tmp_path, max_body_bytes=1024)
    big = orjson.dumps({"card": {"number": "x" * 4000}})
    upstream.replies["/payments/big"] = json_reply(big, chunked=True)
    gateway = await start_gateway(config, guards=[FieldEncryptionGuard(config)])
    try:
        answer = await raw(gateway.port, get("/payments/big"))
        after = await raw(gateway.port, get("/payments/next"))
    finally:
        await gateway.shutdown(1.0)
    assert status_of(answer) == 502
    assert b"upstream.response_unprocessable" in answer
    assert b"xxxx" not in answer
    assert status_of(after) == 200  # the gateway goes on serving


async def test_an_upstream_failing_while_its_response_is_held_is_a_502(
    upstream: Upstream, tmp_path: Path
) -> None:
    config = response_config(upstream, tmp_path)
    gateway = await start_gateway(config, guards=[FieldEncryptionGuard(config)])
    upstream.replies["/payments/cut"] = [
        b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 100\r\n\r\n{",
        b"",  # the upstream goes away with 99 bytes missing
    ]
    try:
        answer = await raw(gateway.port, get("/payments/cut"))
    finally:
        await gateway.shutdown(1.0)
    assert status_of(answer) == 502
    assert b"upstream." in answer
