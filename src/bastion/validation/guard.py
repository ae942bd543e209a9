"""The ``validation`` guard: the OpenAPI document as an allowlist, enforced on every request.

Per request, in this order (the first refusal wins, each one a problem+json):

1. routing: the path must match a documented template under a ``servers`` base path (404
   ``validation.not_found``), the method one of its operations (405
   ``validation.method_not_allowed`` with ``Allow``; HEAD is allowed where GET is);
2. parameters: path, query, header and cookie values decoded by their ``style``/``explode``,
   coerced and validated; strict mode refuses undocumented query parameters
   (``validation.parameter_invalid``);
3. the body: documented media type (415 ``validation.unsupported_media_type``), size (413
   ``validation.body_too_large``), JSON depth and members before parsing, then the schema
   (``validation.body_invalid``).

Each violation is listed in ``errors`` as a JSON pointer into the request (``/query/limit``,
``/body/items/0/price``) and a message that never quotes the submitted value. Requests to
bastion's own endpoints, to pass-through routes and to routes the document does not cover are
not looked at. In monitor mode nothing is refused: the violation becomes a security event and
the request goes on.

On routes whose ``validation.responses`` mode is ``monitor`` or ``strip``, the guard also asks
for the upstream's response to a documented operation (see :mod:`bastion.validation.responses`).
"""

from __future__ import annotations

from typing import Any, ClassVar

import orjson

from bastion.config.models import BastionConfig
from bastion.observability.events import EventSink, NullSink
from bastion.pipeline.decisions import ALLOW, Allow, Decision, Deny, ProblemField
from bastion.pipeline.guard import Phase
from bastion.pipeline.request import Request, StateKey
from bastion.pipeline.response_body import RESPONSE_BODY
from bastion.pipeline.routing import ROUTE
from bastion.validation.bodies import form_fields, json_limit, multipart_fields
from bastion.validation.compiler import CompiledApi
from bastion.validation.errors import pointer, violations
from bastion.validation.operation import REPEATED, Media, Operation
from bastion.validation.responses import ResponseCheck, ResponsePolicy

# For the guards after this one (the injection guard): the documented operation the request
# targets, and its body as parsed (JSON, or form fields as an object), so nobody parses twice.
OPERATION: StateKey[Operation] = StateKey("validation:operation")
BODY_VALUE: StateKey[Any] = StateKey("validation:body")

NO_REPEATS: list[str] = []  # shared, never appended to: JSON bodies have no repeated fields
NOT_FOUND = Deny(404, "validation.not_found", "Not Found", "The API does not document this path.")
NO_MEDIA_TYPE = "The request has a body but no Content-Type."
_DETAILS = {
    "validation.parameter_invalid": "The request parameters do not match the API description.",
    "validation.body_invalid": "The request body does not match the API description.",
}
_BODY_ERRORS = {
    "json": "is not valid JSON",
    "form": "is not valid application/x-www-form-urlencoded data",
    "multipart": "is not valid multipart/form-data",
}


def _content_type(request: Request) -> str | None:
    """The first ``Content-Type``, read from the raw fields: no header index is built for
    one field (guards that need the index build it themselves)."""
    for name, value in request.headers.raw:
        if name == b"content-type":
            return value.decode("latin-1")
    return None


