"""Which kinds of injection are not looked for at one place of a request (configured exemptions).

Compiled once per rule from ``IN`` / ``IN:NAME`` field strings; looked up per inspected value, so
the lookups are dictionary hits, and body pointers (with ``*`` for any one key or index) are
matched as token tuples only when some body exemption exists. A pointer exempts the subtree under
it too: exempting ``/article`` exempts ``/article/body``.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from bastion.config.injection import ExemptionConfig, Kind, Location, parse_field

NOTHING: frozenset[Kind] = frozenset()


def pointer_tokens(pointer: str) -> tuple[str, ...]:
    """``"/a~1b/0"`` -> ``("a/b", "0")`` (RFC 6901 unescaping)."""
    if not pointer:
        return ()
    return tuple(t.replace("~1", "/").replace("~0", "~") for t in pointer[1:].split("/"))


def escape_token(token: str) -> str:
    return token.replace("~", "~0").replace("/", "~1")


@dataclass(frozen=True, slots=True)
class Exemptions:
    """The compiled exemptions of one rule (or of the global settings)."""

    whole: dict[Location, frozenset[Kind]] = field(default_factory=dict)
    named: dict[tuple[Location, str], frozenset[Kind]] = field(default_factory=dict)
    body: tuple[tuple[tuple[str, ...], frozenset[Kind]], ...] = ()

    @classmethod
    def compile(cls, entries: Iterable[ExemptionConfig]) -> Exemptions:
        whole: dict[Location, frozenset[Kind]] = {}
        named: dict[tuple[Location, str], frozenset[Kind]] = {}
        body: list[tuple[tuple[str, ...], frozenset[Kind]]] = []
        for entry in entries:
            where, name = parse_field(entry.field)
            kinds = frozenset(entry.kinds)
            if name is None:
                whole[where] = whole.get(where, NOTHING) | kinds
            elif where == "body":
                body.append((pointer_tokens(name), kinds))
            elif where == "path":
                named[(where, name[1:])] = named.get((where, name[1:]), NOTHING) | kinds
            else:
                named[(where, name)] = named.get((where, name), NOTHING) | kinds
        return cls(whole, named, tuple(body))

    def merged(self, other: Exemptions) -> Exemptions:
        whole = dict(self.whole)
        for where, kinds in other.whole.items():
            whole[where] = whole.get(where, NOTHING) | kinds
        named = dict(self.named)
        for key, kinds in other.named.items():
            named[key] = named.get(key, NOTHING) | kinds
        return Exemptions(whole, named, self.body + other.body)

    def at(self, where: Location, name: str | None = None) -> frozenset[Kind]:
        """Kinds exempt at ``where`` (and at its parameter/header/segment ``name``)."""
        kinds = self.whole.get(where, NOTHING)
        if name is not None and self.named:
            kinds = kinds | self.named.get((where, name), NOTHING)
        return kinds

    def in_body(self, path: Sequence[str]) -> frozenset[Kind]:
        """Kinds exempt at the body position ``path`` (tokens), whole-body exemptions included."""
        kinds = self.whole.get("body", NOTHING)
        for pattern, exempt in self.body:
            if len(pattern) <= len(path) and all(
                p == "*" or p == t for p, t in zip(pattern, path, strict=False)
            ):
                kinds = kinds | exempt
        return kinds
