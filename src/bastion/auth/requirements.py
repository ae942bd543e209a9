"""The ``auth_requirements`` guard: what each route needs of its caller, and what the upstream
is told about that caller.

Per route (``routes[].auth``, else the OpenAPI operation's ``security`` when a document is
configured (:mod:`bastion.auth.openapi`), else ``auth.default``): ``public`` lets anyone through,
``optional`` lets anonymous callers through but still identifies those with credentials,
``required`` answers 401 ``auth.missing_credentials`` (with a ``WWW-Authenticate`` challenge per
accepted scheme) to a caller without any. ``auto``, the default, is ``required`` as soon as
bastion has any way to authenticate someone (an API key exists, revoked ones included, or a
token issuer is configured; and while the key store has not been read, to be safe) and
``public`` before that, so that ``bastion serve --upstream URL`` works on first run and locks
itself the moment the first key is created. Scopes (all of ``scopes``, plus those of
``method_scopes`` for the request's method) are checked on the identity: 403
``auth.insufficient_scope`` when one is missing. An operation whose security schemes accept only
another kind of credential (a bearer token where an API key was sent) answers 401
``auth.credential_not_accepted``. bastion's own endpoints (the token endpoint, the JWKS) are
public here: they authenticate their clients themselves.

Whoever passes, the upstream receives the identity headers (``auth.identity_headers``) that
bastion wrote, never a client's: inbound copies are removed on every request, anonymous ones
included. The credential bastion verified is removed too unless ``auth.forward_credentials``.
Values are percent-encoded outside a conservative character set, so a claim can never inject a
header line.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass
from typing import ClassVar
from urllib.parse import quote

from bastion.auth.openapi import OperationPolicy, OperationTable
from bastion.config.auth import AuthConfig, RouteAuthConfig
from bastion.config.models import BastionConfig
from bastion.pipeline.decisions import ALLOW, Decision, Deny
from bastion.pipeline.guard import Phase
from bastion.pipeline.identity import IDENTITY, Identity
from bastion.pipeline.request import Request
from bastion.pipeline.routing import ROUTE
from bastion.pipeline.upstream_headers import UPSTREAM_HEADERS, UpstreamHeaders

MISSING_DETAIL = "This route requires credentials: send an API key or a bearer token in a header."
SCOPE_DETAIL = "The credential does not grant the scopes this operation requires."
NOT_ACCEPTED_DETAIL = "This operation does not accept this kind of credential."
_SAFE = "!#$&'()*+,-./:;=?@[]^_`{|}~ "
_CACHE_LIMIT = 10_000


@dataclass(frozen=True, slots=True)
class RoutePolicy:
    """A route's requirement, compiled: ``require`` is ``auto`` only when inherited."""

    require: str
    scopes: frozenset[str] = frozenset()
    method_scopes: tuple[tuple[str, frozenset[str]], ...] = ()

    @classmethod
    def of(cls, route: RouteAuthConfig, default: str) -> RoutePolicy:
        require = route.require or ("required" if route.needs_identity else default)
        return cls(
            require,
            frozenset(route.scopes),
            tuple(
                (m, frozenset(s) | frozenset(route.scopes)) for m, s in route.method_scopes.items()
            ),
        )

    def needed(self, method: str) -> frozenset[str]:
        for name, scopes in self.method_scopes:
            if name == method:
                return scopes
        return self.scopes


def header_value(text: str) -> bytes:
    """``text`` as a header value that cannot break the header section."""
    return quote(text, safe=_SAFE).encode("ascii")


class IdentityHeaders:
    """Builds (and caches) the :class:`UpstreamHeaders` for identities."""

    def __init__(self, config: AuthConfig) -> None:
        names = config.identity_headers
        self.sent = {field: name.encode("ascii") for field, name in names.sent().items()}
        stripped = {name.encode("ascii") for name in names.stripped()}
        self.anonymous = UpstreamHeaders(frozenset(stripped))
        credentials = {b"authorization"}
        if config.api_keys.enabled:
            credentials.add(config.api_keys.header.encode("ascii"))
        consumed = set() if config.forward_credentials else credentials
        self.authenticated_remove = frozenset(stripped | consumed)
        self._cache: dict[int, tuple[Identity, UpstreamHeaders]] = {}
        self._last: tuple[Identity, UpstreamHeaders] | None = None

    def for_identity(self, identity: Identity) -> UpstreamHeaders:
        """The edits for ``identity``, cached by the identity object: an API key's identity is
        built once per key, a cached token's once per token. The cache holds the identity
        itself, so its ``id`` cannot be reused by another object while cached."""
        last = self._last  # the caller of the request before: one identity check
        if last is not None and last[0] is identity:
            return last[1]
        edits = self._cached(identity)
        self._last = (identity, edits)  # one assignment: never an identity with other edits
        return edits

    def _cached(self, identity: Identity) -> UpstreamHeaders:
        cached = self._cache.get(id(identity))
        if cached is not None and cached[0] is identity:
            return cached[1]
        if len(self._cache) >= _CACHE_LIMIT:
            self._cache.clear()
        edits = self._build(identity)
        self._cache[id(identity)] = (identity, edits)
        return edits

    def _build(self, identity: Identity) -> UpstreamHeaders:
        values = {
            "consumer": identity.consumer,
            "key_id": identity.key_id,
            "scopes": " ".join(sorted(identity.scopes)),
            "tier": identity.tier,
            "method": identity.method,
        }
        added = tuple(
            (name, header_value(value))
            for field, name in self.sent.items()
            if (value := values[field])
        )
        return UpstreamHeaders(self.authenticated_remove, added)


