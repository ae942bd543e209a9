"""Event lines: both kinds match the documented field set, and the writer formats them off the
caller's thread, counting what it cannot take."""

from __future__ import annotations

import io
import os
import threading
from pathlib import Path

import orjson
import pytest

from bastion.observability.ecs import (
    AccessRecord,
    Stamps,
    access_line,
    security_document,
    security_line,
)
from bastion.observability.events import SecurityEvent
from bastion.observability.redact import REDACTED, Redactor
from bastion.observability.sinks.stream import ATOMIC, StreamSink, chunks
from bastion.observability.writer import EventWriter
from tests.observability.helpers import access_record, check_line

KEY = "bst_AbCdEf012345_" + "x9" * 19


ORDER: dict[str, object] = {
    "ts": 1_764_000_000.5,
    "method": b"POST",
    "path": b"/orders/7",
    "status": 201,
    "body_in": 17,
    "bytes_out": 230,
    "seconds": 0.0021,
    "ip": "203.0.113.9",
    "rid": b"x-request-id: abc-1\r\n",
    "route": "orders",
    "user": "alice",
    "host": "api.example.com",
    "upstream": 0.0015,
    "peer": "10.0.0.2",
}


def record(**changes: object) -> AccessRecord:
    return access_record(ORDER, **changes)


def test_an_access_line_is_ecs_and_complete() -> None:
    doc = check_line(access_line(record(), Redactor(), Stamps()))
    assert doc == {
        "@timestamp": "2025-11-24T16:00:00.500Z",
        "event": {
            "kind": "event",
            "dataset": "bastion.access",
            "category": ["web"],
            "type": ["access"],
            "action": "http.request",
            "outcome": "success",
            "duration": 2_100_000,
        },
        "source": {"ip": "203.0.113.9"},
        "client": {"ip": "203.0.113.9"},
        "url": {"path": "/orders/7", "domain": "api.example.com"},
        "http": {
            "request": {"method": "POST", "id": "abc-1", "body": {"bytes": 17}},
            "response": {"status_code": 201, "bytes": 230},
        },
        "user": {"id": "alice"},
        "bastion": {
            "route": "orders",
            "upstream": {"duration": 1_500_000},
            "peer": {"ip": "10.0.0.2"},
        },
    }


def test_an_access_line_escapes_and_redacts_what_the_client_sent() -> None:
    weird = record(path=f'/a"b\\c/{KEY}'.encode(), rid=b'x-request-id: "q"\r\n', user=None, host="")
    doc = check_line(access_line(weird, Redactor(), Stamps()))
    assert doc["url"]["path"] == f'/a"b\\c/{REDACTED}'
    assert doc["http"]["request"]["id"] == '"q"'
    assert "user" not in doc
    assert "domain" not in doc["url"]
    failed = check_line(access_line(record(status=502, upstream=-1.0), Redactor(), Stamps()))
    assert failed["event"]["outcome"] == "failure"
    assert "upstream" not in failed["bastion"]


def test_security_lines_match_the_schema_and_are_redacted() -> None:
    event = SecurityEvent(
        "auth.invalid_credentials",
        "failure",
        1_764_000_000.0,
        guard="api_key",
        request_id="r1",
        client_ip="198.51.100.4",
        method="GET",
        path=f"/v1/{KEY}",
        status=401,
        reason=f"key {KEY} unknown",
        user_id=None,
        fields={"password": "hunter2", "key_id": "AbCdEf012345"},
    )
    line, stored = security_line(event, Redactor())
    doc = check_line(line)
    assert KEY.encode() not in line
    assert b"hunter2" not in line
    assert doc["bastion"]["fields"] == {"password": REDACTED, "key_id": "AbCdEf012345"}
    assert stored.action == "auth.invalid_credentials"
    assert stored.status == 401
    assert stored.document == line.rstrip(b"\n")
    alert = SecurityEvent("alert.credential_stuffing", "unknown", 1.0, guard="detector")
    doc = check_line(security_line(alert, Redactor())[0])
    assert (doc["event"]["kind"], doc["event"]["dataset"]) == ("alert", "bastion.alert")


def test_the_writer_interleaves_both_kinds_in_order_and_counts_security_events() -> None:
    stream = io.BytesIO()
    writer = EventWriter([StreamSink(stream)], flush_interval=0.01)
    writer.access(record())
    writer.emit(SecurityEvent("ratelimit.exceeded", "failure", 2.0, guard="ratelimit"))
    writer.emit(SecurityEvent("ratelimit.exceeded", "failure", 3.0, guard="ratelimit"))
    writer.close()
    docs = [check_line(line) for line in stream.getvalue().splitlines()]
    assert [d["event"]["dataset"] for d in docs] == [
        "bastion.access",
        "bastion.security",
        "bastion.security",
    ]
    assert writer.counts == {("ratelimit.exceeded", "failure"): 2}
    assert writer.written == 3


