"""OpenAPI schema objects made JSON Schema 2020-12 for *requests*, in place, once, at start.

- OpenAPI 3.0 dialect: ``nullable`` becomes a ``null`` type (or an ``anyOf`` with one), boolean
  ``exclusiveMinimum``/``exclusiveMaximum`` become the numeric form, and a ``$ref``'s siblings are
  dropped (3.0 says they are ignored). 3.1 schemas already are 2020-12.
- ``format: int32`` / ``int64`` (both versions) become ``minimum``/``maximum`` bounds.
- ``readOnly`` (both versions): the server sets it, so a request that sends it is trying to assign
  what it must not (mass assignment, OWASP API3). A read-only schema becomes one nothing matches
  (marked ``x-bastion-read-only`` so the error says why), and its name leaves ``required``.
- strict mode: every place a schema is *used* (a body, a property, an item; not the members of
  ``allOf``/``anyOf``/``oneOf``, which combine) gets ``unevaluatedProperties: false`` unless it
  says what to do with extra properties itself. ``unevaluatedProperties`` sees through ``$ref``
  and ``allOf``, so composed objects keep every property their parts document.

For *responses* (``responses=True``, on a copy of the document) the roles swap: ``readOnly``
properties are what a response carries, and ``writeOnly`` ones (a password, a card number) are
what it must not: those become the never-matching schema instead, marked ``x-bastion-write-only``.

The walk follows refs (each target transformed once), so schemas in embedded files and recursive
schemas are handled without special cases.
"""

from __future__ import annotations

from typing import Any

from bastion.validation.refs import resolve_pointer

READ_ONLY = "x-bastion-read-only"
WRITE_ONLY = "x-bastion-write-only"
_EXTRA_KEYWORDS = ("additionalProperties", "unevaluatedProperties", "patternProperties")
# keyword -> how its value holds schemas: "one" schema, a "map" of schemas, a "list" of them
_SCHEMA_KEYWORDS: dict[str, str] = {
    "items": "one",
    "additionalProperties": "one",
    "unevaluatedProperties": "one",
    "unevaluatedItems": "one",
    "contains": "one",
    "propertyNames": "one",
    "not": "one",
    "if": "one",
    "then": "one",
    "else": "one",
    "properties": "map",
    "patternProperties": "map",
    "dependentSchemas": "map",
    "$defs": "map",
    "definitions": "map",
    "prefixItems": "list",
    "allOf": "list",
    "anyOf": "list",
    "oneOf": "list",
}
_INTEGER_FORMATS = {"int32": (-(2**31), 2**31 - 1), "int64": (-(2**63), 2**63 - 1)}
_COMBINERS = frozenset({"allOf", "anyOf", "oneOf", "not", "if", "then", "else", "$defs"})


