"""Redaction: credential-shaped text and secret-named fields never leave the writer."""

from __future__ import annotations

from bastion.observability.redact import REDACTED, Redactor

KEY = "bst_AbCdEf012345_" + "x9" * 19
JWT = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJhbGljZSJ9.c2lnbmF0dXJlLWJ5dGVz"


def test_credential_shapes_are_replaced_in_text() -> None:
    redactor = Redactor()
    for secret in (KEY, JWT, "Bearer abcdefgh12345678", "api_key=hunter2secret"):
        text = redactor.text(f"refused {secret} at once")
        assert secret not in text
        assert REDACTED in text
    assert redactor.text("signature does not verify") == "signature does not verify"


def test_paths_lose_secrets_and_keep_identifiers() -> None:
    redactor = Redactor()
    assert redactor.path(f"/keys/{KEY}/x") == f"/keys/{REDACTED}/x"
    assert redactor.path(f"/t/{JWT}") == f"/t/{REDACTED}"
    assert redactor.path("/reset/Zq8xV2mN7pL4kR9sT1wY6bC3") == f"/reset/{REDACTED}"
    assert redactor.path("/orders/42") == "/orders/42"
    uuid = "/orders/123e4567-e89b-12d3-a456-426614174000"
    assert redactor.path(uuid) == uuid
    assert redactor.path("/a-rather-long-but-plain-path-segment") == (
        "/a-rather-long-but-plain-path-segment"
    )


def test_operator_patterns_apply_to_short_paths_too() -> None:
    redactor = Redactor(path_patterns=[r"(?<=/pin/)\d+"])
    assert redactor.path("/pin/1234") == f"/pin/{REDACTED}"


def test_secret_named_fields_are_replaced_whatever_their_value() -> None:
    redactor = Redactor(fields=["X-Internal-Ref"])
    fields = redactor.fields(
        {
            "password": "pw",
            "Authorization": "Basic x",
            "refresh_token": "r",
            "client_secret": "s",
            "x_internal_ref": "mine",
            "nested": {"cookie": "c", "kid": "k1"},
            "kid": "k1",
            "note": f"sent {KEY}",
        }
    )
    assert fields == {
        "password": REDACTED,
        "Authorization": REDACTED,
        "refresh_token": REDACTED,
        "client_secret": REDACTED,
        "x_internal_ref": REDACTED,
        "nested": {"cookie": REDACTED, "kid": "k1"},
        "kid": "k1",
        "note": f"sent {REDACTED}",
    }


def test_request_ids_from_a_trusted_proxy_are_scrubbed_too() -> None:
    redactor = Redactor()
    assert redactor.request_id("b1c0ffee00000001") == "b1c0ffee00000001"
    assert redactor.request_id(f"lb-{JWT}") == f"lb-{REDACTED}"
