"""Intrusive rate-limit checks (``--aggressive`` only): a burst that stops at the first 429, the
headers of that answer, whether the limit is per credential, whether a spoofed
``X-Forwarded-For`` escapes it, and a stricter limit on login and token endpoints.

One burst serves the first two checks (kept in ``ctx.memo``); the isolation and spoofing checks
first make sure the credential is still limited, bursting again if the window has turned, so a
window reset is never mistaken for a bypass. Bursts are not paced: pacing would turn them into
the trickle a limit lets through.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from email.utils import parsedate_to_datetime

import httpx
import orjson

from bastion.audit.checks.live_support import (
    Operation,
    digits,
    guarded,
    json_body_schema,
    operations,
    probe_operation,
    resolve,
    sample,
    seen,
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

BURST = 120  # requests one burst may send before concluding there is no limit
LOGIN_ATTEMPTS = 20  # failed logins an endpoint may take before it must answer 429
MAX_RETRY_AFTER = 86_400
SPOOF_HEADERS = (
    ("X-Forwarded-For", "203.0.113.7"),
    ("X-Real-IP", "203.0.113.7"),
    ("Forwarded", "for=203.0.113.7"),
    ("True-Client-IP", "203.0.113.7"),
    ("CF-Connecting-IP", "203.0.113.7"),
)
_LOGIN = re.compile(r"(?i)(login|log-in|signin|sign-in|oauth|token|session|authenticate)")

ENFORCED = CheckInfo(
    id="live.ratelimit-enforced",
    title="A burst of requests is answered 429",
    practice=Practice.RATE_LIMITING,
    severity=Severity.HIGH,
    kind=Kind.AGGRESSIVE,
    criterion=f"A burst of at most {BURST} requests to one operation is answered 429.",
    rationale=(
        "Without a per-client limit, one client can exhaust the API's capacity, scrape all its "
        "data or brute-force identifiers; a 503 under load is the server failing, not a limit "
        "a client can recognise and back off from."
    ),
    references=("OWASP API4:2023", "OWASP API6:2023", "ASVS 5.0 V2.4.1", "RFC 6585 §4"),
)

HEADERS = CheckInfo(
    id="live.ratelimit-headers",
    title="The throttling answer says when to retry, consistently",
    practice=Practice.RATE_LIMITING,
    severity=Severity.MEDIUM,
    kind=Kind.AGGRESSIVE,
    criterion=(
        "The 429 (or 503) that ends a burst carries Retry-After (seconds or an HTTP date, at "
        "most a day ahead); RateLimit / RateLimit-Policy / X-RateLimit-* fields, when present, "
        "parse, show no remaining quota, and do not point later than Retry-After."
    ),
    rationale=(
        "Well-behaved clients back off exactly as long as told; without Retry-After they retry "
        "at once and the limit becomes a retry storm. Inconsistent RateLimit fields make "
        "clients misjudge their quota."
    ),
    references=(
        "RFC 9110 §10.2.3",
        "RFC 6585 §4",
        "draft-ietf-httpapi-ratelimit-headers-10",
        "OWASP API4:2023",
    ),
)

ISOLATION = CheckInfo(
    id="live.ratelimit-isolation",
    title="One credential's limit does not block another",
    practice=Practice.RATE_LIMITING,
    severity=Severity.MEDIUM,
    kind=Kind.AGGRESSIVE,
    criterion=(
        "While the first credential is answered 429, a request with a second credential "
        "(the operator's other identity) is not."
    ),
    rationale=(
        "A single global counter lets one abusive client deny service to every other client; "
        "limits must be counted per consumer (or per client address for anonymous traffic)."
    ),
    references=("OWASP API4:2023", "ASVS 5.0 V2.4.1"),
)

SPOOFING = CheckInfo(
    id="live.ratelimit-spoofing",
    title="A spoofed X-Forwarded-For does not escape the limit",
    practice=Practice.RATE_LIMITING,
    severity=Severity.HIGH,
    kind=Kind.AGGRESSIVE,
    criterion=(
        "While limited, a request adding X-Forwarded-For, X-Real-IP, Forwarded, True-Client-IP "
        "and CF-Connecting-IP with another address is still answered 429."
    ),
    rationale=(
        "A limiter that keys on a forwarding header the client controls gives every request a "
        "fresh budget: forwarding headers may only be believed from trusted proxies. A bypass "
        "is reported only when a plain request right after is still limited."
    ),
    references=("OWASP API4:2023", "RFC 7239 §8", "RFC 9700 §4.13 (proxy header sanitising)"),
)

LOGIN = CheckInfo(
    id="live.ratelimit-login",
    title="Login and token endpoints have a stricter limit",
    practice=Practice.RATE_LIMITING,
    severity=Severity.HIGH,
    kind=Kind.AGGRESSIVE,
    criterion=(
        f"Each login or token endpoint of the document answers 429 within {LOGIN_ATTEMPTS} "
        "failed attempts from one client."
    ),
    rationale=(
        "Credential stuffing and password or client-secret guessing are only stopped by a "
        "limit far below an API's general one; the general limit allows thousands of guesses "
        "an hour."
    ),
    references=("OWASP API2:2023", "OWASP API4:2023", "ASVS 5.0 V6.3.1", "RFC 6749 §10.10"),
)


@dataclass(frozen=True, slots=True)
class Burst:
    op: Operation
    sent: int
    last: httpx.Response | None  # the throttling answer (429 or 503), or None
    refused: int | None = None  # the first answer was this 401/403: nothing to burst against

    @property
    def limited(self) -> bool:
        return self.last is not None and self.last.status_code == 429


async def burst(ctx: LiveContext, op: Operation, *, with_auth: bool, limit: int = BURST) -> Burst:
    """Requests until the first 429 or 503. A burst of refused requests (401/403) measures
    only how cheaply the API refuses, so a refused first answer ends it at once."""
    sent = 0
    while sent < limit:
        response = await ctx.request(op.method, op.path, with_auth=with_auth, paced=False)
        sent += 1
        if response.status_code in (429, 503):
            return Burst(op, sent, response)
        if sent == 1 and response.status_code in (401, 403):
            return Burst(op, sent, None, refused=response.status_code)
    return Burst(op, sent, None)


def burst_operation(ctx: LiveContext) -> Operation:
    """With a credential, the first secured GET; without one, the first public GET (an
    anonymous burst against a secured operation would only meet 401s)."""
    if ctx.auth:
        return probe_operation(ctx)
    public = [op for op in operations(ctx) if not op.secured and op.method == "GET"]
    return public[0] if public else probe_operation(ctx)


async def main_burst(ctx: LiveContext) -> Burst:
    if "live_ratelimit.burst" not in ctx.memo:
        op = burst_operation(ctx)
        ctx.memo["live_ratelimit.burst"] = await burst(ctx, op, with_auth=bool(ctx.auth))
    result: Burst = ctx.memo["live_ratelimit.burst"]
    return result


def refused_first(info: CheckInfo, found: Burst) -> Finding:
    return skipped(
        info,
        f"{found.op.location} answered {found.refused} to the first request of the burst; "
        "a burst needs a working credential (--auth) or a public operation",
    )


def burst_evidence(ctx: LiveContext, found: Burst, summary: str) -> Evidence:
    return seen(
        ctx,
        summary,
        found.last,
        found.op.method,
        found.op.path,
        location=found.op.location,
        with_auth=bool(ctx.auth),
        show=("retry-after", "ratelimit", "ratelimit-policy", "x-ratelimit-limit",
              "x-ratelimit-remaining", "x-ratelimit-reset", "content-type"),
    )  # fmt: skip


@guarded(ENFORCED)
async def check_enforced(ctx: LiveContext) -> list[Finding]:
    if not ctx.aggressive:
        return [skipped(ENFORCED, "needs --aggressive")]
    found = await main_burst(ctx)
    if found.refused:
        return [refused_first(ENFORCED, found)]
    if found.limited:
        return [passed(ENFORCED, f"429 after {found.sent} requests to {found.op.location}")]
    if found.last is not None:
        summary = f"{found.op.location} answered 503 after {found.sent} requests, not 429"
        return [failed(ENFORCED, summary, burst_evidence(ctx, found, summary))]
    summary = f"{found.sent} requests to {found.op.location} in a burst, none answered 429"
    evidence = seen(ctx, summary, None, found.op.method, found.op.path, with_auth=bool(ctx.auth))
    return [failed(ENFORCED, summary, evidence)]


def retry_after_problem(value: str | None) -> str | None:
    if value is None or not value.strip():
        return "no Retry-After"
    value = value.strip()
    seconds = digits(value)
    if seconds is not None or (value.isascii() and value.isdigit()):  # or more than 18 digits
        if seconds is not None and seconds <= MAX_RETRY_AFTER:
            return None
        return f"Retry-After {value[:40]} is over a day"
    try:
        parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return f"Retry-After {value!r} is neither seconds nor an HTTP date"
    return None


def structured_items(value: str) -> list[dict[str, str]]:
    """A Structured Field List of items with parameters: ``"a";r=1;t=2, "b";q=3``."""
    items: list[dict[str, str]] = []
    for member in value.split(","):
        params: dict[str, str] = {}
        for part in member.split(";")[1:]:
            key, _, val = part.strip().partition("=")
            params[key.strip()] = val.strip()
        items.append(params)
    return items


def ratelimit_problems(response: httpx.Response) -> list[str]:
    problems: list[str] = []
    headers = response.headers
    retry = headers.get("retry-after", "").strip()
    retry_seconds = digits(retry)
    if "ratelimit" in headers:
        for item in structured_items(headers["ratelimit"]):
            remaining, reset = digits(item.get("r", "")), digits(item.get("t", "0"))
            if remaining is None or reset is None:
                problems.append(f"RateLimit {headers['ratelimit']!r} lacks integer r= and t=")
            elif (
                response.status_code == 429
                and remaining > 0
                and len(structured_items(headers["ratelimit"])) == 1
            ):
                problems.append(f"RateLimit says {remaining} requests remain on a 429")
            elif retry_seconds is not None and reset > retry_seconds:
                problems.append(f"RateLimit t={reset} points later than Retry-After {retry}")
    if "ratelimit-policy" in headers:
        for item in structured_items(headers["ratelimit-policy"]):
            quota = digits(item.get("q", ""))
            if quota is None or quota <= 0:
                problems.append(f"RateLimit-Policy {headers['ratelimit-policy']!r} has no q > 0")
    for legacy in ("x-ratelimit-remaining", "ratelimit-remaining"):
        if legacy in headers and digits(headers[legacy]) is None:
            problems.append(f"{legacy} {headers[legacy]!r} is not a count")
    return problems


@guarded(HEADERS)
async def check_headers(ctx: LiveContext) -> list[Finding]:
    if not ctx.aggressive:
        return [skipped(HEADERS, "needs --aggressive")]
    found = await main_burst(ctx)
    if found.refused:
        return [refused_first(HEADERS, found)]
    if found.last is None:
        return [skipped(HEADERS, "the burst met no 429 or 503 (see live.ratelimit-enforced)")]
    problems = ratelimit_problems(found.last)
    retry = retry_after_problem(found.last.headers.get("retry-after"))
    if retry:
        problems.insert(0, retry)
    status = found.last.status_code
    if problems:
        summary = f"the {status} answer to {found.op.location}: " + "; ".join(problems)
        return [failed(HEADERS, summary, burst_evidence(ctx, found, summary))]
    return [passed(HEADERS, f"the {status} answer carries a sane Retry-After and limit fields")]


async def still_limited(ctx: LiveContext) -> Burst | None:
    """The main burst's credential, limited right now (bursting again if the window turned)."""
    found = await main_burst(ctx)
    if not found.limited:
        return None
    check = await ctx.request(found.op.method, found.op.path, with_auth=bool(ctx.auth))
    if check.status_code == 429:
        return found
    again = await burst(ctx, found.op, with_auth=bool(ctx.auth))
    return again if again.limited else None


