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
from bastion.observability.redact import Redactor

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
        self._text = ""

    def __call__(self, timestamp: float) -> str:
        second = int(timestamp)
        if second != self._second:
            self._second = second
            self._text = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second))
        return f"{self._text}.{int((timestamp - second) * 1000):03d}Z"


def _request_id(field: bytes) -> str:
    if not field:
        return ""
    return field[field.find(b": ") + 2 : -2].decode("latin-1")


def access_line(record: AccessRecord, redactor: Redactor, stamps: Stamps) -> bytes:
    """One access event as a JSON line. Built as text around a few escaped values: this runs
    once per request, and a nested dict through orjson costs several times more."""
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
    outcome = "failure" if status >= 400 else "success"
    parts = [
        f'{{"@timestamp":"{stamps(ts)}","event":{{"kind":"event","dataset":"{ACCESS_DATASET}",'
        f'"category":["web"],"type":["access"],"action":"http.request","outcome":"{outcome}",'
        f'"duration":{int(seconds * 1e9)}}},"source":{{"ip":"{ip}"}},"client":{{"ip":"{ip}"}},'
        f'"url":{{"path":{dumps(redactor.path(path.decode("latin-1"))).decode()}'
    ]
    if host:
        parts.append(f',"domain":{dumps(host).decode()}')
    parts.append(
        f'}},"http":{{"request":{{"method":"{method.decode("latin-1")}",'
        f'"id":{dumps(_request_id(rid)).decode()},"body":{{"bytes":{body_in}}}}},'
        f'"response":{{"status_code":{status},"bytes":{bytes_out}}}}}'
    )
    if user is not None:
        parts.append(f',"user":{{"id":{dumps(redactor.text(user)).decode()}}}')
    parts.append(f',"bastion":{{"route":"{route}"')
    if up >= 0:
        parts.append(f',"upstream":{{"duration":{int(up * 1e9)}}}')
    if peer != ip:
        parts.append(f',"peer":{{"ip":"{peer}"}}')
    parts.append("}}\n")
    return "".join(parts).encode()


def security_document(event: SecurityEvent, redactor: Redactor) -> dict[str, Any]:
    """The ECS document of ``event``, redacted."""
    doc = event.to_ecs()
    doc["url"]["path"] = redactor.path(event.path)
    bastion = doc["bastion"]
    if "reason" in bastion:
        bastion["reason"] = redactor.text(bastion["reason"])
    if "fields" in bastion:
        bastion["fields"] = redactor.fields(bastion["fields"])
    if "user" in doc:
        doc["user"]["id"] = redactor.text(doc["user"]["id"])
    doc["http"]["request"]["id"] = redactor.text(doc["http"]["request"]["id"])
    return doc


def security_line(event: SecurityEvent, redactor: Redactor) -> tuple[bytes, StoredEvent]:
    doc = security_document(event, redactor)
    line = orjson.dumps(doc, option=orjson.OPT_APPEND_NEWLINE | orjson.OPT_NON_STR_KEYS)
    stored = StoredEvent(
        event.timestamp,
        doc["event"]["dataset"],
        event.action,
        event.outcome,
        doc.get("user", {}).get("id"),
        event.client_ip,
        doc["http"]["request"]["id"],
        event.status,
        line.rstrip(b"\n"),
    )
    return line, stored
