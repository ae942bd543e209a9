"""Static checks of practice 3, input validation: are the request schemas bounded?

A validating gateway (bastion's, or any other) can only refuse what the schema excludes: a string
without ``maxLength`` admits a 100 MB value, an array without ``maxItems`` a million elements, an
open object any property an attacker guesses (mass assignment). Only what a client sends is
examined (parameters and request bodies, and every schema they refer to); each schema is
reported once, at the place it is defined.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from typing import Any

from bastion.audit import openapi
from bastion.audit.checks.verdict import verdict
from bastion.audit.model import CheckInfo, Finding, Kind, Practice, Registry, Severity

_REFS = ("OWASP API4:2023", "ASVS 5.0 V2 (Validation and Business Logic)")


def _info(
    check_id: str, title: str, severity: Severity, criterion: str, why: str, *refs: str
) -> CheckInfo:
    return CheckInfo(
        id=check_id,
        title=title,
        practice=Practice.VALIDATION,
        severity=severity,
        kind=Kind.STATIC,
        criterion=criterion,
        rationale=why,
        references=refs or _REFS,
    )


SCHEMA_TYPED = _info(
    "static.schema-typed",
    "Request schemas are typed",
    Severity.MEDIUM,
    "Every request schema has a type (or enum, const, or a composition such as oneOf).",
    "An untyped schema accepts anything: objects where strings were meant, numbers as strings,"
    " nested structures a parser must walk.",
)
STRING_LENGTH = _info(
    "static.string-max-length",
    "Request strings have a maximum length",
    Severity.MEDIUM,
    "Every request string has maxLength (or is an enum or const).",
    "Unbounded strings let one request fill memory, logs and databases, and are the carrier of"
    " most injection payloads.",
)
STRING_PATTERN = _info(
    "static.string-pattern",
    "Request strings are constrained by pattern, format or enum",
    Severity.LOW,
    "Every request string has a pattern, an enum or const, or a format other than binary,"
    " byte or password.",
    "An allowlist of characters (pattern) or a known format refuses injection payloads before"
    " any code sees them; free text should be the documented exception.",
    "OWASP API8:2023",
    "ASVS 5.0 V2 (Validation and Business Logic)",
)
NUMERIC_RANGE = _info(
    "static.numeric-range",
    "Request numbers have a range",
    Severity.LOW,
    "Every request integer and number has a minimum and a maximum (or exclusive ones), or is"
    " an enum or const.",
    "Negative quantities, page sizes of a billion and out-of-range identifiers are classic"
    " business-logic and resource-consumption abuses.",
)
ARRAY_ITEMS = _info(
    "static.array-max-items",
    "Request arrays have a maximum size",
    Severity.MEDIUM,
    "Every request array has maxItems.",
    "Unbounded arrays multiply the work per request (batch abuse) and defeat per-request rate"
    " limits.",
)
CLOSED_OBJECTS = _info(
    "static.closed-objects",
    "Request objects refuse undeclared properties",
    Severity.MEDIUM,
    "Every request object sets additionalProperties: false (or unevaluatedProperties: false),"
    " or bounds a map with an additionalProperties schema and maxProperties.",
    "Undeclared properties are how mass assignment happens (isAdmin: true); a closed object"
    " makes the validator refuse them.",
    "OWASP API3:2023",
    "OWASP API6:2023",
    "ASVS 5.0 V2 (Validation and Business Logic)",
)

_COMPOSITION = ("allOf", "anyOf", "oneOf", "not")
_CHILDREN_MAP = ("properties", "patternProperties")
_CHILDREN_ONE = ("items", "additionalProperties", "not", "contains", "propertyNames")
_CHILDREN_LIST = ("allOf", "anyOf", "oneOf", "prefixItems")
_LOOSE_FORMATS = frozenset({"", "binary", "byte", "password"})


def _types(schema: Mapping[str, Any]) -> set[str]:
    value = schema.get("type")
    if isinstance(value, str):
        return {value}
    if isinstance(value, list):
        return {str(v) for v in value}
    return set()


def _fixed(schema: Mapping[str, Any]) -> bool:
    return "enum" in schema or "const" in schema


def request_schemas(document: Mapping[str, Any]) -> Iterator[tuple[Mapping[str, Any], str]]:
    """Every schema a client's request is validated against, once each, in document order."""
    seen: set[str] = set()
    roots: list[tuple[Any, str]] = []
    for op in openapi.operations(document):
        for param, where in openapi.parameters(document, op):
            if "schema" in param:
                roots.append((param["schema"], f"{where}/schema"))
            for media, body in sorted((param.get("content") or {}).items()):
                if isinstance(body, Mapping) and "schema" in body:
                    roots.append(
                        (body["schema"], f"{where}/content/{openapi.escape(media)}/schema")
                    )
        request, where = openapi.resolve(
            document, op.node.get("requestBody"), f"{op.location}/requestBody"
        )
        if isinstance(request, Mapping):
            for media, body in sorted((request.get("content") or {}).items()):
                if isinstance(body, Mapping) and "schema" in body:
                    roots.append(
                        (body["schema"], f"{where}/content/{openapi.escape(media)}/schema")
                    )
    stack = list(reversed(roots))
    while stack:
        raw, where = stack.pop()
        schema, where = openapi.resolve(document, raw, where)
        if not isinstance(schema, Mapping) or where in seen:
            continue
        seen.add(where)
        yield schema, where
        children: list[tuple[Any, str]] = []
        for key in _CHILDREN_MAP:
            table = schema.get(key)
            if isinstance(table, Mapping):
                children += [(table[n], f"{where}/{key}/{openapi.escape(n)}") for n in table]
        for key in _CHILDREN_ONE:
            if isinstance(schema.get(key), Mapping):
                children.append((schema[key], f"{where}/{key}"))
        for key in _CHILDREN_LIST:
            if isinstance(schema.get(key), list):
                children += [(s, f"{where}/{key}/{i}") for i, s in enumerate(schema[key])]
        stack.extend(reversed(children))


