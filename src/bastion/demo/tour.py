"""The demo's guided tour: requests that show each practice bastion has in place, with results.

``bastion demo`` prints these as curl commands to try; ``bastion demo --check`` sends them itself
and reports what came back, so the demo proves what it claims. The authentication steps use the
API key the demo created at start (``$BASTION_API_KEY`` in the printed commands) and pass the
token from the exchange step to the steps after it.
"""

from __future__ import annotations

import base64
import http.client
import socket
import ssl
import time
from collections.abc import Callable
from contextvars import ContextVar
from dataclasses import dataclass, field

import orjson

from bastion.auth.keys.format import generate, key_id_of

PLACEHOLDER_KEY = "bst_" + "0" * 12 + "_" + "0" * 38
DEMO_CONSUMER = "demo-client"


@dataclass(frozen=True)
class Outcome:
    status: int
    headers: dict[str, str]
    body: bytes


@dataclass(frozen=True)
class Step:
    title: str
    curl: str
    send: Callable[[str, int], Outcome]
    expect: Callable[[Outcome], bool]
    shows: str


_TLS: ContextVar[ssl.SSLContext | None] = ContextVar("bastion_demo_tls", default=None)


def use_tls(context: ssl.SSLContext | None) -> None:
    """Send this thread's tour requests over HTTPS, verified with ``context`` (the demo trusts
    its development CA); ``None``: plain HTTP."""
    _TLS.set(context)


def _connection(host: str, port: int) -> http.client.HTTPConnection:
    context = _TLS.get()
    if context is None:
        return http.client.HTTPConnection(host, port, timeout=5)
    return http.client.HTTPSConnection(host, port, timeout=5, context=context)


def _socket(host: str, port: int) -> socket.socket:
    sock = socket.create_connection((host, port), timeout=5)
    context = _TLS.get()
    return sock if context is None else context.wrap_socket(sock, server_hostname=host)


def _request(
    method: str, path: str, body: bytes | None = None, headers: dict[str, str] | None = None
) -> Callable[[str, int], Outcome]:
    def send(host: str, port: int) -> Outcome:
        conn = _connection(host, port)
        try:
            conn.request(method, path, body=body, headers=headers or {})
            response = conn.getresponse()
            data = response.read()
            return Outcome(response.status, {k.lower(): v for k, v in response.getheaders()}, data)
        finally:
            conn.close()

    return send


def _smuggle(host: str, port: int) -> Outcome:
    raw = (
        b"POST /items HTTP/1.1\r\nHost: demo\r\nContent-Length: 4\r\n"
        b"Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n"
    )
    with _socket(host, port) as sock:
        sock.sendall(raw)
        data = b""
        while b"\r\n\r\n" not in data:
            chunk = sock.recv(65536)
            if not chunk:
                break
            data += chunk
    head = data.split(b"\r\n", 1)[0].split()
    return Outcome(int(head[1]) if len(head) > 1 else 0, {}, data)


def _burst(count: int, path: str) -> Callable[[str, int], Outcome]:
    """``count`` requests in a row; the outcome of the last."""
    one = _request("GET", path)

    def send(host: str, port: int) -> Outcome:
        outcome = one(host, port)
        for _ in range(count - 1):
            outcome = one(host, port)
        return outcome

    return send


@dataclass
class Session:
    """What the authentication steps share: the demo's key, and the token once exchanged."""

    key: str
    token: str = field(default="", repr=False)

    @property
    def key_id(self) -> str:
        return key_id_of(self.key) or ""

    def basic(self) -> str:
        return "Basic " + base64.b64encode(f"{self.key_id}:{self.key}".encode()).decode()


def _exchange(session: Session) -> Callable[[str, int], Outcome]:
    """POST /oauth/token with the key in HTTP Basic; keeps the access token for later steps."""

    def send(host: str, port: int) -> Outcome:
        outcome = _request(
            "POST",
            "/oauth/token",
            b"grant_type=client_credentials",
            {"content-type": "application/x-www-form-urlencoded", "authorization": session.basic()},
        )(host, port)
        token = _json_field(outcome, "access_token")
        session.token = token if isinstance(token, str) else ""
        return outcome

    return send


