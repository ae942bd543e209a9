"""``bastion jwks``: rotate and show bastion's token signing keys.

The keys are the ones the gateways use (``auth.tokens.signing``): files under ``state_dir`` by
default, PostgreSQL when ``postgres.dsn`` is set. ``rotate`` makes a key that signs at once; every
gateway instance follows within a second (Redis announcement when configured, store polling
always). Private keys are never printed. Exit codes: 0 done, 1 the store failed, 2 usage or
config error.
"""

from __future__ import annotations

import asyncio
import contextlib
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, NoReturn, TypeVar

import click
import orjson

from bastion.auth.jwt import announce
from bastion.auth.jwt.keystore import SigningKeyStore
from bastion.auth.jwt.signing import SigningKeys
from bastion.auth.tokens import open_signing_store
from bastion.cli.common import EXIT_FAILURE, fail_config, load_or_exit, prepare_state_dir
from bastion.cli.keys import CliClock, stamp
from bastion.config.models import BastionConfig
from bastion.errors import ConfigError, StateError

T = TypeVar("T")


def _clock() -> Callable[[], float]:
    found = click.get_current_context().find_object(CliClock)
    return found.now if found is not None else time.time


def _fail(error: StateError) -> NoReturn:
    click.echo(f"bastion: {error.message}", err=True)
    sys.exit(EXIT_FAILURE)


def _keys(config_path: Path | None, state_dir: Path | None) -> tuple[BastionConfig, SigningKeys]:
    config = load_or_exit(config_path, {"state_dir": state_dir})
    settings = config.auth.tokens.signing
    if settings is None:
        fail_config(
            ConfigError(
                "auth.tokens.signing is not set; expected the issuer and audiences of the tokens"
                " bastion signs (see docs/tokens.md)"
            )
        )
    if config.postgres.dsn is None:
        prepare_state_dir(config)
    store = open_signing_store(config, create_pepper=True)
    keys = SigningKeys.from_settings(
        settings, state_dir=config.state_dir, store=store, clock=_clock()
    )
    return config, keys


def _run(store: SigningKeyStore, work: Awaitable[T]) -> T:
    async def run() -> T:
        try:
            return await work
        finally:
            close = getattr(store, "close", None)
            if close is not None:
                with contextlib.suppress(StateError):
                    await close()

    try:
        return asyncio.run(run())
    except StateError as exc:
        _fail(exc)


def _options(command: Callable[..., Any]) -> Callable[..., Any]:
    command = click.option("--json", "as_json", is_flag=True, help="Print JSON for scripts.")(
        command
    )
    command = click.option(
        "--state-dir", type=click.Path(path_type=Path), help="Where the keys live."
    )(command)
    return click.option(
        "--config", "config_path", type=click.Path(path_type=Path), help="YAML configuration."
    )(command)


def key_rows(keys: SigningKeys, now: float) -> list[dict[str, Any]]:
    """Each stored key with its state: ``pending``, ``current`` or ``retired``."""
    current = keys.current(now)
    horizon = keys.max_token_lifetime + keys.leeway
    rows = []
    for stored in keys.stored_keys():
        retired_at = keys.retired_at(stored.kid)
        if stored.activates_at > now:
            state = "pending"
        elif current is not None and stored.kid == current.kid:
            state = "current"
        else:
            state = "retired"
        rows.append(
            {
                "kid": stored.kid,
                "alg": stored.alg,
                "state": state,
                "created_at": stamp(stored.created_at),
                "activates_at": stamp(stored.activates_at),
                "retired_at": stamp(retired_at),
                "published_until": stamp(retired_at + horizon) if retired_at else None,
            }
        )
    return rows


@click.group()
def jwks() -> None:
    """Rotate and show bastion's token signing keys (every gateway follows within a second)."""


@jwks.command()
@click.option(
    "--revoke-previous",
    is_flag=True,
    help="Also delete every older key: tokens they signed stop working (a compromised key).",
)
@_options
def rotate(
    revoke_previous: bool, config_path: Path | None, state_dir: Path | None, as_json: bool
) -> None:
    """Make a new signing key that signs from now on."""
    config, keys = _keys(config_path, state_dir)

    async def work() -> tuple[str, int | None]:
        kid = await keys.rotate(revoke_previous=revoke_previous)
        return kid, await announce.publish(config.redis, kid)

    kid, announced = _run(keys.store, work())
    now = _clock()()
    rows = key_rows(keys, now)
    if as_json:
        click.echo(orjson.dumps({"kid": kid, "announced_to": announced, "keys": rows}).decode())
        return
    click.echo(f"New signing key {kid} signs from now on.")
    others = [row["kid"] for row in rows if row["kid"] != kid]
    if revoke_previous:
        click.echo("Every older key was deleted: the tokens they signed no longer verify.")
    elif others:
        click.echo(f"Still published while their tokens can be valid: {', '.join(others)}.")
    if announced is not None:
        click.echo(f"Announced over Redis to {announced} listening gateway process(es).")
    else:
        click.echo("Gateways pick the new key up at their next store check (within a second).")


@jwks.command()
@_options
def show(config_path: Path | None, state_dir: Path | None, as_json: bool) -> None:
    """List the signing keys (never the private parts) and print the published JWKS."""
    _, keys = _keys(config_path, state_dir)
    _run(keys.store, keys.read())
    now = _clock()()
    rows = key_rows(keys, now)
    published = keys.jwks(now)
    if as_json:
        click.echo(
            orjson.dumps({"keys": rows, "jwks": published}, option=orjson.OPT_INDENT_2).decode()
        )
        return
    if not rows:
        click.echo("no signing keys yet (the gateway makes the first one at start)")
        return
    columns = ("kid", "alg", "state", "activates_at", "retired_at", "published_until")
    cells = [[str(row[c] or "-") for c in columns] for row in rows]
    titles = [c.replace("_at", "").replace("_", " ").upper() for c in columns]
    widths = [max(len(t), *(len(r[i]) for r in cells)) for i, t in enumerate(titles)]
    for line in [titles, *cells]:
        click.echo("  ".join(cell.ljust(w) for cell, w in zip(line, widths, strict=True)).rstrip())
    click.echo("\nPublished at /.well-known/jwks.json:")
    click.echo(orjson.dumps(published, option=orjson.OPT_INDENT_2).decode())