@guarded(ISOLATION)
async def check_isolation(ctx: LiveContext) -> list[Finding]:
    if not ctx.aggressive:
        return [skipped(ISOLATION, "needs --aggressive")]
    if not ctx.auth or not ctx.other_auth:
        return [skipped(ISOLATION, "needs two working credentials (a second identity)")]
    found = await still_limited(ctx)
    if found is None:
        return [skipped(ISOLATION, "the first credential could not be limited")]
    op = found.op
    other = await ctx.request(op.method, op.path, headers=ctx.other_auth)
    if other.status_code == 429:
        summary = f"while the first credential is limited, the second gets 429 on {op.location}"
        evidence = seen(
            ctx, summary, other, op.method, op.path, headers=ctx.other_auth,
            show=("retry-after", "ratelimit"),
        )  # fmt: skip
        return [failed(ISOLATION, summary, evidence)]
    return [
        passed(ISOLATION, f"the second credential was served ({other.status_code}) while the "
               "first was limited")
    ]  # fmt: skip


@guarded(SPOOFING)
async def check_spoofing(ctx: LiveContext) -> list[Finding]:
    if not ctx.aggressive:
        return [skipped(SPOOFING, "needs --aggressive")]
    for _ in range(2):
        found = await still_limited(ctx)
        if found is None:
            return [skipped(SPOOFING, "the client could not be limited (live.ratelimit-enforced)")]
        op, with_auth = found.op, bool(ctx.auth)
        spoofed = await ctx.request(op.method, op.path, headers=SPOOF_HEADERS, with_auth=with_auth)
        if spoofed.status_code == 429:
            return [passed(SPOOFING, "spoofed forwarding headers did not escape the limit")]
        plain = await ctx.request(op.method, op.path, with_auth=with_auth)
        if plain.status_code == 429:
            summary = (
                f"a request with a spoofed X-Forwarded-For was served ({spoofed.status_code}) "
                f"while the same client without it is limited on {op.location}"
            )
            evidence = seen(
                ctx, summary, spoofed, op.method, op.path, headers=SPOOF_HEADERS,
                with_auth=with_auth, show=("retry-after", "ratelimit"),
            )  # fmt: skip
            return [failed(SPOOFING, summary, evidence)]
        ctx.memo.pop("live_ratelimit.burst", None)  # the window turned in between: measure again
    return [skipped(SPOOFING, "the limit window turned too fast to tell")]


