"""Live authentication checks: secured operations refuse what is not a working credential, a
working credential is refused in the query string, and a 401 says how to authenticate.

The probes for a secured operation are the ones an attacker sends first: nothing, garbage in the
credential header, and credentials of another scheme (HTTP Basic where a token is expected).
``DELETE`` operations are probed only with ``--aggressive``: on an API that does not check, a
probe would delete something.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import httpx

from bastion.audit.checks.live_support import (
    Operation,
    credential_headers,
    credential_value,
    guarded,
    operations,
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

AUTH_ENFORCED = CheckInfo(
    id="live.auth-enforced",
    title="Secured operations refuse missing, malformed and wrong-scheme credentials",
    practice=Practice.AUTHENTICATION,
    severity=Severity.CRITICAL,
    kind=Kind.LIVE,
    criterion=(
        "Every secured operation answers 4xx (401 or 403 ideally) to a request without a "
        "credential, with a malformed one and with one of another scheme, and never 2xx, 3xx "
        "or 5xx."
    ),
    rationale=(
        "An operation the document declares secured but that serves anonymous callers is "
        "broken authentication, the most exploited API weakness; a 5xx on a bad credential "
        "shows the check crashes instead of refusing, and often leaks how it is built. "
        "Secured operations come from the OpenAPI document's security requirements, or are the "
        "target URL alone without a document."
    ),
    references=("OWASP API2:2023", "ASVS 5.0 V8.2.1", "RFC 9110 §15.5.2"),
)

CREDENTIAL_IN_QUERY = CheckInfo(
    id="live.credential-in-query",
    title="A working credential is refused in the query string",
    practice=Practice.AUTHENTICATION,
    severity=Severity.HIGH,
    kind=Kind.LIVE,
    criterion=(
        "The operator's working credential, moved from its header into the query string "
        "(api_key, apikey, key, access_token, token or the header's name), is not accepted."
    ),
    rationale=(
        "URLs are written to access logs, proxy logs, browser history and Referer headers; a "
        "credential accepted there leaks wherever the URL goes. RFC 9700 forbids access tokens "
        "in query parameters; API keys are no different."
    ),
    references=("OWASP API2:2023", "ASVS 5.0 V14.2.1", "RFC 9700 §4.3.2", "RFC 6750 §5.3"),
)

WWW_AUTHENTICATE = CheckInfo(
    id="live.www-authenticate",
    title="Every 401 carries WWW-Authenticate",
    practice=Practice.AUTHENTICATION,
    severity=Severity.LOW,
    kind=Kind.LIVE,
    criterion="Each 401 answer seen carries a WWW-Authenticate header naming the scheme.",
    rationale=(
        "HTTP requires a 401 to say which scheme to use (RFC 9110); clients and SDKs rely on it "
        "to refresh a token instead of failing, and with RFC 6750 the error= parameter tells an "
        "expired token from a missing one."
    ),
    references=("RFC 9110 §11.6.1", "RFC 6750 §3", "OWASP API8:2023"),
)

QUERY_NAMES = ("api_key", "apikey", "key", "access_token", "token")
WRONG_SCHEME = "Basic YXVkaXQ6YXVkaXQ="  # audit:audit - a well-formed credential of another kind


@dataclass(frozen=True, slots=True)
class Probe:
    label: str
    headers: tuple[tuple[str, str], ...]


def probes(ctx: LiveContext) -> list[Probe]:
    """Nothing; garbage in each header a credential travels in (one at a time, since an API
    that reads one header first would never look at the garbage in the next); Basic auth."""
    malformed = [
        Probe(
            f"with a malformed credential in {name}",
            ((name, "Bearer !!not-a-credential!!" if name.lower() == "authorization" else "%%%"),),
        )
        for name in credential_headers(ctx)
    ]
    return [
        Probe("without a credential", ()),
        *malformed,
        Probe("with a credential of another scheme", (("Authorization", WRONG_SCHEME),)),
    ]


def probed(ctx: LiveContext, ops: Sequence[Operation]) -> tuple[list[Operation], int]:
    # OPTIONS is left out: a CORS preflight never carries credentials, so it must be answered
    secured = [op for op in ops if op.secured and op.method != "OPTIONS"]
    if ctx.aggressive:
        return secured, 0
    kept = [op for op in secured if op.method != "DELETE"]
    return kept, len(secured) - len(kept)


@guarded(AUTH_ENFORCED)
async def check_auth_enforced(ctx: LiveContext) -> list[Finding]:
    ops, held_back = probed(ctx, operations(ctx))
    if not ops:
        return [skipped(AUTH_ENFORCED, "no operation is secured in the document")]
    bad: list[Evidence] = []
    unauthorized: list[tuple[Operation, Probe, httpx.Response]] = []
    for op in ops:
        for probe in probes(ctx):
            response = await ctx.request(op.method, op.path, headers=probe.headers)
            if response.status_code == 401:
                unauthorized.append((op, probe, response))
            if 400 <= response.status_code < 500:
                continue
            served = "crashed (5xx)" if response.status_code >= 500 else "was served"
            bad.append(
                seen(
                    ctx,
                    f"{op.location} {served} {probe.label}: {response.status_code}",
                    response,
                    op.method,
                    op.path,
                    location=op.location,
                    headers=probe.headers,
                )
            )
            break  # one piece of evidence per operation is enough
    ctx.memo["live_auth.unauthorized"] = unauthorized
    note = f" ({held_back} DELETE operations need --aggressive)" if held_back else ""
    if bad:
        return [
            failed(
                AUTH_ENFORCED,
                f"{len(bad)} of {len(ops)} secured operations did not refuse a request without "
                f"a working credential{note}",
                *bad,
            )
        ]
    return [
        passed(
            AUTH_ENFORCED,
            f"{len(ops)} secured operations refused missing, malformed and wrong-scheme "
            f"credentials with 4xx{note}",
        )
    ]


async def baseline(ctx: LiveContext, op: Operation) -> httpx.Response:
    return await unthrottled(ctx, op.method, op.path, with_auth=True)


@guarded(CREDENTIAL_IN_QUERY)
async def check_credential_in_query(ctx: LiveContext) -> list[Finding]:
    if not ctx.auth:
        return [skipped(CREDENTIAL_IN_QUERY, "needs a working credential (--auth)")]
    op = probe_operation(ctx)
    working = await baseline(ctx, op)
    if not 200 <= working.status_code < 300:
        return [
            skipped(
                CREDENTIAL_IN_QUERY,
                f"the --auth credential was not accepted on {op.location} "
                f"({working.status_code}), so moving it proves nothing",
            )
        ]
    accepted: list[Evidence] = []
    tried = 0
    for header, value in ctx.auth:
        secret = credential_value(value)
        for name in dict.fromkeys((header.lower(), *QUERY_NAMES)):
            tried += 1
            response = await unthrottled(ctx, op.method, op.path, params={name: secret})
            if 200 <= response.status_code < 300:
                accepted.append(
                    seen(
                        ctx,
                        f"the credential from {header} was accepted as ?{name}=",
                        response,
                        op.method,
                        op.path,
                        location=f"{op.location}?{name}",
                        query=f"{name}={secret}",
                    )
                )
    if accepted:
        return [
            failed(
                CREDENTIAL_IN_QUERY,
                f"a working credential is accepted in the query string of {op.location}",
                *accepted,
            )
        ]
    return [
        passed(
            CREDENTIAL_IN_QUERY,
            f"the working credential was refused in {tried} query parameters on {op.location}",
        )
    ]


@guarded(WWW_AUTHENTICATE)
async def check_www_authenticate(ctx: LiveContext) -> list[Finding]:
    answers: list[tuple[Operation, Probe, httpx.Response]] = ctx.memo.get(
        "live_auth.unauthorized", []
    )
    if "live_auth.unauthorized" not in ctx.memo:
        op = probe_operation(ctx)
        for probe in probes(ctx)[:2]:
            response = await ctx.request(op.method, op.path, headers=probe.headers)
            if response.status_code == 401:
                answers.append((op, probe, response))
    if not answers:
        return [skipped(WWW_AUTHENTICATE, "no 401 answer was seen")]
    missing = [
        seen(
            ctx,
            f"401 {probe.label} without WWW-Authenticate",
            response,
            op.method,
            op.path,
            location=op.location,
            headers=probe.headers,
        )
        for op, probe, response in answers
        if not response.headers.get("www-authenticate", "").strip()
    ]
    unique = list({e.location: e for e in missing}.values())
    if unique:
        return [
            failed(
                WWW_AUTHENTICATE,
                f"{len(missing)} of {len(answers)} 401 answers lack WWW-Authenticate",
                *unique,
            )
        ]
    return [passed(WWW_AUTHENTICATE, f"all {len(answers)} 401 answers carry WWW-Authenticate")]


def register(registry: Registry) -> None:
    registry.add_live(AUTH_ENFORCED, check_auth_enforced)
    registry.add_live(CREDENTIAL_IN_QUERY, check_credential_in_query)
    registry.add_live(WWW_AUTHENTICATE, check_www_authenticate)
