"""Where formatted event lines go: a stream, rotated files, an Elasticsearch ``_bulk`` endpoint.

A sink's ``write`` runs on the event writer's thread, never on a request's path. A sink whose
destination may stall (the network) queues in a bounded buffer of its own and works on a thread
of its own (:class:`~bastion.observability.sinks.background.BatchWorker`), so one slow
destination cannot hold up the others.
"""

from __future__ import annotations

from typing import Protocol


class LineSink(Protocol):
    """Takes JSON lines (each ending in ``\\n``), already redacted.

    A sink may also have ``write_blocks(blocks: list[bytes], count: int)``: the same lines as
    blocks of whole lines (``count`` lines in all), which the event writer then hands it instead
    of single lines (the file sink writes them as they are)."""

    name: str

    def write(self, lines: list[bytes]) -> None: ...

    def dropped(self) -> int: ...

    def close(self) -> None: ...


def split_lines(blocks: list[bytes]) -> list[bytes]:
    """The lines of ``blocks`` (each of whole JSON lines), each with its ``\\n``. A JSON line holds
    no other line break: a string's control characters are escaped."""
    if len(blocks) == 1:
        return blocks[0].splitlines(keepends=True)
    return [line for block in blocks for line in block.splitlines(keepends=True)]
