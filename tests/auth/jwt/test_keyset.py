"""Key lookup: kid is a dictionary key; without a kid only an unambiguous key is used."""

from __future__ import annotations

import pytest

from bastion.auth.jwt.errors import TokenRejected
from bastion.auth.jwt.jose import VerificationKey
from bastion.auth.jwt.keyset import KeySet
from tests.auth.jwt import forge


def key(kid: str | None, alg: str) -> VerificationKey:
    return VerificationKey(
        kid, frozenset({alg}), forge.private_for(alg).public_key(), f"t-{kid}-{alg}"
    )


def test_lookup_by_kid_and_alg() -> None:
    keys = KeySet.of([key("a", "EdDSA"), key("a", "ES256"), key("b", "RS256")])
    assert len(keys) == 3
    found = keys.find("a", "ES256")
    assert found is not None
    assert found.algorithms == {"ES256"}
    assert keys.find("zzz", "ES256") is None
    with pytest.raises(TokenRejected, match="does not allow"):
        keys.find("b", "ES256")


def test_without_kid_only_a_single_candidate_is_used() -> None:
    assert KeySet.of([key("a", "EdDSA"), key("b", "ES256")]).find(None, "ES256") is not None
    assert KeySet.of([key("a", "EdDSA")]).find(None, "ES256") is None
    with pytest.raises(TokenRejected, match="several keys"):
        KeySet.of([key("a", "EdDSA"), key("b", "EdDSA")]).find(None, "EdDSA")


def test_identities_tell_removed_keys() -> None:
    before = KeySet.of([key("a", "EdDSA"), key("b", "EdDSA")])
    after = KeySet.of([key("b", "EdDSA"), key("c", "EdDSA")])
    assert not before.identities() <= after.identities()
    assert KeySet.of([key("b", "EdDSA")]).identities() <= after.identities()
