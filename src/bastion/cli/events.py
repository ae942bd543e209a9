"""``bastion events``: list, export and purge the security events the gateways stored.

The store is the configured state store (``state_dir/keys.db``, or PostgreSQL when
``postgres.dsn`` is set; a schema behind this release is refused, naming
``bastion db upgrade``). Filters: ``--since``/``--until`` (a duration back from now such as
``1h``, or an ISO 8601 time), ``--consumer``, ``--ip``, ``--kind`` (an action or its prefix:
``auth`` matches ``auth.invalid_token``) and ``--outcome``. ``export`` writes JSON lines (the
redacted ECS documents, as the log sinks wrote them) or CSV.
Exit codes: 0 done, 1 the store failed, 2 usage or config error.
"""

from __future__ import annotations

import csv
import io
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime
from functools import wraps
from pathlib import Path
from typing import Any, TypeVar

import click
import orjson

from bastion.cli.common import EXIT_FAILURE, fail_config, load_or_exit
from bastion.config.types import parse_duration
from bastion.errors import ConfigError, StateError
from bastion.observability.ecs import StoredEvent
from bastion.store.events import (
    LEGACY_SQLITE_FILE,
    EventQuery,
    EventStore,
    open_event_store,
    sqlite_location,
)

F = TypeVar("F", bound=Callable[..., Any])

PAGE = 1000  # events per admin API call (its most)

CSV_COLUMNS = (
    "timestamp",
    "dataset",
    "action",
    "outcome",
    "user_id",
    "client_ip",
    "request_id",
    "status",
    "path",
    "reason",
)


def parse_time(option: str, value: str | None, now: float) -> float | None:
    """``value`` as a POSIX time: a duration before ``now`` (``2h``) or an ISO 8601 time."""
    if value is None:
        return None
    try:
        return now - parse_duration(value)
    except ValueError:
        pass
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        fail_config(
            ConfigError(
                f"{option}: got {value!r}; expected a duration such as 1h or 7d, or an ISO 8601"
                " time such as 2026-11-28T03:00:00Z"
            )
        )
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed.timestamp()


def stamp(seconds: float) -> str:
    return (
        datetime.fromtimestamp(seconds, UTC)
        .isoformat(timespec="milliseconds")
        .replace("+00:00", "Z")
    )


def filter_options(command: F) -> F:
    """The store and filter options every subcommand shares."""

    @click.option(
        "--config", "config_path", type=click.Path(path_type=Path), help="YAML configuration."
    )
    @click.option("--state-dir", type=click.Path(path_type=Path), help="Where the store lives.")
    @click.option("--since", metavar="TIME", help="From this time: 1h (ago) or ISO 8601.")
    @click.option("--until", metavar="TIME", help="Before this time: 10m (ago) or ISO 8601.")
    @click.option("--consumer", help="Only events of this consumer (user.id).")
    @click.option("--ip", help="Only events from this client IP (source.ip).")
    @click.option("--kind", help="An action or an action prefix: auth, ratelimit.exceeded, alert.")
    @click.option("--outcome", type=click.Choice(["success", "failure", "unknown"]))
    @click.option("--limit", type=click.IntRange(min=1), help="At most this many events.")
    @wraps(command)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        return command(*args, **kwargs)

    return wrapper  # type: ignore[return-value]


