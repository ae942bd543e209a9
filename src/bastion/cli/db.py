"""``bastion db``: the versioned schema of the state store (``upgrade``, ``status``).

PostgreSQL when ``postgres.dsn`` is set, else the SQLite key store under ``state_dir``.
``upgrade`` is safe to run from several instances at once (an init container per pod, a
one-shot compose service, a deploy step): one applies, the others wait and find nothing to do.
Exit codes: 0 done / up to date, 1 a migration or the database failed (``status``: migrations
are pending), 2 usage or config error.
"""

from __future__ import annotations

import sqlite3
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, NoReturn

import click
import orjson

from bastion.cli.common import EXIT_FAILURE, load_or_exit, prepare_state_dir
from bastion.config.models import BastionConfig
from bastion.errors import StateError
from bastion.store import SQLITE_FILE, migrate_postgres, migrate_sqlite
from bastion.store.migrations import Migration, shipped
from bastion.store.schema import SchemaStatus
from bastion.store.sqlite import create_private_file

_CONFIG = click.option(
    "--config",
    "config_path",
    type=click.Path(path_type=Path),
    required=True,
    help="YAML configuration file (the store it names).",
)
_JSON = click.option("--json", "as_json", is_flag=True, help="Print one JSON document.")


@click.group()
def db() -> None:
    """Schema migrations of the state store (PostgreSQL or SQLite)."""


def _fail(error: StateError) -> NoReturn:
    click.echo(f"bastion: {error.message}", err=True)
    sys.exit(EXIT_FAILURE)


def _stamp(seconds: float) -> str:
    return datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _doc(found: SchemaStatus, applied_now: list[Migration] | None = None) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "where": found.where,
        "current": found.current,
        "latest": found.latest,
        "applied": [
            {"version": a.version, "name": a.name, "applied_at": _stamp(a.applied_at)}
            for a in found.applied
        ],
        "pending": [str(m) for m in found.pending],
        "modified": list(found.modified),
    }
    if applied_now is not None:
        doc["applied_now"] = [str(m) for m in applied_now]
    return doc


def _sqlite_path(config: BastionConfig) -> Path:
    return config.state_dir / SQLITE_FILE


def read_status(config: BastionConfig) -> SchemaStatus:
    """The schema status, read without changing anything (a missing SQLite file: version 0)."""
    if config.postgres.dsn is not None:
        return migrate_postgres.status(config.postgres.dsn, config.postgres.db_schema)
    path = _sqlite_path(config)
    if not path.exists():
        return SchemaStatus(f"key store {path}", (), shipped("sqlite"))
    try:
        # as_uri() percent-encodes the path: a "?" or "#" in it must not end the path and
        # drop mode=ro (SQLite would then open, and create, another file read-write).
        uri = path.resolve().as_uri() + "?mode=ro"
        conn = sqlite3.connect(uri, uri=True, timeout=5.0)
        try:
            return migrate_sqlite.status(conn, path)
        finally:
            conn.close()
    except sqlite3.Error as exc:
        raise StateError(f"key store {path}: read failed ({type(exc).__name__})") from exc


def apply_pending(config: BastionConfig) -> list[Migration]:
    """Bring the store to the latest version; the migrations this call applied."""
    if config.postgres.dsn is not None:
        return migrate_postgres.upgrade(config.postgres.dsn, config.postgres.db_schema)
    prepare_state_dir(config)
    path = _sqlite_path(config)
    try:
        create_private_file(path)
        conn = sqlite3.connect(path, timeout=5.0, isolation_level=None)
        try:
            conn.execute("PRAGMA journal_mode=WAL")
            return migrate_sqlite.upgrade(conn)
        finally:
            conn.close()
    except (sqlite3.Error, OSError) as exc:
        raise StateError(f"key store {path}: upgrade failed ({type(exc).__name__})") from exc


@db.command()
@_CONFIG
@_JSON
def upgrade(config_path: Path, as_json: bool) -> None:
    """Apply every pending migration, in order, each in its own transaction."""
    config = load_or_exit(config_path)
    try:
        done = apply_pending(config)
        found = read_status(config)
    except StateError as exc:
        _fail(exc)
    if as_json:
        click.echo(orjson.dumps(_doc(found, done)).decode())
        return
    if done:
        names = ", ".join(str(m) for m in done)
        click.echo(f"{found.where}: applied {names}; now at version {found.current}")
    else:
        click.echo(f"{found.where}: already at version {found.current}; nothing to apply")
    _warn_modified(found)


@db.command()
@_CONFIG
@_JSON
def status(config_path: Path, as_json: bool) -> None:
    """Show the applied and pending migrations; exit 1 when some are pending."""
    config = load_or_exit(config_path)
    try:
        found = read_status(config)
    except StateError as exc:
        _fail(exc)
    if as_json:
        click.echo(orjson.dumps(_doc(found)).decode())
    else:
        state = "up to date" if not found.pending else f"{len(found.pending)} pending"
        click.echo(f"{found.where}: version {found.current} of {found.latest} ({state})")
        for applied in found.applied:
            click.echo(
                f"  {applied.version:04d}_{applied.name}  applied {_stamp(applied.applied_at)}"
            )
        for migration in found.pending:
            click.echo(f"  {migration}  pending (run `bastion db upgrade`)")
        _warn_modified(found)
    if found.pending:
        sys.exit(EXIT_FAILURE)


def _warn_modified(found: SchemaStatus) -> None:
    for version in found.modified:
        click.echo(
            f"bastion: migration {version:04d} differs from the one applied; expected"
            " released migrations never to change",
            err=True,
        )