def _with_token(session: Session, path: str) -> Callable[[str, int], Outcome]:
    def send(host: str, port: int) -> Outcome:
        return _request("GET", path, headers={"authorization": f"Bearer {session.token}"})(
            host, port
        )

    return send


def _json_field(outcome: Outcome, name: str) -> object:
    try:
        doc = orjson.loads(outcome.body)
    except orjson.JSONDecodeError:
        return None
    return doc.get(name) if isinstance(doc, dict) else None


def _json_list(outcome: Outcome, name: str) -> list[dict[str, object]]:
    found = _json_field(outcome, name)
    return [e for e in found if isinstance(e, dict)] if isinstance(found, list) else []


def steps(base: str, key: str | None = None, plain: str | None = None) -> list[Step]:
    """The tour for a gateway at ``base`` (``https://127.0.0.1:8443``), with the demo's API
    ``key`` (a placeholder when only the steps' shape matters). ``plain`` is the base URL of the
    plain-HTTP listener beside HTTPS, whose steps show what happens to requests sent there."""
    session = Session(key or PLACEHOLDER_KEY)
    transport = _transport_steps(base, plain, session) if plain is not None else []
    return _practice_steps(base) + transport + _auth_steps(base, session) + _monitoring_steps(base)


def _plain(
    address: str, method: str, path: str, headers: dict[str, str] | None = None
) -> Callable[[str, int], Outcome]:
    """A request to the plain-HTTP listener at ``address`` (``host:port``), whatever the tour's
    own listener is."""
    host, _, port = address.rpartition(":")

    def send(_host: str, _port: int) -> Outcome:
        conn = http.client.HTTPConnection(host, int(port), timeout=5)
        try:
            conn.request(method, path, headers=headers or {})
            response = conn.getresponse()
            data = response.read()
            return Outcome(response.status, {k.lower(): v for k, v in response.getheaders()}, data)
        finally:
            conn.close()

    return send


def _transport_steps(base: str, plain: str, session: Session) -> list[Step]:
    address = plain.split("://", 1)[-1]
    return [
        Step(
            "Plain HTTP is sent to HTTPS, never to the upstream",
            f"curl -i {plain}/hello",
            _plain(address, "GET", "/hello"),
            lambda o: o.status == 308 and o.headers.get("location", "").startswith("https://"),
            "308 to the same URL over https",
        ),
        Step(
            "A credential sent over plain HTTP is refused: it has leaked",
            f'curl -i -H "X-API-Key: $BASTION_API_KEY" {plain}/orders',
            _plain(address, "GET", "/orders", {"x-api-key": session.key}),
            lambda o: o.status == 403 and _json_field(o, "code") == "tls.credentials_over_http",
            "403 tls.credentials_over_http (and a security event: rotate that key)",
        ),
    ]


STUFFING_ATTEMPTS = 10  # monitoring.detectors.credential_stuffing.accounts_per_source


def _stuffing(host: str, port: int) -> Outcome:
    """Ten different (well-formed, unknown) API keys from one address, then the alert inbox,
    read until the alert has arrived (delivery runs in the background)."""
    for _ in range(STUFFING_ATTEMPTS):
        _request("GET", "/orders", headers={"x-api-key": generate().secret})(host, port)
    outcome = _request("GET", "/alerts")(host, port)
    deadline = time.monotonic() + 5
    while b"alert.credential_stuffing" not in outcome.body and time.monotonic() < deadline:
        time.sleep(0.1)
        outcome = _request("GET", "/alerts")(host, port)
    return outcome


def _stuffed(outcome: Outcome) -> bool:
    alerts = _json_field(outcome, "alerts")
    if outcome.status != 200 or not isinstance(alerts, list):
        return False
    return any(
        isinstance(a, dict)
        and a.get("alert") == "alert.credential_stuffing"
        and a.get("evidence", {}).get("distinct") == STUFFING_ATTEMPTS
        for a in alerts
    )