def test_without_sinks_the_writer_only_counts() -> None:
    writer = EventWriter([])
    writer.emit(SecurityEvent("auth.success", "success", 1.0))
    assert writer.counts == {("auth.success", "success"): 1}
    assert not writer.active
    writer.close()


def test_a_full_buffer_drops_access_records_too(caplog: pytest.LogCaptureFixture) -> None:
    class Stuck:
        name = "stuck"

        def __init__(self) -> None:
            self.release = threading.Event()

        def write(self, lines: list[bytes]) -> None:
            self.release.wait(10)

        def dropped(self) -> int:
            return 0

        def close(self) -> None:
            return None

    stuck = Stuck()
    writer = EventWriter([stuck], capacity=16, flush_interval=0.01)
    writer.access(record())
    for _ in range(500):
        writer.access(record())
    assert writer.dropped >= 400
    assert writer.sink_drops()["buffer"] == writer.dropped
    stuck.release.set()
    assert writer.flush()
    writer.close()
    reports = [r.getMessage() for r in caplog.records if r.name == "bastion.events"]
    assert any(f"{writer.dropped} events dropped" in m and "buffer:" in m for m in reports)


def test_stdout_pieces_are_whole_lines_no_larger_than_an_atomic_pipe_write() -> None:
    lines = [b"x" * 100 + b"\n"] * 100 + [b"y" * 5000 + b"\n", b"z\n"]
    pieces = chunks(lines, 4096)
    assert b"".join(pieces) == b"".join(lines)
    assert all(p.endswith(b"\n") for p in pieces)
    assert all(len(p) <= 4096 for p in pieces if not p.startswith(b"y"))
    read, write = os.pipe()
    sink = StreamSink(os.fdopen(write, "wb"))
    sink.write(lines)
    sink.close()
    os.close(write)
    with os.fdopen(read, "rb") as pipe:
        assert pipe.read() == b"".join(lines)


def test_blocks_of_lines_go_whole_to_a_regular_file_and_in_atomic_pieces_to_a_pipe(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    lines = [b"x" * 100 + b"\n"] * 100 + [b"z\n"]
    blocks = [b"".join(lines[:60]), b"".join(lines[60:])]
    written: list[int] = []
    real_write = os.write

    def counted(fd: int, data: bytes | memoryview) -> int:
        written.append(len(data))
        return real_write(fd, data)

    monkeypatch.setattr(os, "write", counted)
    with (tmp_path / "out.jsonl").open("wb") as out:
        StreamSink(out).write_blocks(blocks, len(lines))
    assert (tmp_path / "out.jsonl").read_bytes() == b"".join(lines)
    assert written == [len(blocks[0]), len(blocks[1])]  # each block whole
    written.clear()
    read, write = os.pipe()
    piped = os.fdopen(write, "wb")
    StreamSink(piped).write_blocks(blocks, len(lines))
    piped.close()
    with os.fdopen(read, "rb") as pipe:
        assert pipe.read() == b"".join(lines)
    assert len(written) > 2  # cut into pieces of whole lines
    assert max(written) <= ATOMIC


def test_plain_paths_and_ids_take_the_short_way_and_others_are_escaped() -> None:
    tabbed = record(path=b"/a\tb", rid=b"x-request-id: lb_1.2 =x\r\n")
    doc = check_line(access_line(tabbed, Redactor(), Stamps()))
    assert doc["url"]["path"] == "/a\tb"
    assert doc["http"]["request"]["id"] == "lb_1.2 =x"
    latin = check_line(access_line(record(path=b"/caf\xe9"), Redactor(), Stamps()))
    assert latin["url"]["path"] == "/caf\u00e9"


@pytest.mark.parametrize(
    "event",
    [
        SecurityEvent("auth.success", "success", 1_764_000_000.123, "api_key", "r1", "10.0.0.1",
                      "GET", "/a", None, "", "acme", {"key_id": "k", "n": 3, "at": {1, 2}}),
        SecurityEvent("ratelimit.exceeded", "failure", 1.5, "ratelimit", "", "", "POST",
                      '/q"uote', 429, 'why "not"', None, {}),
        SecurityEvent("alert.enumeration", "unknown", 2.0, "detector", fields={"evidence": [1]}),
        SecurityEvent("tls.expiry_warning", "unknown", 3.0),
    ],
)  # fmt: skip
def test_the_security_line_is_the_redacted_document(event: SecurityEvent) -> None:
    line, stored = security_line(event, Redactor(), Stamps())
    doc = check_line(line)
    expected = security_document(event, Redactor())
    if "fields" in expected["bastion"]:
        expected["bastion"]["fields"] = orjson.loads(
            orjson.dumps(expected["bastion"]["fields"], default=str)
        )
    assert doc == expected
    assert stored.document == line.rstrip(b"\n")
