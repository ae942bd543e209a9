"""Live checks of what every response says about the API: CORS, request ids, error bodies,
and operator endpoints left open to the public.

All of them send ordinary GETs (and one CORS preflight, and one malformed JSON body to a write
operation, which a parser refuses before anything is written).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import httpx

from bastion.audit.checks.live_support import (
    Operation,
    guarded,
    leaks,
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
)

CORS = CheckInfo(
    id="live.cors",
    title="CORS does not reflect arbitrary origins with credentials",
    practice=Practice.AUTHENTICATION,
    severity=Severity.HIGH,
    kind=Kind.LIVE,
    criterion=(
        "For a foreign Origin (and for Origin: null), simple and preflight answers never carry "
        "that origin (or *) in Access-Control-Allow-Origin together with "
        "Access-Control-Allow-Credentials: true."
    ),
    rationale=(
        "Reflecting any origin with credentials lets every web page a user visits call the API "
        "as that user, with the user's cookies or browser-held credentials, and read the "
        "answers: authentication is bypassed from the browser."
    ),
    references=("ASVS 5.0 V3.4.2", "OWASP API8:2023", "Fetch Standard §3.2 (CORS protocol)"),
)

REQUEST_ID = CheckInfo(
    id="live.request-id",
    title="Responses carry a request id",
    practice=Practice.LOGGING,
    severity=Severity.LOW,
    kind=Kind.LIVE,
    criterion=(
        "Success and error responses carry X-Request-ID (or X-Correlation-ID / Request-Id)."
    ),
    rationale=(
        "A request id in the response is what a client quotes in a support ticket and what an "
        "incident responder searches the logs for; without it, the log line of a refused or "
        "failed request cannot be found."
    ),
    references=("ASVS 5.0 V16.2.1", "OWASP API8:2023"),
)

ERROR_BODIES = CheckInfo(
    id="live.error-bodies",
    title="Error bodies reveal no stack traces, SQL errors or file paths",
    practice=Practice.LOGGING,
    severity=Severity.MEDIUM,
    kind=Kind.LIVE,
    criterion=(
        "Error answers to an unknown path, a malformed path parameter and a malformed JSON "
        "body contain no stack trace, database error message or server file path."
    ),
    rationale=(
        "Stack traces and SQL errors tell an attacker the framework, versions, file layout and "
        "query shapes, which turns blind probing into targeted injection; the details belong in "
        "the log, under a request id, and the client gets a generic problem."
    ),
    references=("ASVS 5.0 V16.5.1", "OWASP API8:2023", "RFC 9457", "CWE-209"),
)

EXPOSED_ENDPOINTS = CheckInfo(
    id="live.exposed-endpoints",
    title="No open metrics, debug or configuration endpoints",
    practice=Practice.LOGGING,
    severity=Severity.HIGH,
    kind=Kind.LIVE,
    criterion=(
        "Well-known operator endpoints (/metrics, /debug, /debug/pprof, /actuator, /.env, "
        "/server-status, /.git/config ...) are not served to an anonymous client (a 200 whose "
        "body has the endpoint's signature)."
    ),
    rationale=(
        "Metrics and debug endpoints expose internal names, traffic, memory and sometimes "
        "environment variables with secrets; they belong on an operator listener (bastion's "
        "admin port), never on the public one. Only a body with the endpoint's signature "
        "counts, so a catch-all page answering 200 is not a finding."
    ),
    references=("ASVS 5.0 V13.4.2", "ASVS 5.0 V13.4.5", "OWASP API8:2023", "OWASP API9:2023"),
)

FOREIGN_ORIGIN = "https://bastion-audit.example"
REQUEST_ID_HEADERS = ("x-request-id", "x-correlation-id", "request-id", "x-amzn-requestid")


@dataclass(frozen=True, slots=True)
class Endpoint:
    path: str
    what: str
    signature: re.Pattern[str]


def _endpoint(path: str, what: str, signature: str) -> Endpoint:
    return Endpoint(path, what, re.compile(signature, re.MULTILINE))


ENDPOINTS = (
    _endpoint("/metrics", "Prometheus metrics", r"^# (?:HELP|TYPE) \w+"),
    _endpoint("/actuator", "Spring Boot actuator", r'"_links"\s*:'),
    _endpoint("/actuator/env", "Spring Boot environment", r'"(?:propertySources|activeProfiles)"'),
    _endpoint("/debug/pprof/", "Go pprof", r"Types of profiles available|/debug/pprof/\w+"),
    _endpoint("/debug/vars", "Go expvar", r'"(?:memstats|cmdline)"\s*:'),
    _endpoint(
        "/debug", "a debug page", r"(?i)werkzeug|debugger|\"?environ\"?\s*[:=]|debug toolbar"
    ),
    _endpoint("/console", "an interactive console", r"(?i)werkzeug|interactive console|h2 console"),
    _endpoint("/.env", "an environment file", r"^[A-Z][A-Z0-9_]{2,}=\S"),
    _endpoint("/server-status", "Apache server status", r"Apache Server Status|Server uptime"),
    _endpoint("/server-info", "Apache server information", r"Apache Server Information"),
    _endpoint("/.git/config", "a Git repository", r"^\[core\]"),
    _endpoint("/phpinfo.php", "PHP information", r"phpinfo\(\)|PHP Version \d"),
    _endpoint("/_profiler", "Symfony profiler", r"Symfony Profiler"),
    _endpoint("/elmah.axd", "ELMAH error log", r"Error Log for"),
)


def reflects(response: httpx.Response, origin: str) -> str | None:
    allow = response.headers.get("access-control-allow-origin", "").strip()
    credentials = response.headers.get("access-control-allow-credentials", "").strip().lower()
    if credentials != "true":
        return None
    if allow == origin:
        return f"reflects Origin {origin} with credentials"
    if allow == "*":
        return "allows any origin (*) with credentials"
    return None


@guarded(CORS)
async def check_cors(ctx: LiveContext) -> list[Finding]:
    op = probe_operation(ctx)
    probes: list[tuple[str, tuple[tuple[str, str], ...]]] = [
        ("GET", (("Origin", FOREIGN_ORIGIN),)),
        ("GET", (("Origin", "null"),)),
        (
            "OPTIONS",
            (
                ("Origin", FOREIGN_ORIGIN),
                ("Access-Control-Request-Method", op.method),
                ("Access-Control-Request-Headers", "authorization, content-type"),
            ),
        ),
    ]
    bad: list[Evidence] = []
    for method, headers in probes:
        response = await ctx.request(method, op.path, headers=headers)
        problem = reflects(response, headers[0][1])
        if problem:
            bad.append(
                seen(
                    ctx,
                    f"{method} {op.path} {problem}",
                    response,
                    method,
                    op.path,
                    location=f"{method} {op.template} origin={headers[0][1]}",
                    headers=headers,
                    show=("access-control-allow-origin", "access-control-allow-credentials"),
                )
            )
    if bad:
        return [failed(CORS, f"CORS {bad[0].summary.split(' ', 2)[2]}", *bad)]
    return [passed(CORS, f"no foreign origin is allowed with credentials on {op.location}")]


@guarded(REQUEST_ID)
async def check_request_id(ctx: LiveContext) -> list[Finding]:
    op = probe_operation(ctx)
    samples = [(op.method, op.path, bool(ctx.auth)), ("GET", "/bastion-audit-not-found", False)]
    missing: list[Evidence] = []
    for method, path, with_auth in samples:
        response = await ctx.request(method, path, with_auth=with_auth)
        if not any(response.headers.get(name) for name in REQUEST_ID_HEADERS):
            missing.append(
                seen(
                    ctx,
                    f"{response.status_code} answer to {method} {path} has no request id",
                    response,
                    method,
                    path,
                    with_auth=with_auth,
                    show=REQUEST_ID_HEADERS,
                )
            )
    if missing:
        return [
            failed(
                REQUEST_ID, f"{len(missing)} of {len(samples)} responses carry no request id",
                *missing,
            )
        ]  # fmt: skip
    return [passed(REQUEST_ID, f"all {len(samples)} responses carry a request id")]


def malformed_path(op: Operation) -> str | None:
    """The operation's path with its first path parameter replaced by a quote-laden value."""
    if "{" not in op.template:
        return None
    path = re.sub(r"\{[^}/]+\}", "%27%22%3C%3E", op.template, count=1)
    return re.sub(r"\{[^}/]+\}", "1", path)


