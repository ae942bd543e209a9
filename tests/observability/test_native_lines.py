"""The C formatter (``_bastion_ecs``) writes the very bytes of the Python functions of
:mod:`bastion.observability.ecs`, which stay the reference: on escapes, non-ASCII text,
credentials to redact, and values of unusual types (handed to the Python functions whole)."""

from __future__ import annotations

import collections
import io
import math
import time
from typing import Any

import pytest

from bastion.observability import ecs
from bastion.observability.ecs import AccessRecord, Stamps
from bastion.observability.events import SecurityEvent
from bastion.observability.redact import REDACTED, Redactor
from bastion.observability.sinks.stream import StreamSink
from bastion.observability.writer import NATIVE, WAKE_EVERY, EventWriter
from tests.observability.helpers import access_record, check_line

if NATIVE is None:  # pragma: no cover - built with bastion wherever a C compiler is
    pytest.skip("the _bastion_ecs extension is not built", allow_module_level=True)
native: Any = NATIVE

KEY = "bst_AbCdEf012345_" + "x9" * 19
JWT = "eyJhbGciOiJFZERTQSJ9.eyJzdWIiOiJhY21lIn0.c2lnbmF0dXJl"
REDACTORS = [Redactor(), Redactor(fields=["customer"], path_patterns=[r"(?<=/users/)[^/]+"])]


BASE: dict[str, object] = {
    "ts": 1_764_000_000.5,
    "method": b"GET",
    "path": b"/orders/42",
    "status": 200,
    "body_in": 0,
    "bytes_out": 180,
    "seconds": 0.000412,
    "ip": "127.0.0.1",
    "rid": b"x-request-id: 0123abcd\r\n",
    "route": "api",
    "user": "acme",
    "host": "127.0.0.1:8080",
    "upstream": 0.0002,
    "peer": "127.0.0.1",
}


def record(**changes: object) -> AccessRecord:
    return access_record(BASE, **changes)


PATHS = [
    b"/",
    b"",
    b"/orders/42",
    b'/a"b\\c',
    b"/tab\there",
    b"/new\nline\x01\x1f\x7f",
    b"/caf\xe9/\xff",
    b"/under_score.dot=eq ual",
    f"/v1/{KEY}".encode(),
    f"/t/{JWT}/x".encode(),
    b"/files/AbCdEf0123456789XyZ0123456789",
    b"/items/123e4567-e89b-12d3-a456-426614174000",
    b"/users/alice/orders",
    b"/x" * 40,
]
RIDS = [
    b"x-request-id: abc-1\r\n",
    b'x-request-id: "q"\r\n',
    b"x-request-id: lb_1.2 =x\r\n",
    b"x-request-id: " + f"trace-{KEY}".encode() + b"\r\n",
    b"x-request-id: caf\xe9\r\n",
    b"x-request-id: \r\n",
    b"no-separator",
    b"",
]  # (the engine's field is always "name: value\r\n"; the compiled Python slices a shorter one
#    whose bounds cross into a SystemError, where the uncompiled one and C give b"")
RECORDS = [
    record(),
    record(ts=1_764_000_000.999_999_9, status=404, upstream=-1.0, host="", user=None),
    record(ts=1_764_000_000, seconds=0, upstream=0, status=499, body_in=2**40),
    record(ts=0.001, seconds=12.5, peer="10.0.0.2", ip="203.0.113.9"),
    record(user="mobile-app"),
    record(user=f"acme {KEY}", host='ex"ample\u00e9.com'),
    record(user="\u00e9l\u00e8ve-\u4e2d\u6587"),
    record(user="Abcdefgh12345678"),
    record(upstream=math.nan),
    record(method=b"PURGE", route="r\u00e9"),
    record(seconds=-0.5),
    *[record(path=path) for path in PATHS],
    *[record(rid=rid) for rid in RIDS],
]


@pytest.mark.parametrize("redactor", REDACTORS, ids=["default", "custom"])
@pytest.mark.parametrize("rec", RECORDS)
def test_access_lines_are_the_python_ones(rec: AccessRecord, redactor: Redactor) -> None:
    expected = ecs.access_line(rec, redactor, Stamps())
    assert native.access_line(rec, redactor, Stamps()) == expected
    if rec[6] >= 0 and b"\n" not in rec[2]:  # else outside the schema (and the engine's input)
        check_line(expected)


