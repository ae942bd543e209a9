"""The file sink: JSON lines appended to one file, rotated by size and by age, old files deleted.

A rotated file is renamed ``<stem>.<UTC time><suffix>`` beside the live one (``events.jsonl``
becomes ``events.20261128T031500.jsonl``), which Filebeat, the Datadog agent and the CloudWatch
agent all follow with a glob. Rotated files older than ``max_age`` are deleted at each rotation
and once a minute. With several worker processes writing one file, each notices that another
rotated it (the inode changed) and reopens the new file.

Page cache: the sink tells the kernel (``posix_fadvise(DONTNEED)``) that the part of the file
more than :data:`KEEP_CACHED` bytes behind the write head will not be read again soon, every
:data:`ADVISE_EVERY` bytes written. Otherwise every line lands in a page the kernel has to find
fresh, and a log written at tens of MB/s fills memory with pages nobody reads, which then
crowds out others and makes each new one costlier to get (on a VM, writing into never-touched
pages measured several times slower than into recycled ones). The recent part stays cached, so
a shipper tailing the file (Filebeat, an agent) that is less than :data:`KEEP_CACHED` behind
reads from memory; one further behind reads from disk. Pages still dirty are not dropped (the
call starts their write-back); a later call drops them.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable
from pathlib import Path

from bastion.config.events import RotationConfig
from bastion.errors import describe
from bastion.observability.sinks import split_lines

logger = logging.getLogger("bastion.events")

CLEANUP_INTERVAL = 60.0
KEEP_CACHED = 16 * 1024 * 1024
"""Bytes behind the write head left in the page cache, for shippers that tail the file."""
ADVISE_EVERY = 4 * 1024 * 1024
"""Bytes written between two ``posix_fadvise`` calls."""
_DONTNEED = getattr(os, "POSIX_FADV_DONTNEED", None)  # not on macOS
_IOV_MAX = 1024  # buffers one writev takes (POSIX guarantees at least 16; Linux and BSDs 1024)


class RotatingFileSink:
    name = "file"

    def __init__(
        self,
        path: Path,
        rotation: RotationConfig,
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.path = path
        self.max_bytes = rotation.max_bytes
        self.interval = rotation.interval
        self.max_age = rotation.max_age
        self._clock = clock
        self._dropped = 0
        self._fd = -1
        self._ino = -1
        self._size = 0
        self._advised = 0  # the size at the last posix_fadvise
        self._opened = 0.0
        self._cleaned = 0.0
        path.parent.mkdir(parents=True, exist_ok=True)
        self._open()
        self.cleanup()

    def _open(self) -> None:
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        stat = os.fstat(fd)
        self._fd, self._ino, self._size = fd, stat.st_ino, stat.st_size
        self._advised = stat.st_size
        self._opened = self._clock()

    def _close_fd(self) -> None:
        if self._fd >= 0:
            self._uncache(self._size)
            os.close(self._fd)
            self._fd = -1

    def _uncache(self, size: int) -> None:
        """Let the kernel drop the cached pages more than ``KEEP_CACHED`` behind the end of the
        file (``size`` is what this process wrote; with several workers appending, the file is
        longer, so its end is asked for).

        From the start of the file each time: pages a previous call found dirty are clean by
        now, and the kernel skips the ranges with nothing cached quickly."""
        self._advised = size
        if _DONTNEED is None:
            return
        try:
            end = os.fstat(self._fd).st_size - KEEP_CACHED
            if end > 0:
                os.posix_fadvise(self._fd, 0, end, _DONTNEED)
        except OSError:  # advice only: a file system that does not take it changes nothing
            return

    def rotated_files(self) -> list[Path]:
        """The rotated files of this sink, oldest name first."""
        pattern = f"{self.path.stem}.*{self.path.suffix}"
        return sorted(p for p in self.path.parent.glob(pattern) if p != self.path)

    def _rotate(self) -> None:
        now = self._clock()
        stamp = time.strftime("%Y%m%dT%H%M%S", time.gmtime(now))
        target = self.path.with_name(f"{self.path.stem}.{stamp}{self.path.suffix}")
        n = 1
        while target.exists():
            target = self.path.with_name(f"{self.path.stem}.{stamp}-{n}{self.path.suffix}")
            n += 1
        try:
            if os.stat(self.path).st_ino == self._ino:  # not already rotated by another worker
                os.rename(self.path, target)
        except FileNotFoundError:
            pass
        self._close_fd()
        self._open()
        self.cleanup(force=True)

    def cleanup(self, *, force: bool = False) -> None:
        """Delete rotated files whose last write is older than ``max_age``."""
        now = self._clock()
        if not force and now - self._cleaned < CLEANUP_INTERVAL:
            return
        self._cleaned = now
        for old in self.rotated_files():
            try:
                if now - old.stat().st_mtime > self.max_age:
                    old.unlink()
            except FileNotFoundError:
                continue

    def _append(self, chunk: list[bytes]) -> None:
        """Write ``chunk`` (lines, or blocks of lines): one ``writev`` when the kernel takes it
        all, as it does for a regular file; what a short write left, in a loop."""
        if 1 < len(chunk) <= _IOV_MAX:
            written = os.writev(self._fd, chunk)
            total = sum(map(len, chunk))
            self._size += total
            if written < total:
                self._write_all(memoryview(b"".join(chunk))[written:])
        else:
            data = chunk[0] if len(chunk) == 1 else b"".join(chunk)
            self._size += len(data)
            self._write_all(memoryview(data))
        if self._size - self._advised >= ADVISE_EVERY:
            self._uncache(self._size)

    def _write_all(self, view: memoryview) -> None:
        while view:
            view = view[os.write(self._fd, view) :]

    def _follow(self) -> None:
        """Reopen the path if another process rotated (or someone removed) our file."""
        try:
            if os.stat(self.path).st_ino == self._ino:
                return
        except FileNotFoundError:
            pass
        self._close_fd()
        self._open()

    def write_blocks(self, blocks: list[bytes], count: int) -> None:
        """Append ``blocks`` (whole lines each, ``count`` in all) as they are, in one system
        call; line by line (:meth:`write`) when a rotation falls within them."""
        size = sum(map(len, blocks))
        if self._size + size > self.max_bytes or self._interval_due():
            self.write(split_lines(blocks))
            return
        try:
            self._follow()
            self._append(blocks)
            self.cleanup()
        except OSError as exc:
            self._dropped += count
            logger.error("event file %s: %d events lost: %s", self.path, count, describe(exc))

    def _interval_due(self) -> bool:
        return self.interval is not None and self._clock() - self._opened >= self.interval

    def write(self, lines: list[bytes]) -> None:
        """Append ``lines``, rotating between two lines so that no file grows past
        ``max_bytes`` (unless one line alone is larger)."""
        try:
            self._follow()
            if self._interval_due():
                if self._size > 0:
                    self._rotate()
                else:
                    self._opened = self._clock()
            if self._size + sum(map(len, lines)) <= self.max_bytes:  # the usual case: all fit
                self._append(lines)
                self.cleanup()
                return
            chunk: list[bytes] = []
            pending = 0
            for line in lines:
                filled = self._size + pending
                if filled > 0 and filled + len(line) > self.max_bytes:
                    self._append(chunk)
                    chunk, pending = [], 0
                    self._rotate()
                chunk.append(line)
                pending += len(line)
            if chunk:
                self._append(chunk)
            self.cleanup()
        except OSError as exc:
            self._dropped += len(lines)
            logger.error("event file %s: %d events lost: %s", self.path, len(lines), describe(exc))

    def dropped(self) -> int:
        return self._dropped

    def close(self) -> None:
        self._close_fd()
