"""Access events in middleware mode: the record the gateway engine emits per exchange
(:data:`~bastion.observability.ecs.AccessRecord`, see ``engine/dispatch.py``'s ``completed``),
built from the request view and what ``BastionMiddleware``'s response wrapper counted.

Only values already at hand go into the tuple; the writer thread formats and redacts them, as
for the engine. Differences, by construction of ASGI: the ASGI server writes the response head,
so ``http.response.bytes`` counts the body only; there is no upstream (the app runs in process),
so ``bastion.upstream.duration`` is absent; ``bastion.route`` is ``app`` for the app, or the
name of bastion's own endpoint (``/oauth/token``, the JWKS) that answered.
"""

from __future__ import annotations

import time

from bastion.config.models import BastionConfig
from bastion.observability.ecs import AccessLog
from bastion.observability.events import EventSink
from bastion.pipeline.identity import IDENTITY
from bastion.pipeline.request import Request
from bastion.pipeline.routing import ROUTE

APP_ROUTE = "app"  # the route name of everything the app answers (as in the metrics' labels)


class MiddlewareAccess:
    """Called once per finished exchange with what the response wrapper knows."""

    __slots__ = ("_id_header", "_log")

    def __init__(self, log: AccessLog, request_id_header: str) -> None:
        self._log = log
        self._id_header = request_id_header.encode("latin-1")

    def __call__(self, request: Request, status: int, bytes_sent: int, seconds: float) -> None:
        identity = request.state.get(IDENTITY)
        route = request.state.get(ROUTE)
        body = request.body
        body_in = len(body) if body is not None else _declared_length(request)
        self._log(
            (
                time.time(),
                request.method.encode("latin-1"),
                request.path.encode("latin-1"),
                status,
                body_in,
                bytes_sent,
                seconds,
                request.client.ip,
                # The engine hands the header field as it is written: "name: value\r\n".
                self._id_header + b": " + request.request_id.encode("latin-1") + b"\r\n",
                route.name if route is not None else APP_ROUTE,
                identity.consumer if identity is not None else None,
                request.host,
                -1.0,
                request.peer.ip,
            )
        )


def _declared_length(request: Request) -> int:
    """``Content-Length`` from the raw header list (no header dict built per request)."""
    for name, value in request.headers.raw:
        if name.lower() == b"content-length":
            value = value.strip()
            return int(value) if value.isdigit() else 0
    return 0


def middleware_access(config: BastionConfig, events: EventSink) -> MiddlewareAccess | None:
    """The access hook when ``events`` is an active event writer and ``events.access`` is on
    (a sink given by the embedding application gets security events only, as before)."""
    log = getattr(events, "access", None)
    if not config.events.access or not getattr(events, "active", False) or not callable(log):
        return None
    return MiddlewareAccess(log, config.proxy.request_id_header)
