"""Tokens wired to a configuration: where the signing keys live, the keys themselves, and the
verifier with the revocation rule of bastion's own tokens.

Signing keys live where the API keys do: in PostgreSQL when ``postgres.dsn`` is set (shared by
every instance; private keys sealed under the API-key pepper), else in owner-only files under
``state_dir/<auth.tokens.signing.key_dir>``. A rotation is announced over Redis when
``redis.url`` is set; every instance also polls the store every ``resync_interval``.

A token bastion issued is worth no more than the API key it was exchanged for: it is refused as
soon as that key is revoked, expires, or disappears (:class:`KeyBoundRevocations`), on every
instance within the key sync's interval, cached or not.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from bastion.auth.apikey import pepper_path
from bastion.auth.bearer import KeyBoundRevocations
from bastion.auth.jwt import announce
from bastion.auth.jwt.cache import MemoryRevocations, Revocations
from bastion.auth.jwt.keystore import FileSigningKeyStore, SigningKeyStore
from bastion.auth.jwt.signing import SigningKeys
from bastion.auth.jwt.verifier import TokenVerifier, build_verifier
from bastion.auth.keys.hashing import load_pepper
from bastion.auth.keys.index import KeyIndex
from bastion.config.models import BastionConfig
from bastion.errors import ConfigError, StateError

__all__ = ["KeyBoundRevocations", "open_signing_store", "signing_keys", "token_verifier"]

Clock = Callable[[], float]


def open_signing_store(config: BastionConfig, *, create_pepper: bool = False) -> SigningKeyStore:
    """The signing-key store ``config`` names (``auth.tokens.signing`` must be set).

    ``create_pepper`` (the CLI) also applies pending PostgreSQL migrations; a gateway's store
    only checks the schema version."""
    signing = config.auth.tokens.signing
    if signing is None:
        raise ConfigError(
            "auth.tokens.signing is not set; expected the issuer and audiences of the tokens"
            " bastion signs (docs/tokens.md)"
        )
    if config.postgres.dsn is None:
        return FileSigningKeyStore(config.state_dir / signing.key_dir)
    from bastion.store.signing_postgres import KeySealer, PostgresSigningKeyStore

    def sealer() -> KeySealer:
        pepper = load_pepper(pepper_path(config), create=create_pepper)
        if pepper is None:
            raise StateError(
                f"signing keys in PostgreSQL are sealed under the API key pepper, but neither"
                f" $BASTION_API_KEY_PEPPER nor {pepper_path(config)} exists; expected the pepper"
                " every instance shares (bastion keys create makes the file)"
            )
        return KeySealer(pepper)

    return PostgresSigningKeyStore(
        config.postgres.dsn, sealer, config.postgres.db_schema, migrate=create_pepper
    )


def signing_keys(
    config: BastionConfig, *, store: SigningKeyStore | None = None, clock: Clock = time.time
) -> SigningKeys:
    """bastion's signing keys for ``config``; changes are announced over Redis if configured."""
    settings = config.auth.tokens.signing
    if settings is None:
        raise ConfigError("auth.tokens.signing is not set")
    keys = SigningKeys.from_settings(
        settings,
        state_dir=config.state_dir,
        store=store if store is not None else open_signing_store(config),
        clock=clock,
    )
    if config.redis.url is not None:
        redis_config = config.redis

        async def announce_change() -> None:
            await announce.publish(redis_config)

        keys.on_change = announce_change
    return keys


def token_verifier(
    config: BastionConfig,
    *,
    signing: SigningKeys | None,
    index: KeyIndex | None,
    clock: Clock = time.time,
) -> TokenVerifier:
    """The verifier for ``auth.tokens``: configured providers plus bastion's own issuer, whose
    tokens are bound to their API key when API keys are on."""
    tokens = config.auth.tokens
    revocations: Revocations = MemoryRevocations()
    if tokens.signing is not None and index is not None:
        revocations = KeyBoundRevocations(index, tokens.signing.issuer, clock=clock)
    return build_verifier(tokens, signing=signing, revocations=revocations, clock=clock)
