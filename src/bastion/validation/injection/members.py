"""JSON objects as member lists, so that a repeated member name is inspected every time.

Parsers disagree on a repeated name (the first wins in some, the last in others), so the guard
parses with the standard library and ``object_pairs_hook``, which keeps every occurrence:
``{"q": "<attack>", "q": "ok"}`` cannot hide the first ``q``. Kept apart from the walk in
:mod:`.inspect` because that one is compiled with mypyc, which cannot subclass ``list``.
"""

from __future__ import annotations

import json


class Members(list[tuple[str, object]]):
    """A JSON object: its ``(name, value)`` members in document order, duplicates kept."""

    __slots__ = ()


_DECODER = json.JSONDecoder(object_pairs_hook=Members)


def parse_json(body: bytes) -> object:
    """The document in ``body`` (UTF-8), objects as :class:`Members`; ``ValueError`` (a
    ``UnicodeDecodeError`` too) or ``RecursionError`` when it cannot be read."""
    return _DECODER.decode(body.decode("utf-8"))
