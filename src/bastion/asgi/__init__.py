"""Middleware mode: bastion's guard chain inside any ASGI app (Starlette, FastAPI, ...).

``app = BastionMiddleware(app, "bastion.yaml")`` runs the chain the gateway would run for the
same config, in process; see docs/middleware.md.
"""

from bastion.asgi.middleware import REQUEST_STATE_KEY, BastionMiddleware, request_view

__all__ = ["REQUEST_STATE_KEY", "BastionMiddleware", "request_view"]
