"""Enumeration: a consumer (or an anonymous address) collecting 404s or walking identifiers.

Two signals per subject (the consumer, else ``ip:<address>``):

- *404s*: ``not_found`` answers 404 within a ``window``-second window fire once per window.
- *sequential walk*: for paths whose last (or second to last) segment is a number, the subject's
  previous number on the same path shape is kept; a step to a neighbour (``0 < |id - last| <=
  max_gap``) in the same direction as the previous step extends the run, anything else resets it
  (a repeat of the same id does neither). ``sequential`` consecutive steps fire, once per run.

Memory: ``max_keys`` (subject, path shape) pairs and as many 404 windows, plus the shapes of
the last 4,096 paths of at most 256 characters (a path repeats far more often than it is new).
With Redis, the 404 counts of all instances add up (see :mod:`.shared`); walks stay per
instance.
"""

from __future__ import annotations

from typing import ClassVar, cast

from bastion.config.monitoring import EnumerationConfig
from bastion.observability.alerts.model import Alert
from bastion.observability.detect.lru import Lru

_MAX_DIGITS = 18  # larger numbers are not counters
_MAX_SHAPE = 128  # a client chooses the path: its shape is cut so that memory stays bounded
_SHAPES = 4096  # paths whose shape is remembered (then all forgotten at once)
_SHAPED_PATH = 256  # longer paths are parsed each time: the memo stays under about 2 MB
_UNSEEN = object()  # a sentinel, compared by identity (an object: tuples are unboxed compiled)


class _Walk:
    __slots__ = ("direction", "fired", "first", "last", "run")

    def __init__(self, last: int) -> None:
        self.first = last
        self.last = last
        self.run = 0
        self.direction = 0
        self.fired = False


class _Count:
    __slots__ = ("consumer", "count", "fired", "index", "ip", "remote", "synced")

    def __init__(self, index: int, consumer: str | None, ip: str) -> None:
        self.index = index
        self.count = 0  # this process's 404s in the window
        self.remote = 0  # other instances' (shared mode, as of the last sync)
        self.synced = 0  # of ``count``, how many the shared total already has
        self.fired = False
        self.consumer = consumer
        self.ip = ip


def numbered(path: str) -> tuple[str, int] | None:
    """``(shape, id)`` when the last or second to last path segment is a decimal number:
    ``/users/42`` -> ``("/users/{id}", 42)``, ``/users/42/orders`` -> ``("/users/{id}/orders",
    42)``."""
    head, _, last = path.rpartition("/")
    if last.isdigit() and len(last) <= _MAX_DIGITS and last.isascii():
        return (head + "/{id}")[-_MAX_SHAPE:], int(last)
    head, _, middle = head.rpartition("/")
    if middle.isdigit() and len(middle) <= _MAX_DIGITS and middle.isascii():
        return f"{head}/{{id}}/{last}"[:_MAX_SHAPE], int(middle)
    return None


class EnumerationDetector:
    detector: ClassVar[str] = "enumeration"

    def __init__(self, config: EnumerationConfig) -> None:
        self.config = config
        self.walks: Lru[tuple[str, str], _Walk] = Lru(config.max_keys)
        self.misses: Lru[str, _Count] = Lru(config.max_keys)
        self.shared = False  # set by the Redis sharing: then touched 404 windows are remembered
        self.dirty: dict[str, _Count] = {}
        # numbered(path) by path: most requests repeat a path seen shortly before, and the
        # same shape object each time keeps its hash for the walk's key.
        self._shapes: dict[str, object] = {}

    def observe(
        self, subject: str, path: str, status: int, consumer: str | None, ip: str, now: float
    ) -> Alert | None:
        alert = None
        if status == 404:
            alert = self._missed(subject, consumer, ip, now)
        walked = self._walked(subject, path, consumer, ip, now)
        return alert or walked

    def _missed(self, subject: str, consumer: str | None, ip: str, now: float) -> Alert | None:
        index = int(now // self.config.window)
        count = self.misses.get(subject)
        if count is None or count.index != index:
            count = _Count(index, consumer, ip)
            self.misses.put(subject, count)
        count.count += 1
        if self.shared:
            self.dirty[subject] = count
        return self.check(subject, count, now)

    def check(self, subject: str, count: _Count, now: float) -> Alert | None:
        """The alert when the 404 window (all instances' answers) reached ``not_found``."""
        total = count.count + count.remote
        if count.fired or total < self.config.not_found:
            return None
        count.fired = True
        return Alert(
            detector=self.detector,
            key=f"enumeration:not_found:{subject}",
            summary=f"{subject} collected {total} answers 404 within {self.config.window:g} s",
            timestamp=now,
            severity="warning",
            evidence=_who(
                {"signal": "not_found", "count": total, "window_seconds": self.config.window},
                count.consumer,
                count.ip,
            ),
        )

    def _walked(
        self, subject: str, path: str, consumer: str | None, ip: str, now: float
    ) -> Alert | None:
        shapes = self._shapes
        known = shapes.get(path, _UNSEEN)
        if known is _UNSEEN:
            found = numbered(path)
            if len(path) <= _SHAPED_PATH:
                if len(shapes) >= _SHAPES:
                    shapes.clear()
                shapes[path] = found
        else:
            found = cast("tuple[str, int] | None", known)
        if found is None:
            return None
        shape, number = found
        key = (subject, shape)
        walk = self.walks.get(key)
        if walk is None:
            self.walks.put(key, _Walk(number))
            return None
        step = number - walk.last
        if step == 0:
            return None
        direction = 1 if step > 0 else -1
        if abs(step) <= self.config.max_gap and (walk.run == 0 or direction == walk.direction):
            if walk.run == 0:
                walk.first = walk.last
            walk.run += 1
        else:
            walk.run = 0
            walk.fired = False
        walk.direction = direction
        walk.last = number
        if walk.fired or walk.run < self.config.sequential:
            return None
        walk.fired = True
        return Alert(
            detector=self.detector,
            key=f"enumeration:sequential:{subject}:{shape}",
            summary=(
                f"{subject} walked {walk.run} sequential identifiers on {shape} "
                f"(from {walk.first} to {walk.last})"
            ),
            timestamp=now,
            severity="warning",
            evidence=_who(
                {
                    "signal": "sequential",
                    "path_shape": shape,
                    "steps": walk.run,
                    "first_id": walk.first,
                    "last_id": walk.last,
                },
                consumer,
                ip,
            ),
        )


def _who(evidence: dict[str, object], consumer: str | None, ip: str) -> dict[str, object]:
    evidence["ip"] = ip
    if consumer is not None:
        evidence["consumer"] = consumer
    return evidence
