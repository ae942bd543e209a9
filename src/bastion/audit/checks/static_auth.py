"""Static checks of practice 1, authentication: what the OpenAPI document says about who may call.

A document is the API's contract: an operation it leaves without security is one every client
generator, gateway and reviewer will treat as public, and a credential it puts in the URL ends up
in every access log, proxy and browser history on the way.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from bastion.audit import openapi
from bastion.audit.checks.verdict import verdict
from bastion.audit.model import CheckInfo, Finding, Kind, Practice, Registry, Severity

SECURITY_ON_WRITES = CheckInfo(
    id="static.security-on-writes",
    title="Every write operation requires authentication",
    practice=Practice.AUTHENTICATION,
    severity=Severity.CRITICAL,
    kind=Kind.STATIC,
    criterion="Every POST, PUT, PATCH and DELETE operation has a non-empty security requirement"
    " (its own or the document's) naming only defined schemes, or is declared public on purpose"
    " (`security: []` with `x-bastion-public: <reason>`, e.g. a login endpoint).",
    rationale="An unauthenticated write lets anyone create, change or delete data; it is the"
    " most damaging form of broken authentication.",
    references=("OWASP API2:2023", "OWASP API5:2023", "ASVS 5.0 V8 (Authorization)"),
)
SECURITY_ON_READS = CheckInfo(
    id="static.security-on-reads",
    title="Every read operation requires authentication",
    practice=Practice.AUTHENTICATION,
    severity=Severity.HIGH,
    kind=Kind.STATIC,
    criterion="Every GET, HEAD and TRACE operation has a non-empty security requirement naming"
    " only defined schemes, or is declared public on purpose (`security: []` with"
    " `x-bastion-public: <reason>`); OPTIONS is left out: browsers send CORS preflights without"
    " credentials.",
    rationale="Unauthenticated reads expose data to anyone and make object-level authorization"
    " impossible; an intentionally public operation (a health check, a login endpoint) should be"
    " a reviewed exception declared with its reason in the document, not an omission.",
    references=("OWASP API2:2023", "OWASP API1:2023", "ASVS 5.0 V8 (Authorization)"),
)
CREDENTIALS_IN_URL = CheckInfo(
    id="static.credentials-in-url",
    title="No credential travels in the URL",
    practice=Practice.AUTHENTICATION,
    severity=Severity.HIGH,
    kind=Kind.STATIC,
    criterion="No apiKey security scheme is 'in: query', no query parameter has a credential-like"
    " name (api_key, key, token, access_token, password, secret, session, signature, ...) and no"
    " path parameter an unambiguous secret name (api_key, access_token, password, secret, ...).",
    rationale="URLs are written to access logs, proxy logs, browser history and Referer headers;"
    " a credential there is a credential leaked.",
    references=("OWASP API2:2023", "ASVS 5.0 V14.2.1", "RFC 6750 §5.3", "RFC 9700 §2.4"),
)
WEAK_SCHEMES = CheckInfo(
    id="static.weak-auth-schemes",
    title="No HTTP Basic, implicit or password flows",
    practice=Practice.AUTHENTICATION,
    severity=Severity.HIGH,
    kind=Kind.STATIC,
    criterion="No security scheme is HTTP Basic or Digest, and no OAuth 2 scheme offers the"
    " implicit or resource-owner password flow.",
    rationale="Basic sends a long-lived password with every request; the implicit grant leaks"
    " tokens through redirects and the password grant teaches clients to collect passwords."
    " RFC 9700 forbids both grants.",
    references=("OWASP API2:2023", "RFC 9700 §2.1.2", "RFC 9700 §2.4", "RFC 7617 §4"),
)

_SENSITIVE_NAMES = (
    r"api[-_]?key|apikey|x[-_]api[-_]key|access[-_]?token|id[-_]?token|refresh[-_]?token"
    r"|auth[-_]?token|authorization|bearer|jwt|password|passwd|pwd|secret|client[-_]?secret"
    r"|private[-_]?key"
)
_QUERY_CREDENTIAL = re.compile(
    rf"^({_SENSITIVE_NAMES}|key|token|auth|session|session[-_]?id|sid|signature|sig)$",
    re.IGNORECASE,
)
_PATH_CREDENTIAL = re.compile(rf"^({_SENSITIVE_NAMES})$", re.IGNORECASE)
"""Path parameters named ``key``, ``token`` or ``session_id`` usually name a resource
(``/objects/{key}``), so only unambiguous secret names count there."""


PUBLIC_MARK = "x-bastion-public"


def _declared_public(node: Mapping[str, Any], requirements: Any) -> bool:
    """An operation public on purpose: its own ``security`` is explicitly empty (``[]`` or
    ``[{}]``) and ``x-bastion-public`` gives the reason, so a reviewer reads the decision in the
    document (inheriting no security by omission is never public on purpose)."""
    reason = node.get(PUBLIC_MARK)
    if not isinstance(reason, str) or not reason.strip() or "security" not in node:
        return False
    return not requirements or all(isinstance(r, Mapping) and not r for r in requirements)


def _security_problems(
    document: Mapping[str, Any], writes: bool
) -> tuple[list[tuple[str, str]], int, list[str]]:
    defined = openapi.schemes(document)
    problems: list[tuple[str, str]] = []
    public: list[str] = []
    examined = 0
    for op in openapi.operations(document):
        if op.write != writes or op.method == "options":  # CORS preflights carry no credential
            continue
        examined += 1
        requirements = openapi.security(document, op)
        where = f"{op.location}/security" if "security" in op.node else op.location
        if _declared_public(op.node, requirements):
            public.append(op.label)
            continue
        if not requirements:
            problems.append((where, f"{op.label} declares no security requirement"))
            continue
        if any(isinstance(r, Mapping) and not r for r in requirements):
            problems.append(
                (where, f"{op.label} allows anonymous calls (an empty requirement {{}})")
            )
            continue
        unknown = sorted(
            {str(name) for r in requirements if isinstance(r, Mapping) for name in r} - set(defined)
        )
        if unknown:
            problems.append(
                (where, f"{op.label} requires undefined security schemes: {', '.join(unknown)}")
            )
    return problems, examined, public


def _passed(examined: int, kind: str, public: list[str]) -> str:
    if not public:
        return f"all {examined} {kind} operations require authentication"
    return (
        f"{examined - len(public)} of {examined} {kind} operations require authentication; "
        f"public on purpose ({PUBLIC_MARK}): {', '.join(public)}"
    )


def security_on_writes(document: Mapping[str, Any]) -> list[Finding]:
    problems, examined, public = _security_problems(document, writes=True)
    return verdict(
        SECURITY_ON_WRITES,
        problems,
        _passed(examined, "write", public),
        examined=examined,
        nothing="the document has no write operation",
    )


def security_on_reads(document: Mapping[str, Any]) -> list[Finding]:
    problems, examined, public = _security_problems(document, writes=False)
    return verdict(
        SECURITY_ON_READS,
        problems,
        _passed(examined, "read", public),
        examined=examined,
        nothing="the document has no read operation",
    )


def credentials_in_url(document: Mapping[str, Any]) -> list[Finding]:
    problems: list[tuple[str, str]] = []
    for name, (scheme, where) in openapi.schemes(document).items():
        if scheme.get("type") == "apiKey" and scheme.get("in") == "query":
            problems.append(
                (where, f"security scheme {name} sends the API key in the query string")
            )
    seen: set[str] = set()
    for op in openapi.operations(document):
        for param, where in openapi.parameters(document, op):
            place, pname = param.get("in"), str(param.get("name", ""))
            pattern = {"query": _QUERY_CREDENTIAL, "path": _PATH_CREDENTIAL}.get(str(place))
            if pattern is not None and pattern.match(pname) and where not in seen:
                seen.add(where)
                problems.append(
                    (where, f"{op.label} takes a credential-like {place} parameter {pname!r}")
                )
    return verdict(CREDENTIALS_IN_URL, problems, "no credential is placed in a URL")


def weak_auth_schemes(document: Mapping[str, Any]) -> list[Finding]:
    problems: list[tuple[str, str]] = []
    found = openapi.schemes(document)
    for name, (scheme, where) in found.items():
        kind = scheme.get("type")
        http_scheme = str(scheme.get("scheme", "")).lower()
        if kind == "http" and http_scheme in ("basic", "digest"):
            problems.append((where, f"security scheme {name} is HTTP {http_scheme.title()}"))
        if kind == "oauth2":
            flows = scheme.get("flows") or {}
            for flow in ("implicit", "password"):
                if flow in flows:
                    problems.append(
                        (f"{where}/flows/{flow}", f"security scheme {name} offers the {flow} flow")
                    )
    return verdict(
        WEAK_SCHEMES,
        problems,
        f"none of the {len(found)} security schemes is Basic, implicit or password",
        examined=len(found),
        nothing="the document defines no security scheme",
    )


def register(registry: Registry) -> None:
    registry.add_static(SECURITY_ON_WRITES, security_on_writes)
    registry.add_static(SECURITY_ON_READS, security_on_reads)
    registry.add_static(CREDENTIALS_IN_URL, credentials_in_url)
    registry.add_static(WEAK_SCHEMES, weak_auth_schemes)
