"""The event writer a configuration describes: its sinks, the event store, the redactor."""

from __future__ import annotations

import sys

from bastion.config.models import BastionConfig
from bastion.observability.redact import Redactor
from bastion.observability.retention import StoreRecorder
from bastion.observability.sinks import LineSink
from bastion.observability.sinks.bulk import HttpBulkSink
from bastion.observability.sinks.rotating import RotatingFileSink
from bastion.observability.sinks.stream import StreamSink
from bastion.observability.writer import EventWriter
from bastion.store.events import EventStore, open_event_store


def build_sinks(config: BastionConfig) -> list[LineSink]:
    events = config.events
    sinks: list[LineSink] = []
    for name in events.sinks:
        if name == "stdout":
            sinks.append(StreamSink(sys.stdout.buffer, "stdout"))
        elif name == "stderr":
            sinks.append(StreamSink(sys.stderr.buffer, "stderr"))
        elif name == "file":
            assert events.path is not None  # checked by EventsConfig
            sinks.append(RotatingFileSink(events.path, events.rotation))
        elif name == "http":
            sinks.append(HttpBulkSink(events.http, max_bytes=events.buffer_bytes))
    return sinks


def build_recorder(config: BastionConfig) -> StoreRecorder | None:
    store = config.events.store
    if not store.enabled:
        return None

    def opener() -> EventStore:
        return open_event_store(config.state_dir, config.postgres.dsn, config.postgres.db_schema)

    return StoreRecorder(
        opener,
        max_age=store.max_age,
        purge_interval=store.purge_interval,
        max_bytes=config.events.buffer_bytes,
    )


def build_writer(config: BastionConfig) -> EventWriter:
    events = config.events
    redactor = event_redactor(config)
    return EventWriter(
        build_sinks(config),
        recorder=build_recorder(config),
        redactor=redactor,
        capacity=events.buffer,
        max_bytes=events.buffer_bytes,
        store_outcomes=events.store.outcomes,
    )


def event_redactor(config: BastionConfig) -> Redactor:
    """The redactor every copy of an event goes through: the sinks', and the admin API's and
    dashboard's view of recent events (built-in rules plus ``events.redact``)."""
    redact = config.events.redact
    return Redactor(redact.fields, redact.path_patterns)
