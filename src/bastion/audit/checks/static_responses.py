"""Static checks of the refusals a document declares: 401, 403, 429 and client errors.

Declared refusals are how clients learn to react correctly (re-authenticate on 401 with the
challenge in ``WWW-Authenticate``, back off on 429 for ``Retry-After`` seconds) instead of
retrying blindly; an API that documents none usually handles none consistently.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from bastion.audit import openapi
from bastion.audit.checks.verdict import verdict
from bastion.audit.model import CheckInfo, Finding, Kind, Practice, Registry, Severity

UNAUTHORIZED_RESPONSE = CheckInfo(
    id="static.unauthorized-response",
    title="Secured operations declare 401 with WWW-Authenticate",
    practice=Practice.AUTHENTICATION,
    severity=Severity.MEDIUM,
    kind=Kind.STATIC,
    criterion="Every operation that requires authentication declares a 401 response (or 4XX)"
    " with a WWW-Authenticate header.",
    rationale="RFC 9110 requires a challenge on every 401; clients and gateways rely on it to"
    " tell a missing credential from a wrong one.",
    references=("RFC 9110 §15.5.2", "RFC 6750 §3", "OWASP API2:2023"),
)
FORBIDDEN_RESPONSE = CheckInfo(
    id="static.forbidden-response",
    title="Secured operations declare 403",
    practice=Practice.AUTHENTICATION,
    severity=Severity.LOW,
    kind=Kind.STATIC,
    criterion="Every operation that requires authentication declares a 403 response (or 4XX).",
    rationale="An authenticated caller without the right scope or ownership must be refused;"
    " a contract without 403 suggests authorization was never designed.",
    references=("RFC 9110 §15.5.4", "OWASP API1:2023", "OWASP API5:2023"),
)
RATE_LIMIT_RESPONSE = CheckInfo(
    id="static.rate-limit-response",
    title="Operations declare 429 with Retry-After",
    practice=Practice.RATE_LIMITING,
    severity=Severity.MEDIUM,
    kind=Kind.STATIC,
    criterion="Every operation declares a 429 response (or 4XX) with a Retry-After header.",
    rationale="Without a declared 429 clients cannot back off correctly and retry storms follow;"
    " Retry-After tells them when to come back.",
    references=(
        "OWASP API4:2023",
        "RFC 6585 §4",
        "RFC 9110 §10.2.3",
        "draft-ietf-httpapi-ratelimit-headers",
    ),
)
ERROR_RESPONSES = CheckInfo(
    id="static.error-responses",
    title="Operations declare their client errors",
    practice=Practice.VALIDATION,
    severity=Severity.LOW,
    kind=Kind.STATIC,
    criterion="Every operation that takes parameters or a body declares a 400 or 422 response"
    " (or 4XX / default), and every other operation at least one 4xx or default response.",
    rationale="Declared errors (ideally RFC 9457 problem details) are what a client can rely on"
    " when input is refused; undeclared ones tend to be framework pages with stack traces.",
    references=(
        "RFC 9457",
        "OWASP API8:2023",
        "ASVS 5.0 V16 (Security Logging and Error Handling)",
    ),
)


def _secured(document: Mapping[str, Any], op: openapi.Operation) -> bool:
    requirements = openapi.security(document, op) or []
    return bool(requirements) and all(isinstance(r, Mapping) and r for r in requirements)


def _declared(
    table: Mapping[str, tuple[Mapping[str, Any], str]], status: str, header: str = ""
) -> bool:
    for key in (status, status[0] + "XX"):
        if key in table or key.lower() in table:
            node, _ = table.get(key) or table[key.lower()]
            return not header or openapi.has_header(node, header)
    return False


def _status_problems(
    document: Mapping[str, Any], status: str, header: str, secured_only: bool
) -> tuple[list[tuple[str, str]], int]:
    problems: list[tuple[str, str]] = []
    examined = 0
    for op in openapi.operations(document):
        if secured_only and not _secured(document, op):
            continue
        examined += 1
        table = openapi.responses(document, op)
        if _declared(table, status, header):
            continue
        where = f"{op.location}/responses"
        if _declared(table, status):
            _, place = table.get(status) or table[status[0] + "XX"]
            problems.append((place, f"{op.label}: the {status} response has no {header} header"))
        else:
            problems.append((where, f"{op.label} declares no {status} response"))
    return problems, examined


def unauthorized_response(document: Mapping[str, Any]) -> list[Finding]:
    problems, examined = _status_problems(document, "401", "WWW-Authenticate", True)
    return verdict(
        UNAUTHORIZED_RESPONSE,
        problems,
        f"all {examined} secured operations declare 401 with WWW-Authenticate",
        examined=examined,
        nothing="no operation requires authentication",
    )


def forbidden_response(document: Mapping[str, Any]) -> list[Finding]:
    problems, examined = _status_problems(document, "403", "", True)
    return verdict(
        FORBIDDEN_RESPONSE,
        problems,
        f"all {examined} secured operations declare 403",
        examined=examined,
        nothing="no operation requires authentication",
    )


def rate_limit_response(document: Mapping[str, Any]) -> list[Finding]:
    problems, examined = _status_problems(document, "429", "Retry-After", False)
    return verdict(
        RATE_LIMIT_RESPONSE,
        problems,
        f"all {examined} operations declare 429 with Retry-After",
        examined=examined,
        nothing="the document has no operation",
    )


def error_responses(document: Mapping[str, Any]) -> list[Finding]:
    problems: list[tuple[str, str]] = []
    ops = openapi.operations(document)
    for op in ops:
        table = openapi.responses(document, op)
        statuses = {key.upper() for key in table}
        takes_input = "requestBody" in op.node or any(
            True for _ in openapi.parameters(document, op)
        )
        if takes_input:
            ok = bool(statuses & {"400", "422", "4XX", "DEFAULT"})
            expected = "400 or 422 (or 4XX / default) response for invalid input"
        else:
            ok = any(s.startswith("4") or s == "DEFAULT" for s in statuses)
            expected = "4xx or default response"
        if not ok:
            problems.append((f"{op.location}/responses", f"{op.label} declares no {expected}"))
    return verdict(
        ERROR_RESPONSES,
        problems,
        f"all {len(ops)} operations declare their client errors",
        examined=len(ops),
        nothing="the document has no operation",
    )


def register(registry: Registry) -> None:
    registry.add_static(UNAUTHORIZED_RESPONSE, unauthorized_response)
    registry.add_static(FORBIDDEN_RESPONSE, forbidden_response)
    registry.add_static(RATE_LIMIT_RESPONSE, rate_limit_response)
    registry.add_static(ERROR_RESPONSES, error_responses)
