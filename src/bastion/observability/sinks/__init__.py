"""Where formatted event lines go: a stream, rotated files, an Elasticsearch ``_bulk`` endpoint.

A sink's ``write`` runs on the event writer's thread, never on a request's path. A sink whose
destination may stall (the network) queues in a bounded buffer of its own and works on a thread
of its own (:class:`~bastion.observability.sinks.background.BatchWorker`), so one slow
destination cannot hold up the others.
"""

from __future__ import annotations

from typing import Protocol


class LineSink(Protocol):
    """Takes JSON lines (each ending in ``\\n``), already redacted."""

    name: str

    def write(self, lines: list[bytes]) -> None: ...

    def dropped(self) -> int: ...

    def close(self) -> None: ...
