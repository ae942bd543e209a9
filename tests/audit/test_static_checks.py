"""Every static check fires on a deliberately weak document and stays quiet on a strong one.

weak.yaml breaks one rule per check (see its comments in the assertions below); strong.yaml is
the same orders API written carefully, with shared components and $refs, so the checks must
follow references to see that it is safe.
"""

from __future__ import annotations

import pytest

from bastion.audit.checks import default_registry
from bastion.audit.model import Kind, Outcome

from .helpers import document, failures, outcomes, run_static

STATIC_IDS = sorted(e.info.id for e in default_registry() if e.info.kind is Kind.STATIC)

# check id -> {location: a word the message must contain} on weak.yaml
WEAK = {
    "static.security-on-writes": {
        "/paths/~1orders/post/security": "no security requirement",
        "/paths/~1orders~1{id}/delete/security": "undefined security schemes: nonexistent",
    },
    "static.credentials-in-url": {
        "/components/securitySchemes/queryKey": "query string",
        "/paths/~1orders/get/parameters/0": "'token'",
    },
    "static.weak-auth-schemes": {
        "/components/securitySchemes/basic": "HTTP Basic",
        "/components/securitySchemes/legacy/flows/implicit": "implicit",
        "/components/securitySchemes/legacy/flows/password": "password",
    },
    "static.https-servers": {"/servers/0/url": "http://api.example.com/v1"},
    "static.https-security-urls": {
        "/components/securitySchemes/legacy/flows/implicit/authorizationUrl": "plain-HTTP",
    },
    "static.unauthorized-response": {
        "/paths/~1orders/get/responses": "no 401",
        "/paths/~1orders~1{id}/delete/responses/401": "no WWW-Authenticate",
    },
    "static.forbidden-response": {
        "/paths/~1orders/get/responses": "no 403",
        "/paths/~1orders~1{id}/delete/responses": "no 403",
    },
    "static.rate-limit-response": {
        "/paths/~1orders/get/responses": "no 429",
        "/paths/~1orders/post/responses": "no 429",
        "/paths/~1orders~1{id}/delete/responses/429": "no Retry-After",
    },
    "static.error-responses": {
        "/paths/~1orders/get/responses": "400 or 422",
        "/paths/~1orders/post/responses": "400 or 422",
        "/paths/~1orders~1{id}/delete/responses": "400 or 422",
    },
    "static.schema-typed": {"/components/schemas/Order/properties/extra": "no type"},
    "static.string-max-length": {"/components/schemas/Order/properties/item": "maxLength"},
    "static.string-pattern": {"/components/schemas/Order/properties/item": "no pattern"},
    "static.numeric-range": {
        "/components/schemas/Order/properties/quantity": "no minimum and maximum",
    },
    "static.array-max-items": {"/components/schemas/Order/properties/tags": "maxItems"},
    "static.closed-objects": {"/components/schemas/Order": "undeclared properties"},
    "static.security-on-reads": {
        "/paths/~1status/get": "no security requirement",
        "/paths/~1reports/get/security": "anonymous",
    },
}
WEAK_DOCUMENT = {"static.security-on-reads": "public-reads.yaml"}


def test_every_static_check_has_a_weak_case() -> None:
    assert sorted(WEAK) == STATIC_IDS


@pytest.mark.parametrize("check_id", STATIC_IDS)
def test_fires_on_the_weak_document(check_id: str) -> None:
    findings = run_static(check_id, document(WEAK_DOCUMENT.get(check_id, "weak.yaml")))
    found = failures(findings)
    assert sorted(found) == sorted(WEAK[check_id])
    for location, word in WEAK[check_id].items():
        assert word in found[location]
    assert all(f.check.id == check_id for f in findings)


@pytest.mark.parametrize("check_id", STATIC_IDS)
def test_quiet_on_the_strong_document(check_id: str) -> None:
    findings = run_static(check_id, document("strong.yaml"))
    assert outcomes(findings) == {Outcome.PASS}, [f.message for f in findings]


