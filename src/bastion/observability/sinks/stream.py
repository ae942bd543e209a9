"""The stdout / stderr sink: lines written as they come, for a container runtime or an agent
that tails the process output.

With several worker processes sharing one stdout pipe, a write larger than ``PIPE_BUF`` may be
interleaved with another worker's, cutting a line in two. So when the stream has a file
descriptor, lines go out with ``os.write`` in chunks of whole lines no larger than ``PIPE_BUF``,
which POSIX writes to a pipe in one piece. A regular file (``bastion serve > events.jsonl``)
takes each write whole, so there the writer's blocks of lines go out as they are.
"""

from __future__ import annotations

import contextlib
import io
import os
import select
import stat
from typing import IO

from bastion.observability.sinks import split_lines

ATOMIC = getattr(select, "PIPE_BUF", 512)


def chunks(lines: list[bytes], limit: int = ATOMIC) -> list[bytes]:
    """``lines`` joined into as few pieces as possible, each of whole lines and at most
    ``limit`` bytes (a longer line is a piece of its own)."""
    pieces: list[bytes] = []
    current: list[bytes] = []
    size = 0
    for line in lines:
        if current and size + len(line) > limit:
            pieces.append(b"".join(current))
            current, size = [], 0
        current.append(line)
        size += len(line)
    if current:
        pieces.append(b"".join(current))
    return pieces


class StreamSink:
    """Writes lines to ``stream``; a broken stream drops (and counts) the lines."""

    def __init__(self, stream: IO[bytes], name: str = "stdout") -> None:
        self.name = name
        self._stream = stream
        self._dropped = 0
        self._fd: int | None = None
        self._regular = False  # a regular file: no chunking needed
        with contextlib.suppress(OSError, ValueError, io.UnsupportedOperation, AttributeError):
            self._fd = stream.fileno()
            stream.flush()
            self._regular = stat.S_ISREG(os.fstat(self._fd).st_mode)

    def write_blocks(self, blocks: list[bytes], count: int) -> None:
        """Blocks of whole lines: as they are to a regular file, else as :meth:`write`."""
        if self._fd is None or not self._regular:
            self.write(split_lines(blocks))
            return
        try:
            for block in blocks:
                view = memoryview(block)
                while view:
                    view = view[os.write(self._fd, view) :]
        except (OSError, ValueError):
            self._dropped += count

    def write(self, lines: list[bytes]) -> None:
        try:
            if self._fd is None:
                self._stream.write(b"".join(lines))
                self._stream.flush()
                return
            for piece in chunks(lines):
                view = memoryview(piece)
                while view:
                    view = view[os.write(self._fd, view) :]
        except (OSError, ValueError):
            self._dropped += len(lines)

    def dropped(self) -> int:
        return self._dropped

    def close(self) -> None:
        with contextlib.suppress(OSError, ValueError):
            self._stream.flush()
