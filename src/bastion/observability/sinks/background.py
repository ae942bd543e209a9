"""A bounded queue with a thread of its own, for sinks whose destination may stall."""

from __future__ import annotations

import collections
import logging
import threading
import time
from typing import Generic, TypeVar

from bastion.errors import describe

T = TypeVar("T")
logger = logging.getLogger("bastion.events")


BUFFER_BYTES = 64 * 1024 * 1024
"""The default bound on the bytes each buffer of events holds (``events.buffer_bytes``): the
event writer's, and the queue of each sink with a thread of its own. A client chooses how long
its path, request id and Host are, so what waits for a stalled destination is bounded in memory
too, not only in number."""


class BatchWorker(Generic[T]):
    """Items are put without ever blocking (beyond ``capacity`` items, or ``max_bytes`` of them
    by :meth:`weigh`, they are dropped and counted); the thread hands them to :meth:`handle` in
    batches of up to ``batch_size``, at least every ``flush_interval`` seconds."""

    name = "worker"

    def __init__(
        self,
        *,
        capacity: int,
        batch_size: int,
        flush_interval: float,
        max_bytes: int = BUFFER_BYTES,
    ) -> None:
        self._queue: collections.deque[T] = collections.deque()
        self._capacity = capacity
        self._max_bytes = max_bytes
        # The queue's bytes: added by the thread that puts, taken off by this worker's thread
        # (each counter has one writer, so neither loses an update).
        self._bytes_in = 0
        self._bytes_out = 0
        self._batch_size = batch_size
        self._interval = flush_interval
        self._wake = threading.Event()
        self._stopping = False
        self._deadline = float("inf")  # while closing: give up on the destination after this
        self.queue_dropped = 0
        self.handled = 0
        self._thread = threading.Thread(target=self._run, name=f"bastion-{self.name}", daemon=True)
        self._thread.start()

    def put(self, items: list[T]) -> None:
        room = max(self._capacity - len(self._queue), 0)
        queued = self._bytes_in - self._bytes_out
        taken = 0
        for item in items[:room]:
            if queued >= self._max_bytes:
                break
            weight = self.weigh(item)
            queued += weight
            self._bytes_in += weight
            taken += 1
        if taken < len(items):
            self.queue_dropped += len(items) - taken
            items = items[:taken]
        self._queue.extend(items)
        if len(self._queue) >= self._batch_size:
            self._wake.set()

    def weigh(self, item: T) -> int:
        """About the bytes ``item`` holds while queued (its line, for the sinks of events)."""
        raise NotImplementedError

    def handle(self, batch: list[T]) -> None:
        raise NotImplementedError

    def idle(self) -> None:
        """Called when the thread wakes (periodic work such as purging); default nothing."""

    @property
    def closing(self) -> bool:
        return self._stopping and time.monotonic() > self._deadline

    def _take(self) -> list[T]:
        batch: list[T] = []
        queue = self._queue
        while queue and len(batch) < self._batch_size:
            item = queue.popleft()
            self._bytes_out += self.weigh(item)
            batch.append(item)
        return batch

    def _run(self) -> None:
        while True:
            if not self._queue:
                if self._stopping:
                    return
                self._wake.wait(self._interval)
                self._wake.clear()
            try:
                self.idle()
            except Exception as exc:
                logger.error("%s: periodic work failed: %s", self.name, describe(exc))
            batch = self._take()
            if not batch:
                continue
            try:
                self.handle(batch)
                self.handled += len(batch)
            except Exception as exc:
                self.queue_dropped += len(batch)
                logger.error("%s: %d events lost: %s", self.name, len(batch), describe(exc))

    def close(self, timeout: float = 5.0) -> None:
        """Hand over what is queued (up to ``timeout`` seconds), then stop the thread."""
        self._deadline = time.monotonic() + timeout
        self._stopping = True
        self._wake.set()
        self._thread.join(timeout + 1.0)
