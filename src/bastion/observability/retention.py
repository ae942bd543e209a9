"""Security events into the event store, and their purge by age, on a thread of their own.

The store is opened on that thread when the first event comes (a gateway that records none makes
no file), so a database that is down delays nothing: events queue (bounded) and the store is
tried again on the next batch. Every ``purge_interval`` the thread deletes events older than
``max_age``.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from bastion.errors import describe
from bastion.observability.ecs import StoredEvent
from bastion.observability.sinks.background import BUFFER_BYTES, BatchWorker
from bastion.store.events import EventStore

logger = logging.getLogger("bastion.events")

RETRY_OPEN = 5.0
_ROW_COLUMNS = 256  # a stored row besides its line: timestamp, action, outcome, user, address ...


class StoreRecorder(BatchWorker[StoredEvent]):
    name = "store"

    def __init__(
        self,
        opener: Callable[[], EventStore],
        *,
        max_age: float,
        purge_interval: float,
        capacity: int = 20_000,
        max_bytes: int = BUFFER_BYTES,
        flush_interval: float = 0.5,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._opener = opener
        self._store: EventStore | None = None
        self._next_open = 0.0
        self.max_age = max_age
        self.purge_interval = purge_interval
        self.purged = 0
        self._last_purge = 0.0
        self._clock = clock
        self.store_dropped = 0
        super().__init__(
            capacity=capacity, batch_size=1000, flush_interval=flush_interval, max_bytes=max_bytes
        )

    def weigh(self, item: StoredEvent) -> int:
        """The row's whole line, and its columns (short texts) at a fixed allowance."""
        return len(item.document) + _ROW_COLUMNS

    def _open(self) -> EventStore | None:
        if self._store is None and time.monotonic() >= self._next_open:
            try:
                self._store = self._opener()
            except Exception as exc:
                self._next_open = time.monotonic() + RETRY_OPEN
                logger.error("event store unavailable: %s", describe(exc))
        return self._store

    def idle(self) -> None:
        now = self._clock()
        store = self._store  # opened by the first event: a gateway that logs none makes no file
        if store is None or now - self._last_purge < self.purge_interval:
            return
        self._last_purge = now
        self.purged += store.purge(now - self.max_age)

    def handle(self, batch: list[StoredEvent]) -> None:
        store = self._open()
        if store is None:
            self.store_dropped += len(batch)
            return
        try:
            store.insert(batch)
        except Exception:
            self._store = None  # reopened on the next batch
            raise

    def dropped(self) -> int:
        return self.queue_dropped + self.store_dropped

    def close(self, timeout: float = 5.0) -> None:
        super().close(timeout)
        if self._store is not None:
            self._store.close()
