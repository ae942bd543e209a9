"""Which request paths bastion refuses, in gateway and middleware mode alike.

Guards match routes on the path as received while an upstream (or the app's router) may normalise
it; a path in which ``..`` could be resolved differently by the two is refused outright. Dot
segments count raw or percent-encoded, with ``%2f``, ``%5c`` and ``\\`` read as ``/``, and an
encoded NUL byte is refused too. One function, so the two faces can never drift apart.
"""

from __future__ import annotations

import re

_PERCENT_DOT = re.compile(rb"%2e", re.IGNORECASE)
_PERCENT_SLASH = re.compile(rb"%(?:2f|5c)", re.IGNORECASE)

DOT_SEGMENTS = "The path must not hold dot segments."
ENCODED_NUL = "The path holds an encoded NUL byte."


def path_problem(path: bytes) -> str | None:
    """Why ``path`` (percent-encoded, without query) is refused, or ``None`` when it is fine."""
    if b"." not in path and b"%" not in path and b"\\" not in path:
        return None
    decoded = _PERCENT_DOT.sub(b".", path)
    decoded = _PERCENT_SLASH.sub(b"/", decoded).replace(b"\\", b"/")
    if b"%00" in decoded:
        return ENCODED_NUL
    for segment in decoded.split(b"/"):
        if segment in (b".", b".."):
            return DOT_SEGMENTS
    return None
