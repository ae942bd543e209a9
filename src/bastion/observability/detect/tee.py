"""The sink bastion's events go through when monitoring is on: every event goes on to the
configured sink unchanged, and a copy to the monitor (credential stuffing reads failed logins).

The monitor writes its own alert events to the configured sink directly, never back through
here, so an alert cannot feed a detector. Compiled (setup.py): it is on every security event's
path.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from bastion.observability.detect.monitor import Monitor
from bastion.observability.events import EventSink, SecurityEvent


class MonitoredSink:
    __slots__ = ("_emit", "inner", "monitor")

    def __init__(self, inner: EventSink, monitor: Monitor) -> None:
        self.inner = inner
        self.monitor = monitor
        # Bound once: looking ``emit`` up on the inner sink per event (a Python class with a
        # ``__getattr__`` of its own, the Tee) cost more than the monitor's own work.
        self._emit: Callable[[SecurityEvent], None] = inner.emit

    def emit(self, event: SecurityEvent) -> None:
        self._emit(event)
        self.monitor.event(event)

    def __getattr__(self, name: str) -> Any:
        """Anything else is the configured sink's (its counters, ``flush``...): the tee is
        transparent to code that inspects the sink it was given."""
        if name in ("_emit", "inner", "monitor"):  # not set yet: no recursion through inner
            raise AttributeError(name)
        return getattr(self.inner, name)

    def close(self) -> None:
        """Stop alert delivery (what is queued is sent first), then close the inner sink."""
        self.monitor.stop_delivery()
        close = getattr(self.inner, "close", None)
        if callable(close):
            close()
