"""What the admin plane's recent-events ring costs on the request path, side by side.

Every security event a guard decides goes to the configured sink; a serving process also tees
it into :class:`bastion.control.recent.RecentEvents` (for ``GET /admin/events`` and the
dashboard). This times ``emit`` of the configured sink alone against the tee of both,
alternating the order in every round, for an allowed event (``auth.success``, one per
authenticated request) and a refusal (counted per source as well). The sink is the request-path
half of ``JsonLinesWriter.emit`` (a bounded buffer append) without its writer thread, whose GIL
share would otherwise make the timings random. Prints ns per event and the ratio; numbers on a
shared machine are noisy.

    .venv/bin/python bench/admin_events.py            # ~10 s
    .venv/bin/python bench/admin_events.py --rounds 3 # quicker
"""

from __future__ import annotations

import argparse
import collections
import statistics
import time
import timeit

from bastion.control.recent import RecentEvents, Tee
from bastion.observability.events import EventSink, SecurityEvent

N = 100_000


class BufferSink:
    """``JsonLinesWriter.emit`` as the request path runs it: a bounded append, drops counted."""

    def __init__(self, capacity: int = 65_536) -> None:
        self._buffer: collections.deque[SecurityEvent] = collections.deque()
        self._capacity = capacity
        self.dropped = 0

    def emit(self, event: SecurityEvent) -> None:
        if len(self._buffer) >= self._capacity:
            self.dropped += 1
            return
        self._buffer.append(event)
        if len(self._buffer) >= self._capacity:
            self._buffer.clear()  # the writer thread's drain, done here between batches


def per_event(sink: EventSink, event: SecurityEvent) -> float:
    emit = sink.emit
    return min(timeit.repeat(lambda: emit(event), number=N, repeat=3)) / N * 1e9


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=7)
    args = parser.parse_args()
    allowed = SecurityEvent(
        "auth.success", "success", time.time(), "api_key", client_ip="198.51.100.7",
        user_id="acme",
    )  # fmt: skip
    refused = SecurityEvent(
        "auth.invalid_key", "failure", time.time(), "api_key", client_ip="198.51.100.7",
        status=401,
    )  # fmt: skip
    for name, event in (("allowed event", allowed), ("refusal", refused)):
        ratios, alone, teed = [], [], []
        for round_ in range(args.rounds):
            writer = BufferSink()
            tee = Tee([BufferSink(), RecentEvents(1000)])
            if round_ % 2:
                b = per_event(tee, event)
                a = per_event(writer, event)
            else:
                a = per_event(writer, event)
                b = per_event(tee, event)
            alone.append(a)
            teed.append(b)
            ratios.append(a / b)
        a, b = statistics.median(alone), statistics.median(teed)
        print(
            f"{name:14} sink alone {a:5.0f} ns/event   sink + ring {b:5.0f} ns/event   "
            f"ratio {statistics.median(ratios):.2f}x   (+{b - a:.0f} ns per event)"
        )


if __name__ == "__main__":
    main()
