"""``/dashboard``: a live page for the on-call engineer, behind admin authentication.

The page is static HTML, CSS and JavaScript shipped in ``bastion/admin/static`` (no CDN, no
external fetch, a strict Content-Security-Policy with no inline script or style); it polls
``/dashboard/data`` and draws small SVG charts itself. A browser signs in through a form that
posts the admin token once and gets an ``HttpOnly; SameSite=Strict`` session cookie back; a
script can send ``Authorization: Bearer`` instead. Tokens never travel in URLs.
"""

from __future__ import annotations

import html
import time
from datetime import UTC, datetime
from importlib import resources
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl

from bastion.admin.api import authenticate
from bastion.admin.history import status_mix
from bastion.admin.http import AdminProblem, json_response, problem
from bastion.admin.plane import AdminPlane
from bastion.admin.sessions import Sessions, cookie_value
from bastion.control.recent import EventQuery
from bastion.errors import BastionError
from bastion.pipeline.request import Request
from bastion.pipeline.response import Response
from bastion.version import __version__

CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; "
    "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
)
PAGE_HEADERS = (
    ("content-type", "text/html; charset=utf-8"),
    ("cache-control", "no-store"),
    ("content-security-policy", CSP),
    ("x-frame-options", "DENY"),
    ("referrer-policy", "same-origin"),  # no-referrer would make form posts say Origin: null
)
STATIC = {
    "app.js": "text/javascript; charset=utf-8",
    "app.css": "text/css; charset=utf-8",
    "icon.svg": "image/svg+xml",
}
LOGIN_ERRORS = {
    "": "",
    "invalid": "That admin token is not valid.",
    "closed": "No admin token is configured (admin.tokens): the dashboard is closed.",
}


def asset(name: str) -> bytes:
    return resources.files("bastion.admin").joinpath("static", name).read_bytes()


def login_page(reason: str = "") -> Response:
    text = asset("login.html").decode("utf-8")
    message = LOGIN_ERRORS.get(reason, "")
    block = f'<p class="error" role="alert">{html.escape(message)}</p>' if message else ""
    return Response(401, PAGE_HEADERS, text.replace("<!--error-->", block).encode("utf-8"))


def redirect(location: str, cookie: str) -> Response:
    return Response(
        303,
        (("location", location), ("set-cookie", cookie), ("cache-control", "no-store")),
    )


def _session(request: Request) -> str:
    return cookie_value(request.headers.get("cookie"))


async def handle(plane: AdminPlane, request: Request) -> Response:
    path = request.path.rstrip("/") or "/"
    if path.startswith("/dashboard/static/"):
        return _static(path.removeprefix("/dashboard/static/"))
    if path == "/dashboard/login" and request.method == "POST":
        return _login(plane, request)
    if path == "/dashboard/logout" and request.method == "POST":
        plane.sessions.end(_session(request))
        return redirect("/dashboard", Sessions.cleared())
    if request.method not in ("GET", "HEAD"):
        return problem(AdminProblem(405, "admin.method_not_allowed", "Method Not Allowed"), request)
    if path == "/dashboard":
        try:
            authenticate(plane, request, session=_session(request))
        except AdminProblem:
            return login_page("closed" if plane.tokens.empty else "")
        return Response(200, PAGE_HEADERS, asset("index.html"))
    if path == "/dashboard/data":
        try:
            authenticate(plane, request, session=_session(request))
        except AdminProblem as error:
            return problem(error, request)
        return json_response(await data(plane))
    return problem(AdminProblem(404, "admin.not_found", "Not Found"), request)


def _static(name: str) -> Response:
    kind = STATIC.get(name)
    if kind is None:
        return Response(404, (("content-type", "text/plain"),), b"not found")
    return Response(200, (("content-type", kind), ("cache-control", "no-cache")), asset(name))