def login_operations(ctx: LiveContext) -> list[Operation]:
    return [
        op
        for op in operations(ctx)
        if op.method == "POST" and _LOGIN.search(op.template) and not op.template.count("{")
    ][:2]


def login_body(ctx: LiveContext, op: Operation) -> tuple[bytes, str]:
    """A failing login: the document's body with the audit's made-up identity, form or JSON."""
    body_spec = resolve(ctx.document, op.spec.get("requestBody"))
    content = (body_spec.get("content") or {}) if isinstance(body_spec, Mapping) else {}
    if any("x-www-form-urlencoded" in str(media) for media in content):
        form = "grant_type=client_credentials&client_id=bastion-audit&client_secret=wrong-secret"
        return form.encode(), "application/x-www-form-urlencoded"
    schema = json_body_schema(ctx.document, op.spec) or {}
    value = sample(ctx.document, schema)
    if not isinstance(value, dict):
        value = {}
    for key in list(value) or ["username", "password"]:
        lowered = key.lower()
        if "pass" in lowered or "secret" in lowered:
            value[key] = "wrong-password-bastion-audit"
        elif any(word in lowered for word in ("user", "login", "email", "name", "client")):
            value[key] = "bastion-audit@example.com" if "mail" in lowered else "bastion-audit"
    return orjson.dumps(value), "application/json"


