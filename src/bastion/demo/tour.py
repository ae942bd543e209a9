"""The demo's guided tour: requests that show each practice bastion has in place, with results.

``bastion demo`` prints these as curl commands to try; ``bastion demo --check`` sends them itself
and reports what came back, so the demo proves what it claims.
"""

from __future__ import annotations

import http.client
import socket
from collections.abc import Callable
from dataclasses import dataclass

import orjson


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


def _json_field(outcome: Outcome, name: str) -> object:
    try:
        doc = orjson.loads(outcome.body)
    except orjson.JSONDecodeError:
        return None
    return doc.get(name) if isinstance(doc, dict) else None


def steps(base: str) -> list[Step]:
    """The tour for a gateway at ``base`` (``http://127.0.0.1:8080``)."""
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
    ]
