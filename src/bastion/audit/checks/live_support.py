"""What the live check families share: the operations to probe (from the OpenAPI document, or
the target URL alone), sample and invalid values built from schemas, masked evidence, and the
wrapper that turns a spent budget or a dead connection into an ``error`` finding.

Nothing here sends a request by itself; the families decide what to send.
"""

from __future__ import annotations

import asyncio
import base64
import functools
import re
import unicodedata
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import httpx

from bastion.audit.context import LiveContext
from bastion.audit.model import CheckInfo, Evidence, Finding, Outcome, Registry

METHODS = ("get", "put", "post", "delete", "patch", "head", "options")
MAX_OPERATIONS = 40
EXCERPT = 400
_JWT = re.compile(r"^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*$")


@dataclass(frozen=True, slots=True)
class Operation:
    """One operation to probe. ``path`` is concrete (path parameters filled with sample values);
    ``template`` is the document's path, which evidence locations use (stable across runs)."""

    method: str
    path: str
    template: str
    secured: bool
    spec: Mapping[str, Any] = field(default_factory=dict)
    schemes: tuple[str, ...] = ()  # names of the security schemes the operation accepts

    @property
    def location(self) -> str:
        return f"{self.method} {self.template}"


def resolve(document: Mapping[str, Any] | None, node: Any, depth: int = 0) -> Any:
    """Follow a local ``$ref`` (``#/components/...``); anything else is returned as is."""
    while isinstance(node, Mapping) and isinstance(node.get("$ref"), str) and depth < 20:
        ref: str = node["$ref"]
        if not ref.startswith("#/") or document is None:
            return {}
        target: Any = document
        for part in ref[2:].split("/"):
            part = part.replace("~1", "/").replace("~0", "~")
            if not isinstance(target, Mapping) or part not in target:
                return {}
            target = target[part]
        node, depth = target, depth + 1
    return node


def operations(ctx: LiveContext) -> list[Operation]:
    """Every operation of the document (at most :data:`MAX_OPERATIONS`, in document order), or
    ``GET`` on the target URL when there is no document (then taken as secured: the operator
    pointed the audit at it)."""
    document = ctx.document
    if not document or not isinstance(document.get("paths"), Mapping):
        return [Operation("GET", "/", "/", secured=True)]
    found: list[Operation] = []
    default_security = document.get("security") or []
    for template, item in document["paths"].items():
        item = resolve(document, item)
        if not isinstance(item, Mapping):
            continue
        for method in METHODS:
            spec = resolve(document, item.get(method))
            if not isinstance(spec, Mapping):
                continue
            params = [*parameters(document, item), *parameters(document, spec)]
            security = spec.get("security", default_security) or []
            schemes = tuple(
                sorted({n for req in security if isinstance(req, Mapping) for n in req})
            )
            optional = any(isinstance(req, Mapping) and not req for req in security)
            path = fill_path(str(template), params, document)
            found.append(
                Operation(
                    method.upper(),
                    path,
                    str(template),
                    secured=bool(security) and not optional,
                    spec=spec,
                    schemes=schemes,
                )
            )
            if len(found) >= MAX_OPERATIONS:
                return found
    return found


