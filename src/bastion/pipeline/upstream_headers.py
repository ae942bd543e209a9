"""What a guard changes in the request the upstream receives: fields removed and added.

Guards decide (authentication sets the caller's identity fields and removes inbound copies of
them); the engine and the ASGI middleware apply the edit after their own hop-by-hop filtering.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Final

from bastion.pipeline.request import StateKey

RawPairs = Sequence[tuple[bytes, bytes]]


class UpstreamHeaders:
    """Request fields a guard removes from, and adds to, what the upstream receives.

    A guard puts one in ``request.state[UPSTREAM_HEADERS]`` (authentication: the caller's
    identity, with inbound copies of those fields and the consumed credential removed); the
    engine and the ASGI middleware apply it after their own filtering, so added fields can be
    neither dropped by a client's ``Connection`` header nor duplicated by a client's copy.
    Names are lower case; values must already be safe header values.
    """

    __slots__ = ("_base", "_skip", "add", "lines", "remove")

    def __init__(self, remove: frozenset[bytes], add: tuple[tuple[bytes, bytes], ...] = ()) -> None:
        self.remove = remove
        self.add = add
        self.lines = b"".join([name + b": " + value + b"\r\n" for name, value in add])
        self._base: frozenset[bytes] | None = None
        self._skip = remove

    def skip(self, base: frozenset[bytes]) -> frozenset[bytes]:
        """``base`` (the fields never copied) plus :attr:`remove`; computed once per base."""
        if self._base is not base:
            self._skip = base | self.remove
            self._base = base
        return self._skip

    def apply(self, headers: RawPairs) -> list[tuple[bytes, bytes]]:
        """``headers`` without the removed fields, then the added ones (ASGI scopes)."""
        remove = self.remove
        return [(n, v) for n, v in headers if n not in remove] + list(self.add)


UPSTREAM_HEADERS: Final[StateKey[UpstreamHeaders]] = StateKey("upstream_headers")
