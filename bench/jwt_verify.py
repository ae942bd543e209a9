"""Microseconds per token verification: bastion cached, bastion uncached, and PyJWT side by side.

Single thread, no I/O. For each algorithm (EdDSA, ES256, RS256) a pool of 1,000 distinct
RFC 9068 access tokens is verified round-robin by:

- ``bastion cached``: ``TokenVerifier.verify_nowait`` with the verified-token cache warm (what
  a guard pays per request for a token it has seen: hash, lookup, revocation check);
- ``bastion uncached``: the same call with the cache disabled (parse, signature, claims);
- ``pyjwt``: ``jwt.decode`` with the same key, algorithm allowlist, ``iss``/``aud``/``exp``
  checks (PyJWT has no cache, so this is its per-request cost). PyJWT is not a dependency of
  bastion: if it is not installed the peer is skipped and the run says so.

Rounds interleave the candidates (their order rotates each round); ratios are taken within a
round and the median over rounds is printed.

    PYTHONPATH=src .venv/bin/python bench/jwt_verify.py             # about a minute
    PYTHONPATH=src .venv/bin/python bench/jwt_verify.py --rounds 3  # quicker
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import statistics
import time
from collections.abc import Callable
from typing import Any

from bastion.auth.jwt import (
    MemorySigningKeyStore,
    SigningKeys,
    TokenCache,
    TokenVerifier,
    VerifiedToken,
)
from bastion.auth.jwt.claims import ClaimsPolicy
from bastion.auth.jwt.jose import VerificationKey
from bastion.auth.jwt.keyset import StaticKeys
from bastion.auth.jwt.verifier import Issuer

try:
    import jwt as pyjwt
except ImportError:  # not a dependency
    pyjwt = None

ISSUER = "https://gateway.bench.test"
AUDIENCE = "https://api.bench.test"
POOL = 1000

Verify = Callable[[str], Any]


def rsa_tokens(count: int) -> tuple[list[str], Any, str]:
    """RS256 tokens, as an identity provider would issue them (bastion signs only EdDSA/ES256)."""
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import padding, rsa

    from bastion.auth.jwt.jose import b64url_encode

    private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    now = int(time.time())
    tokens = []
    for i in range(count):
        head = b64url_encode(b'{"alg":"RS256","typ":"at+jwt","kid":"rsa-1"}')
        body = b64url_encode(
            (
                f'{{"iss":"{ISSUER}","sub":"svc-{i}","aud":"{AUDIENCE}","exp":{now + 3600},'
                f'"iat":{now},"jti":"j{i}","client_id":"svc-{i}","scope":"read"}}'
            ).encode()
        )
        sig = private.sign(f"{head}.{body}".encode(), padding.PKCS1v15(), hashes.SHA256())
        tokens.append(f"{head}.{body}.{b64url_encode(sig)}")
    return tokens, private.public_key(), "rsa-1"


async def signed_tokens(alg: str, count: int) -> tuple[list[str], Any, str]:
    if alg == "RS256":
        return rsa_tokens(count)
    algorithm: Any = alg
    keys = SigningKeys(
        MemorySigningKeyStore(), issuer=ISSUER, algorithm=algorithm, max_token_lifetime=3600
    )
    await keys.load()
    tokens = [
        keys.issue_access_token(
            subject=f"svc-{i}", client_id=f"svc-{i}", audience=AUDIENCE, lifetime=3600
        ).token
        for i in range(count)
    ]
    current = keys.current()
    assert current is not None
    key = keys.find(current.kid, alg, time.time())
    assert key is not None
    return tokens, key.material, current.kid


def bastion_verifier(alg: str, public: Any, kid: str | None, cache_size: int) -> TokenVerifier:
    policy = ClaimsPolicy(ISSUER, frozenset({AUDIENCE}), token_type="at+jwt")  # noqa: S106
    key = VerificationKey(kid, frozenset({alg}), public)
    return TokenVerifier(
        [Issuer(policy, frozenset({alg}), StaticKeys([key]), "jwt")],
        cache=TokenCache(cache_size),
    )


def measure(verify: Verify, tokens: list[str], seconds: float) -> float:
    """Microseconds per verification, over whole passes of the pool for about ``seconds``."""
    gc.collect()
    done = 0
    start = time.perf_counter()
    while True:
        for token in tokens:
            verify(token)
        done += len(tokens)
        elapsed = time.perf_counter() - start
        if elapsed >= seconds:
            return elapsed / done * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--seconds", type=float, default=0.8, help="per candidate per round")
    args = parser.parse_args()
    if pyjwt is None:
        print("PyJWT is not installed: the peer is skipped (pip install pyjwt to compare)")
    else:
        print(f"peer: PyJWT {pyjwt.__version__}")
    for alg in ("EdDSA", "ES256", "RS256"):
        tokens, public, kid = asyncio.run(signed_tokens(alg, POOL))
        cached = bastion_verifier(alg, public, kid, POOL * 2)
        uncached = bastion_verifier(alg, public, kid, 0)
        for token in tokens:
            assert isinstance(cached.verify_nowait(token), VerifiedToken)
        candidates: dict[str, Verify] = {
            "bastion cached": cached.verify_nowait,
            "bastion uncached": uncached.verify_nowait,
        }
        if pyjwt is not None:

            def peer(token: str, public: Any = public, alg: str = alg) -> Any:
                return pyjwt.decode(
                    token,
                    public,
                    algorithms=[alg],
                    audience=AUDIENCE,
                    issuer=ISSUER,
                    options={"require": ["exp", "iss", "aud"]},
                )

            peer(tokens[0])
            candidates["pyjwt"] = peer
        results: dict[str, list[float]] = {name: [] for name in candidates}
        names = list(candidates)
        for round_number in range(args.rounds):
            order = names[round_number % len(names) :] + names[: round_number % len(names)]
            for name in order:
                results[name].append(measure(candidates[name], tokens, args.seconds))
        print(f"\n{alg}  (median of {args.rounds} rounds, {POOL} distinct tokens)")
        for name in names:
            print(f"  {name:18s} {statistics.median(results[name]):9.2f} us/verify")
        speedup = [
            u / c
            for u, c in zip(results["bastion uncached"], results["bastion cached"], strict=True)
        ]
        print(f"  cache speed-up: {statistics.median(speedup):.1f}x")
        if "pyjwt" in results:
            ratio = [
                p / u for p, u in zip(results["pyjwt"], results["bastion uncached"], strict=True)
            ]
            cached_ratio = [
                p / c for p, c in zip(results["pyjwt"], results["bastion cached"], strict=True)
            ]
            print(f"  bastion uncached vs pyjwt: {statistics.median(ratio):.2f}x pyjwt's speed")
            print(
                f"  bastion cached vs pyjwt:   {statistics.median(cached_ratio):.1f}x pyjwt's speed"
            )


if __name__ == "__main__":
    main()
