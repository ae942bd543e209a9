"""The buffers of events are bounded in bytes, not only in lines.

Before, ``events.buffer`` (65,536) counted lines only, and so did the queues of the event store
and of the http sink (20,000 each). A client chooses how long its path, request id and Host
are, so while a destination stalled (a hung disk, a database or an endpoint that does not
answer), lines of 8 kB paths could pile up to about half a gigabyte in the writer of each
worker, and 180 MB in each queue, before the first one was dropped. Now each of them also stops
at ``events.buffer_bytes`` (64 MiB by default): what comes after is dropped and counted, as a
full buffer always was, and what was taken is written whole.
"""

from __future__ import annotations

import socket
import threading
import time
from pathlib import Path

import orjson
import pytest

from bastion.config.events import HttpSinkConfig
from bastion.config.loader import build_config
from bastion.errors import ConfigError
from bastion.observability.ecs import AccessRecord, StoredEvent
from bastion.observability.retention import StoreRecorder
from bastion.observability.sinks.bulk import HttpBulkSink
from bastion.observability.writer import EventWriter
from bastion.store.events import EventQuery, SqliteEventStore
from tests.observability.helpers import PLAIN_ACCESS, WRITERS, access_record

LONG_PATH = b"/" + b"a" * 8191
BOUND = 256 * 1024


class StalledSink:
    """A destination that hangs on its first write until ``release`` is set."""

    name = "stalled"

    def __init__(self) -> None:
        self.entered = threading.Event()
        self.release = threading.Event()
        self.lines: list[bytes] = []

    def write(self, lines: list[bytes]) -> None:
        self.entered.set()
        assert self.release.wait(10)
        self.lines.extend(lines)

    def dropped(self) -> int:
        return 0

    def close(self) -> None:
        return None


def stalled_writer(native: bool, max_bytes: int) -> tuple[EventWriter, StalledSink]:
    """A writer whose thread is stuck in its sink's first write."""
    sink = StalledSink()
    writer = EventWriter([sink], native=native, max_bytes=max_bytes, flush_interval=0.01)
    writer.access(access_record(PLAIN_ACCESS))
    assert sink.entered.wait(5)
    return writer, sink


def long_records(n: int) -> list[AccessRecord]:
    return [access_record(PLAIN_ACCESS, path=LONG_PATH, ts=1_764_000_000.0 + i) for i in range(n)]


@pytest.mark.parametrize("native", WRITERS)
def test_event_buffer_stops_at_its_byte_bound_while_a_sink_stalls(native: bool) -> None:
    writer, sink = stalled_writer(native, BOUND)
    for record in long_records(200):  # about 1.7 MB of lines
        writer.access(record)
    waiting = writer.pending()
    # Lines of about 8.6 kB (8.7 kB by the Python buffer's estimate): the bound, and at most
    # the one line that passes it.
    assert BOUND // 9_000 <= waiting <= BOUND // 8_192 + 1
    assert writer.dropped == 200 - waiting
    sink.release.set()
    assert writer.flush()
    writer.close()
    lines = [orjson.loads(line) for line in sink.lines]
    assert len(lines) == 1 + waiting  # what was taken is written, each line whole
    assert all(line["url"]["path"] == LONG_PATH.decode() for line in lines[1:])


@pytest.mark.parametrize("native", WRITERS)
def test_event_buffer_without_a_tight_byte_bound_takes_every_line(native: bool) -> None:
    """The same stall with the default bound (64 MiB): the 200 lines all wait, so the test
    above sees the byte bound at work, not some other limit."""
    writer, sink = stalled_writer(native, 64 * 1024 * 1024)
    for record in long_records(200):
        writer.access(record)
    assert writer.pending() == 200
    assert writer.dropped == 0
    sink.release.set()
    assert writer.flush()
    writer.close()
    assert len(sink.lines) == 201


def test_event_buffer_bytes_is_configured_and_checked() -> None:
    config = build_config({"events": {"buffer_bytes": 1_048_576}})
    assert config.events.buffer_bytes == 1_048_576
    assert build_config({}).events.buffer_bytes == 64 * 1024 * 1024
    with pytest.raises(ConfigError) as raised:
        build_config({"events": {"buffer_bytes": 1024}})
    assert "events.buffer_bytes" in str(raised.value)
    assert "1024" in str(raised.value)


# -- the queues of the sinks with a thread of their own: the event store's and the http sink's


def stored_row(n: int, path: str) -> StoredEvent:
    """A failed login's row, recent (older rows would be purged as soon as the store opens)."""
    document = orjson.dumps({"url": {"path": path}, "n": n}) + b"\n"
    return StoredEvent(time.time() + n, "bastion.security", "auth.invalid_credentials",
                       "failure", None, "203.0.113.9", f"r{n}", 401, document)  # fmt: skip


def test_event_store_queue_stops_at_its_byte_bound_while_the_store_hangs(tmp_path: Path) -> None:
    """A store that takes its time to open (a database that does not answer): failed logins
    with 8 kB paths wait up to the byte bound, the rest are counted; once the store answers,
    what waited is stored."""
    opening, answer = threading.Event(), threading.Event()

    def opener() -> SqliteEventStore:
        opening.set()
        assert answer.wait(10)
        return SqliteEventStore(tmp_path / "keys.db")

    recorder = StoreRecorder(
        opener, max_age=86_400, purge_interval=3600, max_bytes=BOUND, flush_interval=0.01
    )
    recorder.put([stored_row(0, "/")])
    assert opening.wait(5)
    recorder.put([stored_row(n, LONG_PATH.decode()) for n in range(1, 201)])
    waiting = 200 - recorder.queue_dropped
    assert BOUND // 9_000 <= waiting <= BOUND // 8_192 + 1
    answer.set()
    recorder.close()
    store = SqliteEventStore(tmp_path / "keys.db")
    try:
        assert len(store.query(EventQuery())) == 1 + waiting
    finally:
        store.close()


def test_http_sink_queue_stops_at_its_byte_bound_while_the_endpoint_hangs() -> None:
    """An endpoint that accepts the connection and never answers: the sink's thread waits on
    its first batch while 8 kB lines queue up to the byte bound; the rest are counted."""
    server = socket.create_server(("127.0.0.1", 0))
    accepted: list[socket.socket] = []
    got_request = threading.Event()

    def hold() -> None:
        conn, _ = server.accept()
        accepted.append(conn)
        conn.recv(65536)
        got_request.set()

    holder = threading.Thread(target=hold, daemon=True)
    holder.start()
    port = server.getsockname()[1]
    config = HttpSinkConfig.model_validate(
        {"url": f"http://127.0.0.1:{port}", "batch_size": 1, "flush_interval": 0.01,
         "timeout": 3.0, "retries": 0}
    )  # fmt: skip
    sink = HttpBulkSink(config, max_bytes=BOUND)
    try:
        sink.write([b'{"n":0}\n'])
        assert got_request.wait(5)
        line = b'{"url":{"path":"' + LONG_PATH + b'"}}\n'
        sink.write([line] * 200)
        waiting = 200 - sink.queue_dropped
        assert BOUND // len(line) <= waiting <= BOUND // len(line) + 1
    finally:
        sink.close(timeout=0.5)
        for conn in accepted:
            conn.close()
        server.close()
