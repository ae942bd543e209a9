"""The admin API's events query answered from the persistent event store.

The in-memory ring (:class:`~bastion.control.recent.RecentEvents`) holds what this process (or
this machine's workers) saw since it started; the event store holds what every gateway sharing
it recorded, for ``events.store.max_age``. When the store is configured the admin API asks it
first, through the same :class:`~bastion.control.recent.EventQuery` contract, and falls back to
the ring only when it cannot be read. Documents come back exactly as the sinks wrote them
(redacted ECS lines), newest first.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable
from typing import Any

import orjson

from bastion.control.recent import EventQuery
from bastion.errors import StateError
from bastion.store.events import EventQuery as StoreQuery
from bastion.store.events import EventStore


def store_query(query: EventQuery) -> StoreQuery:
    """The admin query in the store's terms (``action`` stays a plain prefix)."""
    return StoreQuery(
        since=query.since,
        until=query.until,
        user_id=query.consumer or None,
        client_ip=query.ip or None,
        outcome=query.outcome or None,
        action_prefix=query.action or None,
        limit=query.limit,
        newest_first=True,
    )


class StoredEvents:
    """An :class:`~bastion.control.recent.EventSource` over an event store, opened at the first
    query (called off the event loop: every call is blocking I/O) and again after a failure."""

    def __init__(self, opener: Callable[[], EventStore]) -> None:
        self._opener = opener
        self._store: EventStore | None = None
        self._lock = threading.Lock()

    def query(self, query: EventQuery) -> list[dict[str, Any]]:
        with self._lock:
            try:
                if self._store is None:
                    self._store = self._opener()
                found = self._store.query(store_query(query))
            except StateError:
                self._reset()
                raise
        return [orjson.loads(event.document) for event in found]

    def _reset(self) -> None:
        store, self._store = self._store, None
        if store is not None:
            with contextlib.suppress(Exception):  # a broken store: nothing left to close
                store.close()

    def close(self) -> None:
        with self._lock:
            self._reset()
