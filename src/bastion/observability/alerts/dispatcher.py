"""Alert delivery off the request path: a bounded queue, one background thread, retries.

``offer`` is called on the serving thread (by the detectors' monitor) and returns at once: it
applies the cooldown and appends to a bounded queue (a full queue drops the alert, counts it and
logs it). The delivery thread sends each alert to every sink; a failed delivery to one sink is
retried with exponential back-off (``backoff``, doubled up to ``backoff_max``, ``retries`` times)
without holding up other alerts or other sinks, and every failure is logged.
"""

from __future__ import annotations

import heapq
import itertools
import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence

from bastion.errors import describe
from bastion.observability.alerts.cooldown import Cooldown
from bastion.observability.alerts.model import Alert, AlertSink, DeliveryError, inert

logger = logging.getLogger("bastion.alerts")

# (due on the monotonic clock, tie-breaker, attempt number, sink, alert)
_Retry = tuple[float, int, int, AlertSink, Alert]


class AlertDispatcher:
    """Deduplicates alerts and delivers them to ``sinks`` on a background thread.

    ``clock`` (wall time) drives the cooldown; retry delays use the monotonic clock. The thread
    starts with the first alert, so building a dispatcher costs nothing until one fires.
    """

    def __init__(
        self,
        sinks: Sequence[AlertSink],
        *,
        cooldown: float = 600.0,
        queue: int = 1_000,
        retries: int = 5,
        backoff: float = 1.0,
        backoff_max: float = 300.0,
        max_keys: int = 10_000,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.sinks = tuple(sinks)
        self.cooldown = Cooldown(cooldown, max_keys=max_keys, clock=clock)
        self.capacity = queue
        self.retries = retries
        self.backoff = backoff
        self.backoff_max = backoff_max
        self.delivered = 0  # (alert, sink) deliveries that succeeded
        self.failed = 0  # (alert, sink) deliveries given up after the last retry
        self.dropped = 0  # alerts refused by a full queue
        self._queue: deque[Alert] = deque()
        self._retries: list[_Retry] = []
        self._order = itertools.count()
        self._lock = threading.Condition()
        self._thread: threading.Thread | None = None
        self._stopping = False
        self._busy = 0

    def offer(self, alert: Alert) -> Alert | None:
        """:meth:`admit`, then :meth:`deliver` what was admitted."""
        admitted = self.admit(alert)
        if admitted is not None:
            self.deliver(admitted)
        return admitted

    def admit(self, alert: Alert) -> Alert | None:
        """``alert`` carrying the count of repeats held back, unless its key is cooling down
        (then ``None``)."""
        repeats = self.cooldown.admit(alert.key, alert.timestamp)
        if repeats is None:
            return None
        return alert.with_repeats(repeats) if repeats else alert

    def deliver(self, alert: Alert) -> None:
        """Queue ``alert`` for every sink; returns at once (a full queue drops it, counted)."""
        if not self.sinks:
            return
        with self._lock:
            if self._stopping:
                return
            if len(self._queue) >= self.capacity:
                self.dropped += 1
                logger.warning(
                    "alert queue full (%d): %s (%s) dropped",
                    self.capacity,
                    alert.action,
                    inert(alert.key),  # a key may quote a client's line break: one log line
                )
                return
            self._queue.append(alert)
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._run, name="bastion-alerts", daemon=True
                )
                self._thread.start()
            self._lock.notify()

    @property
    def pending(self) -> int:
        """Alerts queued, retries scheduled and deliveries under way."""
        with self._lock:
            return len(self._queue) + len(self._retries) + self._busy

    def _next(self) -> tuple[int, AlertSink | None, Alert] | None:
        """The next job (waiting for one): a due retry first, then a new alert (every sink)."""
        with self._lock:
            while True:
                now = time.monotonic()
                if self._retries and self._retries[0][0] <= now:
                    _, _, attempt, sink, alert = heapq.heappop(self._retries)
                    self._busy += 1
                    return attempt, sink, alert
                if self._queue:
                    self._busy += 1
                    return 1, None, self._queue.popleft()
                if self._stopping:
                    return None
                timeout = self._retries[0][0] - now if self._retries else None
                self._lock.wait(timeout)

    def _run(self) -> None:
        while (job := self._next()) is not None:
            attempt, sink, alert = job
            try:
                for target in (sink,) if sink is not None else self.sinks:
                    self._attempt(target, alert, attempt)
            finally:
                with self._lock:
                    self._busy -= 1
                    self._lock.notify_all()

    def _attempt(self, sink: AlertSink, alert: Alert, attempt: int) -> None:
        try:
            sink.deliver(alert)
        except (DeliveryError, OSError) as exc:
            reason = str(exc) if isinstance(exc, DeliveryError) else describe(exc)
        except Exception as exc:  # a sink's bug must not kill the delivery thread
            reason = describe(exc)
        else:
            self.delivered += 1
            return
        if attempt <= self.retries and not self._stopping:
            with self._lock:
                # Retries wait in memory like queued alerts and are bounded like them: with a
                # sink down and a flood of distinct alerts (keys a client can vary), they would
                # otherwise pile up for as long as the back-off lasts.
                full = len(self._retries) >= self.capacity
            if full:
                self.failed += 1
                logger.error(
                    "alert %s (%s) not delivered to %s: %s; retry queue full (%d), not retried",
                    alert.action, inert(alert.key), sink.name, reason, self.capacity,
                )  # fmt: skip
                return
        if attempt > self.retries or self._stopping:
            self.failed += 1
            logger.error(
                "alert %s (%s) not delivered to %s after %d attempts: %s",
                alert.action, inert(alert.key), sink.name, attempt, reason,
            )  # fmt: skip
            return
        delay = min(self.backoff * 2 ** (attempt - 1), self.backoff_max)
        logger.warning(
            "alert %s (%s) to %s failed (attempt %d of %d): %s; retrying in %.3g s",
            alert.action, inert(alert.key), sink.name, attempt, self.retries + 1, reason, delay,
        )  # fmt: skip
        with self._lock:
            due = time.monotonic() + delay
            heapq.heappush(self._retries, (due, next(self._order), attempt + 1, sink, alert))
            self._lock.notify()

    def flush(self, timeout: float = 5.0) -> bool:
        """Wait until nothing is queued, scheduled or under way; false on timeout."""
        deadline = time.monotonic() + timeout
        with self._lock:
            while self._queue or self._retries or self._busy:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._lock.wait(min(left, 0.05))
        return True

    def close(self, timeout: float = 5.0) -> None:
        """Deliver what is queued (one attempt each, no new retries), then stop the thread."""
        with self._lock:
            self._stopping = True
            self._retries.clear()
            self._lock.notify_all()
        thread = self._thread
        if thread is not None:
            thread.join(timeout)
