"""Path templates matched by a segment tree: the cost of a lookup grows with the path's length,
not with the number of operations (GitHub's description has 800 paths).

At each segment a literal child is tried before a segment mixing text and a variable
(``{name}.json``), which is tried before a whole-segment variable: OpenAPI says concrete paths
match before templated ones (``/users/me`` before ``/users/{id}``). The walk backtracks, so
``/a/{x}/c`` and ``/a/b/d`` both stay reachable. Variable values are returned raw
(percent-encoded); the parameter decides how to split and decode them.
"""

from __future__ import annotations

import re
from typing import Generic, TypeVar

T = TypeVar("T")
_VARIABLE = re.compile(r"\{([^{}/]+)\}")
CACHE_SIZE = 4096
CACHED_PATH_LENGTH = 256


def variables(template: str) -> tuple[str, ...]:
    """The variable names of ``template``, in the order :meth:`PathTree.match` returns values."""
    return tuple(_VARIABLE.findall(template))


class _Node(Generic[T]):
    __slots__ = ("leaf", "literal", "mixed", "variable")

    def __init__(self) -> None:
        self.literal: dict[str, _Node[T]] = {}
        self.mixed: list[tuple[re.Pattern[str], _Node[T]]] = []
        self.variable: _Node[T] | None = None
        self.leaf: T | None = None


class PathTree(Generic[T]):
    """Templates (``/items/{id}``) to values, under any of the base paths of the ``servers``."""

    def __init__(self, bases: tuple[str, ...] = ("",)) -> None:
        self.root: _Node[T] = _Node()
        self._cache: dict[str, tuple[T, list[str]] | None] = {}
        # longest base first, so /api/v2 is tried before /api
        self.bases = tuple(sorted({b.rstrip("/") for b in bases}, key=len, reverse=True))

    def add(self, template: str, value: T) -> T:
        """Adds ``template``; returns the value now stored for it, which is an earlier one when
        an equivalent template (``/a/{x}`` and ``/a/{y}``) is already there."""
        node = self.root
        for segment in template.split("/")[1:]:
            variables = _VARIABLE.findall(segment)
            if not variables:
                node = node.literal.setdefault(segment, _Node())
            elif segment == "{" + variables[0] + "}":
                if node.variable is None:
                    node.variable = _Node()
                node = node.variable
            else:
                regex = "".join(
                    "([^/]+?)" if i % 2 else re.escape(part)
                    for i, part in enumerate(_VARIABLE.split(segment))
                )
                pattern = re.compile(f"^{regex}$")
                for existing, child in node.mixed:
                    if existing.pattern == pattern.pattern:
                        node = child
                        break
                else:
                    child = _Node()
                    node.mixed.append((pattern, child))
                    node = child
        if node.leaf is None:
            node.leaf = value
        return node.leaf

    def match(self, path: str) -> tuple[T, list[str]] | None:
        """The value of the template ``path`` matches and its raw variables in template order
        (see :func:`variables`), or ``None``. Answers are remembered per path (a bounded
        table, emptied when full), since most traffic repeats a few paths."""
        cache = self._cache
        if path in cache:
            return cache[path]
        found = self._match(path)
        if len(path) <= CACHED_PATH_LENGTH:
            if len(cache) >= CACHE_SIZE:
                cache.clear()
            cache[path] = found
        return found

    def _match(self, path: str) -> tuple[T, list[str]] | None:
        for base in self.bases:
            if base:
                if not path.startswith(base):
                    continue
                rest = path[len(base) :]
                if not rest.startswith("/"):
                    continue
            else:
                rest = path
            segments = rest.split("/")[1:]
            values: list[str] = []
            leaf = self._walk(self.root, segments, 0, values)
            if leaf is not None:
                return leaf, values
        return None

    def _walk(self, node: _Node[T], segments: list[str], index: int, values: list[str]) -> T | None:
        if index == len(segments):
            return node.leaf
        segment = segments[index]
        child = node.literal.get(segment)
        if child is not None:
            found = self._walk(child, segments, index + 1, values)
            if found is not None:
                return found
        if not segment:
            return None
        for pattern, mixed in node.mixed:
            groups = pattern.match(segment)
            if groups is not None:
                mark = len(values)
                values.extend(groups.groups())
                found = self._walk(mixed, segments, index + 1, values)
                if found is not None:
                    return found
                del values[mark:]
        if node.variable is not None:
            values.append(segment)
            found = self._walk(node.variable, segments, index + 1, values)
            if found is not None:
                return found
            values.pop()
        return None
