"""Turning captured events into ECS JSON lines, on the writer thread (never on the hot path).

An access record is a plain tuple the engine fills with values it already holds (see
:data:`AccessRecord`); a security event is a :class:`SecurityEvent`. Both come out as one line
of JSON whose field names are those of the Elastic Common Schema (docs/logging.md lists them;
``schema/event.schema.json`` pins them), after passing through the :class:`Redactor`.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any, NamedTuple

import orjson

from bastion.observability.events import SecurityEvent
from bastion.observability.redact import SHORTEST_SECRET, Redactor

# (timestamp, method, path, status, request body bytes, response bytes, seconds, client ip,
#  request-id header field, route, user id, host, upstream seconds or -1, peer ip)
AccessRecord = tuple[
    float, bytes, bytes, int, int, int, float, str, bytes, str, "str | None", str, float, str
]
# What the engine calls once per finished exchange (EventWriter.access).
AccessLog = Callable[[AccessRecord], None]

ACCESS_DATASET = "bastion.access"
SECURITY_DATASET = "bastion.security"
ALERT_DATASET = "bastion.alert"


class StoredEvent(NamedTuple):
    """A security event as the event store keeps it: indexed columns plus the whole line."""

    timestamp: float
    dataset: str
    action: str
    outcome: str
    user_id: str | None
    client_ip: str
    request_id: str
    status: int | None
    document: bytes


class Stamps:
    """RFC 3339 UTC timestamps; the seconds part is formatted once per second, not per event."""

    __slots__ = ("_second", "_text")

    def __init__(self) -> None:
        self._second = -1
        self._text = b""

    def __call__(self, timestamp: float) -> bytes:
        second = int(timestamp)
        if second != self._second:
            self._second = second
            self._text = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second)).encode()
        return self._text + _MILLIS[int((timestamp - second) * 1000)]


_MILLIS = tuple(b".%03dZ" % n for n in range(1000))
# A value free of these can go into a JSON string as it is: nothing JSON escapes (the quote,
# the backslash, every control character: a raw one would break the line, or split it in two
# where it is a line break), and no credential shape (every pattern of the redactor needs one of
# "_", ".", " ", "=").
_PLAIN_DELETE = b'"\\_. =' + bytes(range(0x20))


def _plain(value: bytes) -> bool:
    return value.isascii() and len(value.translate(None, _PLAIN_DELETE)) == len(value)


_ACCESS = (
    b'{"@timestamp":"%s","event":{"kind":"event","dataset":"' + ACCESS_DATASET.encode() + b'",'
    b'"category":["web"],"type":["access"],"action":"http.request","outcome":"%s",'
    b'"duration":%d},"source":{"ip":"%s"},"client":{"ip":"%s"},"url":{"path":%s%s},'
    b'"http":{"request":{"method":"%s","id":%s,"body":{"bytes":%d}},'
    b'"response":{"status_code":%d,"bytes":%d}}%s,"bastion":{"route":"%s"%s%s}}\n'
)


def access_line(record: AccessRecord, redactor: Redactor, stamps: Stamps) -> bytes:
    """One access event as a JSON line. One bytes template around a few escaped values: this
    runs once per request, and a nested dict through orjson costs several times more. Values
    put in bare (ips, method, route name) are ones the engine or the config validated."""
    (
        ts,
        method,
        path,
        status,
        body_in,
        bytes_out,
        seconds,
        ip,
        rid,
        route,
        user,
        host,
        up,
        peer,
    ) = record
    dumps = orjson.dumps
    if len(path) < SHORTEST_SECRET and not redactor.custom_paths and _plain(path):
        quoted_path = b'"' + path + b'"'
    else:
        quoted_path = dumps(redactor.path(path.decode("latin-1")))
    rid = rid[rid.find(b": ") + 2 : -2]
    if _plain(rid):  # bastion's own ids always are
        quoted_rid = b'"' + rid + b'"'
    else:
        quoted_rid = dumps(redactor.request_id(rid.decode("latin-1")))
    ip_bytes = ip.encode()
    return _ACCESS % (
        stamps(ts),
        b"failure" if status >= 400 else b"success",
        int(seconds * 1e9),
        ip_bytes,
        ip_bytes,
        quoted_path,
        # A client picks its Host (any reg-name: "_", "." and "=" included): scrubbed like text.
        b',"domain":' + dumps(redactor.text(host)) if host else b"",
        method,
        quoted_rid,
        body_in,
        status,
        bytes_out,
        b',"user":{"id":' + dumps(redactor.text(user)) + b"}" if user is not None else b"",
        route.encode(),
        b',"upstream":{"duration":%d}' % int(up * 1e9) if up >= 0 else b"",
        b',"peer":{"ip":"' + peer.encode() + b'"}' if peer != ip else b"",
    )


def security_document(
    event: SecurityEvent, redactor: Redactor, stamps: Stamps | None = None
) -> dict[str, Any]:
    """The ECS document of ``event``, redacted."""
    stamp = stamps(event.timestamp).decode() if stamps is not None else None
    doc = event.to_ecs() if stamp is None else event.ecs_document(stamp)
    if len(event.path) >= SHORTEST_SECRET or redactor.custom_paths:
        doc["url"]["path"] = redactor.path(event.path)
    bastion = doc["bastion"]
    if "reason" in bastion:
        bastion["reason"] = redactor.text(bastion["reason"])
    if "fields" in bastion:
        bastion["fields"] = redactor.fields(bastion["fields"])
    if "user" in doc:
        doc["user"]["id"] = redactor.text(doc["user"]["id"])
    doc["http"]["request"]["id"] = redactor.request_id(event.request_id)
    return doc


_SECURITY = (
    b'{"@timestamp":"%s","event":{"kind":"%s","dataset":"%s","category":%s,"type":["%s"],'
    b'"action":%s,"outcome":%s},"url":{"path":%s},"http":{"request":{"method":%s,"id":%s}%s},'
    b'"bastion":{"guard":%s%s%s}%s%s}\n'
)
_QUOTED: dict[str, bytes] = {}


def _quoted(value: str) -> bytes:
    """``value`` as a JSON string; the few values that repeat (actions, outcomes, guards,
    methods) are escaped once."""
    quoted = _QUOTED.get(value)
    if quoted is None:
        quoted = orjson.dumps(value)
        if len(_QUOTED) < 4096:
            _QUOTED[value] = quoted
    return quoted


def security_line(
    event: SecurityEvent, redactor: Redactor, stamps: Stamps | None = None
) -> tuple[bytes, StoredEvent]:
    """The line of ``event`` (the document of :func:`security_document`, which the tests hold
    it to, written from one bytes template: one per authenticated request is common) and the
    row the event store keeps."""
    dumps = orjson.dumps
    action = event.action
    alert = action.startswith("alert.")
    dataset = ALERT_DATASET if alert else SECURITY_DATASET
    path = event.path
    if len(path) >= SHORTEST_SECRET or redactor.custom_paths:
        path = redactor.path(path)
    request_id = redactor.request_id(event.request_id)
    user = None if event.user_id is None else redactor.text(event.user_id)
    ip = event.client_ip
    status = event.status
    reason = event.reason
    fields = event.fields
    line = _SECURITY % (
        (stamps or Stamps())(event.timestamp),
        b"alert" if alert else b"event",
        dataset.encode(),
        b'["authentication","web"]' if action.startswith("auth.") else b'["web"]',
        b"allowed"
        if event.outcome == "success"
        else b"denied"
        if event.outcome == "failure"
        else b"info",
        _quoted(action),
        _quoted(event.outcome),
        dumps(path),
        _quoted(event.method),
        dumps(request_id),
        b"" if status is None else b',"response":{"status_code":%d}' % status,
        _quoted(event.guard),
        b',"reason":' + dumps(redactor.text(reason)) if reason else b"",
        b',"fields":' + dumps(redactor.fields(fields), default=str) if fields else b"",
        b',"source":{"ip":%s},"client":{"ip":%s}' % (dumps(ip), dumps(ip)) if ip else b"",
        b"" if user is None else b',"user":{"id":' + dumps(user) + b"}",
    )
    stored = StoredEvent(
        event.timestamp,
        dataset,
        action,
        event.outcome,
        user,
        ip,
        request_id,
        status,
        line[:-1],
    )
    return line, stored