def _monitoring_steps(base: str) -> list[Step]:
    new_key = (
        "$(python3 -c 'from bastion.auth.keys.format import generate; print(generate().secret)')"
    )
    return [
        Step(
            "Credential stuffing raises an alert",
            f"for i in $(seq {STUFFING_ATTEMPTS}); do curl -s -o /dev/null"
            f' -H "X-API-Key: {new_key}" {base}/orders; done; sleep 1; curl -s {base}/alerts',
            _stuffing,
            _stuffed,
            f"10 answers 401, then alert.credential_stuffing (evidence: {STUFFING_ATTEMPTS} "
            "accounts from one address) delivered to the demo's webhook",
        ),
    ]


def _auth_steps(base: str, session: Session) -> list[Step]:
    key_header = {"x-api-key": session.key}
    cacert = ' --cacert "$CURL_CA_BUNDLE"' if base.startswith("https://") else ""
    return [
        Step(
            "The demo's API key opens /orders (scope orders:read)",
            f'curl -i -H "X-API-Key: $BASTION_API_KEY" {base}/orders',
            _request("GET", "/orders", headers=key_header),
            lambda o: o.status == 200 and _json_field(o, "caller") == DEMO_CONSUMER,
            "200; the upstream is told the caller (X-Bastion-Consumer: demo-client)",
        ),
        Step(
            "Without a credential the route is refused and says how to authenticate",
            f"curl -i {base}/orders",
            _request("GET", "/orders"),
            lambda o: (
                o.status == 401
                and "realm=" in o.headers.get("www-authenticate", "")
                and _json_field(o, "code") == "auth.missing_credentials"
            ),
            "401 auth.missing_credentials with WWW-Authenticate",
        ),
        Step(
            "The key is exchanged for a short-lived access token",
            f"curl -s -u {session.key_id}:$BASTION_API_KEY -d grant_type=client_credentials"
            f" {base}/oauth/token",
            _exchange(session),
            lambda o: (
                o.status == 200
                and isinstance(_json_field(o, "access_token"), str)
                and _json_field(o, "token_type") == "Bearer"
                and o.headers.get("cache-control") == "no-store"
            ),
            "200 with access_token (an RFC 9068 JWT, 5 minutes), Cache-Control: no-store",
        ),
        Step(
            "The token opens /orders like the key",
            f"TOKEN=$(bastion token --url {base}{cacert});"
            f' curl -i -H "Authorization: Bearer $TOKEN"'
            f" {base}/orders",
            _with_token(session, "/orders"),
            lambda o: o.status == 200 and _json_field(o, "caller") == DEMO_CONSUMER,
            "200, the caller identified from the token",
        ),
        Step(
            "An admin route needs a scope the token does not carry",
            f'curl -i -H "Authorization: Bearer $TOKEN" {base}/admin',
            _with_token(session, "/admin"),
            lambda o: (
                o.status == 403
                and _json_field(o, "code") == "auth.insufficient_scope"
                and 'error="insufficient_scope"' in o.headers.get("www-authenticate", "")
            ),
            "403 auth.insufficient_scope (scope admin)",
        ),
        Step(
            "Another user's profile is out of reach (object-level rule)",
            f'curl -i -H "Authorization: Bearer $TOKEN" {base}/users/someone-else',
            _with_token(session, "/users/someone-else"),
            lambda o: o.status == 403 and _json_field(o, "code") == "auth.forbidden_object",
            "403 auth.forbidden_object; /users/demo-client answers 200",
        ),
    ]


