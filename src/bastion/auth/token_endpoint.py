"""bastion's own endpoints: ``POST /oauth/token`` and ``GET /.well-known/jwks.json``.

The token endpoint is the OAuth 2.0 client-credentials grant (RFC 6749 §4.4). The client is an
API key: it authenticates with HTTP Basic (``client_id`` = the key id, ``client_secret`` = the
key, RFC 6749 §2.3.1) or with the API-key header, never with a parameter in the URL or the body.
The answer is an access token in the RFC 9068 profile, signed by the current signing key, for
the key's consumer, with at most the key's scopes, living ``token_lifetime`` (never past
``max_token_lifetime``, nor past the key's own expiry). Every answer carries ``Cache-Control:
no-store``; every refusal is an RFC 6749 §5.2 error document:

=======================  ======  ===========================================================
error                    status  when
=======================  ======  ===========================================================
invalid_request          400     not a form POST, a query string, a repeated or missing
                                 parameter, ``client_secret`` in the body, a body over 4 KiB
invalid_client           401     no client authentication, an unsupported method, an unknown,
                                 malformed or wrong key, a ``client_id`` that is not the key's
                                 (with ``WWW-Authenticate``: ``Basic``, or the key scheme)
invalid_grant            400     the key is revoked or has expired
unauthorized_client      400     the key lacks ``auth.tokens.endpoint.required_scope``
unsupported_grant_type   400     ``grant_type`` other than ``client_credentials``
invalid_scope            400     a malformed scope, or one the key does not hold
invalid_target           400     ``resource`` (RFC 8707) is not one of the signing audiences
=======================  ======  ===========================================================

Each attempt is a security event (``auth.token_issued`` or ``auth.token_refused`` with the
error), with the key id and consumer once the key is known, never the key or the token. Failed
answers (401) count toward the login lockout, which guards this path by default.

The JWKS endpoint publishes the current key, a pending one and every retired key whose tokens
can still be valid, cacheable for less than the time a new key is published before it signs.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import time
from collections.abc import Callable, Mapping
from typing import Any
from urllib.parse import parse_qsl, unquote_plus

import orjson

from bastion.auth.apikey import ApiKeyGuard, KeyFailure
from bastion.auth.jwt.settings import TokenEndpointSettings
from bastion.auth.jwt.signing import SigningKeys
from bastion.auth.keys.index import KeyEntry
from bastion.config.auth import SCOPE
from bastion.errors import StateError
from bastion.observability.events import EventSink, SecurityEvent
from bastion.pipeline.request import Request
from bastion.pipeline.response import Response
from bastion.pipeline.routing import Route

TOKEN_PATH = "/oauth/token"  # noqa: S105 (a path, not a secret)
JWKS_PATH = "/.well-known/jwks.json"
TOKEN_ROUTE = "bastion.oauth_token"  # noqa: S105 (a route name)
JWKS_ROUTE = "bastion.jwks"
GRANT = "client_credentials"
_FORM = "application/x-www-form-urlencoded"
_MAX_FIELDS = 16
MAX_BODY = 4096  # a client-credentials request is a few dozen bytes
_NO_STORE = (("cache-control", "no-store"), ("pragma", "no-cache"))
_JSON = (("content-type", "application/json"),)

Clock = Callable[[], float]


class OAuthError(Exception):
    """A refusal per RFC 6749 §5.2: ``error`` code, status, a fixed description (bastion's own
    words, never client input), the event's reason, and the key once it is known."""

    def __init__(
        self,
        error: str,
        description: str,
        *,
        status: int = 400,
        reason: str | None = None,
        challenge: str | None = None,
        key_id: str | None = None,
        consumer: str | None = None,
    ) -> None:
        super().__init__(description)
        self.error = error
        self.description = description
        self.status = status
        self.reason = reason or error
        self.challenge = challenge
        self.key_id = key_id
        self.consumer = consumer


def _json_response(
    status: int, doc: Mapping[str, Any], extra: tuple[tuple[str, str], ...] = ()
) -> Response:
    return Response(status, _JSON + _NO_STORE + extra, orjson.dumps(doc))


