"""What a response schema documents, as a tree of :class:`Shape`: the properties to keep.

Strip mode removes from a JSON response every property its documented schema does not name
(excessive data exposure, OWASP API3: an upstream serialising its whole model returns the
``password_hash`` and ``is_admin`` the document never promised). A shape is built once per
schema node (refs followed, recursive schemas become cyclic shapes) from the document as
transformed for responses, so ``writeOnly`` properties are marked as never sent.

The rules, conservative where the document is ambiguous (what any alternative documents is kept):

- ``properties`` and ``patternProperties`` name what is kept; ``additionalProperties`` (or, in
  strict mode, ``unevaluatedProperties``) says what happens to the rest: a schema keeps them,
  ``true`` or ``{}`` keeps them as they are, ``false`` or absence removes them;
- ``allOf``, ``anyOf`` and ``oneOf`` members all count (a property one of them documents stays);
- a schema that documents no properties at all (``{}``, a bare ``type: object``) is free-form:
  nothing under it is removed;
- array ``items`` are stripped by their schema; ``prefixItems`` tuples are left as they are;
- a property whose schema is ``writeOnly`` is removed wherever it appears.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from bastion.validation.errors import MAX_ERRORS, pointer
from bastion.validation.schema import WRITE_ONLY


class Shape:
    """One schema node, as far as stripping cares."""

    __slots__ = ("extra", "has_extra", "hidden", "items", "members", "patterns", "properties")

    def __init__(self) -> None:
        self.properties: dict[str, Shape | None] = {}  # None: anything goes below
        self.patterns: list[tuple[re.Pattern[str] | None, Shape | None]] = []
        self.has_extra = False  # undocumented properties are kept (additionalProperties)
        self.extra: Shape | None = None  # ... and shaped by this (None: as they are)
        self.items: Shape | None = None
        self.members: list[Shape] = []  # allOf / anyOf / oneOf
        self.hidden = False  # writeOnly: never in a response

    def describes_properties(self) -> bool:
        return bool(self.properties or self.patterns or self.has_extra)


Resolve = Callable[[str], Any]

_OBJECT_WORDS = ("properties", "patternProperties", "additionalProperties", "unevaluatedProperties")


class ShapeBuilder:
    """Builds the shapes of one document; each schema node once (see the module docstring)."""

    def __init__(self, resolve: Resolve) -> None:
        self.resolve = resolve  # a local '#/...' ref to the node it names
        self._built: dict[int, Shape | None] = {}

    def build(self, schema: Any) -> Shape | None:
        """The shape of ``schema``; ``None`` when it documents nothing to strip by."""
        for _ in range(64):  # a bare ref (siblings that say nothing of properties) is its target
            if not (
                isinstance(schema, dict)
                and isinstance(schema.get("$ref"), str)
                and not any(k in schema for k in _OBJECT_WORDS)
            ):
                break
            schema = self._target(schema["$ref"])
        if not isinstance(schema, dict):
            return None
        key = id(schema)
        if key in self._built:
            return self._built[key]
        shape = Shape()
        self._built[key] = shape  # before descending: a recursive schema reaches itself
        if schema.get(WRITE_ONLY) is True:
            shape.hidden = True
            return shape
        properties = schema.get("properties")
        if isinstance(properties, dict):
            shape.properties = {str(k): self.build(v) for k, v in properties.items()}
        patterns = schema.get("patternProperties")
        if isinstance(patterns, dict):
            shape.patterns = [(_regex(str(k)), self.build(v)) for k, v in patterns.items()]
        for word in ("additionalProperties", "unevaluatedProperties"):
            extra = schema.get(word)
            if extra is None or extra is False:
                continue
            shape.has_extra = True
            shape.extra = self.build(extra)
        items = schema.get("items")
        if isinstance(items, dict):
            shape.items = self.build(items)
        ref = schema.get("$ref")
        if isinstance(ref, str):  # a ref beside object keywords (3.1) combines like allOf
            member = self.build(self._target(ref))
            if member is not None:
                shape.members.append(member)
        for word in ("allOf", "anyOf", "oneOf"):
            for member_schema in schema.get(word) or ():
                member = self.build(member_schema)
                if member is not None:
                    shape.members.append(member)
        if not (shape.describes_properties() or shape.items or shape.members):
            self._built[key] = None
            return None
        return shape

    def _target(self, ref: str) -> Any:
        if not ref.startswith("#"):
            return None
        try:
            return self.resolve(ref[1:])
        except (KeyError, ValueError):
            return None


def _regex(pattern: str) -> re.Pattern[str] | None:
    """The pattern, or ``None`` (matches every name) when Python cannot read it: a property
    the document may allow is kept rather than removed on a guess."""
    try:
        return re.compile(pattern)
    except re.error:
        return None


def _flatten(shapes: list[Shape]) -> list[Shape]:
    """The shapes and all their members (each once: members may refer back)."""
    out: list[Shape] = []
    seen: set[int] = set()
    stack = list(shapes)
    while stack:
        shape = stack.pop()
        if id(shape) in seen:
            continue
        seen.add(id(shape))
        out.append(shape)
        stack.extend(shape.members)
    return out


def strip(value: Any, shape: Shape, removed: list[str]) -> None:
    """Removes from ``value`` (in place) what ``shape`` does not document; the pointers of
    what was removed are appended to ``removed`` (the first ``MAX_ERRORS`` of them)."""
    _strip(value, [shape], [], removed)


def _strip(value: Any, shapes: list[Shape], path: list[str | int], removed: list[str]) -> None:
    if isinstance(value, dict):
        flat = [s for s in _flatten(shapes) if s.describes_properties() or s.hidden]
        if not flat or any(s.hidden for s in flat):
            return  # free-form here (a hidden value is removed by its parent)
        for name in list(value):
            below: list[Shape] = []
            keep = False
            free = False
            for shape in flat:
                found = _documented(shape, name)
                if found is _UNDOCUMENTED:
                    continue
                if found is None:
                    keep = free = True
                elif not found.hidden:
                    keep = True
                    below.append(found)
            if not keep:
                del value[name]
                if len(removed) < MAX_ERRORS:
                    removed.append(pointer("/body", [*path, name]))
            elif not free and below:
                path.append(name)
                _strip(value[name], below, path, removed)
                path.pop()
    elif isinstance(value, list):
        items = [s.items for s in _flatten(shapes) if s.items is not None]
        if items:
            for i, item in enumerate(value):
                path.append(i)
                _strip(item, items, path, removed)
                path.pop()


_UNDOCUMENTED = Shape()  # a sentinel: the name is not documented by this shape


def _documented(shape: Shape, name: str) -> Shape | None:
    """The shape ``shape`` gives property ``name``: ``None`` when anything goes below it,
    ``_UNDOCUMENTED`` when the shape does not document it."""
    if name in shape.properties:
        return shape.properties[name]
    for regex, below in shape.patterns:
        if regex is None or regex.search(name):
            return below
    if shape.has_extra:
        return shape.extra
    return _UNDOCUMENTED
