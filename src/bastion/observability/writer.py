"""A JSON-lines event writer that never blocks the request path.

Events go into a bounded in-memory buffer; a daemon thread formats and writes them. A full buffer
drops the event and counts it (``dropped``), because a slow log destination must never slow or
stop traffic.
"""

from __future__ import annotations

import collections
import threading
from typing import IO

import orjson

from bastion.observability.events import SecurityEvent


class JsonLinesWriter:
    """An :class:`EventSink` writing one ECS JSON document per line to ``stream``."""

    def __init__(self, stream: IO[bytes], *, capacity: int = 65_536, flush_interval: float = 0.2):
        self._stream = stream
        self._buffer: collections.deque[SecurityEvent] = collections.deque()
        self._capacity = capacity
        self._interval = flush_interval
        self._wake = threading.Event()
        self._stopped = False
        self.dropped = 0
        self.written = 0
        self._thread = threading.Thread(target=self._run, name="bastion-event-writer", daemon=True)
        self._thread.start()

    def emit(self, event: SecurityEvent) -> None:
        if len(self._buffer) >= self._capacity:
            self.dropped += 1
            return
        self._buffer.append(event)

    def _drain(self) -> None:
        lines: list[bytes] = []
        while self._buffer:
            event = self._buffer.popleft()
            lines.append(orjson.dumps(event.to_ecs(), option=orjson.OPT_APPEND_NEWLINE))
        if lines:
            try:
                self._stream.write(b"".join(lines))
                self._stream.flush()
                self.written += len(lines)
            except (OSError, ValueError):
                self.dropped += len(lines)

    def _run(self) -> None:
        while not self._stopped:
            self._wake.wait(self._interval)
            self._wake.clear()
            self._drain()
        self._drain()

    def close(self) -> None:
        """Write what is buffered and stop the thread."""
        self._stopped = True
        self._wake.set()
        self._thread.join(timeout=5)