class AuthRequirements:
    """The ``auth_requirements`` guard (see the module docstring)."""

    name: ClassVar[str] = "auth_requirements"
    phase: ClassVar[Phase] = Phase.AUTHORIZE
    requires_body: ClassVar[bool] = False

    def __init__(
        self,
        config: BastionConfig,
        challenges: Sequence[str],
        can_authenticate: Callable[[], bool],
        *,
        public_routes: Collection[str] = (),
        operations: OperationTable | None = None,
    ) -> None:
        self.fail_open = False
        auth = config.auth
        self.default = RoutePolicy.of(RouteAuthConfig(), auth.default)
        self.policies = {r.name: RoutePolicy.of(r.auth, auth.default) for r in config.routes}
        public = RoutePolicy("public")
        self.policies.update({name: public for name in public_routes})
        self.operations = operations
        # Routes whose config says what they need override the document (config overrides).
        self.configured = frozenset(
            r.name for r in config.routes if r.auth.require is not None or r.auth.has_scopes
        ) | frozenset(public_routes)
        self.can_authenticate = can_authenticate
        self.realm = auth.realm
        self.challenges = tuple(challenges)
        self.headers = IdentityHeaders(auth)
        self._missing: dict[str | None, Deny] = {}

    def policy(self, request: Request) -> tuple[str | None, RoutePolicy]:
        route = request.state.get(ROUTE)
        if route is None:
            return None, self.default
        return route.name, self.policies.get(route.name, self.default)

    def check(self, request: Request) -> Decision:
        state = request.state
        matched = state.get(ROUTE)
        if matched is None:
            route, policy = None, self.default
        else:
            route = matched.name
            found = self.policies.get(route)
            policy = found if found is not None else self.default
        if self.operations is not None and route not in self.configured:
            operation = self.operations.lookup(request.method, request.path)
            if operation is not None:
                return self._check_operation(request, route, policy, operation)
        identity = state.get(IDENTITY)
        if identity is None:
            require = policy.require
            if require == "required" or (require == "auto" and self.can_authenticate()):
                return self.missing(route)
            state[UPSTREAM_HEADERS] = self.headers.anonymous
            return ALLOW
        needed = policy.needed(request.method) if policy.method_scopes else policy.scopes
        if needed and not needed <= identity.scopes:
            return self.insufficient(route, identity, needed)
        state[UPSTREAM_HEADERS] = self.headers.for_identity(identity)
        return ALLOW

    def _check_operation(
        self, request: Request, route: str | None, policy: RoutePolicy, operation: OperationPolicy
    ) -> Decision:
        """The requirement of an OpenAPI operation (alternatives of schemes and scopes); the
        route's object rules and method scopes are not the document's business."""
        state = request.state
        identity = state.get(IDENTITY)
        if identity is None:
            if operation.require == "required":
                return self.missing(route)
            state[UPSTREAM_HEADERS] = self.headers.anonymous
            return ALLOW
        if not operation.satisfied_by(identity.method, identity.scopes):
            if not operation.accepts(identity.method):
                return self.not_accepted(route, identity, operation)
            needed = min(
                (a.scopes for a in operation.any_of if a.methods is None
                 or identity.method in a.methods),
                key=lambda scopes: len(scopes - identity.scopes),
            )  # fmt: skip
            return self.insufficient(route, identity, needed)
        state[UPSTREAM_HEADERS] = self.headers.for_identity(identity)
        return ALLOW

    def not_accepted(
        self, route: str | None, identity: Identity, operation: OperationPolicy
    ) -> Deny:
        fields: dict[str, object] = {
            "consumer": identity.consumer,
            "auth_method": identity.method,
            "operation": operation.operation,
        }
        if route is not None:
            fields["route"] = route
        return Deny(
            401,
            "auth.credential_not_accepted",
            "Unauthorized",
            NOT_ACCEPTED_DETAIL,
            headers=tuple(("www-authenticate", c) for c in self.challenges),
            fields=fields,
        )

    def missing(self, route: str | None) -> Deny:
        deny = self._missing.get(route)
        if deny is None:
            deny = self._missing[route] = Deny(
                401,
                "auth.missing_credentials",
                "Unauthorized",
                MISSING_DETAIL,
                headers=tuple(("www-authenticate", c) for c in self.challenges),
                fields={"route": route} if route is not None else {},
            )
        return deny

    def insufficient(self, route: str | None, identity: Identity, needed: frozenset[str]) -> Deny:
        scheme = "Bearer" if identity.method in ("jwt", "oidc") else self._key_scheme()
        wanted = " ".join(sorted(needed))
        challenge = f'{scheme} realm="{self.realm}", error="insufficient_scope", scope="{wanted}"'
        fields: dict[str, object] = {
            "consumer": identity.consumer,
            "auth_method": identity.method,
            "required_scopes": sorted(needed),
            "missing_scopes": sorted(needed - identity.scopes),
        }
        if identity.key_id is not None:
            fields["key_id"] = identity.key_id
        if route is not None:
            fields["route"] = route
        return Deny(
            403,
            "auth.insufficient_scope",
            "Forbidden",
            SCOPE_DETAIL,
            headers=(("www-authenticate", challenge),),
            fields=fields,
        )

    def _key_scheme(self) -> str:
        for challenge in self.challenges:
            if not challenge.startswith("Bearer"):
                return challenge.split(" ", 1)[0]
        return "ApiKey"
