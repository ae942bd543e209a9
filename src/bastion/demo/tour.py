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
from collections.abc import Callable
from dataclasses import dataclass, field

import orjson

from bastion.auth.keys.format import key_id_of

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


def _request(
    method: str, path: str, body: bytes | None = None, headers: dict[str, str] | None = None
) -> Callable[[str, int], Outcome]:
    def send(host: str, port: int) -> Outcome:
        conn = http.client.HTTPConnection(host, port, timeout=5)
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
    with socket.create_connection((host, port), timeout=5) as sock:
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


def steps(base: str, key: str | None = None) -> list[Step]:
    """The tour for a gateway at ``base`` (``http://127.0.0.1:8080``), with the demo's API
    ``key`` (a placeholder when only the steps' shape matters)."""
    return _practice_steps(base) + _auth_steps(base, Session(key or PLACEHOLDER_KEY))


def _auth_steps(base: str, session: Session) -> list[Step]:
    key_header = {"x-api-key": session.key}
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
            f'TOKEN=$(bastion token --url {base}); curl -i -H "Authorization: Bearer $TOKEN"'
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
    return [
        Step(
            "A request passes through the gateway",
            f"curl -i {base}/hello",
            _request("GET", "/hello"),
            lambda o: (
                o.status == 200
                and "x-request-id" in o.headers
                and o.headers.get("x-content-type-options") == "nosniff"
            ),
            "200, with X-Request-ID and X-Content-Type-Options: nosniff added",
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
            "Transfer-Encoding: chunked\\r\\n\\r\\n0\\r\\n\\r\\n' | nc 127.0.0.1 "
            + base.rsplit(":", 1)[1],
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
