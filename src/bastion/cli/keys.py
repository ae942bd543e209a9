"""``bastion keys``: create, list, show, rotate and revoke API keys in the configured store.

The store is the one the gateway reads: SQLite under ``state_dir`` by default, PostgreSQL when
``postgres.dsn`` is set. A secret is printed once, by ``create`` and ``rotate``, and exists
nowhere else afterwards. ``--json`` prints one JSON document for scripts. With ``--remote URL
--admin-token-file FILE`` every command works through that gateway's admin API instead
(:mod:`bastion.cli.remote`), with the same output.
Exit codes: 0 done, 1 the key or the store failed, 2 usage or config error.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import wraps
from pathlib import Path
from typing import Any, NoReturn, TypeVar
from urllib.parse import quote

import click
import orjson

from bastion.auth.keys.manager import IssuedKey, KeyManager
from bastion.cli.common import EXIT_FAILURE, fail_config, load_or_exit, prepare_state_dir
from bastion.cli.remote import call
from bastion.config.types import parse_duration
from bastion.errors import ConfigError, StateError
from bastion.store.records import KeyRecord

F = TypeVar("F", bound=Callable[..., Any])


@dataclass(frozen=True)
class CliClock:
    """Pass as ``obj`` to the CLI to fix its clock (tests): ``invoke(cli, args, obj=clock)``."""

    now: Callable[[], float]


def _clock() -> Callable[[], float]:
    found = click.get_current_context().find_object(CliClock)
    return found.now if found is not None else time.time


def stamp(seconds: float | None) -> str | None:
    if seconds is None:
        return None
    return datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def status(record: KeyRecord, now: float, warning: float) -> str:
    state = record.status(now, warning)
    if record.replaced_by is not None and state in ("active", "expiring"):
        return "grace"
    return state


def record_doc(record: KeyRecord, now: float, warning: float) -> dict[str, Any]:
    return {
        "id": record.id,
        "consumer": record.consumer,
        "name": record.name,
        "scopes": sorted(record.scopes),
        "tier": record.tier,
        "status": status(record, now, warning),
        "created_at": stamp(record.created_at),
        "expires_at": stamp(record.expires_at),
        "revoked_at": stamp(record.revoked_at),
        "last_used_at": stamp(record.last_used_at),
        "replaced_by": record.replaced_by,
    }


def fail(error: StateError) -> NoReturn:
    click.echo(f"bastion: {error.message}", err=True)
    sys.exit(EXIT_FAILURE)


def duration(option: str, value: str | None) -> float | None:
    if value is None:
        return None
    try:
        return parse_duration(value)
    except ValueError as exc:
        fail_config(ConfigError(f"{option}: got {value!r}; {exc}"))


def store_options(command: F) -> F:
    """``--config``, ``--state-dir`` and ``--json`` on every subcommand."""

    @click.option(
        "--config", "config_path", type=click.Path(path_type=Path), help="YAML configuration."
    )
    @click.option("--state-dir", type=click.Path(path_type=Path), help="Where the keys live.")
    @click.option("--json", "as_json", is_flag=True, help="Print JSON for scripts.")
    @click.option(
        "--remote",
        metavar="URL",
        help="Work through the admin API of the gateway at URL (its admin listener).",
    )
    @click.option(
        "--admin-token-file",
        type=click.Path(path_type=Path),
        help="File holding an admin token (with --remote).",
    )
    @wraps(command)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        return command(*args, **kwargs)

    return wrapper  # type: ignore[return-value]


def manager(config_path: Path | None, state_dir: Path | None) -> KeyManager:
    config = load_or_exit(config_path, {"state_dir": state_dir})
    if config.postgres.dsn is None:
        prepare_state_dir(config)
    try:
        return KeyManager(config, clock=_clock())
    except ConfigError as exc:
        fail_config(exc)
    except StateError as exc:
        fail(exc)


def emit(doc: dict[str, Any] | list[dict[str, Any]]) -> None:
    click.echo(orjson.dumps(doc, option=orjson.OPT_INDENT_2).decode())


def show_secret(issued: IssuedKey, what: str) -> None:
    record = issued.record
    announce_secret(what, record.id, record.consumer, stamp(record.expires_at), issued.secret)


def announce_secret(
    what: str, key_id: str, consumer: str, expires: str | None, secret: str
) -> None:
    click.echo(f"{what} API key {key_id} for consumer {consumer} (expires {expires}).")
    click.echo("The secret is shown only now; store it safely:\n")
    click.echo(f"  {secret}\n")


@click.group()
def keys() -> None:
    """Manage API keys (the gateway picks up changes within a second).

    With --remote URL --admin-token-file FILE, through a gateway's admin API instead of the
    store (the key store need not be reachable from here)."""


@keys.command()
@click.option("--consumer", required=True, help="Who the key identifies (sent upstream).")
@click.option("--scope", "scopes", multiple=True, help="A scope the key grants (repeatable).")
@click.option("--tier", help="The consumer's plan, for rate limiting.")
@click.option("--expires", metavar="DURATION", help="Lifetime such as 30d (default 90d).")
@click.option("--name", default="", help="A label to recognise the key by.")
@store_options
def create(
    consumer: str,
    scopes: tuple[str, ...],
    tier: str | None,
    expires: str | None,
    name: str,
    config_path: Path | None,
    state_dir: Path | None,
    as_json: bool,
    remote: str | None,
    admin_token_file: Path | None,
) -> None:
    """Create a key and print its secret (once)."""
    lifetime = duration("--expires", expires)
    if remote:
        body = {"consumer": consumer, "scopes": list(scopes), "tier": tier, "name": name}
        doc = call(remote, admin_token_file, "POST", "/admin/keys", body | {"expires": expires})
        if as_json:
            emit(doc)
        else:
            announce_secret("Created", doc["id"], doc["consumer"], doc["expires_at"], doc["secret"])
        return
    keys_ = manager(config_path, state_dir)
    try:
        issued = keys_.create(consumer, scopes=scopes, tier=tier, name=name, expires_in=lifetime)
    except ConfigError as exc:
        fail_config(exc)
    except StateError as exc:
        fail(exc)
    finally:
        keys_.close()
    if as_json:
        warning = keys_.config.auth.api_keys.expiry_warning
        emit(record_doc(issued.record, keys_.clock(), warning) | {"secret": issued.secret})
    else:
        show_secret(issued, "Created")


@keys.command("list")
@click.option("--consumer", help="Only this consumer's keys.")
@store_options
def list_keys(
    consumer: str | None,
    config_path: Path | None,
    state_dir: Path | None,
    as_json: bool,
    remote: str | None,
    admin_token_file: Path | None,
) -> None:
    """List keys (never their secrets)."""
    if remote:
        params = {"consumer": consumer} if consumer else None
        docs = call(remote, admin_token_file, "GET", "/admin/keys", params=params)["keys"]
    else:
        keys_ = manager(config_path, state_dir)
        try:
            records = keys_.list(consumer)
        except StateError as exc:
            fail(exc)
        finally:
            keys_.close()
        now, warning = keys_.clock(), keys_.config.auth.api_keys.expiry_warning
        docs = [record_doc(r, now, warning) for r in records]
    if as_json:
        emit(docs)
        return
    if not docs:
        click.echo("no API keys")
        return
    columns = ("id", "consumer", "name", "scopes", "tier", "status", "expires_at", "last_used_at")
    rows = [
        [
            " ".join(d[c]) if c == "scopes" else ("-" if d[c] in (None, "") else str(d[c]))
            for c in columns
        ]
        for d in docs
    ]
    titles = [c.replace("_at", "").replace("_", " ").upper() for c in columns]
    widths = [max(len(t), *(len(r[i]) for r in rows)) for i, t in enumerate(titles)]
    for line in [titles, *rows]:
        click.echo("  ".join(cell.ljust(w) for cell, w in zip(line, widths, strict=True)).rstrip())


@keys.command()
@click.argument("key_id")
@store_options
def show(
    key_id: str,
    config_path: Path | None,
    state_dir: Path | None,
    as_json: bool,
    remote: str | None,
    admin_token_file: Path | None,
) -> None:
    """Show one key (never its secret)."""
    if remote:
        doc = call(remote, admin_token_file, "GET", f"/admin/keys/{quote(key_id, safe='')}")
    else:
        keys_ = manager(config_path, state_dir)
        try:
            record = keys_.get(key_id)
        except StateError as exc:
            fail(exc)
        finally:
            keys_.close()
        doc = record_doc(record, keys_.clock(), keys_.config.auth.api_keys.expiry_warning)
    if as_json:
        emit(doc)
        return
    for field, value in doc.items():
        shown = " ".join(value) if isinstance(value, list) else value
        click.echo(f"{field + ':':14}{'-' if shown in (None, '') else shown}")


@keys.command()
@click.argument("key_id")
@click.option(
    "--grace", default="24h", show_default=True, help="How long the old key keeps working."
)
@click.option("--expires", metavar="DURATION", help="Lifetime of the new key (default 90d).")
@store_options
def rotate(
    key_id: str,
    grace: str,
    expires: str | None,
    config_path: Path | None,
    state_dir: Path | None,
    as_json: bool,
    remote: str | None,
    admin_token_file: Path | None,
) -> None:
    """Issue a new key in place of KEY_ID; the old one works until the grace ends."""
    grace_seconds = duration("--grace", grace)
    assert grace_seconds is not None
    lifetime = duration("--expires", expires)
    if remote:
        path = f"/admin/keys/{quote(key_id, safe='')}/rotate"
        doc = call(remote, admin_token_file, "POST", path, {"grace": grace, "expires": expires})
        if as_json:
            emit(doc)
            return
        new, old = doc["new"], doc["old"]
        announce_secret(
            "Rotated: new", new["id"], new["consumer"], new["expires_at"], new["secret"]
        )
        click.echo(f"The old key {old['id']} works until {old['expires_at']}.")
        return
    keys_ = manager(config_path, state_dir)
    try:
        rotation = keys_.rotate(key_id, grace=grace_seconds, expires_in=lifetime)
    except ConfigError as exc:
        fail_config(exc)
    except StateError as exc:
        fail(exc)
    finally:
        keys_.close()
    now, warning = keys_.clock(), keys_.config.auth.api_keys.expiry_warning
    if as_json:
        emit(
            {
                "new": record_doc(rotation.new.record, now, warning)
                | {"secret": rotation.new.secret},
                "old": record_doc(rotation.old, now, warning),
            }
        )
        return
    show_secret(rotation.new, "Rotated: new")
    click.echo(f"The old key {rotation.old.id} works until {stamp(rotation.old.expires_at)}.")


@keys.command()
@click.argument("key_id")
@store_options
def revoke(
    key_id: str,
    config_path: Path | None,
    state_dir: Path | None,
    as_json: bool,
    remote: str | None,
    admin_token_file: Path | None,
) -> None:
    """Revoke KEY_ID on every gateway (within a second)."""
    if remote:
        path = f"/admin/keys/{quote(key_id, safe='')}/revoke"
        doc = call(remote, admin_token_file, "POST", path)
        if as_json:
            emit(doc)
            return
        click.echo(f"Revoked API key {doc['id']} (consumer {doc['consumer']}).")
        if doc.get("announced_to") is not None:
            click.echo(
                f"Announced over Redis to {doc['announced_to']} listening gateway process(es)."
            )
        return
    keys_ = manager(config_path, state_dir)
    try:
        record, announced = keys_.revoke(key_id)
    except StateError as exc:
        fail(exc)
    finally:
        keys_.close()
    if as_json:
        doc = record_doc(record, keys_.clock(), keys_.config.auth.api_keys.expiry_warning)
        emit(doc | {"announced_to": announced})
        return
    click.echo(f"Revoked API key {record.id} (consumer {record.consumer}).")
    if announced is not None:
        click.echo(f"Announced over Redis to {announced} listening gateway process(es).")
    elif keys_.config.redis.url is not None:
        click.echo(
            "Redis could not be reached: gateways see the revocation at their next store read."
        )
