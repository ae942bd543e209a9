"""Security events: ECS documents, a writer that never blocks and counts what it drops."""

from __future__ import annotations

import io
import threading

import orjson

from bastion.observability.ecs import StoredEvent
from bastion.observability.events import MemorySink, SecurityEvent
from bastion.observability.sinks.stream import StreamSink
from bastion.observability.writer import EventWriter, JsonLinesWriter


def event(action: str = "auth.invalid_token") -> SecurityEvent:
    return SecurityEvent(
        action=action,
        outcome="failure",
        timestamp=1_764_000_000.25,
        guard="jwt",
        request_id="rid-1",
        client_ip="203.0.113.9",
        method="GET",
        path="/orders",
        status=401,
        reason="signature does not verify",
        user_id="alice",
        fields={"kid": "k1"},
    )


def test_event_is_an_ecs_document() -> None:
    doc = event().to_ecs()
    assert doc["@timestamp"] == "2025-11-24T16:00:00.250Z"
    assert doc["event"] == {
        "kind": "event",
        "dataset": "bastion.security",
        "category": ["authentication", "web"],
        "type": ["denied"],
        "action": "auth.invalid_token",
        "outcome": "failure",
    }
    assert doc["source"] == {"ip": "203.0.113.9"}
    assert doc["http"] == {
        "request": {"method": "GET", "id": "rid-1"},
        "response": {"status_code": 401},
    }
    assert doc["url"] == {"path": "/orders"}
    assert doc["user"] == {"id": "alice"}
    assert doc["bastion"] == {
        "guard": "jwt",
        "reason": "signature does not verify",
        "fields": {"kid": "k1"},
    }


class SlowStream(io.BytesIO):
    """A destination that blocks until released, like a stalled pipe."""

    def __init__(self) -> None:
        super().__init__()
        self.release = threading.Event()

    def write(self, data: bytes) -> int:  # type: ignore[override]
        self.release.wait(10)
        return super().write(data)


def test_writer_writes_json_lines() -> None:
    stream = io.BytesIO()
    writer = JsonLinesWriter(stream, flush_interval=0.01)
    for i in range(3):
        writer.emit(event(f"a.{i}"))
    writer.close()
    lines = stream.getvalue().splitlines()
    assert [orjson.loads(line)["event"]["action"] for line in lines] == ["a.0", "a.1", "a.2"]
    assert (writer.written, writer.dropped) == (3, 0)


def test_full_buffer_drops_and_counts_instead_of_blocking() -> None:
    stream = SlowStream()
    writer = JsonLinesWriter(stream, capacity=10, flush_interval=0.01)
    writer.emit(event())  # taken by the writer thread, which then blocks on the stream
    for _ in range(200):
        writer.emit(event())
    assert writer.dropped >= 150
    stream.release.set()
    writer.close()
    assert writer.written + writer.dropped == 201


class ListRecorder:
    name = "store"

    def __init__(self) -> None:
        self.rows: list[StoredEvent] = []

    def put(self, events: list[StoredEvent]) -> None:
        self.rows.extend(events)

    def dropped(self) -> int:
        return 0

    def close(self) -> None:
        return None


def test_without_sinks_only_stored_outcomes_are_buffered() -> None:
    recorder, seen = ListRecorder(), MemorySink()
    writer = EventWriter([], recorder=recorder, store_outcomes=("failure",), capacity=1)
    writer.subscribe(seen)
    writer.flush()
    success = SecurityEvent("auth.success", "success", 1_764_000_000.0, user_id="alice")
    for _ in range(5):  # a buffer of 1: a buffered success would be dropped 4 times
        writer.emit(success)
    writer.emit(event())
    writer.close()
    assert writer.dropped == 0
    assert [row.action for row in recorder.rows] == ["auth.invalid_token"]
    # counted and seen by the detectors all the same
    assert writer.counts[("auth.success", "success")] == 5
    assert seen.actions() == ["auth.success"] * 5 + ["auth.invalid_token"]


def test_with_a_sink_every_outcome_is_written() -> None:
    stream = io.BytesIO()
    writer = EventWriter([StreamSink(stream)], recorder=ListRecorder(), store_outcomes=("failure",))
    writer.emit(SecurityEvent("auth.success", "success", 1_764_000_000.0))
    writer.emit(event())
    writer.close()
    lines = stream.getvalue().splitlines()
    assert [orjson.loads(line)["event"]["outcome"] for line in lines] == ["success", "failure"]
