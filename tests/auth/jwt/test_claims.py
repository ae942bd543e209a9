"""The claims policy apart from the verifier."""

from __future__ import annotations

import pytest

from bastion.auth.jwt.claims import ClaimsPolicy, check_claims, scopes_of
from bastion.auth.jwt.errors import TokenRejected
from tests.auth.jwt import forge
from tests.auth.jwt.forge import AUDIENCE, ISSUER, NOW

POLICY = ClaimsPolicy(ISSUER, frozenset({AUDIENCE}))


def test_policy_needs_an_audience_and_a_sane_leeway() -> None:
    with pytest.raises(ValueError, match="audience"):
        ClaimsPolicy(ISSUER, frozenset())
    with pytest.raises(ValueError, match="leeway"):
        ClaimsPolicy(ISSUER, frozenset({AUDIENCE}), leeway=-1)


def test_returns_exp() -> None:
    assert check_claims(forge.claims(), None, POLICY, now=NOW) == NOW + 300


def test_required_claims() -> None:
    policy = ClaimsPolicy(ISSUER, frozenset({AUDIENCE}), required=frozenset({"client_id"}))
    with pytest.raises(TokenRejected, match="required claim client_id is missing"):
        check_claims(forge.claims(client_id=None), None, policy, now=NOW)
    with pytest.raises(TokenRejected, match="required claim exp is missing"):
        check_claims(forge.claims(exp=None), None, POLICY, now=NOW)


def test_null_time_claim_refused() -> None:
    with pytest.raises(TokenRejected, match="nbf is null"):
        check_claims({**forge.claims(), "nbf": None}, None, POLICY, now=NOW)


def test_max_lifetime() -> None:
    policy = ClaimsPolicy(ISSUER, frozenset({AUDIENCE}), max_lifetime=600)
    check_claims(forge.claims(exp=int(NOW) + 600), None, policy, now=NOW)
    with pytest.raises(TokenRejected, match="lifetime exceeds"):
        check_claims(forge.claims(exp=int(NOW) + 601), None, policy, now=NOW)
    with pytest.raises(TokenRejected, match="iat is missing"):
        check_claims(forge.claims(iat=None), None, policy, now=NOW)


@pytest.mark.parametrize(
    ("claims", "scopes"),
    [
        ({"scope": "a b  c"}, {"a", "b", "c"}),
        ({"scope": ""}, set()),
        ({"scp": ["a", "b"]}, {"a", "b"}),
        ({"scp": "a b"}, {"a", "b"}),
        ({"scope": "a", "scp": ["b"]}, {"a"}),
        ({}, set()),
    ],
)
def test_scopes(claims: dict[str, object], scopes: set[str]) -> None:
    assert scopes_of(claims) == scopes