@guarded(LOGIN)
async def check_login(ctx: LiveContext) -> list[Finding]:
    if not ctx.aggressive:
        return [skipped(LOGIN, "needs --aggressive")]
    ops = login_operations(ctx)
    if not ops:
        return [skipped(LOGIN, "the document declares no login or token endpoint")]
    bad: list[Evidence] = []
    counts: list[str] = []
    for op in ops:
        body, media = login_body(ctx, op)
        headers = (("Content-Type", media),)
        last: httpx.Response | None = None
        for attempt in range(1, LOGIN_ATTEMPTS + 1):
            last = await ctx.request(op.method, op.path, headers=headers, content=body, paced=False)
            if last.status_code == 429:
                counts.append(f"{op.location} after {attempt}")
                break
        else:
            summary = f"{LOGIN_ATTEMPTS} failed attempts on {op.location}, none answered 429"
            bad.append(
                seen(ctx, summary, last, op.method, op.path, headers=headers, body=body,
                     location=op.location)
            )  # fmt: skip
    if bad:
        return [failed(LOGIN, f"{len(bad)} login or token endpoints have no strict limit", *bad)]
    return [passed(LOGIN, "429 on failed logins: " + ", ".join(counts))]


def register(registry: Registry) -> None:
    registry.add_live(ENFORCED, check_enforced)
    registry.add_live(HEADERS, check_headers)
    registry.add_live(ISOLATION, check_isolation)
    registry.add_live(SPOOFING, check_spoofing)
    registry.add_live(LOGIN, check_login)
