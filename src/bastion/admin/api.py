"""``/admin/...``: consumers, API keys, signing keys, config reload, events, the audit log.

Every call needs an admin token (``Authorization: Bearer bsa_...``) whose role allows it, and
every call, allowed or refused, is one audit log entry. Errors are problem+json with a stable
``code`` (``admin.unauthenticated``, ``admin.forbidden``, ``admin.invalid_request``,
``admin.not_found``, ``admin.method_not_allowed``, ``admin.key_unknown``, ``admin.conflict``,
``admin.store_unavailable``, ``admin.reload_refused``, ``admin.internal_error``).
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from pydantic import BaseModel, ConfigDict, Field

from bastion.admin.http import AdminProblem, json_response, parse_body, problem, query_params
from bastion.admin.plane import AdminPlane
from bastion.admin.tokens import Principal
from bastion.auth.keys.manager import UnknownKey
from bastion.config.types import parse_duration
from bastion.control.diff import flatten
from bastion.control.recent import EventQuery
from bastion.errors import BackendUnavailable, ConfigError, StateError, describe
from bastion.pipeline.request import Request, StateKey
from bastion.pipeline.response import Response
from bastion.version import __version__

logger = logging.getLogger("bastion.admin")
Handler = Callable[[AdminPlane, Request, dict[str, str]], Awaitable[Response]]
CHALLENGE = (("www-authenticate", 'Bearer realm="bastion-admin"'),)
_KEY_ID = r"(?P<key>[A-Za-z0-9_-]{1,64})"
PRINCIPAL: StateKey[Principal] = StateKey("admin.principal")


@dataclass(frozen=True)
class Operation:
    method: str
    pattern: re.Pattern[str]
    role: str
    action: str
    handler: Handler


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class CreateKey(_Body):
    consumer: str = Field(max_length=128)
    scopes: tuple[str, ...] = Field((), max_length=64)
    tier: str | None = None
    name: str = ""
    expires: str | None = Field(None, description="a duration such as 30d")


class RotateKey(_Body):
    grace: str = "24h"
    expires: str | None = None


class RotateSigning(_Body):
    revoke_previous: bool = False


def _duration(field: str, value: str | None) -> float | None:
    if value is None:
        return None
    try:
        return parse_duration(value)
    except ValueError as exc:
        raise AdminProblem(400, "admin.invalid_request", "Bad Request", f"{field}: {exc}") from None


def unauthenticated(detail: str) -> AdminProblem:
    return AdminProblem(401, "admin.unauthenticated", "Unauthorized", detail, headers=CHALLENGE)


def bearer(request: Request) -> str:
    value = request.headers.get("authorization") or ""
    scheme, _, token = value.partition(" ")
    return token.strip() if scheme.lower() == "bearer" else ""


def authenticate(plane: AdminPlane, request: Request, *, session: str = "") -> Principal:
    """The caller's principal from the bearer token (or, for reads, a dashboard session)."""
    book = plane.tokens
    if book.empty:
        raise unauthenticated(
            "No admin token is configured (admin.tokens); the admin API is closed."
        )
    token = bearer(request)
    if token:
        principal = book.verify(token)
        if principal is None:
            raise unauthenticated("The admin token is not valid.")
        return principal
    if session and request.method in ("GET", "HEAD"):
        found = plane.sessions.get(session)
        if found is not None and book.admits(found):
            return found
    raise unauthenticated("An admin token is required (Authorization: Bearer).")


# -- handlers


async def status(plane: AdminPlane, request: Request, args: dict[str, str]) -> Response:
    config = plane.config()
    reloader = plane.reloader
    return json_response(
        {
            "version": __version__,
            "started_at": plane.started_at,
            "workers": config.workers,
            "routes": [r.name for r in config.routes],
            "config_generation": reloader.generation if reloader else 0,
            "reloaded_at": reloader.reloaded_at if reloader else None,
        }
    )


async def show_config(plane: AdminPlane, request: Request, args: dict[str, str]) -> Response:
    return json_response({"config": flatten(plane.config())})


async def list_keys(plane: AdminPlane, request: Request, args: dict[str, str]) -> Response:
    consumer = query_params(request).get("consumer") or None
    return json_response({"keys": await plane.keys.list_keys(consumer)})


async def show_key(plane: AdminPlane, request: Request, args: dict[str, str]) -> Response:
    return json_response(await plane.keys.get(args["key"]))


