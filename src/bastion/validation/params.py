"""Parameters as OpenAPI serialises them: ``style`` and ``explode`` undone, types coerced.

A parameter arrives as text (``?ids=1,2,3``, ``/items/7``, ``X-Limit: 10``); its schema speaks of
integers, arrays and objects. :class:`Param` is compiled once per parameter with the shape and
scalar types its schema implies, so that per request decoding is a few string operations. A
value that cannot be coerced stays text, and the compiled schema then reports the type error with
the parameter's pointer, exactly as for a body.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import unquote

import orjson

_DEFAULT_STYLE = {"path": "simple", "header": "simple", "query": "form", "cookie": "form"}
NOT_JSON = object()


def _is_integer(text: str) -> bool:
    """``text`` is a JSON integer (``-?(0|[1-9][0-9]*)``): string methods, not the regex."""
    digits = text[1:] if text.startswith("-") else text
    return digits.isascii() and digits.isdigit() and (digits[0] != "0" or len(digits) == 1)


def scalar(text: str, kind: str | None) -> Any:
    """``text`` as the scalar ``kind`` says, or the text itself when it is not one."""
    if kind == "integer":
        if len(text) <= 40 and _is_integer(text):
            return int(text)
        return text
    if kind == "number":
        if len(text) > 64:
            return text
        try:
            number = float(text) if not _is_integer(text) else int(text)
        except ValueError:
            return text
        return number if not isinstance(number, float) or math.isfinite(number) else text
    if kind == "boolean":
        if text == "true":
            return True
        if text == "false":
            return False
        return text
    return text


def _schema_type(schema: Any, resolve: Any) -> tuple[str | None, Any]:
    """The JSON type a (resolved) schema expects, looking through ``anyOf`` and friends, and
    the schema itself (resolved)."""
    schema = resolve(schema)
    if not isinstance(schema, dict):
        return None, schema
    kind = schema.get("type")
    if isinstance(kind, list):
        kinds = [k for k in kind if k != "null"]
        kind = kinds[0] if len(kinds) == 1 else None
    if isinstance(kind, str):
        return kind, schema
    if "properties" in schema:
        return "object", schema
    for combiner in ("allOf", "anyOf", "oneOf"):
        members = schema.get(combiner)
        if isinstance(members, list):
            for member in members:
                found, resolved = _schema_type(member, resolve)
                if found is not None and found != "null":
                    return found, resolved
    return None, schema


@dataclass(slots=True)
class Param:
    """One compiled parameter (or form field): where it is and how to read it."""

    name: str
    location: str
    key: str = ""  # the name as looked up: lower-case for headers
    required: bool = False
    style: str = "form"
    explode: bool = True
    shape: str = "primitive"  # primitive | array | object | json
    scalar_type: str | None = None
    item_type: str | None = None
    property_types: dict[str, str | None] = field(default_factory=dict)

    @classmethod
    def compile(cls, spec: dict[str, Any], location: str, resolve: Any) -> Param:
        style = str(spec.get("style") or _DEFAULT_STYLE.get(location, "form"))
        explode = spec.get("explode")
        name = str(spec.get("name", ""))
        param = cls(
            name=name,
            location=location,
            key=name.lower() if location == "header" else name,
            required=bool(spec.get("required")) or location == "path",
            style=style,
            explode=bool(explode) if explode is not None else style == "form",
        )
        if "schema" not in spec and isinstance(spec.get("content"), dict):
            param.shape = "json"
            return param
        param.configure(spec.get("schema"), resolve)
        return param

    def configure(self, schema: Any, resolve: Any) -> None:
        kind, resolved = _schema_type(schema, resolve)
        if kind == "array":
            self.shape = "array"
            items = resolved.get("items") if isinstance(resolved, dict) else None
            self.item_type = _schema_type(items, resolve)[0]
        elif kind == "object":
            self.shape = "object"
            properties = resolved.get("properties") if isinstance(resolved, dict) else None
            if isinstance(properties, dict):
                self.property_types = {
                    str(name): _schema_type(value, resolve)[0] for name, value in properties.items()
                }
        else:
            self.scalar_type = kind

    def _pairs(self, parts: list[str]) -> dict[str, Any]:
        value: dict[str, Any] = {}
        for i in range(0, len(parts) - 1, 2):
            name = parts[i]
            value[name] = scalar(parts[i + 1], self.property_types.get(name))
        return value

    def _object(self, text: str, sep: str) -> dict[str, Any] | str:
        if self.explode:
            value: dict[str, Any] = {}
            for part in text.split(sep):
                name, eq, raw = part.partition("=")
                if not eq:
                    return text
                value[name] = scalar(raw, self.property_types.get(name))
            return value
        parts = text.split(",")
        return self._pairs(parts) if len(parts) % 2 == 0 else text

    def decode(self, text: str) -> Any:
        """One serialised value (a path segment, a header, a cookie or a query value)."""
        shape = self.shape
        if shape == "json":
            try:
                return orjson.loads(text)
            except orjson.JSONDecodeError:
                return NOT_JSON
        style = self.style
        sep = ","
        if style == "label":
            if not text.startswith("."):
                return text
            text = text[1:]
            sep = "." if self.explode else ","
        elif style == "matrix":
            prefix = f";{self.name}="
            if shape == "object" and self.explode:
                text = text[1:] if text.startswith(";") else text
                sep = ";"
            elif text.startswith(prefix):
                if shape == "array" and self.explode:
                    head = self.name + "="
                    values = [p[len(head) :] for p in text[1:].split(";") if p.startswith(head)]
                    return [scalar(v, self.item_type) for v in values]
                text = text[len(prefix) :]
            else:
                return text
        elif style == "spaceDelimited":
            sep = " "
        elif style == "pipeDelimited":
            sep = "|"
        if shape == "primitive":
            return scalar(text, self.scalar_type)
        if shape == "array":
            if text == "":
                return []
            parts = text.split(sep)
            if self.location == "header":
                parts = [p.strip() for p in parts]
            return [scalar(p, self.item_type) for p in parts]
        return self._object(text, sep)

    def decode_path(self, raw: str) -> Any:
        """A path segment: split by its style first, so ``%2C`` stays data, then decoded."""
        if self.shape == "primitive":
            return scalar(unquote(raw) if "%" in raw else raw, self.scalar_type)
        value = self.decode(raw)
        if isinstance(value, list):
            return [unquote(v) if isinstance(v, str) else v for v in value]
        if isinstance(value, dict):
            return {unquote(k): unquote(v) if isinstance(v, str) else v for k, v in value.items()}
        return unquote(value) if isinstance(value, str) else value
