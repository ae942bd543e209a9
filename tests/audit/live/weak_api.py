"""A small item API that follows the five practices, and switches that each remove one.

``build_app(weak={...})`` with no switch is the well-behaved API every live check stays quiet
about; each switch (see :data:`WEAKNESSES`) removes one practice, so a check's firing test
turns on exactly the weakness it is about. Everything is real: Starlette served by uvicorn on
loopback (with TLS where the test wants it), JWTs signed and verified with ``cryptography``,
the search endpoint querying PostgreSQL.
"""

from __future__ import annotations

import asyncio
import base64
import functools
import hashlib
import hmac
import itertools
import time
import uuid
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import orjson
import psycopg
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from psycopg import sql
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

WEAKNESSES = frozenset(
    {
        "no-auth",  # secured operations served to anyone
        "auth-crash",  # a malformed credential raises (500)
        "query-key",  # ?api_key= / ?access_token= accepted
        "no-www-authenticate",  # 401 without WWW-Authenticate
        "no-rate-limit",
        "no-retry-after",  # 429 without Retry-After
        "503-throttle",  # the limit answers 503, without Retry-After
        "global-limit",  # one counter for every client
        "xff-limit",  # the limiter keys on X-Forwarded-For when present
        "no-login-limit",
        "stack-traces",  # unhandled errors show the traceback (a bad path parameter raises)
        "no-hsts",
        "cors-reflect",  # any Origin reflected with credentials
        "no-request-id",
        "open-metrics",  # /metrics and /.env served
        "alg-none",  # JWTs with alg none accepted
        "no-signature-check",  # JWT signatures not verified
        "trust-jwk",  # a key embedded in the JWT header is trusted
        "key-confusion",  # HS256 verified with the RSA public key's PEM
        "weak-secret",  # tokens are HS256 with the key "secret"
        "no-exp-check",
        "5xx-on-bad-input",  # no validation: bad input crashes the handler
        "no-validation",  # no validation: bad input accepted
        "keeps-undeclared",  # extra body properties stored and echoed
        "sql-injection",  # the search concatenates SQL (errors hidden)
        "sql-errors",  # the search concatenates SQL and shows the database error
        "slow-once",  # safe SQL, but the first search asking for pg_sleep is slow (a hiccup)
    }
)

KEYS = {"k-alice-0123456789": "alice", "k-bob-0123456789": "bob"}
ORIGIN = "https://app.example"
WINDOW = 60


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def document() -> dict[str, Any]:
    """The OpenAPI document of the API (the audit's --openapi)."""
    item = {
        "type": "object",
        "additionalProperties": False,
        "required": ["name", "price"],
        "properties": {
            "name": {"type": "string", "maxLength": 40},
            "price": {"type": "integer", "minimum": 0, "maximum": 10000},
            "color": {"type": "string", "enum": ["red", "blue"]},
        },
    }
    secured = [{"apiKey": []}, {"bearer": []}]
    json_body = {"required": True, "content": {"application/json": {"schema": item}}}
    return {
        "openapi": "3.1.0",
        "info": {"title": "weak items", "version": "1"},
        "security": secured,
        "paths": {
            "/items": {
                "get": {
                    "parameters": [
                        {"name": "q", "in": "query", "schema": {"type": "string", "maxLength": 50}},
                        {"name": "limit", "in": "query",
                         "schema": {"type": "integer", "minimum": 1, "maximum": 100}},
                    ],
                    "responses": {"200": {"description": "items"}},
                },
                "post": {"requestBody": json_body, "responses": {"201": {"description": "ok"}}},
            },
            "/items/{id}": {
                "parameters": [{"name": "id", "in": "path", "required": True,
                                "schema": {"type": "integer", "minimum": 1}}],
                "get": {"responses": {"200": {"description": "one item"}}},
                "delete": {"responses": {"204": {"description": "gone"}}},
            },
            "/health": {"get": {"security": [], "responses": {"200": {"description": "up"}}}},
            "/login": {
                "post": {
                    "security": [],
                    "requestBody": {"content": {"application/json": {"schema": {
                        "type": "object", "required": ["username", "password"],
                        "properties": {"username": {"type": "string", "maxLength": 64},
                                       "password": {"type": "string", "maxLength": 128}}}}}},
                    "responses": {"200": {"description": "a token"}},
                }
            },
        },
        "components": {
            "securitySchemes": {
                "apiKey": {"type": "apiKey", "in": "header", "name": "X-API-Key"},
                "bearer": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"},
            }
        },
    }  # fmt: skip