async def create_key(plane: AdminPlane, request: Request, args: dict[str, str]) -> Response:
    body = parse_body(request, CreateKey)
    doc = await plane.keys.create(
        body.consumer, body.scopes, body.tier, body.name, _duration("/expires", body.expires)
    )
    return json_response(doc, 201)


async def rotate_key(plane: AdminPlane, request: Request, args: dict[str, str]) -> Response:
    body = parse_body(request, RotateKey)
    grace = _duration("/grace", body.grace)
    assert grace is not None
    doc = await plane.keys.rotate(args["key"], grace, _duration("/expires", body.expires))
    return json_response(doc, 201)


async def revoke_key(plane: AdminPlane, request: Request, args: dict[str, str]) -> Response:
    return json_response(await plane.keys.revoke(args["key"]))


async def list_consumers(plane: AdminPlane, request: Request, args: dict[str, str]) -> Response:
    return json_response({"consumers": await plane.keys.consumers()})


async def show_consumer(plane: AdminPlane, request: Request, args: dict[str, str]) -> Response:
    keys = await plane.keys.list_keys(args["consumer"])
    if not keys:
        raise AdminProblem(404, "admin.not_found", "Not Found", "No key has this consumer.")
    return json_response({"consumer": args["consumer"], "keys": keys})


async def signing_keys(plane: AdminPlane, request: Request, args: dict[str, str]) -> Response:
    return json_response(await plane.keys.signing_keys())


async def rotate_signing(plane: AdminPlane, request: Request, args: dict[str, str]) -> Response:
    body = parse_body(request, RotateSigning)
    return json_response(await plane.keys.rotate_signing(body.revoke_previous), 201)


async def reload_config(plane: AdminPlane, request: Request, args: dict[str, str]) -> Response:
    reloader = plane.reloader
    if reloader is None:
        raise AdminProblem(
            409, "admin.conflict", "Conflict", "This process cannot reload its config."
        )
    principal = request.state.get(PRINCIPAL)
    result = await reloader.reload(plane.actor(principal, request.client.ip), request.request_id)
    if not result.ok:
        raise AdminProblem(
            422,
            "admin.reload_refused",
            "Unprocessable Content",
            "The config was not applied; the running config stays in force.",
            extensions={"problems": result.problems, "changes": result.changes},
        )
    return json_response(result.doc())


def _float(params: dict[str, str], name: str) -> float | None:
    text = params.get(name)
    if not text:
        return None
    try:
        return float(text)
    except ValueError:
        raise AdminProblem(
            400, "admin.invalid_request", "Bad Request", f"{name}: expected seconds since the epoch"
        ) from None


def event_query(params: dict[str, str]) -> EventQuery:
    try:
        limit = int(params.get("limit") or 100)
    except ValueError:
        limit = -1
    if not 1 <= limit <= 1000:
        raise AdminProblem(400, "admin.invalid_request", "Bad Request", "limit: expected 1 to 1000")
    return EventQuery(
        since=_float(params, "since"),
        until=_float(params, "until"),
        action=params.get("action", ""),
        outcome=params.get("outcome", ""),
        consumer=params.get("consumer", ""),
        ip=params.get("ip", ""),
        limit=limit,
    )


async def events(plane: AdminPlane, request: Request, args: dict[str, str]) -> Response:
    query = event_query(query_params(request))
    if plane.event_source is not None:  # a store: its I/O off the event loop
        try:
            found = await asyncio.to_thread(plane.event_source().query, query)
            return json_response({"events": found, "source": "store"})
        except StateError as exc:  # BackendUnavailable included: answer from memory
            logger.warning("events query: the event store cannot be read (%s)", describe(exc))
    # The ring is appended to on this loop: read it here, never from another thread.
    return json_response({"events": plane.recent().query(query), "source": "memory"})


async def audit_log(plane: AdminPlane, request: Request, args: dict[str, str]) -> Response:
    try:
        limit = max(1, min(int(query_params(request).get("limit") or 100), 1000))
    except ValueError:
        limit = 100
    return json_response({"entries": plane.audit.tail(limit)})


def _op(method: str, path: str, role: str, action: str, handler: Handler) -> Operation:
    return Operation(method, re.compile(f"^{path}$"), role, action, handler)


