"""Intrusive input checks (``--aggressive`` only): schema-violating inputs, undeclared properties
and injection probes, built from the OpenAPI document's schemas and sent with the operator's
credential (so they reach the validation behind authentication).

Time-based injection results are confirmed before they are reported: the slow probe is sent
again with a fast control request in between, and only slow-fast-slow counts.
"""

from __future__ import annotations

import re
import statistics
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import httpx
import orjson

from bastion.audit.checks.live_support import (
    Operation,
    Throttled,
    database_error,
    errored,
    guarded,
    json_body_schema,
    operations,
    parameters,
    resolve,
    sample,
    schema_type,
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

MAX_OPS = 10
MAX_TARGETS = 4
SLEEP = 2.0  # seconds a time-based probe asks the database to wait
PROBE_NAME = "bastionAuditProbe"
PROBE_VALUE = "bastion-audit-undeclared-7f3a"
JSON = (("Content-Type", "application/json"),)

SCHEMA = CheckInfo(
    id="live.input-schema",
    title="Inputs that violate the schema are refused with 4xx",
    practice=Practice.VALIDATION,
    severity=Severity.HIGH,
    kind=Kind.AGGRESSIVE,
    criterion=(
        "Malformed JSON, wrong types, missing required properties, values out of range, too "
        "long or outside an enum, in bodies and parameters, are answered 4xx: never 2xx (the "
        "input was accepted) and never 5xx (the input crashed the handler)."
    ),
    rationale=(
        "The OpenAPI document is a contract; an API that accepts what it declares invalid "
        "passes unchecked data to code that assumed the contract, and a 5xx on bad input is a "
        "crash an attacker can repeat at will (and often a stack trace)."
    ),
    references=("ASVS 5.0 V2.2.1", "ASVS 5.0 V2.2.2", "OWASP API8:2023", "OWASP API4:2023"),
)

UNDECLARED = CheckInfo(
    id="live.input-undeclared",
    title="Undeclared body properties are refused or not persisted",
    practice=Practice.VALIDATION,
    severity=Severity.MEDIUM,
    kind=Kind.AGGRESSIVE,
    criterion=(
        f"A valid body with an extra property ({PROBE_NAME}) is refused with 4xx, or accepted "
        "without the property appearing in the answer or in the created resource (Location)."
    ),
    rationale=(
        "An API that stores whatever properties arrive is open to mass assignment: a client "
        "sets role, owner or price fields the document never offered it."
    ),
    references=("OWASP API3:2023", "ASVS 5.0 V15.3.3", "CWE-915"),
)

INJECTION = CheckInfo(
    id="live.input-injection",
    title="Injection probes cause no database errors and no delays",
    practice=Practice.VALIDATION,
    severity=Severity.CRITICAL,
    kind=Kind.AGGRESSIVE,
    criterion=(
        "Quotes and SQL fragments in string parameters and body properties produce no "
        f"database error message, and time-delay payloads ({SLEEP:g} s) produce no delay that "
        "repeats on confirmation."
    ),
    rationale=(
        "A database error in the answer, or a delay the payload asked for, shows the input "
        "reaches a query as code: SQL injection, which reads or changes any data the API's "
        "database account can. Delays are confirmed (slow, fast control, slow) so a busy "
        "server is not reported."
    ),
    references=("ASVS 5.0 V1.2.4", "OWASP API8:2023", "CWE-89", "OWASP WSTG-INPV-05"),
)

ERROR_PAYLOADS = ("'", '"', "' OR '1'='1", "1'--")
TIME_PAYLOADS = (
    f"x'||(SELECT 'a' FROM pg_sleep({SLEEP:g}))||'",  # noqa: S608 - a probe for the target
    f"1 AND 1=(SELECT 1 FROM pg_sleep({SLEEP:g}))",  # noqa: S608 - a probe for the target
    f"x' AND SLEEP({SLEEP:g})-- ",
    f"x'; WAITFOR DELAY '0:0:{int(SLEEP)}'-- ",
)


@dataclass(frozen=True, slots=True)
class Sent:
    method: str
    path: str
    query: dict[str, str]
    body: bytes | None
    label: str

    def headers(self) -> tuple[tuple[str, str], ...]:
        return JSON if self.body is not None else ()

    def curl_query(self) -> str:
        return str(httpx.QueryParams(self.query)) if self.query else ""


async def send(ctx: LiveContext, sent: Sent) -> httpx.Response:
    return await unthrottled(
        ctx,
        sent.method,
        sent.path,
        headers=sent.headers(),
        params=sent.query or None,
        content=sent.body,
        with_auth=True,
    )


def evidence(
    ctx: LiveContext, sent: Sent, op: Operation, summary: str, response: httpx.Response | None
) -> Evidence:
    return seen(
        ctx,
        summary,
        response,
        sent.method,
        sent.path,
        location=f"{op.location} {sent.label}",
        headers=sent.headers(),
        query=sent.curl_query(),
        body=sent.body,
        with_auth=True,
    )


def query_params(ctx: LiveContext, op: Operation) -> list[Mapping[str, Any]]:
    return [p for p in parameters(ctx.document or {}, op.spec) if p.get("in") == "query"]


def required_query(ctx: LiveContext, op: Operation) -> dict[str, str]:
    return {
        str(p["name"]): str(sample(ctx.document, p.get("schema") or {}, p.get("example")))
        for p in query_params(ctx, op)
        if p.get("required")
    }


def value_violations(schema: Mapping[str, Any], *, text: bool = False) -> list[tuple[str, Any]]:
    """Values this (scalar) schema refuses, each with what it breaks. ``text``: the value
    travels as text (a query parameter), where a number is a valid string."""
    kind = schema_type(schema)
    found: list[tuple[str, Any]] = []
    if kind in ("integer", "number"):
        found.append(("a string where a number is declared", "not-a-number"))
        if "maximum" in schema:
            found.append(("a number over its maximum", schema["maximum"] + 1))
        if "minimum" in schema:
            found.append(("a number under its minimum", schema["minimum"] - 1))
    elif kind == "string":
        if "maxLength" in schema:
            found.append(("a string over its maxLength", "a" * (int(schema["maxLength"]) + 1)))
        if schema.get("enum"):
            found.append(("a value outside its enum", "bastion-audit-not-in-enum"))
        if not text:
            found.append(("a number where a string is declared", 12345))
    elif kind == "boolean":
        found.append(("a string where a boolean is declared", "not-a-boolean"))
    return found


def body_violations(document: Any, schema: Mapping[str, Any]) -> list[tuple[str, bytes]]:
    valid = sample(document, schema)
    found: list[tuple[str, bytes]] = [("malformed JSON", b'{"bastion-audit": [1, 2')]
    if schema_type(schema) == "object" or "properties" in schema:
        found.append(("an array where an object is declared", b"[]"))
        required = schema.get("required") or []
        if required and isinstance(valid, dict):
            missing = {k: v for k, v in valid.items() if k != required[0]}
            found.append((f"required property {required[0]} missing", orjson.dumps(missing)))
        for name, sub in (schema.get("properties") or {}).items():
            sub = resolve(document, sub)
            if not isinstance(sub, Mapping) or not isinstance(valid, dict):
                continue
            for label, bad in value_violations(sub)[:2]:
                found.append((f"{label} ({name})", orjson.dumps({**valid, name: bad})))
    return found[:8]


def schema_probes(ctx: LiveContext, op: Operation) -> list[Sent]:
    probes: list[Sent] = []
    base_query = required_query(ctx, op)
    schema = json_body_schema(ctx.document, op.spec)
    if schema is not None:
        for label, bad_body in body_violations(ctx.document, schema):
            probes.append(Sent(op.method, op.path, base_query, bad_body, f"body: {label}"))
    body = orjson.dumps(sample(ctx.document, schema)) if schema is not None else None
    for param in query_params(ctx, op):
        param_schema = resolve(ctx.document, param.get("schema") or {})
        for label, bad in value_violations(param_schema, text=True)[:2]:
            query = {**base_query, str(param["name"]): str(bad)}
            probes.append(Sent(op.method, op.path, query, body, f"?{param['name']}: {label}"))
    return probes[:10]


@guarded(SCHEMA)
async def check_schema(ctx: LiveContext) -> list[Finding]:
    if not ctx.aggressive:
        return [skipped(SCHEMA, "needs --aggressive")]
    bad: list[Evidence] = []
    sent = 0
    if not ctx.document:
        probe = Sent("POST", "/", {}, b'{"bastion-audit": [1, 2', "body: malformed JSON")
        op = Operation("POST", "/", "/", secured=True)
        targets = [(op, [probe])]
    else:
        targets = [(op, schema_probes(ctx, op)) for op in operations(ctx) if op.method != "DELETE"]
        targets = [(op, probes) for op, probes in targets if probes][:MAX_OPS]
    if not targets:
        return [skipped(SCHEMA, "the document declares no bodies or typed query parameters")]
    created: list[str] = []
    throttled: list[str] = []
    for op, probes in targets:
        try:
            for probe in probes:
                response = await send(ctx, probe)
                sent += 1
                status = response.status_code
                created += creations(response)
                if 400 <= status < 500 or (not ctx.document and status < 500):
                    continue
                verdict = "crashed the handler" if status >= 500 else "was accepted"
                summary = f"{probe.label} {verdict}: {status}"
                bad.append(evidence(ctx, probe, op, summary, response))
        except Throttled:
            throttled.append(op.location)
    await clean_up(ctx, created)
    note = throttled_note(throttled)
    if bad:
        message = f"{len(bad)} of {sent} invalid inputs were not refused with 4xx{note}"
        return [failed(SCHEMA, message, *bad)]
    if len(throttled) == len(targets):
        return [errored(SCHEMA, f"no operation could be probed{note}")]
    return [
        passed(SCHEMA, f"{sent} invalid inputs on {len(targets)} operations refused with 4xx{note}")
    ]


def throttled_note(locations: list[str]) -> str:
    """Operations whose probing a rate limit (429) cut short: they prove nothing either way."""
    if not locations:
        return ""
    return f" ({len(locations)} rate-limited before probed fully: {', '.join(locations)})"


def creations(response: httpx.Response) -> list[str]:
    """The resource a 2xx answer says it created (its Location, when a path on this host)."""
    location = response.headers.get("location", "")
    ok = 200 <= response.status_code < 300 and location.startswith("/")
    return [location] if ok and not location.startswith("//") else []


def template_matches(template: str, path: str) -> bool:
    parts = re.split(r"\{[^}/]+\}", template)
    return re.fullmatch("[^/]+".join(re.escape(part) for part in parts), path) is not None


async def clean_up(ctx: LiveContext, locations: list[str]) -> None:
    """Delete what the probes created, where the document declares a DELETE for it: an
    intrusive audit of a staging API should leave it as it found it."""
    deletes = [op.template for op in operations(ctx) if op.method == "DELETE"]
    for location in dict.fromkeys(locations):
        path = location.split("?", 1)[0]
        if any(template_matches(template, path) for template in deletes):
            await ctx.request("DELETE", path, with_auth=True)


def echoes(text: str) -> bool:
    return PROBE_VALUE in text or PROBE_NAME in text


@guarded(UNDECLARED)
async def check_undeclared(ctx: LiveContext) -> list[Finding]:
    if not ctx.aggressive:
        return [skipped(UNDECLARED, "needs --aggressive")]
    targets = []
    for op in operations(ctx):
        schema = (
            json_body_schema(ctx.document, op.spec)
            if op.method in ("POST", "PUT", "PATCH")
            else None
        )
        if schema is not None and (schema_type(schema) == "object" or "properties" in schema):
            targets.append((op, schema))
    if not targets:
        return [skipped(UNDECLARED, "the document declares no JSON object bodies")]
    bad: list[Evidence] = []
    created: list[str] = []
    throttled: list[str] = []
    for op, schema in targets[:MAX_OPS]:
        try:
            found, made = await undeclared_kept(ctx, op, schema)
        except Throttled:
            throttled.append(op.location)
            continue
        created += made
        bad += found
    await clean_up(ctx, created)
    note = throttled_note(throttled)
    if bad:
        return [failed(UNDECLARED, f"{len(bad)} operations keep undeclared properties{note}", *bad)]
    if len(throttled) == len(targets[:MAX_OPS]):
        return [errored(UNDECLARED, f"no operation could be probed{note}")]
    count = len(targets[:MAX_OPS]) - len(throttled)
    return [passed(UNDECLARED, f"{count} operations refused or dropped {PROBE_NAME}{note}")]


async def undeclared_kept(
    ctx: LiveContext, op: Operation, schema: Mapping[str, Any]
) -> tuple[list[Evidence], list[str]]:
    """Evidence that ``op`` kept the probe property, and what it created."""
    valid = sample(ctx.document, schema)
    body = orjson.dumps({**(valid if isinstance(valid, dict) else {}), PROBE_NAME: PROBE_VALUE})
    probe = Sent(op.method, op.path, required_query(ctx, op), body, f"body with {PROBE_NAME}")
    response = await send(ctx, probe)
    created = creations(response)
    if not 200 <= response.status_code < 300:
        return [], created
    if echoes(response.text):
        summary = f"{PROBE_NAME} was kept: the answer shows it"
        return [evidence(ctx, probe, op, summary, response)], created
    for location in created:
        stored = await unthrottled(ctx, "GET", location, with_auth=True)
        if echoes(stored.text):
            summary = f"{PROBE_NAME} was stored: GET {location} shows it"
            return [evidence(ctx, probe, op, summary, stored)], created
    return [], created


@dataclass(frozen=True, slots=True)
class Target:
    """One input an injection probe goes into: a query parameter or a body property."""

    op: Operation
    name: str
    query: Mapping[str, str]
    body: Mapping[str, Any] | None = None  # a valid body, when the input is one of its properties

    @property
    def label(self) -> str:
        return f"body.{self.name}" if self.body is not None else f"?{self.name}"

    def build(self, value: str) -> Sent:
        if self.body is not None:
            body = orjson.dumps({**self.body, self.name: value})
            return Sent(self.op.method, self.op.path, dict(self.query), body, f"{self.label}=…")
        query = {**self.query, self.name: value}
        return Sent(self.op.method, self.op.path, query, None, f"{self.label}=…")


def injection_targets(ctx: LiveContext) -> list[Target]:
    if not ctx.document:
        root = Operation("GET", "/", "/", secured=True)
        return [Target(root, "q", {}), Target(root, "id", {})]
    targets: list[Target] = []
    for op in operations(ctx):
        if op.method == "DELETE":
            continue
        base = required_query(ctx, op)
        for param in query_params(ctx, op):
            kind = schema_type(resolve(ctx.document, param.get("schema") or {}))
            if kind in ("string", "integer", "number", ""):
                targets.append(Target(op, str(param["name"]), base))
        schema = json_body_schema(ctx.document, op.spec)
        valid = sample(ctx.document, schema) if schema is not None else None
        if schema is not None and isinstance(valid, dict):
            for name, sub in (schema.get("properties") or {}).items():
                if schema_type(resolve(ctx.document, sub)) == "string":
                    targets.append(Target(op, str(name), base, valid))
                    break
    return targets[:MAX_TARGETS]


async def timed(ctx: LiveContext, sent: Sent) -> tuple[float, httpx.Response]:
    start = time.monotonic()
    response = await send(ctx, sent)
    return time.monotonic() - start, response


async def error_based(ctx: LiveContext, target: Target) -> Evidence | None:
    for payload in ERROR_PAYLOADS:
        probe = target.build(payload)
        response = await send(ctx, probe)
        message = database_error(response.text)
        if message:
            summary = f"{target.label} with {payload!r} produced a database error: {message!r}"
            return evidence(ctx, probe, target.op, summary, response)
    return None


async def time_based(ctx: LiveContext, target: Target) -> Evidence | None:
    """A delay counts only as slow, fast (a harmless control), slow again."""
    control = target.build("bastion-audit")
    normal = statistics.median([(await timed(ctx, control))[0] for _ in range(3)])
    slow = normal + 0.8 * SLEEP
    for payload in TIME_PAYLOADS:
        probe = target.build(payload)
        first, response = await timed(ctx, probe)
        if first < slow:
            continue
        fast, _ = await timed(ctx, control)
        again, _ = await timed(ctx, probe)
        if fast < normal + 0.5 * SLEEP and again >= slow:
            summary = (
                f"{target.label} with {payload!r} delayed the answer by {first - normal:.1f} s "
                f"and again by {again - normal:.1f} s (control {fast:.2f} s)"
            )
            return evidence(ctx, probe, target.op, summary, response)
    return None


@guarded(INJECTION)
async def check_injection(ctx: LiveContext) -> list[Finding]:
    if not ctx.aggressive:
        return [skipped(INJECTION, "needs --aggressive")]
    targets = injection_targets(ctx)
    if not targets:
        return [skipped(INJECTION, "the document declares no string inputs")]
    bad: list[Evidence] = []
    throttled: list[str] = []
    for target in targets:
        try:
            found = await error_based(ctx, target) or await time_based(ctx, target)
        except Throttled:
            throttled.append(f"{target.op.location} {target.label}")
            continue
        if found is not None:
            bad.append(found)
    note = throttled_note(throttled)
    if bad:
        return [failed(INJECTION, f"{len(bad)} inputs reach a database query as code{note}", *bad)]
    if len(throttled) == len(targets):
        return [errored(INJECTION, f"no input could be probed{note}")]
    names = ", ".join(
        f"{t.op.location} {t.label}"
        for t in targets
        if f"{t.op.location} {t.label}" not in throttled
    )
    return [passed(INJECTION, f"no database error or delay from {names}{note}")]


def register(registry: Registry) -> None:
    registry.add_live(SCHEMA, check_schema)
    registry.add_live(UNDECLARED, check_undeclared)
    registry.add_live(INJECTION, check_injection)