def _practice_steps(base: str) -> list[Step]:
    secure = base.startswith("https://")
    port = base.rsplit(":", 1)[1]
    raw_client = (
        f"openssl s_client -quiet -connect 127.0.0.1:{port}" if secure else f"nc 127.0.0.1 {port}"
    )
    return [
        Step(
            "A request passes through the gateway",
            f"curl -i {base}/hello",
            _request("GET", "/hello"),
            lambda o: (
                o.status == 200
                and "x-request-id" in o.headers
                and o.headers.get("x-content-type-options") == "nosniff"
                and (not secure or "max-age=" in o.headers.get("strict-transport-security", ""))
            ),
            "200, with X-Request-ID and X-Content-Type-Options: nosniff added"
            + (", and Strict-Transport-Security" if secure else ""),
        ),
        Step(
            "A JSON body streams to the upstream",
            "curl -i -H 'content-type: application/json'"
            f' -d \'{{"name": "chair"}}\' {base}/items',
            _request("POST", "/items", b'{"name": "chair"}', {"content-type": "application/json"}),
            lambda o: o.status == 201,
            "201 Created from the demo API",
        ),
        Step(
            "An invalid body is refused before the upstream (OpenAPI validation)",
            "curl -i -H 'content-type: application/json'"
            f' -d \'{{"name": "chair", "price": -5, "id": 99}}\' {base}/items',
            _request(
                "POST",
                "/items",
                b'{"name": "chair", "price": -5, "id": 99}',
                {"content-type": "application/json"},
            ),
            lambda o: (
                o.status == 400
                and _json_field(o, "code") == "validation.body_invalid"
                and {e.get("pointer") for e in _json_list(o, "errors")}
                == {"/body/price", "/body/id"}
                and b"-5" not in o.body
            ),
            "400 validation.body_invalid listing /body/price and /body/id, the values not echoed",
        ),
        Step(
            "A spoofed X-Forwarded-For is not believed",
            f"curl -s -H 'X-Forwarded-For: 6.6.6.6' {base}/headers",
            _request("GET", "/headers", headers={"x-forwarded-for": "6.6.6.6"}),
            lambda o: o.status == 200 and b"6.6.6.6" not in o.body,
            "the upstream sees only the real client address",
        ),
        Step(
            "A burst over the limit is refused and told when to retry",
            "for i in 1 2 3 4 5; do curl -s -o /dev/null -w '%{http_code} '"
            f" {base}/limited; done; curl -i {base}/limited",
            _burst(6, "/limited"),
            lambda o: (
                o.status == 429
                and int(o.headers.get("retry-after", "0")) >= 1
                and o.headers.get("ratelimit-policy") == '"demo";q=5;w=60'
                and o.headers.get("ratelimit", "").startswith('"demo";r=0;t=')
                and _json_field(o, "code") == "ratelimit.exceeded"
            ),
            "5 answers, then 429 with Retry-After, RateLimit-Policy and RateLimit",
        ),
        Step(
            "An upstream stack trace never reaches the client",
            f"curl -i {base}/error",
            _request("GET", "/error"),
            lambda o: (
                o.status == 500
                and b"Traceback" not in o.body
                and _json_field(o, "code") == "upstream.error"
            ),
            "500 as application/problem+json, the trace masked",
        ),
        Step(
            "A smuggling attempt is refused before the upstream",
            "printf 'POST /items HTTP/1.1\\r\\nHost: x\\r\\nContent-Length: 4\\r\\n"
            "Transfer-Encoding: chunked\\r\\n\\r\\n0\\r\\n\\r\\n' | " + raw_client,
            _smuggle,
            lambda o: o.status == 400,
            "400: Content-Length with Transfer-Encoding is ambiguous",
        ),
        Step(
            "A SQL injection in a query parameter is blocked, and not echoed",
            f"curl -i '{base}/items?q=1%27%20OR%20%271%27=%271'",
            _request("GET", "/items?q=1%27%20OR%20%271%27=%271"),
            lambda o: (
                o.status == 400
                and _json_field(o, "code") == "injection.detected"
                and _json_field(o, "kind") == "sql"
                and _json_field(o, "location") == "q"
                and b"OR" not in o.body
            ),
            "400 injection.detected (kind sql, in query, location q), the value not repeated",
        ),
    ]
