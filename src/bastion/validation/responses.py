"""Upstream responses checked against the documented response schemas (per route, optional).

The guard asks the engine (or the middleware) to hold the response of a documented operation
(:data:`~bastion.pipeline.response_body.RESPONSE_BODY`) on routes whose
``validation.responses`` mode is not ``off``; :class:`ResponseCheck` then reads it once:

- only JSON bodies (``application/json``, ``*+json``) are looked at; anything else passes;
- the response's status picks the documented response: the exact code, then its range
  (``2XX``), then ``default``; the media type picks the schema (exact, ``type/*``, ``*/*``);
- **monitor**: each violation of the schema (compiled once at start, for responses:
  ``readOnly`` properties are expected, ``writeOnly`` ones are violations) becomes a security
  event ``validation.response_invalid`` with its pointer and a message that never quotes the
  value; a JSON response the document does not describe (status, media type) is one
  ``validation.response_undocumented`` event. The response passes unchanged;
- **strip**: properties the schema does not document (and ``writeOnly`` ones) are removed
  (see :mod:`bastion.validation.shapes`), and one ``validation.response_stripped`` event lists
  where. A response the document does not describe passes unchanged.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import jsonschema_rs
import orjson

from bastion.observability.events import EventSink, SecurityEvent
from bastion.pipeline.request import Request
from bastion.validation.bodies import is_json, media_type, select_media
from bastion.validation.errors import WRITE_ONLY_MESSAGE, violations
from bastion.validation.shapes import Shape, strip

if TYPE_CHECKING:
    from bastion.validation.operation import Operation

INVALID = "validation.response_invalid"
UNDOCUMENTED = "validation.response_undocumented"
STRIPPED = "validation.response_stripped"


@dataclass(slots=True)
class ResponseMedia:
    """One documented JSON media type of one documented response."""

    validator: jsonschema_rs.Validator | None = None
    shape: Shape | None = None


@dataclass(slots=True)
class ResponseContent:
    """The JSON media types one documented response (a status, a range, default) describes."""

    media: dict[str, ResponseMedia] = field(default_factory=dict)
    wildcards: list[tuple[str, ResponseMedia]] = field(default_factory=list)

    def select(self, media: str) -> ResponseMedia | None:
        return select_media(self.media, self.wildcards, media)


@dataclass(slots=True)
class Responses:
    """An operation's documented responses, by status."""

    exact: dict[int, ResponseContent] = field(default_factory=dict)
    ranges: dict[int, ResponseContent] = field(default_factory=dict)  # 2 for 2XX
    default: ResponseContent | None = None

    def select(self, status: int) -> ResponseContent | None:
        """The documented response for ``status``: exact code, then range, then default."""
        found = self.exact.get(status)
        if found is None:
            found = self.ranges.get(status // 100)
        return found if found is not None else self.default


@dataclass(slots=True)
class ResponsePolicy:
    """What the guard shares with every response check: the mode and where events go."""

    events: EventSink
    write_only: frozenset[tuple[str, ...]]  # places of write-only markers (see errors.py)


class ResponseCheck:
    """The :class:`~bastion.pipeline.response_body.BodyRewrite` of one request's response."""

    __slots__ = ("operation", "policy", "request", "strips")

    def __init__(
        self, policy: ResponsePolicy, operation: Operation, request: Request, strips: bool
    ) -> None:
        self.policy = policy
        self.operation = operation
        self.request = request
        self.strips = strips

    def __call__(self, status: int, content_type: str | None, body: bytes) -> bytes | None:
        responses = self.operation.responses
        media = media_type(content_type)
        if not body or responses is None or not is_json(media):
            return None
        content = responses.select(status)
        documented = content.select(media) if content is not None else None
        if documented is None:
            if not self.strips:
                self._event(UNDOCUMENTED, status, "the document describes no such response", {})
            return None
        try:
            value = orjson.loads(body)
        except orjson.JSONDecodeError:
            if not self.strips:
                self._event(INVALID, status, "is not valid JSON", {"pointer": "/body"})
            return None
        if self.strips:
            return self._strip(status, value, documented.shape)
        validator = documented.validator
        if validator is not None and not validator.is_valid(value):
            for error in violations(
                validator, value, "/body", self.policy.write_only, WRITE_ONLY_MESSAGE
            ):
                self._event(INVALID, status, error.message, {"pointer": error.pointer})
        return None

    def _strip(self, status: int, value: Any, shape: Shape | None) -> bytes | None:
        if shape is None:
            return None
        removed: list[str] = []
        strip(value, shape, removed)
        if not removed:
            return None
        self._event(STRIPPED, status, "undocumented properties removed", {"pointers": removed})
        return orjson.dumps(value)

    def _event(self, action: str, status: int, reason: str, fields: dict[str, Any]) -> None:
        fields["mode"] = "strip" if self.strips else "monitor"
        fields["operation"] = f"{self.operation.method} {self.operation.template}"
        self.policy.events.emit(
            SecurityEvent.for_request(
                self.request,
                action=action,
                outcome="success",  # the response went on
                guard="validation",
                status=status,
                reason=reason,
                fields=fields,
            )
        )