class SchemaTransformer:
    """Transforms the schemas of one document for requests (see the module docstring)."""

    def __init__(
        self, document: dict[str, Any], version: str, *, strict: bool, responses: bool = False
    ) -> None:
        self.document = document
        self.legacy = version == "3.0"
        self.strict = strict
        # the keyword whose properties this direction refuses, and the marker that says why
        self.hidden = "writeOnly" if responses else "readOnly"
        self.marker = WRITE_ONLY if responses else READ_ONLY
        self._done: set[int] = set()
        self.read_only_marked = 0

    def transform(self, schema: Any, *, use_site: bool = True) -> Any:
        """``schema`` transformed; returns the node to put in its place (it may be new)."""
        if not isinstance(schema, dict):
            return schema
        if id(schema) in self._done:
            return schema
        self._done.add(id(schema))
        ref = schema.get("$ref")
        if isinstance(ref, str):
            if self.legacy:
                nullable = schema.get("nullable") is True
                for key in [k for k in schema if k != "$ref"]:
                    del schema[key]
                if nullable:
                    schema["nullable"] = True
            target = self._target(ref)
            if target is not None:
                self.transform(target, use_site=False)
        if self.legacy:
            self._legacy(schema)
        self._integer_format(schema)
        for keyword, shape in _SCHEMA_KEYWORDS.items():
            value = schema.get(keyword)
            if value is None:
                continue
            nested_use = keyword not in _COMBINERS
            if shape == "one" and isinstance(value, dict):
                schema[keyword] = self.transform(value, use_site=nested_use)
            elif shape == "map" and isinstance(value, dict):
                for name in list(value):
                    value[name] = self.transform(value[name], use_site=nested_use)
            elif shape == "list" and isinstance(value, list):
                for i, item in enumerate(value):
                    value[i] = self.transform(item, use_site=nested_use)
        self._drop_read_only_required(schema)
        if schema.get(self.hidden) is True:
            schema.clear()
            schema.update({"not": {}, self.marker: True})
            self.read_only_marked += 1
            return schema
        if self.legacy and schema.get("nullable") is True:
            schema = self._nullable(schema)
        if self.strict and use_site:
            self._close(schema)
        return schema

    def _target(self, ref: str) -> Any:
        if not ref.startswith("#"):
            return None
        try:
            return resolve_pointer(self.document, ref[1:])
        except (KeyError, ValueError):
            return None

    def _resolved(self, schema: Any) -> Any:
        for _ in range(32):
            if not (isinstance(schema, dict) and isinstance(schema.get("$ref"), str)):
                return schema
            schema = self._target(schema["$ref"])
        return None

    def _legacy(self, schema: dict[str, Any]) -> None:
        for exclusive, bound in (("exclusiveMinimum", "minimum"), ("exclusiveMaximum", "maximum")):
            flag = schema.get(exclusive)
            if isinstance(flag, bool):
                del schema[exclusive]
                if flag and bound in schema:
                    schema[exclusive] = schema.pop(bound)

    def _integer_format(self, schema: dict[str, Any]) -> None:
        """``format: int32``/``int64`` bound the integer (an upstream storing it in a fixed-size
        integer must not overflow); JSON Schema alone treats the format as a note."""
        bounds = _INTEGER_FORMATS.get(str(schema.get("format")))
        kind = schema.get("type")
        if bounds is None or not (
            kind == "integer" or (isinstance(kind, list) and "integer" in kind)
        ):
            return
        low, high = bounds
        minimum, maximum = schema.get("minimum"), schema.get("maximum")
        if not isinstance(minimum, int | float) or minimum < low:
            schema["minimum"] = low
        if not isinstance(maximum, int | float) or maximum > high:
            schema["maximum"] = high

    def _nullable(self, schema: dict[str, Any]) -> dict[str, Any]:
        del schema["nullable"]
        kind = schema.get("type")
        if isinstance(kind, str) and "$ref" not in schema:
            schema["type"] = [kind, "null"]
            enum = schema.get("enum")
            if isinstance(enum, list) and None not in enum:
                schema["enum"] = [*enum, None]
            return schema
        inner = dict(schema)
        schema.clear()
        schema["anyOf"] = [inner, {"type": "null"}]
        self._done.add(id(inner))
        return schema

    def _drop_read_only_required(self, schema: dict[str, Any]) -> None:
        required = schema.get("required")
        properties = schema.get("properties")
        if not isinstance(required, list) or not isinstance(properties, dict):
            return
        kept = []
        for name in required:
            target = self._resolved(properties.get(name))
            if isinstance(target, dict) and (
                target.get(self.hidden) is True or target.get(self.marker) is True
            ):
                continue
            kept.append(name)
        if len(kept) != len(required):
            schema["required"] = kept

    def _close(self, schema: dict[str, Any]) -> None:
        """strict mode: extra properties are refused at this use of a schema."""
        if any(k in schema for k in _EXTRA_KEYWORDS):
            return
        target = self._resolved(schema) if "$ref" in schema else schema
        if not isinstance(target, dict) or any(k in target for k in _EXTRA_KEYWORDS):
            return
        if target.get(self.marker) is True:
            return
        composed = any(k in target for k in ("properties", "allOf", "anyOf", "oneOf", "$ref"))
        if composed:
            schema["unevaluatedProperties"] = False


def read_only_places(document: Any, marker: str = READ_ONLY) -> frozenset[tuple[str, ...]]:
    """Where the transformed ``document`` holds read-only (or, for responses, write-only)
    markers, as pointer tokens: the places a ``not`` violation means "a request cannot set
    this" (see :mod:`errors`)."""
    found: set[tuple[str, ...]] = set()
    stack: list[tuple[Any, tuple[str, ...]]] = [(document, ())]
    while stack:
        node, place = stack.pop()
        if isinstance(node, dict):
            if node.get(marker) is True:
                found.add(place)
            stack.extend(
                (value, (*place, str(key)))
                for key, value in node.items()
                if isinstance(value, dict | list)
            )
        elif isinstance(node, list):
            stack.extend(
                (value, (*place, str(i)))
                for i, value in enumerate(node)
                if isinstance(value, dict | list)
            )
    return frozenset(found)
