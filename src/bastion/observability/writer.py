"""The event writer: the :class:`EventSink` guards emit into, and the engine's access log.

The request path only appends to a bounded in-memory buffer: a security event, or an access
record (a tuple of values the engine already holds). A full buffer drops the event and counts it
(``dropped``), because a slow log destination must never slow or stop traffic. A daemon thread
writes what is buffered, as redacted ECS JSON lines (:mod:`.ecs`), to every sink, and the
security events to the event store. Nothing on the request path waits for a sink.

With the ``_bastion_ecs`` extension (built with bastion, setup.py), the buffer is its
``Appender``: one C call per item, which formats the item's line there and then (the same bytes
as the Python functions of :mod:`.ecs`, which the tests hold it to) into a bounded block of
lines, while the item is still in the CPU's caches. The block is a bytes object the appender
writes in place and hands over as it is, so nothing copies it on its way to the file; the thread
only hands it to the sinks (the file sink writes it as it is:
:meth:`~bastion.observability.sinks.rotating.RotatingFileSink.write_blocks`; other sinks get it
as lines). Holding the items for the thread instead cost more than formatting them: thousands of
objects read back from main memory a flush interval later, the allocator handing out cold memory
meanwhile, and the garbage collector's allocation count kept high. Without the extension, the
thread formats a deque of items with the Python functions.

Compiled (setup.py): :meth:`EventWriter.emit` is on the path of every security event, an
``auth.success`` per authenticated request among them. (The worker thread's attribute is not
named ``_thread``: mypyc would name a C struct member after it, and ``__thread`` is a keyword of
GCC's C.)
"""

from __future__ import annotations

import collections
import importlib
import logging
import threading
import time
from collections.abc import Callable, Collection, Sequence
from types import ModuleType
from typing import IO, Any, Protocol

from bastion.errors import describe
from bastion.observability.ecs import (
    AccessLog,
    AccessRecord,
    Stamps,
    StoredEvent,
    access_line,
    security_line,
)
from bastion.observability.events import EventSink, SecurityEvent
from bastion.observability.redact import SHORTEST_SECRET, Redactor
from bastion.observability.sinks import LineSink, split_lines
from bastion.observability.sinks.background import BUFFER_BYTES
from bastion.observability.sinks.stream import StreamSink

logger = logging.getLogger("bastion.events")

YIELD_EVERY = 128
"""Events formatted between two chances for the serving thread to take the GIL (Python path)."""
WAKE_EVERY = 512
"""Lines waiting in the C appender's block that wake the writer thread before its interval is
over: about 250 kB, written while still in the CPU's caches (about a hundred writes per second
at 30,000 requests per second with two lines each)."""


def _load_native() -> ModuleType | None:
    try:
        native = importlib.import_module("_bastion_ecs")
    except ImportError:  # built with bastion; missing after a build without a C compiler
        return None
    native.configure(StoredEvent, access_line, security_line, SHORTEST_SECRET)
    return native


NATIVE = _load_native()

DROP_REPORT_INTERVAL = 10.0

_LINE_BASE = 512  # a line's bytes besides what the client chose (the Python buffer's estimate)


def _weight(item: SecurityEvent | AccessRecord) -> int:
    """About the bytes ``item``'s line takes (the Python buffer holds items, not lines): a
    fixed part and the texts a client chose. Never raises: an item the writer thread cannot
    format costs that item only, and so does one this cannot weigh."""
    try:
        if type(item) is tuple:
            return _LINE_BASE + len(item[2]) + len(item[8]) + len(item[11])
        assert isinstance(item, SecurityEvent)
        size = _LINE_BASE + len(item.path) + len(item.reason) + len(item.request_id)
        for value in item.fields.values():
            size += len(value) if isinstance(value, str) else 16
        return size
    except Exception:
        return _LINE_BASE


class EventRecorder(Protocol):
    """Keeps security events (the event store's sink); ``put`` must not block."""

    name: str

    def put(self, events: list[StoredEvent]) -> None: ...

    def dropped(self) -> int: ...

    def close(self) -> None: ...