@pytest.mark.parametrize("check_id", STATIC_IDS)
def test_an_empty_document_is_skipped_or_passed_never_failed(check_id: str) -> None:
    findings = run_static(check_id, document("empty.yaml"))
    assert outcomes(findings) <= {Outcome.PASS, Outcome.SKIP}


def test_the_loopback_server_of_the_weak_document_is_not_reported() -> None:
    found = failures(run_static("static.https-servers", document("weak.yaml")))
    assert "/servers/1/url" not in found


def test_a_shared_schema_is_reported_once_where_it_is_defined() -> None:
    doc = document("weak.yaml")
    doc["paths"]["/orders"]["put"] = doc["paths"]["/orders"]["post"]
    found = failures(run_static("static.closed-objects", doc))
    assert list(found) == ["/components/schemas/Order"]


def test_a_path_level_parameter_is_examined_with_its_operations() -> None:
    doc = document("strong.yaml")
    del doc["components"]["parameters"]["OrderId"]["schema"]["maximum"]
    found = failures(run_static("static.numeric-range", doc))
    assert list(found) == ["/components/parameters/OrderId/schema"]


def test_a_reference_cycle_does_not_loop_forever() -> None:
    doc = document("strong.yaml")
    order = doc["components"]["schemas"]["Order"]
    order["properties"]["parent"] = {"$ref": "#/components/schemas/Order"}
    assert outcomes(run_static("static.closed-objects", doc)) == {Outcome.PASS}


def test_json_pointers_escape_slashes_and_tildes() -> None:
    doc = document("empty.yaml")
    doc["paths"]["/a~b/c"] = {"post": {"responses": {"200": {"description": "ok"}}}}
    found = failures(run_static("static.security-on-writes", doc))
    assert list(found) == ["/paths/~1a~0b~1c/post"]


def test_a_cors_preflight_operation_needs_no_security() -> None:
    doc = document("strong.yaml")
    doc["paths"]["/orders"]["options"] = {
        "security": [],
        "responses": {"204": {"description": "preflight"}},
    }
    assert outcomes(run_static("static.security-on-reads", doc)) == {Outcome.PASS}


def test_a_resource_key_in_the_path_is_not_a_credential_but_in_the_query_it_is() -> None:
    doc = document("strong.yaml")
    doc["paths"]["/objects/{key}"] = {
        "get": {
            "parameters": [
                {"name": "key", "in": "path", "required": True, "schema": {"type": "string"}},
                {"name": "api_key", "in": "query", "schema": {"type": "string"}},
            ],
            "responses": {"200": {"description": "ok"}},
        },
        "delete": {
            "parameters": [
                {"name": "password", "in": "path", "required": True, "schema": {"type": "string"}}
            ],
            "responses": {"204": {"description": "ok"}},
        },
    }
    found = failures(run_static("static.credentials-in-url", doc))
    assert sorted(found) == [
        "/paths/~1objects~1{key}/delete/parameters/0",
        "/paths/~1objects~1{key}/get/parameters/1",
    ]


def test_an_operation_declared_public_with_a_reason_passes_and_is_named() -> None:
    doc = document("strong.yaml")
    login = {"security": [], "responses": {"200": {"description": "a token"}}}
    doc["paths"]["/login"] = {"post": {**login, "x-bastion-public": "the login endpoint"}}
    found = run_static("static.security-on-writes", doc)
    assert outcomes(found) == {Outcome.PASS}
    assert "public on purpose (x-bastion-public): POST /login" in found[0].message


@pytest.mark.parametrize(
    "operation",
    [
        {"security": []},  # explicitly empty, but no reason given
        {"x-bastion-public": "   "},  # a blank reason
        {"x-bastion-public": "login"},  # a reason, but the security is inherited, not declared
        {"security": [{"apiKey": []}, {}], "x-bastion-public": "login"},  # anonymous as a choice
    ],
)
def test_public_needs_an_explicit_empty_security_and_a_reason(operation: dict[str, object]) -> None:
    doc = document("strong.yaml")
    doc["security"] = []
    doc["paths"]["/login"] = {"post": {**operation, "responses": {"200": {"description": "ok"}}}}
    assert "/paths/~1login/post" in "".join(failures(run_static("static.security-on-writes", doc)))