OPERATIONS = (
    _op("GET", "/admin/status", "read-only", "status.read", status),
    _op("GET", "/admin/config", "read-only", "config.read", show_config),
    _op("POST", "/admin/config/reload", "operator", "config.reload", reload_config),
    _op("GET", "/admin/consumers", "read-only", "consumers.list", list_consumers),
    _op(
        "GET",
        "/admin/consumers/(?P<consumer>[^/]{1,128})",
        "read-only",
        "consumers.show",
        show_consumer,
    ),
    _op("GET", "/admin/keys", "read-only", "keys.list", list_keys),
    _op("POST", "/admin/keys", "operator", "keys.create", create_key),
    _op("GET", f"/admin/keys/{_KEY_ID}", "read-only", "keys.show", show_key),
    _op("POST", f"/admin/keys/{_KEY_ID}/rotate", "operator", "keys.rotate", rotate_key),
    _op("POST", f"/admin/keys/{_KEY_ID}/revoke", "operator", "keys.revoke", revoke_key),
    _op("GET", "/admin/signing-keys", "read-only", "signing_keys.list", signing_keys),
    _op("POST", "/admin/signing-keys/rotate", "admin", "signing_keys.rotate", rotate_signing),
    _op("GET", "/admin/events", "read-only", "events.query", events),
    _op("GET", "/admin/audit", "admin", "audit.read", audit_log),
)


def find(method: str, path: str) -> tuple[Operation, dict[str, str]]:
    allowed: list[str] = []
    for operation in OPERATIONS:
        match = operation.pattern.match(path)
        if match is None:
            continue
        if operation.method == method or (method == "HEAD" and operation.method == "GET"):
            return operation, match.groupdict()
        allowed.append(operation.method)
    if allowed:
        raise AdminProblem(
            405,
            "admin.method_not_allowed",
            "Method Not Allowed",
            headers=(("allow", ", ".join(sorted(set(allowed)))),),
        )
    raise AdminProblem(404, "admin.not_found", "Not Found", "No admin endpoint has this path.")


def _translate(exc: Exception) -> AdminProblem:
    """Errors of the key code, as problems (messages are bastion's own; never a secret)."""
    if isinstance(exc, UnknownKey):
        return AdminProblem(404, "admin.key_unknown", "Not Found", "No API key has this id.")
    if isinstance(exc, ConfigError):
        detail = exc.message.replace("--", "")
        return AdminProblem(400, "admin.invalid_request", "Bad Request", detail)
    if isinstance(exc, BackendUnavailable):
        return AdminProblem(
            503, "admin.store_unavailable", "Service Unavailable", "The store cannot be reached."
        )
    if isinstance(exc, StateError):
        return AdminProblem(409, "admin.conflict", "Conflict", exc.message)
    raise exc


async def handle(plane: AdminPlane, request: Request) -> Response:
    """Authenticate, authorise, run, and audit one ``/admin/...`` call."""
    started = time.monotonic()
    principal: Principal | None = None
    action = "api.unknown"
    target: str | None = None
    try:
        try:  # what was asked, for the audit log; a stranger is told nothing about it
            found: tuple[Operation, dict[str, str]] | AdminProblem = find(
                request.method, request.path
            )
        except AdminProblem as unknown:
            found = unknown
        if not isinstance(found, AdminProblem):
            action = found[0].action
            target = found[1].get("key") or found[1].get("consumer")
        principal = authenticate(plane, request)
        if isinstance(found, AdminProblem):
            raise found
        operation, args = found
        if not principal.may(operation.role):
            raise AdminProblem(
                403,
                "admin.forbidden",
                "Forbidden",
                f"This call needs the {operation.role} role; the token has {principal.role}.",
            )
        request.state[PRINCIPAL] = principal
        try:
            response = await operation.handler(plane, request, args)
        except (StateError, ConfigError) as exc:
            raise _translate(exc) from None
    except AdminProblem as error:
        response = problem(error, request)
    except Exception as exc:  # a bug or an unexpected failure: logged by type, audited, 500
        logger.error("admin call %s failed: %s", action, describe(exc))
        response = problem(
            AdminProblem(500, "admin.internal_error", "Internal Server Error"), request
        )
    # A reload the Reloader ran (applied: 200, refused: 422) is audited there, with its diff.
    if action != "config.reload" or response.status not in (200, 422):
        plane.audit.record(
            plane.actor(principal, request.client.ip),
            action,
            "success" if response.status < 400 else "failure",
            status=response.status,
            target=target,
            request_id=request.request_id,
            details={"method": request.method, "ms": round((time.monotonic() - started) * 1000)},
        )
    return response
