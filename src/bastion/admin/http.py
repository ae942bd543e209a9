"""JSON in, JSON out, and RFC 9457 problems with stable codes, for the admin endpoints."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, TypeVar
from urllib.parse import parse_qsl

import orjson
from pydantic import BaseModel, ValidationError

from bastion.pipeline.decisions import Deny, ProblemField
from bastion.pipeline.problem import problem_response
from bastion.pipeline.request import Request
from bastion.pipeline.response import Response

JSON_HEADERS = (("content-type", "application/json"), ("cache-control", "no-store"))
MAX_BODY = 64 * 1024
M = TypeVar("M", bound=BaseModel)


class AdminProblem(Exception):
    """Raised inside a handler; becomes one problem+json answer (and the audit outcome)."""

    def __init__(
        self,
        status: int,
        code: str,
        title: str,
        detail: str = "",
        *,
        errors: Sequence[ProblemField] = (),
        headers: tuple[tuple[str, str], ...] = (),
        extensions: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(code)
        self.deny = Deny(
            status,
            code,
            title,
            detail,
            headers=headers,
            errors=tuple(errors),
            extensions=extensions or {},
        )


def json_response(doc: Any, status: int = 200) -> Response:
    return Response(status, JSON_HEADERS, orjson.dumps(doc))


def problem(error: AdminProblem, request: Request) -> Response:
    return problem_response(error.deny, request.request_id)


def parse_body(request: Request, model: type[M]) -> M:
    """The JSON body as ``model`` (an empty body is ``{}``); a 400 problem naming each field."""
    raw = request.body or b""
    if len(raw) > MAX_BODY:
        raise AdminProblem(413, "admin.body_too_large", "Content Too Large")
    content_type = (request.headers.get("content-type") or "application/json").lower()
    if raw and not content_type.startswith("application/json"):
        raise AdminProblem(
            415, "admin.unsupported_media_type", "Unsupported Media Type", "Send JSON."
        )
    try:
        data = orjson.loads(raw) if raw.strip() else {}
    except orjson.JSONDecodeError:
        raise AdminProblem(
            400, "admin.invalid_request", "Bad Request", "The body is not valid JSON."
        ) from None
    if not isinstance(data, dict):
        raise AdminProblem(
            400, "admin.invalid_request", "Bad Request", "The body must be a JSON object."
        )
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        fields = [
            ProblemField(
                "/" + "/".join(str(part) for part in item["loc"]),
                item["msg"].removeprefix("Value error, "),
            )
            for item in exc.errors(include_url=False, include_input=False)
        ]
        raise AdminProblem(
            400, "admin.invalid_request", "Bad Request", "The body is invalid.", errors=fields
        ) from None


def query_params(request: Request) -> dict[str, str]:
    """The query string's parameters (last one wins); values are percent-decoded."""
    return dict(parse_qsl(request.query, keep_blank_values=True))
