"""The authentication guards a configuration enables.

Always: ``credential_placement`` (credentials only in headers, one at a time) and
``auth_requirements`` (what each route needs; identity headers for the upstream). With
``auth.api_keys.enabled`` (the default): the ``api_key`` guard and its background sync. Token
guards (:mod:`bastion.auth.jwt`) join the list here once their configuration is mounted; each
authenticating guard's ``challenge`` goes into the 401 ``WWW-Authenticate`` answers.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from bastion.auth.apikey import ApiKeyGuard
from bastion.auth.keys.sync import Opener
from bastion.auth.placement import CredentialPlacement
from bastion.auth.requirements import AuthRequirements
from bastion.config.auth import DEFAULT_QUERY_CREDENTIAL_NAMES
from bastion.config.models import BastionConfig
from bastion.observability.events import EventSink
from bastion.pipeline.guard import Guard

logger = logging.getLogger("bastion.auth")


def auth_guards(
    config: BastionConfig,
    events: EventSink,
    *,
    clock: Callable[[], float] = time.time,
    key_store: Opener | None = None,
    start: bool = True,
) -> list[Guard]:
    """Guards of the authenticate and authorize phases, in any order (the chain orders them).

    ``clock``, ``key_store`` and ``start`` are for tests and embedding: a fake clock, another
    store, and no background sync (the caller drives ``ApiKeyGuard.sync.refresh``).
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
    can_authenticate: Callable[[], bool] = lambda: False  # noqa: E731
    if auth.api_keys.enabled:
        keys = ApiKeyGuard.from_config(config, events, clock=clock, opener=key_store, start=start)
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
    elif auth.default == "auto":
        logger.info("auth: no credential source is enabled; auth.default auto means public")
    dropped = sorted(set(DEFAULT_QUERY_CREDENTIAL_NAMES) - set(auth.query_credential_names))
    if dropped:
        logger.warning(
            "auth: query parameters %s are no longer refused as credentials"
            " (auth.query_credential_names)",
            ", ".join(dropped),
        )
    guards.append(AuthRequirements(config, challenges, can_authenticate))
    return guards