def remote_options(command: F) -> F:
    """``--remote URL --admin-token-file FILE``: query a gateway's admin API instead."""

    @click.option(
        "--remote",
        metavar="URL",
        help="Query the admin API of the gateway at URL (its admin listener) instead.",
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


def _open(config_path: Path | None, state_dir: Path | None) -> EventStore:
    config = load_or_exit(config_path, {"state_dir": state_dir})
    dsn = config.postgres.dsn
    state = config.state_dir
    if dsn is None and not (
        sqlite_location(state).exists() or (state / LEGACY_SQLITE_FILE).exists()
    ):
        click.echo(
            f"bastion: no events stored yet ({sqlite_location(state)} does not exist)", err=True
        )
        sys.exit(EXIT_FAILURE)
    try:
        return open_event_store(config.state_dir, dsn, config.postgres.db_schema, create=False)
    except StateError as exc:
        click.echo(f"bastion: {exc.message}", err=True)
        sys.exit(EXIT_FAILURE)


def _query(options: dict[str, Any]) -> list[StoredEvent]:
    now = time.time()
    if options.get("remote"):
        return _remote_query(options, now)
    query = EventQuery(
        since=parse_time("--since", options["since"], now),
        until=parse_time("--until", options["until"], now),
        user_id=options["consumer"],
        client_ip=options["ip"],
        kind=options["kind"],
        outcome=options["outcome"],
        limit=options["limit"],
    )
    store = _open(options["config_path"], options["state_dir"])
    try:
        return store.query(query)
    except StateError as exc:
        click.echo(f"bastion: {exc.message}", err=True)
        sys.exit(EXIT_FAILURE)
    finally:
        store.close()


def _remote_query(options: dict[str, Any], now: float) -> list[StoredEvent]:
    """The events from ``GET /admin/events`` of the gateway at ``--remote``, oldest first as
    locally. The API answers at most 1000 per call, newest first: older pages are asked for
    with ``until`` at the oldest time seen."""
    from bastion.cli.remote import call

    kind = options["kind"]
    params: dict[str, str] = {}
    for name, value in (
        ("since", parse_time("--since", options["since"], now)),
        ("until", parse_time("--until", options["until"], now)),
    ):
        if value is not None:
            params[name] = repr(value)
    for name, value in (
        # A kind without a dot is a family (``auth``: ``auth.*``), as in the local store.
        ("action", None if kind is None else kind if "." in kind else kind + "."),
        ("outcome", options["outcome"]),
        ("consumer", options["consumer"]),
        ("ip", options["ip"]),
    ):
        if value:
            params[name] = value
    wanted: int | None = options["limit"]
    found: list[StoredEvent] = []
    seen: set[bytes] = set()
    while wanted is None or len(found) < wanted:
        page = min(PAGE, wanted - len(found)) if wanted is not None else PAGE
        doc = call(
            options["remote"],
            options["admin_token_file"],
            "GET",
            "/admin/events",
            params=params | {"limit": str(page)},
        )
        events = [stored_from_document(d) for d in doc.get("events", [])]
        fresh = [e for e in events if e.document not in seen]
        found.extend(fresh[: None if wanted is None else wanted - len(found)])
        seen.update(e.document for e in fresh)
        if len(events) < page or not fresh:
            break
        # @timestamp has milliseconds: ask again up to the end of the oldest one's millisecond,
        # so that events sharing it are not skipped (those already seen are dropped above).
        params["until"] = repr(events[-1].timestamp + 0.001)
    found.reverse()
    return found


def stored_from_document(doc: dict[str, Any]) -> StoredEvent:
    """An ECS document of the admin API as the row the local store would hold."""
    event = doc.get("event", {})
    stamp_text = str(doc.get("@timestamp", "1970-01-01T00:00:00Z")).replace("Z", "+00:00")
    status = doc.get("http", {}).get("response", {}).get("status_code")
    return StoredEvent(
        datetime.fromisoformat(stamp_text).timestamp(),
        str(event.get("dataset", "")),
        str(event.get("action", "")),
        str(event.get("outcome", "")),
        doc.get("user", {}).get("id"),
        str(doc.get("source", {}).get("ip", "")),
        str(doc.get("http", {}).get("request", {}).get("id", "")),
        None if status is None else int(status),
        orjson.dumps(doc),
    )


def csv_row(event: StoredEvent) -> list[Any]:
    doc = orjson.loads(event.document)
    return [
        stamp(event.timestamp),
        event.dataset,
        event.action,
        event.outcome,
        event.user_id or "",
        event.client_ip,
        event.request_id,
        "" if event.status is None else event.status,
        doc.get("url", {}).get("path", ""),
        doc.get("bastion", {}).get("reason", ""),
    ]


@click.group()
def events() -> None:
    """Query the security events kept in the state store."""


@events.command("list")
@filter_options
@remote_options
@click.option("--json", "as_json", is_flag=True, help="Print JSON lines for scripts.")
def list_events(as_json: bool, **options: Any) -> None:
    """Show stored security events, oldest first."""
    found = _query(options)
    if as_json:
        for event in found:
            click.echo(event.document.decode())
        return
    if not found:
        click.echo("no events match")
        return
    click.echo(f"{'time':<25} {'action':<32} {'outcome':<8} {'consumer':<16} {'ip':<16} status")
    for event in found:
        click.echo(
            f"{stamp(event.timestamp):<25} {event.action:<32} {event.outcome:<8}"
            f" {(event.user_id or '-'):<16} {(event.client_ip or '-'):<16}"
            f" {event.status if event.status is not None else '-'}"
        )


@events.command()
@filter_options
@remote_options
@click.option(
    "--format", "fmt", type=click.Choice(["json", "csv"]), default="json", show_default=True
)
@click.option(
    "--output", "-o", type=click.Path(path_type=Path), help="Write here instead of stdout."
)
def export(fmt: str, output: Path | None, **options: Any) -> None:
    """Export stored security events as JSON lines (ECS documents) or CSV."""
    found = _query(options)
    if fmt == "json":
        data = b"".join(event.document + b"\n" for event in found)
    else:
        text = io.StringIO()
        writer = csv.writer(text, lineterminator="\n")
        writer.writerow(CSV_COLUMNS)
        writer.writerows(csv_row(event) for event in found)
        data = text.getvalue().encode()
    if output is None:
        sys.stdout.buffer.write(data)
        sys.stdout.buffer.flush()
    else:
        output.write_bytes(data)
        click.echo(f"{len(found)} events written to {output}", err=True)


@events.command()
@click.option(
    "--config", "config_path", type=click.Path(path_type=Path), help="YAML configuration."
)
@click.option("--state-dir", type=click.Path(path_type=Path), help="Where the store lives.")
@click.option(
    "--older-than", metavar="DURATION", help="Default: events.store.max_age of the config."
)
def purge(config_path: Path | None, state_dir: Path | None, older_than: str | None) -> None:
    """Delete stored events older than a duration (gateways also do it on their own)."""
    config = load_or_exit(config_path, {"state_dir": state_dir})
    age = config.events.store.max_age
    if older_than is not None:
        try:
            age = parse_duration(older_than)
        except ValueError as exc:
            fail_config(ConfigError(f"--older-than: got {older_than!r}; {exc}"))
    store = _open(config_path, state_dir)
    try:
        removed = store.purge(time.time() - age)
    except StateError as exc:
        click.echo(f"bastion: {exc.message}", err=True)
        sys.exit(EXIT_FAILURE)
    finally:
        store.close()
    click.echo(f"{removed} events older than {older_than or f'{age:g}s'} deleted")
