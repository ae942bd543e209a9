"""One event that cannot be formatted must cost that event only, never the event writer.

Before, the writer caught only TypeError and ValueError: an event with an infinite timestamp
(OverflowError) or a field name that is not a str stopped the writer thread, and every later
event, authentication failures included, was never written.
"""

from __future__ import annotations

import io
import math

import orjson
import pytest

from bastion.observability.events import SecurityEvent
from bastion.observability.sinks.stream import StreamSink
from bastion.observability.writer import EventWriter
from tests.observability.helpers import WRITERS


def good(n: int) -> SecurityEvent:
    return SecurityEvent("auth.invalid_credentials", "failure", 1_764_000_000.0 + n, "api_key")


@pytest.mark.parametrize("native", WRITERS)
def test_event_writer_survives_events_it_cannot_format(native: bool) -> None:
    stream = io.BytesIO()
    writer = EventWriter([StreamSink(stream)], native=native, flush_interval=0.01)
    writer.emit(good(1))
    writer.emit(SecurityEvent("auth.invalid_credentials", "failure", math.inf, "api_key"))
    writer.emit(SecurityEvent("auth.success", "success", 1_764_000_000.0, fields={1: "x"}))
    assert writer.flush()
    writer.emit(good(2))  # the thread is still there: a later event is written
    assert writer.flush()
    writer.close()
    lines = [orjson.loads(line) for line in stream.getvalue().splitlines()]
    assert [line["@timestamp"] for line in lines] == [
        "2025-11-24T16:00:01.000Z",
        "2025-11-24T16:00:02.000Z",
    ]
    assert writer.dropped == 2