class Refused(Exception):
    def __init__(self, status: int, code: str, headers: Mapping[str, str] | None = None) -> None:
        super().__init__(code)
        self.status, self.code, self.headers = status, code, dict(headers or {})


@functools.cache
def signing_key() -> rsa.RSAPrivateKey:
    """One RSA key for every API of the run (generating one per test costs more than the test)."""
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def problem(status: int, code: str, headers: Mapping[str, str] | None = None) -> Response:
    body = {"type": "about:blank", "title": code, "status": status, "code": code}
    return Response(orjson.dumps(body), status, dict(headers or {}), "application/problem+json")


@dataclass
class WeakAPI:
    """The API's state: its signing key, items, rate-limit counters and the switches."""

    weak: frozenset[str]
    dsn: str
    schema: str
    limit: int = 1000  # requests per identity per window; the rate-limit tests set a small one
    login_limit: int = 5
    signing: rsa.RSAPrivateKey = field(default_factory=lambda: signing_key())
    kid: str = "weak-1"
    items: dict[int, dict[str, Any]] = field(default_factory=dict)
    counters: dict[str, tuple[int, int]] = field(default_factory=dict)
    ids: itertools.count[int] = field(default_factory=lambda: itertools.count(1))
    _db: psycopg.AsyncConnection[Any] | None = None
    _lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    _hiccup: bool = False

    def __post_init__(self) -> None:
        unknown = self.weak - WEAKNESSES
        if unknown:
            raise ValueError(f"unknown weaknesses {sorted(unknown)}")

    # -- tokens ----------------------------------------------------------------------------------

    def issue(self, sub: str = "alice", lifetime: int = 600) -> str:
        now = int(time.time())
        claims = {"sub": sub, "iat": now, "exp": now + lifetime, "iss": "weak", "aud": "weak"}
        if "weak-secret" in self.weak:
            head = b64(orjson.dumps({"alg": "HS256", "typ": "JWT"}))
            signing_input = f"{head}.{b64(orjson.dumps(claims))}"
            mac = hmac.new(b"secret", signing_input.encode(), hashlib.sha256).digest()
            return f"{signing_input}.{b64(mac)}"
        head = b64(orjson.dumps({"alg": "RS256", "typ": "JWT", "kid": self.kid}))
        signing_input = f"{head}.{b64(orjson.dumps(claims))}"
        signature = self.signing.sign(signing_input.encode(), padding.PKCS1v15(), hashes.SHA256())
        return f"{signing_input}.{b64(signature)}"

    def jwks(self) -> dict[str, Any]:
        numbers = self.signing.public_key().public_numbers()

        def b64int(value: int) -> str:
            return b64(value.to_bytes((value.bit_length() + 7) // 8, "big"))

        key = {"kty": "RSA", "kid": self.kid, "use": "sig", "alg": "RS256"}
        return {"keys": [{**key, "n": b64int(numbers.n), "e": b64int(numbers.e)}]}

    def verify(self, token: str) -> str:
        """The token's subject, or :class:`Refused`."""
        invalid = Refused(
            401, "invalid_token", {"WWW-Authenticate": 'Bearer error="invalid_token"'}
        )
        try:
            head, payload, signature = token.split(".")
            header = orjson.loads(unb64(head))
            claims = orjson.loads(unb64(payload))
        except ValueError:
            if "auth-crash" in self.weak:
                raise
            raise invalid from None
        signing_input = f"{head}.{payload}".encode()
        alg = str(header.get("alg", ""))
        if not self.signature_ok(header, alg, signing_input, signature):
            raise invalid
        exp = claims.get("exp")
        if "no-exp-check" not in self.weak and (not isinstance(exp, int) or exp <= time.time()):
            raise invalid
        return str(claims.get("sub"))

    def signature_ok(self, header: Mapping[str, Any], alg: str, data: bytes, sig: str) -> bool:
        if "alg-none" in self.weak and alg.lower() == "none":
            return True
        if "no-signature-check" in self.weak:
            return True
        try:
            signature = unb64(sig)
        except ValueError:
            return False
        if "trust-jwk" in self.weak and isinstance(header.get("jwk"), dict):
            jwk = header["jwk"]
            public = rsa.RSAPublicNumbers(
                int.from_bytes(unb64(jwk["e"]), "big"), int.from_bytes(unb64(jwk["n"]), "big")
            ).public_key()
            return rsa_ok(public, data, signature)
        if "key-confusion" in self.weak and alg == "HS256":
            pem = self.signing.public_key().public_bytes(
                serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
            )
            return hmac.compare_digest(hmac.new(pem, data, hashlib.sha256).digest(), signature)
        if "weak-secret" in self.weak:
            expected = hmac.new(b"secret", data, hashlib.sha256).digest()
            return alg == "HS256" and hmac.compare_digest(expected, signature)
        if alg != "RS256" or header.get("kid") != self.kid:
            return False
        return rsa_ok(self.signing.public_key(), data, signature)

    # -- authentication and limits ---------------------------------------------------------------

    def identify(self, request: Request) -> str:
        key = request.headers.get("x-api-key")
        if key is None and "query-key" in self.weak:
            key = request.query_params.get("api_key")
            token = request.query_params.get("access_token")
            if token is not None:
                return self.verify(token)
        if key is not None:
            for known, who in KEYS.items():
                if hmac.compare_digest(known.encode(), key.encode()):
                    return who
            raise Refused(401, "invalid_key", {"WWW-Authenticate": 'ApiKey realm="weak"'})
        authorization = request.headers.get("authorization")
        if authorization is None:
            if "no-auth" in self.weak:
                return "anonymous"
            raise Refused(401, "missing_credentials", {"WWW-Authenticate": 'Bearer realm="weak"'})
        scheme, _, token = authorization.partition(" ")
        if scheme.lower() != "bearer":
            if "no-auth" in self.weak:
                return "anonymous"
            raise Refused(401, "wrong_scheme", {"WWW-Authenticate": 'Bearer realm="weak"'})
        return self.verify(token.strip())

    def count(self, key: str, limit: int) -> None:
        now = int(time.time())
        start, used = self.counters.get(key, (now, 0))
        if now - start >= WINDOW:
            start, used = now, 0
        used += 1
        self.counters[key] = (start, used)
        if used <= limit:
            return
        reset = max(WINDOW - (now - start), 1)
        if "503-throttle" in self.weak:
            raise Refused(503, "overloaded")
        headers = {
            "RateLimit": f'"default";r=0;t={reset}',
            "RateLimit-Policy": f'"default";q={limit};w={WINDOW}',
        }
        if "no-retry-after" not in self.weak:
            headers["Retry-After"] = str(reset)
        raise Refused(429, "rate_limited", headers)

    def limit_key(self, request: Request, who: str) -> str:
        if "global-limit" in self.weak:
            return "everyone"
        forwarded = request.headers.get("x-forwarded-for")
        if "xff-limit" in self.weak and forwarded:
            return f"ip:{forwarded}"
        return f"id:{who}"

    # -- the database ----------------------------------------------------------------------------

    async def db(self) -> psycopg.AsyncConnection[Any]:
        if self._db is None:
            self._db = await psycopg.AsyncConnection.connect(self.dsn, autocommit=True)
            schema = sql.Identifier(self.schema)
            await self._db.execute(sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(schema))
            await self._db.execute(
                sql.SQL("CREATE TABLE IF NOT EXISTS {}.catalog (name text)").format(schema)
            )
            await self._db.execute(
                sql.SQL("INSERT INTO {}.catalog VALUES ('apple'), ('pear')").format(schema)
            )
        return self._db

    async def search(self, q: str) -> list[str]:
        if "slow-once" in self.weak and "pg_sleep" in q and not self._hiccup:
            self._hiccup = True
            await asyncio.sleep(2.5)
        async with self._lock:
            db = await self.db()
            table = f'"{self.schema}".catalog'
            if self.weak & {"sql-injection", "sql-errors"}:
                query = f"SELECT name FROM {table} WHERE name = '{q}'"  # noqa: S608 - the weakness
                cursor = await db.execute(query.encode())
            else:
                cursor = await db.execute(
                    sql.SQL("SELECT name FROM {}.catalog WHERE name = %s").format(
                        sql.Identifier(self.schema)
                    ),
                    (q,),
                )
            return [row[0] for row in await cursor.fetchall()]

    async def close(self) -> None:
        if self._db is not None:
            await self._db.close()


def rsa_ok(public: rsa.RSAPublicKey, data: bytes, signature: bytes) -> bool:
    from cryptography.exceptions import InvalidSignature

    try:
        public.verify(signature, data, padding.PKCS1v15(), hashes.SHA256())
    except InvalidSignature:
        return False
    return True


def validate_item(api: WeakAPI, body: Any) -> dict[str, Any]:
    if api.weak & {"no-validation", "5xx-on-bad-input"}:
        if "5xx-on-bad-input" in api.weak:
            body["price"] = body["price"] + 0  # raises on a string, a missing key or a list
            body["name"] = body["name"].strip()
        return dict(body)
    if not isinstance(body, dict):
        raise Refused(422, "body_not_object")
    allowed = {"name", "price", "color"}
    extra = set(body) - allowed
    if extra and "keeps-undeclared" not in api.weak:
        raise Refused(422, "unknown_property")
    name, price, color = body.get("name"), body.get("price"), body.get("color", "red")
    if not isinstance(name, str) or len(name) > 40:
        raise Refused(422, "name_invalid")
    if isinstance(price, bool) or not isinstance(price, int) or not 0 <= price <= 10000:
        raise Refused(422, "price_invalid")
    if color not in ("red", "blue"):
        raise Refused(422, "color_invalid")
    return dict(body)


def build_app(api: WeakAPI) -> ASGIApp:
    weak = api.weak

    def secured(
        handler: Callable[[Request, str], Awaitable[Response]],
    ) -> Callable[[Request], Awaitable[Response]]:
        async def run(request: Request) -> Response:
            try:
                who = api.identify(request)
                if "no-rate-limit" not in weak:
                    api.count(api.limit_key(request, who), api.limit)
                return await handler(request, who)
            except Refused as refused:
                headers = refused.headers
                if refused.status == 401 and "no-www-authenticate" in weak:
                    headers = {k: v for k, v in headers.items() if k != "WWW-Authenticate"}
                return problem(refused.status, refused.code, headers)

        return run

    async def read_json(request: Request) -> Any:
        raw = await request.body()
        if "5xx-on-bad-input" in weak:
            return orjson.loads(raw)  # raises: a 500 (with the traceback under stack-traces)
        try:
            return orjson.loads(raw)
        except orjson.JSONDecodeError:
            raise Refused(400, "malformed_json") from None

    async def root(request: Request, who: str) -> Response:
        if request.method == "POST":  # an echo, for audits given no document
            return JSONResponse({"you": who, "sent": await read_json(request)})
        return JSONResponse({"api": "weak items", "you": who})

    async def list_items(request: Request, who: str) -> Response:
        q = request.query_params.get("q")
        limit = request.query_params.get("limit", "10")
        if not weak & {"no-validation", "5xx-on-bad-input"}:
            if q is not None and len(q) > 50:
                raise Refused(400, "q_too_long")
            if not limit.isdigit() or not 1 <= int(limit) <= 100:
                raise Refused(400, "limit_invalid")
        count = int(limit) if "no-validation" not in weak else 10
        if q is None:
            return JSONResponse({"items": list(api.items.values())[:count]})
        try:
            found = await api.search(q)
        except psycopg.Error as error:
            if "sql-errors" in weak:
                return PlainTextResponse(f"database error: {error}", 500)
            return problem(500, "internal")
        return JSONResponse({"items": found[:count]})

    async def create_item(request: Request, who: str) -> Response:
        body = validate_item(api, await read_json(request))
        ident = next(api.ids)
        api.items[ident] = {"id": ident, **body}
        return JSONResponse(api.items[ident], 201, {"Location": f"/items/{ident}"})

    async def one_item(request: Request, who: str) -> Response:
        raw = request.path_params["id"]
        if not raw.isdigit() and "stack-traces" not in weak:
            raise Refused(400, "id_invalid")
        ident = int(raw)  # with stack-traces, a non-number raises here
        if request.method == "DELETE":
            api.items.pop(ident, None)
            return Response(status_code=204)
        if ident not in api.items:
            raise Refused(404, "not_found")
        return JSONResponse(api.items[ident])

    async def health(request: Request) -> Response:
        return JSONResponse({"status": "up"})

    async def login(request: Request) -> Response:
        client = request.client.host if request.client else "?"
        try:
            if "no-login-limit" not in weak:
                api.count(f"login:{client}", api.login_limit)
            body = await read_json(request)
        except Refused as refused:
            return problem(refused.status, refused.code, refused.headers)
        if (
            isinstance(body, dict)
            and body.get("username") == "alice"
            and body.get("password") == "wonderland"
        ):
            return JSONResponse({"token": api.issue("alice")})
        return problem(401, "login_failed")

    async def jwks(request: Request) -> Response:
        return JSONResponse(api.jwks())

    async def metrics(request: Request) -> Response:
        if "open-metrics" not in weak:
            return problem(404, "not_found")
        text = "# HELP http_requests_total Requests.\n# TYPE http_requests_total counter\n"
        return PlainTextResponse(text + "http_requests_total 42\n")

    async def dotenv(request: Request) -> Response:
        if "open-metrics" not in weak:
            return problem(404, "not_found")
        return PlainTextResponse("DATABASE_URL=postgresql://app:hunter2@db/app\n")

    async def not_found(request: Request, exc: Exception) -> Response:
        return problem(404, "not_found")

    routes = [
        Route("/", secured(root), methods=["GET", "POST"]),
        Route("/items", secured(list_items), methods=["GET"]),
        Route("/items", secured(create_item), methods=["POST"]),
        Route("/items/{id}", secured(one_item), methods=["GET", "DELETE"]),
        Route("/health", health),
        Route("/login", login, methods=["POST"]),
        Route("/.well-known/jwks.json", jwks),
        Route("/metrics", metrics),
        Route("/.env", dotenv),
    ]
    app = Starlette(
        routes=routes, debug="stack-traces" in weak, exception_handlers={404: not_found}
    )
    if "stack-traces" not in weak:

        async def internal(request: Request, exc: Exception) -> Response:
            return problem(500, "internal")

        app.add_exception_handler(Exception, internal)
    return ResponseHeaders(app, weak)


class ResponseHeaders:
    """The outermost layer: HSTS, X-Request-ID and CORS on every response, errors included
    (Starlette's error page is produced inside it)."""

    def __init__(self, app: ASGIApp, weak: frozenset[str]) -> None:
        self.app, self.weak = app, weak

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        origin = next((v.decode() for k, v in scope["headers"] if k == b"origin"), None)
        if scope["method"] == "OPTIONS" and origin is not None:
            response = Response(status_code=204, headers=self.cors(origin))
            await response(scope, receive, self.wrap(send))
            return
        await self.app(scope, receive, self.wrap(send, origin))

    def cors(self, origin: str | None) -> dict[str, str]:
        if origin is None:
            return {}
        if "cors-reflect" in self.weak or origin == ORIGIN:
            return {
                "Access-Control-Allow-Origin": origin,
                "Access-Control-Allow-Credentials": "true",
                "Access-Control-Allow-Methods": "GET, POST, DELETE",
                "Access-Control-Allow-Headers": "authorization, content-type, x-api-key",
                "Vary": "Origin",
            }
        return {"Vary": "Origin"}

    def wrap(self, send: Send, origin: str | None = None) -> Send:
        async def sending(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                if "no-hsts" not in self.weak:
                    headers.append((b"strict-transport-security", b"max-age=63072000"))
                if "no-request-id" not in self.weak:
                    headers.append((b"x-request-id", uuid.uuid4().hex.encode()))
                if origin is not None:
                    headers += [
                        (k.lower().encode(), v.encode()) for k, v in self.cors(origin).items()
                    ]
                message = {**message, "headers": headers}
            await send(message)

        return sending
