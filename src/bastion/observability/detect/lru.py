"""A bounded mapping that forgets the least recently used key: every detector's memory bound.

A plain dict from key to entry, and the entries in a doubly linked list, most recently used
first. Compiled (setup.py), a hit is one dict probe and a few pointer writes: no method call
into ``collections.OrderedDict`` per request (``get`` and ``move_to_end`` through the generic
call path cost more than the rest of a detector's work).
"""

from __future__ import annotations

from typing import Generic, TypeVar, cast

K = TypeVar("K")
V = TypeVar("V")


class _Entry:
    __slots__ = ("key", "newer", "older", "value")

    def __init__(self, key: object, value: object) -> None:
        self.key = key
        self.value = value
        self.newer: _Entry | None = None
        self.older: _Entry | None = None


class Lru(Generic[K, V]):
    """At most ``capacity`` entries; ``get`` and ``put`` mark a key as used. ``evicted`` counts
    the keys forgotten to stay within the bound (reported, so an operator can size it)."""

    __slots__ = ("_index", "_newest", "_oldest", "capacity", "evicted")

    def __init__(self, capacity: int) -> None:
        if capacity < 1:
            raise ValueError("an LRU needs a capacity of at least 1")
        self.capacity = capacity
        self.evicted = 0
        self._index: dict[object, _Entry] = {}
        self._newest: _Entry | None = None
        self._oldest: _Entry | None = None

    def get(self, key: K) -> V | None:
        entry = self._index.get(key)
        if entry is None:
            return None
        if entry is not self._newest:
            self._unlink(entry)
            self._push(entry)
        return cast(V, entry.value)

    def put(self, key: K, value: V) -> None:
        entry = self._index.get(key)
        if entry is not None:
            entry.value = value
            if entry is not self._newest:
                self._unlink(entry)
                self._push(entry)
            return
        entry = _Entry(key, value)
        self._index[key] = entry
        self._push(entry)
        if len(self._index) > self.capacity:
            oldest = self._oldest
            assert oldest is not None
            self._unlink(oldest)
            del self._index[oldest.key]
            self.evicted += 1

    def _unlink(self, entry: _Entry) -> None:
        newer, older = entry.newer, entry.older
        if newer is None:
            self._newest = older
        else:
            newer.older = older
        if older is None:
            self._oldest = newer
        else:
            older.newer = newer
        entry.newer = entry.older = None

    def _push(self, entry: _Entry) -> None:
        newest = self._newest
        entry.older = newest
        if newest is None:
            self._oldest = entry
        else:
            newest.newer = entry
        self._newest = entry

    def keys(self) -> list[K]:
        """The keys, least recently used first."""
        keys: list[K] = []
        entry = self._oldest
        while entry is not None:
            keys.append(cast(K, entry.key))
            entry = entry.newer
        return keys

    def __len__(self) -> int:
        return len(self._index)

    def __contains__(self, key: object) -> bool:
        return key in self._index