def _login(plane: AdminPlane, request: Request) -> Response:
    origin = request.headers.get("origin")
    host = request.headers.get("host") or ""
    if origin and origin not in (f"http://{host}", f"https://{host}"):
        return login_page("invalid")  # a cross-site login form: never accepted
    form = dict(parse_qsl((request.body or b"").decode("utf-8", "replace")[:4096]))
    if plane.tokens.empty:
        return login_page("closed")
    principal = plane.tokens.verify(form.get("token", "").strip())
    actor = plane.actor(principal, request.client.ip)
    if principal is None:
        plane.audit.record(
            actor, "dashboard.login", "failure", status=401, request_id=request.request_id
        )
        return login_page("invalid")
    session = plane.sessions.create(principal)
    plane.audit.record(
        actor, "dashboard.login", "success", status=303, request_id=request.request_id
    )
    return redirect("/dashboard", plane.sessions.cookie(session))


def _stamp(seconds: float | None) -> str | None:
    if seconds is None:
        return None
    return datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


async def data(plane: AdminPlane) -> dict[str, Any]:
    """What the page shows, in one document."""
    config = plane.config()
    snapshot = plane.snapshot()
    recent = plane.recent()
    now = time.time()
    everything = recent.query(EventQuery(limit=200))
    alerts = [e for e in everything if e["event"]["action"].startswith("alert.")][:20]
    security = [e for e in everything if not e["event"]["action"].startswith("alert.")][:20]
    reloader = plane.reloader
    return {
        "generated_at": _stamp(now),
        "version": __version__,
        "traffic": {
            "total": sum(snapshot.requests.values()),
            "status_mix": status_mix(snapshot),
            "in_flight": snapshot.in_flight,
            "connections_open": snapshot.connections_open,
            "history": list(plane.history.points),
        },
        "top_refusals": [{"ip": ip, "count": n} for ip, n in recent.top_refusals(10)],
        "events": security,
        "alerts": alerts,
        "expiring": await _expiring(plane, now),
        "config": {
            "generation": reloader.generation if reloader else 0,
            "reloaded_at": _stamp(reloader.reloaded_at if reloader else None),
            "routes": [r.name for r in config.routes],
        },
    }


async def _expiring(plane: AdminPlane, now: float) -> dict[str, Any]:
    config = plane.config()
    found: dict[str, Any] = {"keys": [], "certificates": [], "signing_keys": [], "errors": []}
    try:
        keys = await plane.keys.list_keys()
    except BastionError as exc:
        found["errors"].append(f"API keys: {exc.message}")
        keys = []
    found["keys"] = [
        {k: doc[k] for k in ("id", "consumer", "name", "status", "expires_at")}
        for doc in keys
        if doc["status"] in ("expiring", "grace")
    ]
    warning = config.tls.expiry_warning
    from bastion.tls.certs import CertificateFacts, load_chain
    from bastion.tls.devca import dev_paths
    from bastion.tls.expiry import watched_certificates

    served: list[Path] = []
    if config.tls.enabled and not config.tls.certificates:  # the development certificate
        served = [dev_paths(config.state_dir).cert]
    for role, path in watched_certificates(config.tls, served):
        if path in served and not path.exists():
            continue  # no development certificate made yet
        try:
            facts = CertificateFacts.of(load_chain(path)[0])
        except BastionError:
            found["errors"].append(f"certificate {path.name} cannot be read")
            continue
        left = facts.not_after.timestamp() - now
        found["certificates"].append(
            {
                "role": role,
                "file": path.name,
                "not_after": _stamp(facts.not_after.timestamp()),
                "days_left": round(left / 86400, 1),
                "warning": left <= warning,
            }
        )
    if config.auth.tokens.signing is not None:
        try:
            rows = (await plane.keys.signing_keys())["keys"]
        except BastionError as exc:
            found["errors"].append(f"signing keys: {exc.message}")
            rows = []
        found["signing_keys"] = [
            {k: row[k] for k in ("kid", "alg", "state", "activates_at", "published_until")}
            for row in rows
        ]
    return found