class TokenEndpoint:
    """``POST /oauth/token``: see the module docstring."""

    requires_body = True

    def __init__(
        self,
        keys: ApiKeyGuard,
        signing: SigningKeys,
        audiences: list[str],
        events: EventSink,
        *,
        settings: TokenEndpointSettings | None = None,
        realm: str = "bastion",
        clock: Clock = time.time,
    ) -> None:
        self.keys = keys
        self.signing = signing
        self.audiences = list(audiences)
        self.events = events
        self.settings = settings if settings is not None else TokenEndpointSettings()
        self.clock = clock
        self.basic_challenge = f'Basic realm="{realm}"'
        self.key_challenge = keys.challenge
        self.key_header = keys.header

    async def __call__(self, request: Request) -> Response:
        return self.handle(request)

    def handle(self, request: Request) -> Response:
        if request.path != TOKEN_PATH:
            return _json_response(404, {"error": "not_found"})
        if request.method != "POST":
            return self._refuse(
                request,
                OAuthError("invalid_request", "The token endpoint accepts POST only.", status=405),
                extra=(("allow", "POST"),),
            )
        now = self.clock()
        try:
            params = self._params(request)
            entry, via = self._client(request, params, now)
            grant = self._grant(params, entry)
        except OAuthError as error:
            return self._refuse(request, error)
        scopes, audience = grant
        record = entry.record
        lifetime = min(self.signing.token_lifetime, record.expires_at - now)
        if lifetime < 1:  # the key expires within the second: a token would be born dead
            refusal = OAuthError(
                "invalid_grant",
                "The client's key has expired.",
                reason="expired",
                key_id=record.id,
                consumer=record.consumer,
            )
            return self._refuse(request, refusal)
        try:
            issued = self.signing.issue_access_token(
                subject=record.consumer,
                client_id=record.id,
                audience=audience,
                scopes=scopes,
                lifetime=lifetime,
                now=now,
                extra_claims={"tier": record.tier} if record.tier else None,
            )
        except StateError:  # no signing key could be loaded (store down since start)
            refusal = OAuthError(
                "temporarily_unavailable",
                "No signing key is available; try again later.",
                status=503,
                reason="no_signing_key",
                key_id=record.id,
                consumer=record.consumer,
            )
            return self._refuse(request, refusal, extra=(("retry-after", "1"),))
        self.keys.sync.record_use(record.id, now)
        self.events.emit(
            SecurityEvent.for_request(
                request,
                action="auth.token_issued",
                outcome="success",
                guard="token_endpoint",
                status=200,
                user_id=record.consumer,
                fields={
                    "consumer": record.consumer,
                    "key_id": record.id,
                    "auth_method": "api_key",
                    "route": TOKEN_ROUTE,
                    "client_auth": via,
                    "jti": issued.jti,
                    "kid": issued.kid,
                    "scope": issued.scope,
                    "expires_in": issued.expires_in,
                },
            )
        )
        doc: dict[str, Any] = {
            "access_token": issued.token,
            "token_type": "Bearer",
            "expires_in": issued.expires_in,
        }
        if issued.scope:
            doc["scope"] = issued.scope
        return _json_response(200, doc)

    # -- the request, in RFC 6749 order: its form, the client, the grant

    def _params(self, request: Request) -> dict[str, str]:
        if request.query:
            raise OAuthError(
                "invalid_request",
                "Parameters belong in the form-encoded request body, not in the URL.",
                reason="query_string",
            )
        media = (request.headers.get("content-type") or "").split(";", 1)[0].strip().lower()
        if media != _FORM:
            raise OAuthError(
                "invalid_request",
                f"The request body must be {_FORM}.",
                reason="content_type",
            )
        body = request.body or b""
        if len(body) > MAX_BODY:
            raise OAuthError(
                "invalid_request",
                f"The request body exceeds {MAX_BODY} bytes.",
                reason="body_too_large",
            )
        try:
            text = body.decode("ascii")
            pairs = parse_qsl(
                text, keep_blank_values=True, strict_parsing=bool(text), max_num_fields=_MAX_FIELDS
            )
        except (UnicodeDecodeError, ValueError):
            raise OAuthError(
                "invalid_request", "The request body is not a valid form.", reason="malformed_body"
            ) from None
        params: dict[str, str] = {}
        for name, value in pairs:
            if name in params:
                raise OAuthError(
                    "invalid_request",
                    "A parameter is repeated; each may appear once.",
                    reason="repeated_parameter",
                )
            params[name] = value
        if "client_secret" in params:
            raise OAuthError(
                "invalid_request",
                "client_secret is not accepted in the body; authenticate with HTTP Basic or"
                " the API key header.",
                reason="client_secret_in_body",
            )
        return params

    def _client(self, request: Request, params: dict[str, str], now: float) -> tuple[KeyEntry, str]:
        """The authenticated key (and how it was sent), or ``invalid_client`` /
        ``invalid_grant``."""
        basic = self._basic(request)
        presented = self.keys.presented(request)
        if basic is not None:
            client_id, secret, via, challenge = basic[0], basic[1], "basic", self.basic_challenge
        elif presented is not None:
            client_id, secret, via, challenge = None, presented, "api_key", self.key_challenge
        else:
            raise OAuthError(
                "invalid_client",
                "Authenticate with HTTP Basic (client_id: the key id, client_secret: the key)"
                f" or the {self.key_header} header.",
                status=401,
                reason="no_client_authentication",
                challenge=self.basic_challenge,
            )
        found = self.keys.authenticate(secret, now)
        if isinstance(found, KeyFailure):
            raise self._key_failure(found, challenge)
        record = found.record
        claimed = [c for c in (client_id, params.get("client_id")) if c is not None]
        for value in claimed:
            if not hmac.compare_digest(value.encode("utf-8", "replace"), record.id.encode()):
                raise OAuthError(
                    "invalid_client",
                    "client_id does not name the key presented.",
                    status=401,
                    reason="client_id_mismatch",
                    challenge=challenge,
                    key_id=record.id,
                    consumer=record.consumer,
                )
        return found, via

    def _basic(self, request: Request) -> tuple[str, str, str] | None:
        """``(client_id, client_secret, "basic")`` from ``Authorization: Basic``, or ``None``
        when the request has none; a malformed one is ``invalid_client`` (RFC 6749 §2.3.1: both
        parts form-urlencoded before Basic encoding)."""
        value = request.headers.get("authorization")
        if value is None or value[:6].lower() != "basic ":
            if value is not None and value[:7].lower() == "bearer ":
                raise OAuthError(
                    "invalid_client",
                    "A bearer token does not authenticate a client here; use HTTP Basic.",
                    status=401,
                    reason="unsupported_client_authentication",
                    challenge=self.basic_challenge,
                )
            return None
        try:
            decoded = base64.b64decode(value[6:].strip(), validate=True).decode("utf-8")
        except (binascii.Error, UnicodeDecodeError):
            decoded = ""
        client_id, sep, secret = decoded.partition(":")
        if not sep or not client_id or not secret:
            raise OAuthError(
                "invalid_client",
                "The HTTP Basic credentials are malformed.",
                status=401,
                reason="malformed_basic",
                challenge=self.basic_challenge,
            )
        return unquote_plus(client_id), unquote_plus(secret), "basic"

    def _key_failure(self, failure: KeyFailure, challenge: str) -> OAuthError:
        if failure.reason in ("revoked", "expired"):
            return OAuthError(
                "invalid_grant",
                "The client's key has been revoked." if failure.reason == "revoked" else
                "The client's key has expired.",
                reason=failure.reason,
                key_id=failure.key_id,
                consumer=failure.consumer,
            )  # fmt: skip
        return OAuthError(
            "invalid_client",
            "Client authentication failed.",
            status=401,
            reason=failure.reason,
            challenge=challenge,
            key_id=failure.key_id,
            consumer=failure.consumer,
        )

    def _grant(self, params: dict[str, str], entry: KeyEntry) -> tuple[frozenset[str], str]:
        """The scopes and audience to issue, or the refusal."""
        record = entry.record
        key_id, consumer = record.id, record.consumer
        grant_type = params.get("grant_type")
        if not grant_type:
            raise OAuthError(
                "invalid_request", "grant_type is missing.", key_id=key_id, consumer=consumer
            )
        if grant_type != GRANT:
            raise OAuthError(
                "unsupported_grant_type",
                "Only the client_credentials grant is supported.",
                key_id=key_id,
                consumer=consumer,
            )
        required = self.settings.required_scope
        if required is not None and required not in record.scopes:
            raise OAuthError(
                "unauthorized_client",
                "This key may not exchange for access tokens.",
                reason="missing_required_scope",
                key_id=key_id,
                consumer=consumer,
            )
        requested = params.get("scope")
        if requested is None:
            scopes = record.scopes
        else:
            names = requested.split(" ")
            if not requested or any(not SCOPE.match(name) for name in names):
                raise OAuthError(
                    "invalid_scope",
                    "scope is malformed.",
                    reason="malformed_scope",
                    key_id=key_id,
                    consumer=consumer,
                )
            scopes = frozenset(names)
            if not scopes <= record.scopes:
                raise OAuthError(
                    "invalid_scope",
                    "The key does not grant every scope requested.",
                    reason="scope_not_granted",
                    key_id=key_id,
                    consumer=consumer,
                )
        resource = params.get("resource")
        if resource is None:
            audience = self.audiences[0]
        elif resource in self.audiences:
            audience = resource
        else:
            raise OAuthError(
                "invalid_target",
                "resource is not a known audience.",
                reason="resource",
                key_id=key_id,
                consumer=consumer,
            )
        return scopes, audience

    def _refuse(
        self, request: Request, error: OAuthError, extra: tuple[tuple[str, str], ...] = ()
    ) -> Response:
        fields: dict[str, object] = {
            "error": error.error,
            "reason": error.reason,
            "route": TOKEN_ROUTE,
        }
        if error.key_id is not None:
            fields["key_id"] = error.key_id
        if error.consumer is not None:
            fields["consumer"] = error.consumer
        self.events.emit(
            SecurityEvent.for_request(
                request,
                action="auth.token_refused",
                outcome="failure",
                guard="token_endpoint",
                status=error.status,
                reason=error.description,
                user_id=error.consumer,
                fields=fields,
            )
        )
        if error.challenge is not None:
            extra = (*extra, ("www-authenticate", error.challenge))
        doc = {"error": error.error, "error_description": error.description}
        return _json_response(error.status, doc, extra)


class JwksEndpoint:
    """``GET /.well-known/jwks.json``: bastion's public signing keys (RFC 7517)."""

    requires_body = False

    def __init__(self, signing: SigningKeys) -> None:
        self.signing = signing

    async def __call__(self, request: Request) -> Response:
        if request.path != JWKS_PATH:
            return _json_response(404, {"error": "not_found"})
        if request.method not in ("GET", "HEAD"):
            return Response(405, (("allow", "GET, HEAD"), *_JSON), b'{"error":"method"}')
        max_age = self.signing.jwks_max_age()
        headers = (
            ("content-type", "application/jwk-set+json"),
            ("cache-control", f"public, max-age={max_age}"),
        )
        return Response(200, headers, orjson.dumps(self.signing.jwks()))


def endpoint_routes(token: TokenEndpoint | None, jwks: JwksEndpoint | None) -> list[Route]:
    """The routes serving the endpoints (host-less, matched by their exact path)."""
    routes = []
    if token is not None:
        routes.append(Route(name=TOKEN_ROUTE, path_prefix=TOKEN_PATH, endpoint=token))
    if jwks is not None:
        routes.append(Route(name=JWKS_ROUTE, path_prefix=JWKS_PATH, endpoint=jwks))
    return routes
