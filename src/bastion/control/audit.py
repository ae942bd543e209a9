"""The audit log: who changed what, when, and how it went, one JSON line per call, append only.

Every admin API call (reads included) and every config reload, from the API or from SIGHUP, is
one entry. The file is opened with ``O_APPEND`` (each line lands whole at the end) and is
owner-only. Each entry carries ``prev``, the SHA-256 of the line before it, so that a line
removed, changed or inserted later breaks the chain (:func:`verify`, ``bastion admin
audit-verify``). Entries never hold a secret (a key's secret, a token, a config secret: diffs
are masked by :mod:`bastion.control.diff`). Each entry is also a security event
``admin.<action>``, so it reaches the configured log sinks.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import threading
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

from bastion.config.models import BastionConfig
from bastion.observability.events import EventSink, SecurityEvent

MAX_TAIL_BYTES = 4 * 1024 * 1024


@dataclass(frozen=True, slots=True)
class Actor:
    """Who acted: an admin token's name and role, or the process itself (``signal``)."""

    name: str
    role: str
    source_ip: str = ""

    def doc(self) -> dict[str, str]:
        doc = {"name": self.name, "role": self.role}
        if self.source_ip:
            doc["ip"] = self.source_ip
        return doc


SIGNAL_ACTOR = Actor("SIGHUP", "process")


def audit_path(config: BastionConfig) -> Path:
    return config.admin.audit_log or config.state_dir / "audit.log"


def stamp(seconds: float) -> str:
    whole = int(seconds)
    millis = int((seconds - whole) * 1000)
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(whole)) + f".{millis:03d}Z"


class AuditLog:
    """Appends entries to ``path`` and mirrors each as a security event into ``events``."""

    def __init__(self, path: Path, events: EventSink, *, clock: Any = time.time) -> None:
        self.path = path
        self.events = events
        self.clock = clock
        self._lock = threading.Lock()

    def record(
        self,
        actor: Actor,
        action: str,
        outcome: str,
        *,
        status: int | None = None,
        target: str | None = None,
        details: Mapping[str, Any] | None = None,
        request_id: str = "",
    ) -> dict[str, Any]:
        """Append one entry; ``outcome`` is ``success`` or ``failure`` (ECS ``event.outcome``)."""
        now = self.clock()
        entry: dict[str, Any] = {
            "@timestamp": stamp(now),
            "action": action,
            "outcome": outcome,
            "actor": actor.doc(),
        }
        if status is not None:
            entry["status"] = status
        if target is not None:
            entry["target"] = target
        if request_id:
            entry["request_id"] = request_id
        if details:
            entry["details"] = dict(details)
        with self._lock:
            self.path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
            fd = os.open(self.path, os.O_RDWR | os.O_APPEND | os.O_CREAT, 0o600)
            try:
                # Locked from reading the last line to writing the next, so that two processes
                # sharing the file (gateways on one state_dir) never fork the chain.
                fcntl.flock(fd, fcntl.LOCK_EX)
                entry["prev"] = line_hash(_last_line(fd))
                os.write(fd, orjson.dumps(entry) + b"\n")
            finally:
                os.close(fd)  # closing releases the lock
        fields: dict[str, Any] = {"actor": actor.name, "role": actor.role}
        if target is not None:
            fields["target"] = target
        self.events.emit(
            SecurityEvent(
                action=f"admin.{action}",
                outcome=outcome,
                timestamp=now,
                guard="admin",
                request_id=request_id,
                client_ip=actor.source_ip,
                status=status,
                user_id=actor.name,
                fields=fields,
            )
        )
        return entry

    def tail(self, limit: int = 100) -> list[dict[str, Any]]:
        """The last ``limit`` entries, newest last (reads at most the file's last 4 MiB)."""
        try:
            with open(self.path, "rb") as handle:
                size = handle.seek(0, os.SEEK_END)
                handle.seek(max(0, size - MAX_TAIL_BYTES))
                data = handle.read()
        except FileNotFoundError:
            return []
        lines = data.splitlines()
        if len(data) >= MAX_TAIL_BYTES and lines:
            lines = lines[1:]  # the first line may be cut
        return list(_parse(lines[-limit:] if limit > 0 else []))


def line_hash(line: bytes) -> str:
    """What the next entry's ``prev`` holds: the SHA-256 of a line (``""`` before the first)."""
    return "sha256:" + hashlib.sha256(line).hexdigest() if line else ""


def _last_line(fd: int) -> bytes:
    """The file's last line, read from the end (a long entry, a big diff, is read whole)."""
    size = os.fstat(fd).st_size
    window = 65536
    while True:
        start = max(0, size - window)
        data = os.pread(fd, size - start, start).rstrip(b"\n")
        cut = data.rfind(b"\n")
        if cut >= 0 or start == 0:
            return data[cut + 1 :]
        window *= 4


def verify(path: Path) -> tuple[int, int | None]:
    """``(entries, first broken line)``: the line number (1-based) whose ``prev`` does not match
    the line before it, or ``None`` when the whole chain holds."""
    previous = b""
    count = 0
    with open(path, "rb") as handle:
        for number, raw in enumerate(handle, start=1):
            line = raw.rstrip(b"\n")
            try:
                doc = orjson.loads(line)
            except orjson.JSONDecodeError:
                return count, number
            if not isinstance(doc, dict) or doc.get("prev") != line_hash(previous):
                return count, number
            previous = line
            count += 1
    return count, None


def _parse(lines: list[bytes]) -> Iterator[dict[str, Any]]:
    for line in lines:
        try:
            doc = orjson.loads(line)
        except orjson.JSONDecodeError:
            continue
        if isinstance(doc, dict):
            yield doc