Rule = Callable[[Mapping[str, Any]], str | None]


def _run(document: Mapping[str, Any], info: CheckInfo, rule: Rule, ok: str) -> list[Finding]:
    problems: list[tuple[str, str]] = []
    examined = 0
    for schema, where in request_schemas(document):
        examined += 1
        message = rule(schema)
        if message is not None:
            problems.append((where, message))
    return verdict(
        info, problems, ok, examined=examined, nothing="the document has no request schema"
    )


def _untyped(schema: Mapping[str, Any]) -> str | None:
    if _types(schema) or _fixed(schema) or any(k in schema for k in _COMPOSITION):
        return None
    return "schema has no type"


def _long_string(schema: Mapping[str, Any]) -> str | None:
    if "string" in _types(schema) and not _fixed(schema) and "maxLength" not in schema:
        return "string has no maxLength"
    return None


def _free_string(schema: Mapping[str, Any]) -> str | None:
    if "string" not in _types(schema) or _fixed(schema) or "pattern" in schema:
        return None
    if str(schema.get("format", "")) not in _LOOSE_FORMATS:
        return None
    return "string has no pattern, format or enum"


def _open_number(schema: Mapping[str, Any]) -> str | None:
    if not _types(schema) & {"integer", "number"} or _fixed(schema):
        return None
    low = "minimum" in schema or "exclusiveMinimum" in schema
    high = "maximum" in schema or "exclusiveMaximum" in schema
    if low and high:
        return None
    missing = " and ".join(n for n, present in (("minimum", low), ("maximum", high)) if not present)
    return f"number has no {missing}"


def _long_array(schema: Mapping[str, Any]) -> str | None:
    if "array" in _types(schema) and "maxItems" not in schema:
        return "array has no maxItems"
    return None


def _open_object(schema: Mapping[str, Any]) -> str | None:
    if "object" not in _types(schema) and "properties" not in schema:
        return None
    if schema.get("additionalProperties") is False or schema.get("unevaluatedProperties") is False:
        return None
    if isinstance(schema.get("additionalProperties"), Mapping) and "maxProperties" in schema:
        return None
    return "object accepts undeclared properties (additionalProperties is not false)"


def schema_typed(document: Mapping[str, Any]) -> list[Finding]:
    return _run(document, SCHEMA_TYPED, _untyped, "every request schema is typed")


def string_max_length(document: Mapping[str, Any]) -> list[Finding]:
    return _run(document, STRING_LENGTH, _long_string, "every request string has a maxLength")


def string_pattern(document: Mapping[str, Any]) -> list[Finding]:
    return _run(
        document, STRING_PATTERN, _free_string, "every request string has a pattern, format or enum"
    )


def numeric_range(document: Mapping[str, Any]) -> list[Finding]:
    return _run(document, NUMERIC_RANGE, _open_number, "every request number has a range")


def array_max_items(document: Mapping[str, Any]) -> list[Finding]:
    return _run(document, ARRAY_ITEMS, _long_array, "every request array has maxItems")


def closed_objects(document: Mapping[str, Any]) -> list[Finding]:
    return _run(
        document, CLOSED_OBJECTS, _open_object, "every request object refuses undeclared properties"
    )


def register(registry: Registry) -> None:
    registry.add_static(SCHEMA_TYPED, schema_typed)
    registry.add_static(STRING_LENGTH, string_max_length)
    registry.add_static(STRING_PATTERN, string_pattern)
    registry.add_static(NUMERIC_RANGE, numeric_range)
    registry.add_static(ARRAY_ITEMS, array_max_items)
    registry.add_static(CLOSED_OBJECTS, closed_objects)
