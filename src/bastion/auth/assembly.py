"""The authentication guards and endpoints a configuration enables.

Always: ``credential_placement`` (credentials only in headers, one at a time) and
``auth_requirements`` (what each route or OpenAPI operation needs; identity headers for the
upstream). With ``auth.api_keys.enabled`` (the default): the ``api_key`` guard and its
background sync. With ``auth.tokens.issuers`` or ``auth.tokens.signing``: the ``bearer_token``
guard. With object rules on some route: ``object_authorization``. Each authenticating guard's
``challenge`` goes into the 401 ``WWW-Authenticate`` answers.

With ``auth.tokens.signing`` (and ``auth.tokens.endpoint.enabled``), the gateway also serves
``POST /oauth/token`` and ``GET /.well-known/jwks.json`` (:func:`auth_endpoints`): public
routes as far as the requirements guard is concerned (the token endpoint authenticates its
clients itself, with RFC 6749 errors, so the key and bearer guards leave its credentials alone).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence

from bastion.auth.apikey import ApiKeyGuard
from bastion.auth.bearer import BearerTokenGuard
from bastion.auth.jwt.keystore import SigningKeyStore
from bastion.auth.keys.sync import Opener
from bastion.auth.objects import ObjectAuthorization
from bastion.auth.openapi import operation_policies
from bastion.auth.placement import CredentialPlacement
from bastion.auth.requirements import AuthRequirements
from bastion.auth.token_endpoint import (
    JWKS_ROUTE,
    TOKEN_ROUTE,
    JwksEndpoint,
    TokenEndpoint,
    endpoint_routes,
)
from bastion.auth.tokens import signing_keys, token_verifier
from bastion.config.auth import DEFAULT_QUERY_CREDENTIAL_NAMES
from bastion.config.models import BastionConfig
from bastion.observability.events import EventSink
from bastion.pipeline.guard import Guard
from bastion.pipeline.routing import Route

logger = logging.getLogger("bastion.auth")


def endpoint_names(config: BastionConfig) -> frozenset[str]:
    """The routes of bastion's own auth endpoints that ``config`` serves."""
    tokens = config.auth.tokens
    if not config.auth.enabled or tokens.signing is None or not tokens.endpoint.enabled:
        return frozenset()
    return frozenset({TOKEN_ROUTE, JWKS_ROUTE})


def auth_guards(
    config: BastionConfig,
    events: EventSink,
    *,
    clock: Callable[[], float] = time.time,
    key_store: Opener | None = None,
    start: bool = True,
    signing_store: SigningKeyStore | None = None,
) -> list[Guard]:
    """Guards of the authenticate and authorize phases, in any order (the chain orders them).

    ``clock``, ``key_store``, ``signing_store`` and ``start`` are for tests and embedding: a
    fake clock, other stores, and no background key sync (the caller drives
    ``ApiKeyGuard.sync.refresh``). Token guards start through the chain (``start``/``close``).
    """
    auth = config.auth
    if not auth.enabled:
        logger.warning(
            "auth: disabled (auth.enabled: false): no credential is checked, credentials in"
            " query strings pass, identity headers from clients reach the upstream"
        )
        return []
    guards: list[Guard] = [CredentialPlacement(auth)]
    challenges: list[str] = []
    endpoints = endpoint_names(config)
    keys: ApiKeyGuard | None = None
    can_authenticate: Callable[[], bool] = lambda: False  # noqa: E731
    if auth.api_keys.enabled:
        keys = ApiKeyGuard.from_config(config, events, clock=clock, opener=key_store, start=start)
        keys.skip_routes = endpoints
        guards.append(keys)
        challenges.append(keys.challenge)
        index = keys.index
        # Until the store has been read, assume keys exist: "auto" must not fail open.
        can_authenticate = lambda: index.has_keys or not index.loaded  # noqa: E731
        if auth.default == "auto" and index.loaded and not index.has_keys:
            logger.info(
                "auth: no API key exists yet, so routes without auth settings are public"
                " (auth.default: auto); they require credentials once the first key is"
                " created (bastion keys create). Set auth.default to silence this."
            )
    tokens = auth.tokens
    if tokens.issuers or tokens.signing is not None:
        signing = (
            signing_keys(config, store=signing_store, clock=clock)
            if tokens.signing is not None
            else None
        )
        verifier = token_verifier(
            config, signing=signing, index=keys.index if keys is not None else None, clock=clock
        )
        bearer = BearerTokenGuard(verifier, realm=auth.realm, signing=signing, redis=config.redis)
        bearer.skip_routes = endpoints
        guards.append(bearer)
        challenges.append(bearer.challenge)
        if bearer.accepts_tokens_from_providers:
            # Anyone the providers vouch for may call: "auto" means required from the start.
            can_authenticate = lambda: True  # noqa: E731
    if config.tls.enabled and config.tls.client_auth.mode != "none":
        # Client certificates are a credential source: under "auto", routes require one.
        can_authenticate = lambda: True  # noqa: E731
    if keys is None and not tokens.issuers and auth.default == "auto":
        logger.info("auth: no credential source is enabled; auth.default auto means public")
    dropped = sorted(set(DEFAULT_QUERY_CREDENTIAL_NAMES) - set(auth.query_credential_names))
    if dropped:
        logger.warning(
            "auth: query parameters %s are no longer refused as credentials"
            " (auth.query_credential_names)",
            ", ".join(dropped),
        )
    operations = operation_policies(config) if auth.openapi_security else None
    guards.append(
        AuthRequirements(
            config, challenges, can_authenticate, public_routes=endpoints, operations=operations
        )
    )
    if any(route.auth.objects for route in config.routes):
        guards.append(ObjectAuthorization.from_config(config))
    return guards


def auth_endpoints(
    config: BastionConfig,
    guards: Sequence[Guard],
    events: EventSink,
    *,
    clock: Callable[[], float] = time.time,
) -> list[Route]:
    """The routes of ``POST /oauth/token`` and ``GET /.well-known/jwks.json`` when ``config``
    serves them, built on the guards :func:`auth_guards` made (their keys and signing keys)."""
    if not endpoint_names(config):
        return []
    keys = next((g for g in guards if isinstance(g, ApiKeyGuard)), None)
    bearer = next((g for g in guards if isinstance(g, BearerTokenGuard)), None)
    signing_settings = config.auth.tokens.signing
    if keys is None or bearer is None or bearer.signing is None or signing_settings is None:
        return []
    token = TokenEndpoint(
        keys,
        bearer.signing,
        signing_settings.audiences,
        events,
        settings=config.auth.tokens.endpoint,
        realm=config.auth.realm,
        clock=clock,
    )
    return endpoint_routes(token, JwksEndpoint(bearer.signing))
