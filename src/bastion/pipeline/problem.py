"""RFC 9457 problem details: the one shape of every response bastion refuses or fails with."""

from __future__ import annotations

from http import HTTPStatus

import orjson

from bastion.errors import BastionError
from bastion.pipeline.decisions import Deny
from bastion.pipeline.response import Response

PROBLEM_CONTENT_TYPE = "application/problem+json"
PROBLEM_TYPE_BASE = "urn:bastion:problem:"


def reason_phrase(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "Unknown"


def problem_body(deny: Deny, request_id: str, instance: str | None = None) -> bytes:
    doc: dict[str, object] = dict(deny.extensions) if deny.extensions else {}
    doc |= {
        "type": PROBLEM_TYPE_BASE + deny.code,
        "title": deny.title,
        "status": deny.status,
        "code": deny.code,
        "request_id": request_id,
    }
    if deny.detail:
        doc["detail"] = deny.detail
    if instance:
        doc["instance"] = instance
    if deny.errors:
        doc["errors"] = [{"pointer": e.pointer, "message": e.message} for e in deny.errors]
    return orjson.dumps(doc)


def problem_response(deny: Deny, request_id: str, instance: str | None = None) -> Response:
    """The complete response for ``deny``: problem+json body plus the guard's headers."""
    headers: list[tuple[str, str]] = [
        ("content-type", PROBLEM_CONTENT_TYPE),
        ("cache-control", "no-store"),
    ]
    headers.extend((name.lower(), value) for name, value in deny.headers)
    return Response(deny.status, tuple(headers), problem_body(deny, request_id, instance))


def deny_for_error(error: BastionError, detail: str = "") -> Deny:
    """The denial a client sees for an infrastructure or protocol ``error`` (no internals)."""
    return Deny(error.status, error.code, reason_phrase(error.status), detail)