@pytest.mark.parametrize("number", [0, 9, 10, 99, 100, 999, 1000, 1001, 99_999, 2**62])
def test_numbers_of_every_width_are_the_python_ones(number: int) -> None:
    """Numbers under 1000 take a shorter way in C than longer ones: the same digits either way."""
    rec = record(status=number, body_in=number, bytes_out=number, seconds=number / 1000)
    assert native.access_line(rec, Redactor(), Stamps()) == ecs.access_line(
        rec, Redactor(), Stamps()
    )


class _Marking:
    """A Redactor that marks every request id and text it is asked about: shows which values
    the C formatter hands over (the rest is a real Redactor's; a compiled class cannot be
    subclassed)."""

    def __init__(self) -> None:
        self._inner = Redactor()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)

    def request_id(self, value: str) -> str:
        return "asked-" + value

    def text(self, value: str) -> str:
        return "asked-" + value


# Every byte next to the letters and digits, at each position of a word: the quick test that
# lets a value skip the redactor must pass exactly the ASCII letters and digits.
_EDGES = "/09:@AZ[`az{\x7f\x80\u00e9-_."


@pytest.mark.parametrize("at", range(12))
@pytest.mark.parametrize("char", _EDGES)
def test_only_alphanumeric_values_skip_the_redactor(at: int, char: str) -> None:
    rid = "Abcdefgh12345678"[:at] + char + "Zz0123456789abcdefgh"  # 20 and up: not short
    user = "Abcdefgh12345678"[: at // 2] + char + "Zz01234"
    line, _ = native.security_line(event(request_id=rid, user_id=user), _Marking(), Stamps())
    skipped = char.isascii() and char.isalnum()
    assert (b'"id":"asked-' + rid.encode() + b'"' in line) is not skipped
    assert (b'"id":"asked-' + user.encode() + b'"' in line) is not skipped


def test_the_head_of_a_security_line_follows_its_action_and_outcome() -> None:
    """The part a line's action and outcome decide is remembered by their identity: equal
    strings that are other objects, and another outcome of the same action, get their own."""
    for action, outcome in [
        ("auth.success", "success"),
        ("".join(["auth.", "success"]), "".join(["fail", "ure"])),
        ("auth.success", "unknown"),
        ("alert.x", "success"),
        ("".join(["alert.", "x"]), "success"),
        ("auth.success", "success"),
    ]:
        ev = event(action=action, outcome=outcome)
        assert native.security_line(ev, Redactor(), Stamps()) == ecs.security_line(
            ev, Redactor(), Stamps()
        )


@pytest.mark.parametrize(
    "rec",
    [
        record(ts=float("inf")),
        record(ts=-1.0),
        record(seconds=float("inf")),
        record(status=True),
        record(status=2**70),
        record(path=bytearray(b"/x")),
        record(user=42),
        (1.0, b"GET"),
    ],
)
def test_unusual_records_get_the_python_answer(rec: Any) -> None:
    """Values outside the engine's types go to the Python function: the same line or the same
    kind of error (which the writer counts as a drop)."""
    try:
        expected: object = ecs.access_line(rec, Redactor(), Stamps())
    except Exception as exc:
        with pytest.raises(type(exc)):
            native.access_line(rec, Redactor(), Stamps())
        return
    assert native.access_line(rec, Redactor(), Stamps()) == expected


def test_an_ip_that_is_not_utf8_fails_as_in_python() -> None:
    bad = record(ip="10.0.0.\udc80")
    with pytest.raises(UnicodeEncodeError):
        ecs.access_line(bad, Redactor(), Stamps())
    with pytest.raises(UnicodeEncodeError):
        native.access_line(bad, Redactor(), Stamps())


def event(**changes: Any) -> SecurityEvent:
    values: dict[str, Any] = {
        "action": "auth.success",
        "outcome": "success",
        "timestamp": 1_764_000_000.123,
        "guard": "api_key",
        "request_id": "0123abcd",
        "client_ip": "127.0.0.1",
        "method": "GET",
        "path": "/orders/42",
        "status": None,
        "reason": "",
        "user_id": "acme",
        "fields": {"consumer": "acme", "key_id": "AbCdEf012345", "auth_method": "api_key"},
    }
    values.update(changes)
    return SecurityEvent(**values)


EVENTS = [
    event(),
    event(fields={"consumer": "acme", "key_id": "k", "route": "api", "replaced_by": None}),
    event(action="auth.invalid_credentials", outcome="failure", status=401, user_id=None,
          reason=f"key {KEY} unknown", path=f"/v1/{KEY}",
          fields={"password": "hunter2", "key_id": "AbCdEf012345", "n": 3, "ok": True}),
    event(action="ratelimit.exceeded", outcome="failure", status=429, path='/q"uote\\\t\n',
          reason='why "not"\x00', fields={}),
    event(action="alert.enumeration", outcome="unknown", guard="detector", client_ip="",
          fields={"evidence": [1, 2]}),
    event(action="alert.x", outcome="unknown", fields={"at": {1, 2}, "f": 1.5, "big": 2**70}),
    event(action="tls.expiry_warning", outcome="unknown", guard="", method="", path="",
          user_id=None, fields={}),
    event(request_id=f"trace {KEY} more", user_id=f"u={KEY}", reason=f"Bearer {JWT}"),
    event(request_id="AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA", path="/" + "b" * 30),
    event(request_id="caf\u00e9-0123456789-abcdefghij"),
    event(user_id="\u00e9l\u00e8ve", reason="\u00fcber l\u00e4nge \u2028 ok", path="/\u00e9"),
    event(fields={"Authorization": "Basic abc", "X-Api-Key": KEY, "session_token": "t",
                  "customer": "alice", "note": f"token={KEY}", "nested": {"secret": "s"}}),
    event(fields={"n": -(2**63), "m": 2**64 - 1, "e": "", "u": "\u4e2d\u6587 \u00e9"}),
    event(timestamp=1_764_000_000, status=503),
    event(timestamp=0.5, method="PO\"ST", guard='g"\\'),
    event(fields={1: "non-str key"}),
    event(fields=collections.OrderedDict(a="b")),
]  # fmt: skip


@pytest.mark.parametrize("redactor", REDACTORS, ids=["default", "custom"])
@pytest.mark.parametrize("ev", EVENTS)
def test_security_lines_and_rows_are_the_python_ones(ev: SecurityEvent, redactor: Redactor) -> None:
    try:
        expected = ecs.security_line(ev, redactor, Stamps())
    except Exception as exc:
        with pytest.raises(type(exc)):
            native.security_line(ev, redactor, Stamps())
        return
    line, row = native.security_line(ev, redactor, Stamps())
    assert line == expected[0]
    assert row == expected[1]
    assert type(row) is type(expected[1])
    check_line(line)


def test_secrets_never_reach_a_native_line() -> None:
    rec = record(path=f"/v1/{KEY}".encode(), rid=b"x-request-id: t=" + KEY.encode() + b"\r\n")
    access = native.access_line(rec, Redactor(), Stamps())
    security, _ = native.security_line(EVENTS[11], Redactor(), Stamps())
    for line in (access, security):
        assert KEY.encode() not in line
        assert REDACTED.encode() in line
    assert b"Basic abc" not in security


def test_the_writer_writes_the_same_lines_either_way() -> None:
    outputs = []
    for use_native in (False, True):
        stream = io.BytesIO()
        writer = EventWriter([StreamSink(stream)], flush_interval=0.01, native=use_native)
        events = EVENTS[:-2]  # not the int field name: both writers stop on it (AttributeError)
        for n, rec in enumerate(RECORDS):
            writer.access(rec)
            writer.emit(events[n % len(events)])
        writer.access(record(ip="10.0.0.\udc80"))  # refused by both: counted as a drop
        writer.close()
        outputs.append((stream.getvalue(), writer.written, writer.dropped))
    assert outputs[0] == outputs[1]
    assert outputs[1][2] > 0  # the ip above, and the 2**70 field (beyond what orjson writes)


def appender(capacity: int = 100, **options: Any) -> Any:
    keep = options.pop("keep", frozenset({"failure"}))
    with_access = options.pop("with_access", True)
    return native.Appender(capacity, Redactor(), Stamps(), keep, with_access, **options)


def test_the_appender_formats_each_item_and_keeps_the_rows_of_kept_outcomes() -> None:
    items: list[Any] = [record(), EVENTS[0], EVENTS[2]] * 3
    append = appender()
    for item in items:
        append(item)
    assert len(append) == 9
    block, count, rows, failures = append.take()
    assert count == 9
    redactor = Redactor()
    expected = [
        ecs.access_line(item, redactor, Stamps())
        if isinstance(item, tuple)
        else ecs.security_line(item, redactor)[0]
        for item in items
    ]
    assert block.splitlines(keepends=True) == expected
    assert [row.action for row in rows] == ["auth.invalid_credentials"] * 3
    assert rows[0] == ecs.security_line(EVENTS[2], redactor)[1]
    assert failures == []
    assert append.take() == (b"", 0, [], [])  # handed over: the appender starts afresh


def test_without_sinks_access_records_are_left_out() -> None:
    append = appender(with_access=False, keep=frozenset())
    append(record())
    append(record(ts=float("inf")))
    assert append.take() == (b"", 0, [], [])  # skipped, unformatted: nothing fails


def test_the_appender_leaves_out_what_it_cannot_format_and_goes_on() -> None:
    append = appender()
    for item in (record(), record(ip="10.0.0.\udc80"), EVENTS[0]):
        append(item)
    block, count, _, failures = append.take()
    assert count == 2
    assert [type(exc) for exc in failures] == [UnicodeEncodeError]
    assert block.count(b"\n") == 2
    assert b"10.0.0." not in block


def test_the_appender_bounds_the_block() -> None:
    append = appender(2)
    for _ in range(3):
        append(record())
    assert (len(append), append.dropped) == (2, 1)
    assert append.take()[1] == 2
    append(record())
    assert (len(append), append.dropped) == (1, 1)
    with pytest.raises(TypeError):
        append()
    with pytest.raises(TypeError, match="set"):
        native.Appender(2, Redactor(), Stamps(), ["failure"], True)


def test_the_appender_wakes_the_writer_when_a_batch_is_ready() -> None:
    woken: list[int] = []
    append = appender(wake=lambda: woken.append(len(append)), every=3)
    for _ in range(7):
        append(record())
    assert woken == [3]  # once, when the block reached 3 lines
    append.take()
    for _ in range(3):
        append(record())
    assert woken == [3, 3]  # and again for the next block
    with pytest.raises(TypeError, match="callable"):
        appender(wake=42, every=1)


def test_a_failing_wake_up_never_fails_the_request(monkeypatch: pytest.MonkeyPatch) -> None:
    unraisable: list[Any] = []
    monkeypatch.setattr("sys.unraisablehook", unraisable.append)

    def broken() -> None:
        raise RuntimeError("no")

    append = appender(wake=broken, every=1)
    append(record())  # no exception here
    assert len(append) == 1
    assert [type(u.exc_value) for u in unraisable] == [RuntimeError]


def test_a_busy_writer_does_not_wait_for_its_interval() -> None:
    stream = io.BytesIO()
    writer = EventWriter([StreamSink(stream)], flush_interval=60)
    for _ in range(2 * WAKE_EVERY):
        writer.access(record())
    deadline = time.monotonic() + 10
    while writer.written < WAKE_EVERY and time.monotonic() < deadline:
        time.sleep(0.01)
    assert writer.written >= WAKE_EVERY  # woken by the batch, long before the 60 s interval
    writer.close()


def test_the_writer_counts_what_its_appender_refused() -> None:
    writer = EventWriter([StreamSink(io.BytesIO())], capacity=1, flush_interval=60)
    assert writer.access is writer.access  # the engine keeps one callable
    for _ in range(3):
        writer.access(record())
    assert writer.dropped == 2
    writer.dropped = 5
    assert writer.dropped == 5
    writer.close()


def test_remembered_answers_stay_with_their_redactor() -> None:
    """The C side remembers quoted strings and the redactor's answers by identity: the same
    field name and value are redacted by one redactor and kept by another, in any order."""
    ev = event(fields={"customer": "alice-in-wonderland", "note": f"api_key={KEY}"})
    plain, custom = Redactor(), Redactor(fields=["customer"])
    for redactor in (plain, custom, plain, custom):
        assert native.security_line(ev, redactor)[0] == ecs.security_line(ev, redactor)[0]
    assert b"alice-in-wonderland" in native.security_line(ev, plain)[0]
    assert b"alice-in-wonderland" not in native.security_line(ev, custom)[0]


def test_remembered_fields_follow_the_content_of_the_dict() -> None:
    """The C side remembers the JSON of a fields dict by its content: the same dict with another
    value (a secret, here), another name or another size is written anew, never from memory."""
    fields: dict[str, object] = {"consumer": "acme", "key_id": "AbCdEf012345", "n": 7}
    ev = event(fields=fields)
    redactor = Redactor()
    for change in (
        lambda: None,
        lambda: fields.update(key_id=f"api_key={KEY}"),
        lambda: fields.update(n=8),
        lambda: fields.update(extra=True),
        lambda: fields.pop("consumer"),
    ):
        change()
        for _ in range(2):  # the second time from memory
            line = native.security_line(ev, redactor)[0]
            assert line == ecs.security_line(ev, redactor)[0]
            assert KEY.encode() not in line
    copy = event(fields=dict(fields))  # equal content in another dict: the same line
    assert native.security_line(copy, redactor)[0] == native.security_line(ev, redactor)[0]


def test_events_of_another_class_are_read_by_their_own_attributes() -> None:
    """An object with the attributes of a SecurityEvent but another class (read generically,
    not through SecurityEvent's descriptors)."""

    class Lookalike:
        def __init__(self, source: SecurityEvent, **changes: Any) -> None:
            for name in ("action", "outcome", "timestamp", "guard", "request_id", "client_ip",
                         "method", "path", "status", "reason", "user_id", "fields"):  # fmt: skip
                setattr(self, name, changes.get(name, getattr(source, name)))

    base = event()
    other = Lookalike(base, action="auth.other", path="/elsewhere")
    expected = ecs.security_line(base, Redactor())[0]
    for _ in range(2):
        assert native.security_line(base, Redactor())[0] == expected
        line = native.security_line(other, Redactor())[0]
        assert line == expected.replace(b"auth.success", b"auth.other").replace(
            b"/orders/42", b"/elsewhere"
        )


# The escape scan and the plain() test read eight bytes at a time, and a string's last bytes as
# a word of their own: each special byte, at every position of strings of every length around
# the word size, must be found as the byte loop found it.
SPECIALS = ['"', "\\", "\n", "\x01", "\x1f", "_", ".", " ", "=", "\u00e9", "\u20ac"]


@pytest.mark.parametrize("special", SPECIALS)
def test_every_position_of_a_special_character_is_found(special: str) -> None:
    redactor = Redactor()
    for length in range(1, 20):
        for position in range(length):
            text = "a" * position + special + "b" * (length - position - 1)
            rec = record(
                path=f"/{text}".encode(), host=text, rid=f"x-request-id: {text}\r\n".encode()
            )
            assert native.access_line(rec, redactor, Stamps()) == ecs.access_line(
                rec, redactor, Stamps()
            ), (special, length, position)
            ev = event(path=f"/{text}", request_id=text, reason=text, user_id=text)
            assert native.security_line(ev, redactor, Stamps()) == ecs.security_line(
                ev, redactor, Stamps()
            ), (special, length, position)


def test_a_block_taken_never_changes_afterwards() -> None:
    """The block is written in place and handed over without a copy: what the appender writes
    next goes to a block of its own, and a block that grows keeps every line it had."""
    append = appender(10_000)
    expected = [
        ecs.access_line(record(path=f"/orders/{n}".encode()), Redactor(), Stamps())
        for n in range(3)
    ]
    for n in range(3):
        append(record(path=f"/orders/{n}".encode()))
    first = append.take()[0]
    kept = bytes(bytearray(first))
    for n in range(2000):  # about 900 kB: the next block grows several times
        append(record(path=f"/next/{n}".encode()))
    assert first == kept == b"".join(expected)
    second, count, _, _ = append.take()
    assert count == 2000
    assert second.splitlines(keepends=True) == [
        ecs.access_line(record(path=f"/next/{n}".encode()), Redactor(), Stamps())
        for n in range(2000)
    ]
    assert append.take()[:2] == (b"", 0)  # taken: the appender starts afresh


def test_a_key_in_a_request_id_is_scrubbed_at_every_alignment() -> None:
    """plain() lets a request id skip the redactor: its word test must see the key's "_"
    wherever the key sits against the eight-byte words, the last partial word included."""
    secret = KEY.rpartition("_")[2]
    for before in range(17):
        for after in range(10):
            rid = "r" * before + KEY + "s" * after
            rec = record(rid=f"x-request-id: {rid}\r\n".encode())
            line = native.access_line(rec, Redactor(), Stamps())
            assert secret.encode() not in line, (before, after)
            assert line == ecs.access_line(rec, Redactor(), Stamps())
