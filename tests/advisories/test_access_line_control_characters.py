"""A control character in a path or request id must not break the access line.

Before, a short path or request id free of quotes, backslashes and the credential characters was
copied into the line as it was, control characters included: a raw line feed split the JSON line
in two for every shipper, a raw carriage return or NUL made it invalid JSON. The gateway's
parser refuses such bytes in a request target, but the access record also comes from the ASGI
middleware, whose server may pass them on. Both formatters now escape them, as JSON requires.
"""

from __future__ import annotations

import io

import orjson
import pytest

from bastion.observability import ecs
from bastion.observability.ecs import AccessRecord, Stamps
from bastion.observability.redact import Redactor
from bastion.observability.sinks.stream import StreamSink
from bastion.observability.writer import EventWriter
from tests.observability.helpers import PLAIN_ACCESS, WRITERS, access_record

TARGETS = [b"/a\nb", b"/a\rb", b"/nul\x00", b"/esc\x1b[2J", b"/bell\x07", b"/tab\tx"]


def record(path: bytes, rid: bytes = b"x-request-id: abc\r\n") -> AccessRecord:
    return access_record(PLAIN_ACCESS, path=path, rid=rid)


@pytest.mark.parametrize("native", WRITERS)
def test_access_line_control_characters_are_escaped(native: bool) -> None:
    stream = io.BytesIO()
    writer = EventWriter([StreamSink(stream)], native=native, flush_interval=0.01)
    for path in TARGETS:
        writer.access(record(path))
        writer.access(record(b"/ok", rid=b"x-request-id: r" + path[-2:] + b"\r\n"))
    writer.close()
    lines = stream.getvalue().splitlines()
    assert len(lines) == 2 * len(TARGETS)
    documents = [orjson.loads(line) for line in lines]
    assert [d["url"]["path"] for d in documents[::2]] == [p.decode() for p in TARGETS]
    assert [d["http"]["request"]["id"] for d in documents[1::2]] == [
        "r" + p[-2:].decode() for p in TARGETS
    ]


def test_the_reference_formatter_escapes_them_too() -> None:
    for path in TARGETS:
        line = ecs.access_line(record(path), Redactor(), Stamps())
        assert line.count(b"\n") == 1
        assert line.endswith(b"\n")
        assert orjson.loads(line)["url"]["path"] == path.decode()