class EventWriter:
    """Counts every security event by action and outcome, buffers it with access records, and
    writes both through ``sinks`` (and security events to ``recorder``) from its own thread."""

    def __init__(
        self,
        sinks: Sequence[LineSink],
        *,
        recorder: EventRecorder | None = None,
        redactor: Redactor | None = None,
        capacity: int = 65_536,
        max_bytes: int = BUFFER_BYTES,
        flush_interval: float = 0.2,
        store_outcomes: Collection[str] = ("success", "failure", "unknown"),
        native: bool = True,
    ) -> None:
        self.sinks = tuple(sinks)
        self.recorder = recorder
        self.store_outcomes = frozenset(store_outcomes)
        self.redactor = redactor or Redactor()
        self.counts: dict[tuple[str, str], int] = {}
        self.subscribers: list[EventSink] = []
        self._dropped = 0  # formatting failures, and buffer drops without the C appender
        self.written = 0
        self._reported = 0  # drops already logged
        self._reported_at = 0.0
        # The pure-Python buffer (without the C appender, which keeps its own list).
        self._buffer: collections.deque[SecurityEvent | AccessRecord] = collections.deque()
        self._capacity = capacity
        self._max_bytes = max_bytes
        # The Python buffer's bytes, estimated (``_weight``): added where events are appended
        # (the event loop's thread), taken off by the writer thread. Were two threads to append
        # at once, the interpreted build could lose an addition: the estimate drifts, the count
        # of lines (``capacity``) still bounds the buffer.
        self._bytes_in = 0
        self._bytes_out = 0
        self._interval = flush_interval
        self._stamps = Stamps()
        self._wake = threading.Event()
        self._drained = threading.Event()
        self._stopped = False
        self.active = bool(self.sinks) or recorder is not None
        # Without sinks only the events the store keeps are buffered: formatting an
        # ``auth.success`` per request that nobody writes cost about a tenth of the gateway's
        # throughput with ``events.sink: none`` and the default store (failures only).
        self._buffer_all = bool(self.sinks)
        # The C formatter and buffer (same lines); ``native=False`` keeps to the Python ones.
        self._native = NATIVE if native else None
        self._appender: Any = None  # the C Appender
        if self._native is not None:
            with_access = bool(self.sinks)  # access lines go to sinks only, never to the store
            self._appender = self._native.Appender(
                capacity, self.redactor, self._stamps, self.store_outcomes, with_access,
                wake=self._wake.set, every=WAKE_EVERY, max_bytes=max_bytes,
            )  # fmt: skip
        # Sinks that take blocks of whole lines as they are (the file sink), and the others.
        self._block_writers = [(sink, getattr(sink, "write_blocks", None)) for sink in self.sinks]
        self._push: Callable[[SecurityEvent | AccessRecord], None] = (
            self._appender if self._appender is not None else self._append
        )
        self._worker: threading.Thread | None = None
        if self.active:
            self._worker = threading.Thread(
                target=self._run, name="bastion-event-writer", daemon=True
            )
            self._worker.start()

    # -- the hot path: append or count, nothing else

    def emit(self, event: SecurityEvent) -> None:
        key = (event.action, event.outcome)
        counts = self.counts
        counts[key] = counts.get(key, 0) + 1
        for subscriber in self.subscribers:
            subscriber.emit(event)
        if self.active and (self._buffer_all or event.outcome in self.store_outcomes):
            self._push(event)

    @property
    def access(self) -> AccessLog:
        """What the engine calls with each finished request's record (see
        :data:`bastion.observability.ecs.AccessRecord`): a bounded append to the buffer."""
        return self._push

    def _append(self, item: SecurityEvent | AccessRecord) -> None:
        if (
            len(self._buffer) >= self._capacity
            or self._bytes_in - self._bytes_out >= self._max_bytes
        ):
            self._dropped += 1
            return
        self._bytes_in += _weight(item)
        self._buffer.append(item)

    @property
    def dropped(self) -> int:
        """Events lost here: refused by a full buffer, or that could not be formatted."""
        return self._dropped + (self._appender.dropped if self._appender is not None else 0)

    @dropped.setter
    def dropped(self, value: int) -> None:
        self._dropped = value - (self._appender.dropped if self._appender is not None else 0)

    def subscribe(self, sink: EventSink) -> None:
        """Also hand every security event to ``sink`` (detectors); its ``emit`` must not block."""
        self.subscribers.append(sink)

    # -- the writer thread

    def pending(self) -> int:
        """Events and records buffered, not yet taken by the writer thread."""
        return len(self._appender) if self._appender is not None else len(self._buffer)

    def _format(self) -> tuple[list[bytes], int, list[StoredEvent]]:
        """Blocks of whole lines, how many lines they hold, and the rows for the store."""
        if self._appender is not None:
            block, count, rows, failures = self._appender.take()
            self._failed(failures)
            return ([block] if count else []), count, rows
        lines: list[bytes] = []
        stored: list[StoredEvent] = []
        buffer = self._buffer
        redactor, stamps = self.redactor, self._stamps
        keep = self.store_outcomes
        formatted = 0
        while buffer:
            item = buffer.popleft()
            self._bytes_out += _weight(item)
            formatted += 1
            if formatted % YIELD_EVERY == 0:
                # Let the event loop's thread have the GIL between slices: formatting a whole
                # interval's backlog in one go would hold it for milliseconds (Python switches
                # threads only every sys.getswitchinterval()), which is request latency.
                time.sleep(0)
            try:
                if type(item) is tuple:
                    if self.sinks:  # access lines go to sinks only, never to the store
                        lines.append(access_line(item, redactor, stamps))
                else:
                    assert isinstance(item, SecurityEvent)
                    line, row = security_line(item, redactor, stamps)
                    lines.append(line)
                    if row.outcome in keep:
                        stored.append(row)
            except Exception as exc:  # that item only: a bad event must not stop the writer
                self._failed([exc])
        return lines, len(lines), stored

    def _failed(self, failures: list[Exception]) -> None:
        for exc in failures:
            self._dropped += 1
            logger.error("an event could not be formatted: %s", describe(exc))

    def _drain(self) -> None:
        blocks, count, stored = self._format()
        if count:
            lines: list[bytes] | None = None
            for sink, write_blocks in self._block_writers:
                try:
                    if write_blocks is not None:
                        write_blocks(blocks, count)
                    else:
                        if lines is None:
                            lines = split_lines(blocks)
                        sink.write(lines)
                except Exception as exc:
                    logger.error("event sink %s failed: %s", sink.name, describe(exc))
            self.written += count
        if stored and self.recorder is not None:
            self.recorder.put(stored)

    def _report_drops(self) -> None:
        """Log lost events, at most every ``DROP_REPORT_INTERVAL`` seconds (the metric
        ``bastion_events_dropped_total`` has the exact count)."""
        total = sum(self.sink_drops().values())
        now = time.monotonic()
        if total > self._reported and now - self._reported_at >= DROP_REPORT_INTERVAL:
            logger.warning(
                "%d events dropped since the last report (%s); the event sinks do not keep up",
                total - self._reported,
                ", ".join(f"{stage}: {n}" for stage, n in sorted(self.sink_drops().items()) if n),
            )
            self._reported, self._reported_at = total, now

    def _run(self) -> None:
        while not self._stopped:
            self._wake.wait(self._interval)
            self._wake.clear()
            self._drain_safely()
            self._drained.set()
            self._report_drops()
        self._drain_safely()
        self._drained.set()

    def _drain_safely(self) -> None:
        """:meth:`_drain`, logging what fails: the thread outlives any one bad batch, else
        every later event would pile up unwritten until the buffer drops them all."""
        try:
            self._drain()
        except Exception as exc:
            logger.error("the event writer failed on a batch: %s", describe(exc))

    def flush(self, timeout: float = 5.0) -> bool:
        """Wake the thread and wait until what is buffered now is written (tests, benchmarks);
        false if that took longer than ``timeout``."""
        if self._worker is None:
            return True
        deadline = time.monotonic() + timeout
        while True:
            self._drained.clear()
            self._wake.set()
            left = deadline - time.monotonic()
            if left <= 0 or not self._drained.wait(left):
                return False
            if not self.pending():
                return True

    def sink_drops(self) -> dict[str, int]:
        """Dropped events per stage: ``buffer`` (this writer) and each sink by name."""
        drops = {"buffer": self.dropped}
        for sink in self.sinks:
            drops[sink.name] = drops.get(sink.name, 0) + sink.dropped()
        if self.recorder is not None:
            drops[self.recorder.name] = self.recorder.dropped()
        return drops

    def close(self) -> None:
        """Write what is buffered, stop the thread, close the sinks."""
        self._stopped = True
        self._wake.set()
        if self._worker is not None:
            self._worker.join(timeout=5)
        for sink in self.sinks:
            sink.close()
        if self.recorder is not None:
            self.recorder.close()


class JsonLinesWriter(EventWriter):
    """An :class:`EventWriter` with one sink: ``stream``."""

    def __init__(self, stream: IO[bytes], *, capacity: int = 65_536, flush_interval: float = 0.2):
        super().__init__([StreamSink(stream)], capacity=capacity, flush_interval=flush_interval)
