"""What a guard decides: :class:`Allow` or :class:`Deny`. Denial is a value, never an exception."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Final

HeaderPairs = tuple[tuple[str, str], ...]

_NO_FIELDS: Final[Mapping[str, Any]] = MappingProxyType({})


@dataclass(frozen=True, slots=True)
class ProblemField:
    """One violation inside a denial: a JSON pointer into the request and a safe message."""

    pointer: str
    message: str


class Allow:
    """Let the request go on.

    ``headers`` are added to the eventual response (for example ``RateLimit``). ``event`` names a
    security event to record for this decision (for example ``auth.success``); a plain ``ALLOW``
    records nothing, so guards that only pass traffic cost no logging.

    A plain slotted class rather than a frozen dataclass: guards build one per request on the hot
    path, and a frozen dataclass costs several times as much to construct. Treat it as immutable.
    """

    __slots__ = ("event", "fields", "headers")

    def __init__(
        self,
        headers: HeaderPairs = (),
        event: str | None = None,
        fields: Mapping[str, Any] = _NO_FIELDS,
    ) -> None:
        self.headers = headers
        self.event = event
        self.fields = fields

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Allow):
            return NotImplemented
        return (self.headers, self.event, dict(self.fields)) == (
            other.headers,
            other.event,
            dict(other.fields),
        )

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"Allow(headers={self.headers!r}, event={self.event!r}, fields={self.fields!r})"


ALLOW: Final = Allow()


@dataclass(frozen=True, slots=True)
class Deny:
    """Stop the request here and answer ``status`` with an RFC 9457 problem.

    ``code`` is stable and documented (``auth.missing_credentials``). ``detail`` is shown to the
    client, so it must never contain a secret or echo client input. ``extensions`` are extra
    members of the problem document (RFC 9457 §3.2, e.g. ``violated-policies``), under the same
    rule. ``fields`` go only to the security event (already redacted by the guard).
    """

    status: int
    code: str
    title: str
    detail: str = ""
    headers: HeaderPairs = ()
    errors: tuple[ProblemField, ...] = ()
    fields: Mapping[str, Any] = field(default_factory=dict)
    extensions: Mapping[str, Any] = field(default_factory=dict)


Decision = Allow | Deny
