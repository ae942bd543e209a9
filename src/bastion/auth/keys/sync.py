"""Keeps a gateway's :class:`~.index.KeyIndex` fresh, off the request path.

One background thread per gateway process reads the store's changes every
``auth.api_keys.refresh_interval`` (one indexed query that returns nothing when nothing changed,
so the default of half a second costs next to nothing) and writes the last-use times the request
path collected, in one batch every few seconds. When ``redis.url`` is set, a second thread
listens for change announcements (:mod:`.notify`): a revocation is applied to the index the
moment it is heard, and the store is read at once. A missed announcement is caught by the next
periodic read, so a revocation reaches every instance within about one interval either way.

The threads hold their owner only weakly: a gateway that is dropped without :meth:`close`
stops its threads within one interval.
"""

from __future__ import annotations

import logging
import threading
import time
import weakref
from collections.abc import Callable
from typing import Any

import redis

from bastion.auth.keys import notify
from bastion.auth.keys.hashing import KeyHasher
from bastion.auth.keys.index import KeyIndex
from bastion.config.backends import RedisConfig
from bastion.errors import describe
from bastion.store.records import KeyStore

logger = logging.getLogger("bastion.auth.keys")

Opener = Callable[[], tuple[KeyStore, KeyHasher] | None]
"""Opens the key store and the hasher; ``None`` while no store exists yet (no key was ever
created); raises :class:`~bastion.errors.StateError` when they exist but cannot be used."""

FLUSH_INTERVAL = 5.0
"""Seconds between writes of last-use times (one batched statement)."""


class KeySync:
    """The index, the store behind it, and the threads that keep them in step."""

    def __init__(
        self,
        index: KeyIndex,
        opener: Opener,
        *,
        interval: float,
        redis_config: RedisConfig | None = None,
        clock: Callable[[], float] = time.time,
        flush_interval: float = FLUSH_INTERVAL,
    ) -> None:
        self.index = index
        self.interval = interval
        self.flush_interval = flush_interval
        self.clock = clock
        self._opener = opener
        self._store: KeyStore | None = None
        self.used: dict[str, float] = {}
        """Last-use times not yet written, by key id. The request path writes into this very
        dict (the guard holds it), so it is emptied in place, never replaced."""
        self._redis = redis_config if redis_config is not None and redis_config.url else None
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._failing = False
        self._lock = threading.Lock()  # one refresh or flush at a time
        self._threads: list[threading.Thread] = []
        weakref.finalize(self, _stop_threads, self._stop, self._wake)

    # -- request path

    def record_use(self, key_id: str, now: float) -> None:
        """Remember that ``key_id`` was used at ``now`` (written later, in a batch)."""
        self.used[key_id] = now

    # -- background work

    def refresh(self) -> bool:
        """Read what changed in the store; whether anything did. Failures are logged once and
        leave the index as it was (the last known state keeps serving)."""
        with self._lock:
            try:
                changed = self._refresh()
            except Exception as exc:
                if not self._failing:
                    logger.error("API keys: the key store cannot be read: %s", describe(exc))
                    self._failing = True
                return False
            if self._failing:
                logger.warning("API keys: the key store can be read again")
                self._failing = False
            return changed

    def _refresh(self) -> bool:
        index = self.index
        if self._store is None:
            opened = self._opener()
            if opened is None:
                index.loaded = True  # no store yet: certainly no keys
                return False
            self._store, index.hasher = opened
        revision, records = self._store.changes(index.revision)
        if revision < index.revision:
            # The store went back in time (restored from a backup): what this index holds past
            # that point no longer exists, and later changes would reuse its revisions.
            logger.warning(
                "API keys: the key store's revision went back from %d to %d (restored?);"
                " reading every key again",
                index.revision,
                revision,
            )
            revision, records = self._store.changes(0)
            index.replace(revision, records)
            return True
        if not records and revision == index.revision and index.loaded:
            return False
        index.apply(revision, records)
        return bool(records)

    def flush(self) -> None:
        """Write the collected last-use times (one batch)."""
        used = self.used
        if not used or self._store is None:
            return
        batch = used.copy()
        used.clear()  # a use recorded between the copy and the clear is simply dropped
        with self._lock:
            try:
                self._store.touch(batch)
            except Exception as exc:
                logger.warning("API keys: last-use times not written: %s", describe(exc))

    def on_message(self, kind: str, key_id: str) -> None:
        if kind == "revoke":
            self.index.revoke(key_id, self.clock())
        self.wake()

    def wake(self) -> None:
        """Read the store now rather than at the next interval."""
        self._wake.set()

    def start(self) -> None:
        if self._threads:
            return
        # The threads get the events and a weak reference, never ``self`` itself.
        ref, wake, stop, interval = weakref.ref(self), self._wake, self._stop, self.interval
        workers: list[tuple[str, Callable[[], None]]] = [
            ("bastion-key-sync", lambda: _sync_loop(ref, wake, stop, interval))
        ]
        if self._redis is not None:
            config = self._redis
            workers.append(("bastion-key-notify", lambda: _listen(ref, stop, config)))
        for name, target in workers:
            thread = threading.Thread(target=target, name=name, daemon=True)
            thread.start()
            self._threads.append(thread)

    def close(self) -> None:
        """Stop the threads, write pending last-use times, close the store."""
        _stop_threads(self._stop, self._wake)
        for thread in self._threads:
            if thread is not threading.current_thread():
                thread.join(5)
        self._threads = []
        self.flush()
        store, self._store = self._store, None
        if store is not None:
            store.close()


def _stop_threads(stop: threading.Event, wake: threading.Event) -> None:
    stop.set()
    wake.set()


def _sync_loop(
    ref: weakref.ReferenceType[KeySync],
    wake: threading.Event,
    stop: threading.Event,
    interval: float,
) -> None:
    last_flush = time.monotonic()
    while not stop.is_set():
        sync = ref()
        if sync is None:
            return
        sync.refresh()
        if time.monotonic() - last_flush >= sync.flush_interval:
            sync.flush()
            last_flush = time.monotonic()
        del sync
        wake.wait(interval)
        wake.clear()


def _listen(
    ref: weakref.ReferenceType[KeySync], stop: threading.Event, config: RedisConfig
) -> None:
    backoff = 0.1
    failing = False
    while not stop.is_set():
        connection = notify.client(config)
        subscriber: Any = connection  # redis-py's annotations differ between its releases
        pubsub = subscriber.pubsub(ignore_subscribe_messages=True)
        try:
            pubsub.subscribe(notify.channel(config))
            if failing:
                logger.warning("API keys: listening for key changes on Redis again")
                failing = False
            backoff = 0.1
            sync = ref()
            if sync is None:
                return
            sync.wake()  # whatever was announced while not subscribed is read from the store
            del sync
            while not stop.is_set():
                message = pubsub.get_message(timeout=0.5)
                sync = ref()
                if sync is None:
                    return
                if message is not None:
                    parsed = notify.parse(message.get("data"))
                    if parsed is not None:
                        sync.on_message(*parsed)
                del sync
        except redis.RedisError as exc:
            if not failing:
                logger.error(
                    "API keys: Redis key-change channel lost (%s); relying on store reads",
                    type(exc).__name__,
                )
                failing = True
            stop.wait(backoff)
            backoff = min(backoff * 2, 5.0)
        finally:
            try:
                pubsub.close()
                connection.close()
            except redis.RedisError:
                pass