class ValidationGuard:
    """The ``validation`` guard (see the module docstring)."""

    name: ClassVar[str] = "validation"
    phase: ClassVar[Phase] = Phase.VALIDATE
    requires_body: ClassVar[bool] = True

    def __init__(
        self, config: BastionConfig, api: CompiledApi, events: EventSink | None = None
    ) -> None:
        self.fail_open = False
        settings = config.validation
        self.api = api
        self.tree = api.tree
        self.strict = settings.strict
        self.status = settings.status
        self.monitor = settings.mode == "monitor"
        self.skip = frozenset(settings.pass_through)
        if settings.routes:
            self.skip |= frozenset(r.name for r in config.routes) - set(settings.routes)
        limits = settings.limits
        self.max_body = (
            limits.max_body_bytes
            if limits.max_body_bytes is not None
            else config.limits.max_body_bytes
        )
        self.max_depth = limits.json_max_depth
        self.max_members = limits.json_max_members
        self.short_body = 2 * limits.json_max_members  # too short to hold more members
        self.max_parts = limits.multipart_max_parts
        self._method_denials: dict[str, Deny] = {}
        # responses: the mode of each route that differs from the default one (None: no route)
        self.response_default = settings.responses
        self.response_modes = dict(settings.responses_by_route)
        self.rewrites_responses = response_modes(config) != frozenset()
        self.response_policy = ResponsePolicy(events or NullSink(), api.write_only)

    def check(self, request: Request) -> Decision:
        route = request.state.get(ROUTE)
        if route is not None and (route.endpoint is not None or route.name in self.skip):
            return ALLOW
        found = self.tree.match(request.path)
        if found is None:
            return self._refuse(NOT_FOUND)
        entry, raw_path = found
        operation = entry.operations.get(request.method)
        if operation is None:
            if request.method == "HEAD":
                operation = entry.operations.get("GET")
            if operation is None:
                return self._refuse(self._method_not_allowed(entry.allow))
        request.state[OPERATION] = operation
        if self.rewrites_responses and operation.responses is not None:
            self._ask_for_response(request, operation, route.name if route is not None else None)
        errors = operation.check_parameters(request, raw_path, self.strict)
        if errors:
            return self._refuse(self._invalid("validation.parameter_invalid", errors))
        body = request.body
        if body or operation.body is not None:
            return self._check_body(request, operation, body)
        return ALLOW

    def _ask_for_response(self, request: Request, operation: Operation, route: str | None) -> None:
        mode = self.response_default if route is None else self.response_modes.get(route)
        if mode is None:
            mode = self.response_default
        if mode != "off":
            check = ResponseCheck(self.response_policy, operation, request, mode == "strip")
            request.state[RESPONSE_BODY] = check

    def _method_not_allowed(self, allow: str) -> Deny:
        denial = self._method_denials.get(allow)
        if denial is None:
            denial = Deny(
                405,
                "validation.method_not_allowed",
                "Method Not Allowed",
                "The API does not document this method on this path.",
                headers=(("allow", allow),),
            )
            self._method_denials[allow] = denial
        return denial

    def _invalid(self, code: str, errors: list[ProblemField]) -> Deny:
        title = "Bad Request" if self.status == 400 else "Unprocessable Content"
        return Deny(self.status, code, title, _DETAILS[code], errors=tuple(errors))

    def _refuse(self, denial: Deny) -> Decision:
        if not self.monitor:
            return denial
        fields: dict[str, Any] = {"mode": "monitor", "status": denial.status}
        if denial.errors:
            fields["pointers"] = [e.pointer for e in denial.errors]
        return Allow(event=denial.code, fields=fields)

    def _check_body(self, request: Request, operation: Operation, body: bytes | None) -> Decision:
        spec = operation.body
        if not body:
            if spec is not None and spec.required:
                return self._refuse(
                    self._invalid("validation.body_invalid", [ProblemField("/body", "is required")])
                )
            return ALLOW
        if spec is None:
            return self._refuse(
                self._invalid(
                    "validation.body_invalid",
                    [ProblemField("/body", "this operation takes no request body")],
                )
            )
        content_type = _content_type(request)
        media = spec.select(content_type)
        if media is None:
            detail = (
                NO_MEDIA_TYPE if not content_type else "The API does not document this media type."
            )
            return self._refuse(
                Deny(
                    415,
                    "validation.unsupported_media_type",
                    "Unsupported Media Type",
                    f"{detail} This operation accepts: {spec.accepted}.",
                )
            )
        if len(body) > self.max_body:
            return self._refuse(
                Deny(
                    413,
                    "validation.body_too_large",
                    "Content Too Large",
                    f"The body exceeds {self.max_body} bytes.",
                )
            )
        return self._check_media(request, media, body, content_type or "")

    def _check_media(
        self, request: Request, media: Media, body: bytes, content_type: str
    ) -> Decision:
        kind = media.kind
        value: Any
        repeated: list[str] = NO_REPEATS
        if kind == "json":
            exceeded = (
                None
                # the common case inline: json_limit's own first test, without the call
                if len(body) < self.short_body
                and body.count(b"{") + body.count(b"[") <= self.max_depth
                else json_limit(body, self.max_depth, self.max_members)
            )
            if exceeded is not None:
                message = (
                    f"nests deeper than {self.max_depth} levels"
                    if exceeded == "depth"
                    else f"has more than {self.max_members} members"
                )
                return self._refuse(
                    self._invalid("validation.body_invalid", [ProblemField("/body", message)])
                )
            try:
                value = orjson.loads(body)
            except orjson.JSONDecodeError:
                return self._refuse(self._malformed(kind))
        elif kind == "form":
            pairs = form_fields(body, self.max_members)
            if pairs is None:
                return self._refuse(self._malformed(kind))
            value, repeated = media.form_object(list(pairs))
        elif kind == "multipart":
            parts = multipart_fields(body, content_type, self.max_parts)
            if parts is None:
                return self._refuse(self._malformed(kind))
            value, repeated = media.form_object(parts)
        else:
            return ALLOW
        request.state[BODY_VALUE] = value
        if repeated:
            errors = [ProblemField(pointer("/body", [name]), REPEATED) for name in repeated]
            return self._refuse(self._invalid("validation.body_invalid", errors))
        validator = media.validator
        if validator is None or validator.is_valid(value):
            return ALLOW
        errors = violations(validator, value, "/body", self.api.read_only)
        return self._refuse(self._invalid("validation.body_invalid", errors))

    def _malformed(self, kind: str) -> Deny:
        return self._invalid("validation.body_invalid", [ProblemField("/body", _BODY_ERRORS[kind])])


def response_modes(config: BastionConfig) -> frozenset[str]:
    """The response modes (``monitor``, ``strip``) some validated route uses."""
    settings = config.validation
    modes = {settings.responses, *settings.responses_by_route.values()}
    return frozenset(modes - {"off"})