@guarded(ERROR_BODIES)
async def check_error_bodies(ctx: LiveContext) -> list[Finding]:
    ops = operations(ctx)
    requests: list[tuple[str, str, bytes | None, bool]] = [
        ("GET", "/bastion-audit-not-found/%27", None, False)
    ]
    with_param = next((op for op in ops if "{" in op.template and op.method == "GET"), None)
    if with_param is not None and (path := malformed_path(with_param)) is not None:
        requests.append(("GET", path, None, bool(ctx.auth)))
    write = next((op for op in ops if op.method in ("POST", "PUT", "PATCH")), None)
    if write is not None or not ctx.document:
        method, path = (write.method, write.path) if write else ("POST", "/")
        requests.append((method, path, b'{"bastion-audit": [1, 2', bool(ctx.auth)))
    bad: list[Evidence] = []
    for method, path, body, with_auth in requests:
        headers = (("Content-Type", "application/json"),) if body is not None else ()
        response = await unthrottled(
            ctx, method, path, headers=headers, content=body, with_auth=with_auth
        )
        found = leaks(response.text) if response.status_code >= 400 else []
        if found:
            kinds = ", ".join(f"{kind} ({snippet!r})" for kind, snippet in found)
            bad.append(
                seen(
                    ctx,
                    f"{response.status_code} answer to {method} {path} reveals {kinds}",
                    response,
                    method,
                    path,
                    headers=headers,
                    body=body,
                    with_auth=with_auth,
                    show=("content-type",),
                )
            )
    if bad:
        return [failed(ERROR_BODIES, f"{len(bad)} error answers reveal the server's insides", *bad)]
    return [passed(ERROR_BODIES, f"{len(requests)} error answers reveal nothing internal")]


@guarded(EXPOSED_ENDPOINTS)
async def check_exposed_endpoints(ctx: LiveContext) -> list[Finding]:
    open_: list[Evidence] = []
    for endpoint in ENDPOINTS:
        response = await ctx.request("GET", endpoint.path)
        if response.status_code == 200 and endpoint.signature.search(response.text[:65536]):
            open_.append(
                seen(
                    ctx,
                    f"{endpoint.path} serves {endpoint.what} to anyone",
                    response,
                    "GET",
                    endpoint.path,
                    show=("content-type",),
                )
            )
    if open_:
        names = ", ".join(e.location.split(" ", 1)[1] for e in open_)
        return [failed(EXPOSED_ENDPOINTS, f"operator endpoints open to anyone: {names}", *open_)]
    return [
        passed(EXPOSED_ENDPOINTS, f"none of {len(ENDPOINTS)} well-known operator endpoints open")
    ]


def register(registry: Registry) -> None:
    registry.add_live(CORS, check_cors)
    registry.add_live(REQUEST_ID, check_request_id)
    registry.add_live(ERROR_BODIES, check_error_bodies)
    registry.add_live(EXPOSED_ENDPOINTS, check_exposed_endpoints)