def parameters(document: Mapping[str, Any], node: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    params = node.get("parameters") or []
    resolved = [resolve(document, p) for p in params]
    return [p for p in resolved if isinstance(p, Mapping)]


def fill_path(template: str, params: Sequence[Mapping[str, Any]], document: Any) -> str:
    def value(match: re.Match[str]) -> str:
        name = match.group(1)
        for param in params:
            if param.get("in") == "path" and param.get("name") == name:
                return str(sample(document, param.get("schema") or {}, param.get("example")))
        return "1"

    return re.sub(r"\{([^}/]+)\}", value, template)


def sample(document: Any, schema: Any, example: Any = None, depth: int = 0) -> Any:
    """A value the schema accepts (the example, default or first enum value when declared)."""
    schema = resolve(document, schema)
    if example is not None:
        return example
    if not isinstance(schema, Mapping) or depth > 8:
        return "audit"
    for key in ("example", "default", "const"):
        if key in schema:
            return schema[key]
    if schema.get("enum"):
        return schema["enum"][0]
    if isinstance(schema.get("examples"), list) and schema["examples"]:
        return schema["examples"][0]
    for key in ("oneOf", "anyOf"):
        if schema.get(key):
            return sample(document, schema[key][0], None, depth + 1)
    if schema.get("allOf"):
        merged: dict[str, Any] = {}
        for part in schema["allOf"]:
            value = sample(document, part, None, depth + 1)
            if isinstance(value, dict):
                merged.update(value)
        return merged
    kind = schema_type(schema)
    if kind == "object" or "properties" in schema:
        props = schema.get("properties") or {}
        return {name: sample(document, sub, None, depth + 1) for name, sub in props.items()}
    if kind == "array":
        count = max(int(schema.get("minItems", 1)), 1)
        return [sample(document, schema.get("items") or {}, None, depth + 1)] * count
    if kind == "integer":
        return int(schema.get("minimum", 1))
    if kind == "number":
        return schema.get("minimum", 1)
    if kind == "boolean":
        return True
    return sample_string(schema)


def sample_string(schema: Mapping[str, Any]) -> str:
    formats = {
        "email": "audit@example.com",
        "date-time": "2026-01-01T00:00:00Z",
        "date": "2026-01-01",
        "uuid": "00000000-0000-4000-8000-000000000000",
        "uri": "https://example.com/",
        "ipv4": "192.0.2.1",
    }
    if schema.get("format") in formats:
        return formats[schema["format"]]
    length = max(int(schema.get("minLength", 5)), 1)
    if "maxLength" in schema:
        length = min(length, int(schema["maxLength"]))
    return "a" * length


def schema_type(schema: Mapping[str, Any]) -> str:
    kind = schema.get("type")
    if isinstance(kind, list):  # OpenAPI 3.1: ["string", "null"]
        kind = next((k for k in kind if k != "null"), None)
    return str(kind) if kind else ""


def json_body_schema(document: Any, spec: Mapping[str, Any]) -> Mapping[str, Any] | None:
    body = resolve(document, spec.get("requestBody"))
    if not isinstance(body, Mapping):
        return None
    content = body.get("content") or {}
    for media, entry in content.items():
        if "json" in str(media) and isinstance(entry, Mapping):
            schema = resolve(document, entry.get("schema"))
            return schema if isinstance(schema, Mapping) else {}
    return None


def probe_operation(ctx: LiveContext, *, write: bool = False) -> Operation:
    """The operation a check that needs only one uses: the first secured ``GET``, one without
    path parameters first (or the first secured operation, or the first operation)."""
    ops = operations(ctx)
    wanted = [op for op in ops if op.secured and (write or op.method == "GET")]
    # a path without parameters is served whatever the data (no made-up id to miss)
    plain = [op for op in wanted if "{" not in op.template]
    return (plain or wanted or [op for op in ops if op.secured] or ops)[0]


# -- credentials -------------------------------------------------------------------------------


def is_jwt(text: str) -> bool:
    if not _JWT.match(text):
        return False
    try:
        header = b64decode(text.split(".", 1)[0])
    except ValueError:
        return False
    return header.startswith(b"{")


def b64decode(part: str) -> bytes:
    try:
        return base64.urlsafe_b64decode(part + "=" * (-len(part) % 4))
    except (ValueError, TypeError) as error:
        raise ValueError("not base64url") from error


def b64encode(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def credential_value(header_value: str) -> str:
    """The credential in a header value: ``Bearer X`` / ``ApiKey X`` -> ``X``; a bare key as is."""
    scheme, _, rest = header_value.partition(" ")
    return rest.strip() if rest and scheme.isalpha() else header_value.strip()


def credential_headers(ctx: LiveContext) -> list[str]:
    """Header names credentials travel in: the document's security schemes (API keys in
    headers, HTTP and OAuth schemes in ``Authorization``), else the ``--auth`` names, else
    ``Authorization``."""
    names: list[str] = []
    schemes = ((ctx.document or {}).get("components") or {}).get("securitySchemes") or {}
    for scheme in schemes.values():
        scheme = resolve(ctx.document, scheme)
        if not isinstance(scheme, Mapping):
            continue
        if scheme.get("type") == "apiKey" and scheme.get("in") == "header":
            names.append(str(scheme.get("name", "")))
        elif scheme.get("type") in ("http", "oauth2", "openIdConnect"):
            names.append("Authorization")
    names += [name for name, _ in ctx.auth]
    unique = list(dict.fromkeys(n for n in names if n))
    return unique or ["Authorization"]


# -- evidence -----------------------------------------------------------------------------------


def excerpt(ctx: LiveContext, response: httpx.Response, *, headers: Sequence[str] = ()) -> str:
    """Status line, the named headers (all when none named) and the start of the body, with
    every operator credential masked (a weak API may echo one back)."""
    reason = response.reason_phrase or ""
    lines = [f"{response.http_version} {response.status_code} {reason}".rstrip()]
    wanted = {h.lower() for h in headers}
    for name, value in response.headers.multi_items():
        if not wanted or name.lower() in wanted:
            lines.append(f"{name}: {value}")
    head = response.content[: EXCERPT * 4].decode(response.encoding or "utf-8", "replace")
    body = head[:EXCERPT]
    if body:
        cut = len(response.content) > len(body.encode(response.encoding or "utf-8", "replace"))
        lines += ["", body + ("…" if cut else "")]
    return printable(ctx.mask("\n".join(lines), ctx.secrets))


def printable(text: str) -> str:
    """``text`` with control characters other than line breaks and tabs written as escapes:
    what the target sent must not drive the terminal the report is read in (``ESC [``, the
    8-bit CSI) nor hide a line of it (a bare carriage return)."""
    if text.isprintable():
        return text
    return "".join(
        ch
        if ch in "\n\t" or unicodedata.category(ch) not in ("Cc", "Cf", "Zl", "Zp")
        else ch.encode("unicode_escape").decode("ascii")
        for ch in text
    )


def seen(
    ctx: LiveContext,
    summary: str,
    response: httpx.Response | None,
    method: str,
    path: str,
    *,
    location: str = "",
    headers: Sequence[tuple[str, str]] = (),
    query: str = "",
    body: bytes | None = None,
    with_auth: bool = False,
    show: Sequence[str] = (),
) -> Evidence:
    """Evidence for one exchange: the masked curl to replay it and what came back."""
    return Evidence(
        summary=ctx.mask(summary, ctx.secrets),
        location=location or f"{method} {path}",
        curl=ctx.curl(method, path, headers=headers, query=query, body=body, with_auth=with_auth),
        response=excerpt(ctx, response, headers=show) if response is not None else "",
    )


def errored(info: CheckInfo, message: str) -> Finding:
    return Finding(info, Outcome.ERROR, message)


# -- rate limits met by checks that are not about rate limits -----------------------------------

MAX_WAIT = 5.0  # seconds a check waits out a Retry-After before giving up


class Throttled(Exception):
    """The target answered 429 where a check needed the real answer: a refusal by the rate
    limiter proves nothing about authentication or validation, so the check cannot conclude."""


def digits(text: str) -> int | None:
    """``text`` as a count when it is one to 18 ASCII digits, else ``None``.

    ``str.isdigit`` also accepts ``²`` or ``٣`` (which ``int`` refuses) and any length (``int``
    refuses past 4300 digits): a target's header must never turn a check into a crash."""
    text = text.strip()
    if 0 < len(text) <= 18 and text.isascii() and text.isdigit():
        return int(text)
    return None


def retry_after_seconds(response: httpx.Response) -> float | None:
    seconds = digits(response.headers.get("retry-after", ""))
    return None if seconds is None else float(seconds)


async def unthrottled(
    ctx: LiveContext,
    method: str,
    path: str,
    **options: Any,
) -> httpx.Response:
    """:meth:`LiveContext.request`, but a 429 is waited out once (a Retry-After of at most
    :data:`MAX_WAIT` seconds) and otherwise raises :class:`Throttled`: counted as a refusal, it
    would make an input or token check pass that never reached the code it tests."""
    response = await ctx.request(method, path, **options)
    if response.status_code != 429:
        return response
    wait = retry_after_seconds(response)
    if wait is not None and wait <= MAX_WAIT:
        await asyncio.sleep(wait)
        response = await ctx.request(method, path, **options)
        if response.status_code != 429:
            return response
    raise Throttled(
        f"{method} {path} was answered 429: the target rate-limited the audit before the check "
        "could conclude (raise the limit for the audit's credential, or use --pacing)"
    )


Check = Callable[[LiveContext], Awaitable[list[Finding]]]


def guarded(info: CheckInfo) -> Callable[[Check], Check]:
    """A check that lost the target reports ``error`` with the reason, never a traceback.
    :class:`~bastion.audit.context.BudgetExhausted` goes on up: the runner reports the check
    that ran out and skips the ones after it."""

    def wrap(check: Check) -> Check:
        @functools.wraps(check)
        async def run(ctx: LiveContext) -> list[Finding]:
            try:
                return await check(ctx)
            except Throttled as throttled:
                return [errored(info, str(throttled))]
            except (httpx.TransportError, OSError, TimeoutError) as error:
                kind = type(error).__name__
                why = ctx.mask(str(error), ctx.secrets)  # an error may quote the URL sent
                return [errored(info, f"the target could not be reached ({kind}): {why}")]

        return run

    return wrap


# -- what error bodies must not reveal ----------------------------------------------------------


def _ending(*extensions: str) -> str:
    """A file name's extension, checked behind a possessive match: the name is never
    backtracked into character by character (which a hostile body makes quadratic)."""
    return "(?:" + "|".join(rf"(?<=\.{e})" for e in extensions) + r")\b"


_LEAKS: tuple[tuple[str, re.Pattern[str]], ...] = tuple(
    (kind, re.compile(pattern, re.MULTILINE))
    for kind, pattern in (
        ("stack trace", r"Traceback \(most recent call last\)"),
        ("stack trace", r'File "[^"\n]{1,400}", line \d+'),
        ("stack trace", r"\bat [\w$.<>]{1,300}\([\w$]{1,200}\.(?:java|kt|scala):\d+\)"),
        ("stack trace", r"\bat [^\n]{1,300}? \(\S{1,400}?\.[cm]?[jt]s:\d+:\d+\)"),
        ("stack trace", r"Exception in thread \""),
        ("stack trace", r"goroutine \d+ \[running\]"),
        ("stack trace", r"#\d+ \S{1,400}?\.php\(\d+\)"),
        ("stack trace", r"\bat [\w.]{1,300}\([^\n]{0,300}?\) in \S{1,400}?\.cs:line \d+"),
        ("SQL error", r"You have an error in your SQL syntax"),
        ("SQL error", r"syntax error at or near"),
        ("SQL error", r"unterminated quoted string"),
        ("SQL error", r"\bpsycopg2?\.(?:errors|OperationalError|ProgrammingError)"),
        ("SQL error", r"\bsqlite3\.(?:OperationalError|ProgrammingError)"),
        ("SQL error", r"SQLITE_ERROR|near \"[^\"\n]{0,300}\": syntax error"),
        ("SQL error", r"\bORA-\d{5}\b"),
        ("SQL error", r"Unclosed quotation mark after the character string"),
        ("SQL error", r"SQLSTATE\[\w+\]"),
        ("SQL error", r"(?:PSQLException|java\.sql\.SQLException|PG::\w+Error)"),
        (
            "file path",
            (
                r"/(?:home|usr|var|srv|opt|app|root|etc|tmp)(?:/[\w.@-]{1,120}+){1,24}"
                + _ending("py", "rb", "php", "js", "ts", "java", "go", "cs")
            ),
        ),
        (
            "file path",
            r"\b[A-Z]:\\\\?(?:[\w .-]{1,120}+\\\\?){0,24}[\w.-]{1,120}+"
            + _ending("py", "cs", "php", "java", "js"),
        ),
        ("file path", r"(?:site-packages|node_modules|dist-packages)/"),
    )
)


LEAK_SCAN = 64 * 1024
"""Characters of a body searched for leaks: a stack trace or SQL error starts an error page."""


def leaks(text: str) -> list[tuple[str, str]]:
    """What a response body reveals about the server's insides: (kind, the matched text).

    The target chooses the body: only its first :data:`LEAK_SCAN` characters are searched, and
    every pattern's repetitions are bounded, so that no body makes the search quadratic (an
    unbounded ``.+`` before a literal used to take minutes on a megabyte of ``at at at``)."""
    text = text[:LEAK_SCAN]
    found: list[tuple[str, str]] = []
    for kind, pattern in _LEAKS:
        match = pattern.search(text)
        if match and kind not in (k for k, _ in found):
            found.append((kind, match.group(0)[:120]))
    return found


def database_error(text: str) -> str | None:
    return next((snippet for kind, snippet in leaks(text) if kind == "SQL error"), None)


def register(registry: Registry) -> None:
    """No checks here: what the live families share."""
