"""What a guard decides: :class:`Allow` or :class:`Deny`. Denial is a value, never an exception."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

HeaderPairs = tuple[tuple[str, str], ...]


@dataclass(frozen=True, slots=True)
class ProblemField:
    """One violation inside a denial: a JSON pointer into the request and a safe message."""

    pointer: str
    message: str


@dataclass(frozen=True, slots=True)
class Allow:
    """Let the request go on.

    ``headers`` are added to the eventual response (for example ``RateLimit``). ``event`` names a
    security event to record for this decision (for example ``auth.success``); a plain ``ALLOW``
    records nothing, so guards that only pass traffic cost no logging.
    """

    headers: HeaderPairs = ()
    event: str | None = None
    fields: Mapping[str, Any] = field(default_factory=dict)


ALLOW = Allow()


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
