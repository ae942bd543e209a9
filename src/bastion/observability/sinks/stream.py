"""The stdout / stderr sink: lines written as they come, for a container runtime or an agent
that tails the process output."""

from __future__ import annotations

import contextlib
from typing import IO


class StreamSink:
    """Writes lines to ``stream``; a broken stream drops (and counts) the lines."""

    def __init__(self, stream: IO[bytes], name: str = "stdout") -> None:
        self.name = name
        self._stream = stream
        self._dropped = 0

    def write(self, lines: list[bytes]) -> None:
        try:
            self._stream.write(b"".join(lines))
            self._stream.flush()
        except (OSError, ValueError):
            self._dropped += len(lines)

    def dropped(self) -> int:
        return self._dropped

    def close(self) -> None:
        with contextlib.suppress(OSError, ValueError):
            self._stream.flush()
