"""Violations as the client sees them: a JSON pointer and a message that never quotes the value.

jsonschema-rs's own messages quote the instance (``'hunter2' is not of type "integer"``); a
refusal must not echo what was submitted (it could be a secret, or markup aimed at whoever reads
the error). So the message is built here from the *schema* side of the error only: the expected
type, the bound, the documented pattern. Property names the client sent appear only inside the
pointer, JSON-encoded, cut to a safe length.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import jsonschema_rs

from bastion.pipeline.decisions import ProblemField
from bastion.validation.refs import escape

MAX_ERRORS = 20
READ_ONLY_MESSAGE = "is read-only; a request cannot set it"
WRITE_ONLY_MESSAGE = "is write-only; a response must not carry it"
_MAX_TOKEN = 64


def token(name: str) -> str:
    """A pointer token for a client-chosen name: escaped, and cut so errors stay small."""
    text = escape(name)
    return text if len(text) <= _MAX_TOKEN else text[: _MAX_TOKEN - 3] + "..."


def pointer(prefix: str, path: Iterable[str | int]) -> str:
    return prefix + "".join(f"/{token(str(part))}" for part in path)


def _values(values: Any) -> str:
    items = values if isinstance(values, list) else [values]
    shown = ", ".join(repr(v) if isinstance(v, str) else str(v) for v in items[:10])
    return shown + (", ..." if len(items) > 10 else "")


def _message(kind: str, data: dict[str, Any]) -> str:
    limit = data.get("limit")
    match kind:
        case "type":
            types = data.get("types") or []
            return f"expected {' or '.join(str(t) for t in types) or 'another type'}"
        case "required":
            return "is required"
        case "enum":
            return f"expected one of the documented values ({_values(data.get('options'))})"
        case "const":
            return "expected the documented constant value"
        case "minimum":
            return f"must be at least {limit}"
        case "maximum":
            return f"must be at most {limit}"
        case "exclusiveMinimum":
            return f"must be greater than {limit}"
        case "exclusiveMaximum":
            return f"must be less than {limit}"
        case "multipleOf":
            return f"must be a multiple of {data.get('multiple_of')}"
        case "minLength":
            return f"must be at least {limit} characters long"
        case "maxLength":
            return f"must be at most {limit} characters long"
        case "minItems":
            return f"must have at least {limit} items"
        case "maxItems":
            return f"must have at most {limit} items"
        case "uniqueItems":
            return "items must be unique"
        case "minProperties":
            return f"must have at least {limit} properties"
        case "maxProperties":
            return f"must have at most {limit} properties"
        case "pattern":
            return f"must match the documented pattern {data.get('pattern')}"
        case "format":
            return f"must be a valid {data.get('format')}"
        case "anyOf":
            return "does not match any of the documented alternatives"
        case "oneOf":
            branches = data.get("context") or []
            if any(not errors for errors in branches):
                return "matches more than one of the documented alternatives"
            return "does not match any of the documented alternatives"
        case "falseSchema" | "not":
            return "is not allowed here"
        case "propertyNames":
            return "has a property name the schema does not allow"
        case "dependentRequired":
            return "lacks a property the documented dependencies require"
        case "contains":
            return "contains no item of the documented kind"
        case _:
            return "does not match the documented schema"


def violations(
    validator: jsonschema_rs.Validator,
    instance: Any,
    prefix: str,
    read_only: frozenset[tuple[str, ...]],
    marked: str = READ_ONLY_MESSAGE,
) -> list[ProblemField]:
    """Each way ``instance`` violates, as problem fields under ``prefix`` (``/body``);
    ``read_only`` are the places of read-only markers in the document (a ``not`` failing
    there is a read-only property sent in a request, explained by ``marked``; for responses,
    the places of write-only markers)."""
    found: list[ProblemField] = []
    for error in validator.iter_errors(instance):
        kind = error.kind
        name = kind.name
        data = kind.as_dict()
        path = list(error.instance_path)
        if name in ("additionalProperties", "unevaluatedProperties"):
            for extra in data.get("unexpected") or []:
                found.append(
                    ProblemField(pointer(prefix, [*path, extra]), "is not a documented property")
                )
        elif name == "required":
            found.append(
                ProblemField(pointer(prefix, [*path, str(data.get("property"))]), "is required")
            )
        elif name == "not" and tuple(str(p) for p in error.schema_path[:-1]) in read_only:
            found.append(ProblemField(pointer(prefix, path), marked))
        else:
            found.append(ProblemField(pointer(prefix, path), _message(name, data)))
        if len(found) >= MAX_ERRORS:
            break
    return found
