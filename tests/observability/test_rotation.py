"""The file sink: rotation by size and by age, deletion past the retention age, and a file
rotated by another worker process."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from bastion.config.events import RotationConfig
from bastion.observability.sinks import rotating
from bastion.observability.sinks.rotating import RotatingFileSink


class Clock:
    def __init__(self) -> None:
        self.now = 1_764_000_000.0

    def __call__(self) -> float:
        return self.now


def line(n: int) -> bytes:
    return b'{"n":%d,"pad":"%s"}\n' % (n, b"x" * 80)


def every_line(directory: Path) -> list[bytes]:
    return [ln for p in sorted(directory.iterdir()) for ln in p.read_bytes().splitlines()]


def test_rotates_by_size_and_loses_nothing(tmp_path: Path) -> None:
    clock = Clock()
    rotation = RotationConfig(max_bytes=1024, interval=None)
    sink = RotatingFileSink(tmp_path / "events.jsonl", rotation, clock=clock)
    for n in range(50):
        clock.now += 1
        sink.write([line(n)])
    sink.close()
    rotated = sink.rotated_files()
    assert len(rotated) >= 4
    assert all(p.stat().st_size <= 1024 for p in [*rotated, tmp_path / "events.jsonl"])
    assert sorted(every_line(tmp_path)) == sorted(line(n).rstrip() for n in range(50))
    assert os.stat(tmp_path / "events.jsonl").st_mode & 0o777 == 0o600


def test_blocks_of_lines_rotate_between_two_lines(tmp_path: Path) -> None:
    """The event writer hands the file sink blocks of many lines: written whole while they fit,
    split at a line where a rotation falls within one, nothing lost or cut."""
    clock = Clock()
    rotation = RotationConfig(max_bytes=1024, interval=None)
    sink = RotatingFileSink(tmp_path / "events.jsonl", rotation, clock=clock)
    sink.write_blocks([line(0) + line(1), line(2)], 3)
    assert (tmp_path / "events.jsonl").read_bytes() == line(0) + line(1) + line(2)
    for first in range(3, 50, 7):
        clock.now += 1
        block = b"".join(line(n) for n in range(first, min(first + 7, 50)))
        sink.write_blocks([block], block.count(b"\n"))
    sink.close()
    rotated = sink.rotated_files()
    assert len(rotated) >= 4
    assert all(p.stat().st_size <= 1024 for p in [*rotated, tmp_path / "events.jsonl"])
    assert all(p.read_bytes().endswith(b"}\n") for p in rotated)
    assert sorted(every_line(tmp_path)) == sorted(line(n).rstrip() for n in range(50))


def test_blocks_of_lines_rotate_by_age(tmp_path: Path) -> None:
    clock = Clock()
    rotation = RotationConfig(max_bytes=10_000_000, interval=3600)
    sink = RotatingFileSink(tmp_path / "events.jsonl", rotation, clock=clock)
    sink.write_blocks([line(1) + line(2)], 2)
    clock.now += 3600
    sink.write_blocks([line(3), line(4)], 2)
    sink.close()
    (rotated,) = sink.rotated_files()
    assert rotated.read_bytes() == line(1) + line(2)
    assert (tmp_path / "events.jsonl").read_bytes() == line(3) + line(4)


def test_rotates_by_age(tmp_path: Path) -> None:
    clock = Clock()
    rotation = RotationConfig(max_bytes=10_000_000, interval=3600)
    sink = RotatingFileSink(tmp_path / "events.jsonl", rotation, clock=clock)
    sink.write([line(1)])
    clock.now += 1800
    sink.write([line(2)])
    assert sink.rotated_files() == []
    clock.now += 1800
    sink.write([line(3)])
    sink.close()
    (rotated,) = sink.rotated_files()
    assert rotated.name == "events.20251124T170000.jsonl"
    assert rotated.read_bytes() == line(1) + line(2)
    assert (tmp_path / "events.jsonl").read_bytes() == line(3)


def test_deletes_rotated_files_past_the_retention_age(tmp_path: Path) -> None:
    clock = Clock()
    rotation = RotationConfig(max_bytes=1024, interval=None, max_age=86_400)
    live = tmp_path / "events.jsonl"
    old = tmp_path / "events.20200101T000000.jsonl"
    recent = tmp_path / "events.20251124T150000.jsonl"
    unrelated = tmp_path / "other.20200101T000000.jsonl"
    for path, age in ((old, 3 * 86_400), (recent, 3600), (unrelated, 3 * 86_400)):
        path.write_bytes(b"{}\n")
        os.utime(path, (clock.now - age, clock.now - age))
    sink = RotatingFileSink(live, rotation, clock=clock)
    assert not old.exists()
    assert recent.exists()
    assert unrelated.exists()
    clock.now += 2 * 86_400
    for n in range(20):
        sink.write([line(n)])
    sink.close()
    assert not recent.exists()  # two days later it is past the age too
    assert unrelated.exists()


def test_follows_a_rotation_done_by_another_worker(tmp_path: Path) -> None:
    clock = Clock()
    path = tmp_path / "events.jsonl"
    rotation = RotationConfig(max_bytes=1024, interval=None)
    first = RotatingFileSink(path, rotation, clock=clock)
    second = RotatingFileSink(path, rotation, clock=clock)
    first.write([line(0)])
    for n in range(1, 12):
        clock.now += 1
        first.write([line(n)])  # rotates, the second one still holds the old file
    second.write([line(99)])
    first.close()
    second.close()
    assert line(99) in path.read_bytes()
    assert sorted(every_line(tmp_path)) == sorted(line(n).rstrip() for n in [*range(12), 99])


def test_pages_well_behind_the_write_head_are_left_to_the_kernel(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every ADVISE_EVERY bytes, the sink advises DONTNEED from the start of the file to
    KEEP_CACHED bytes behind what it wrote (a shipper tailing the file reads that from cache);
    the lines themselves are untouched."""
    advised: list[tuple[int, int, int]] = []
    monkeypatch.setattr(rotating, "KEEP_CACHED", 4096)
    monkeypatch.setattr(rotating, "ADVISE_EVERY", 2048)
    monkeypatch.setattr(os, "posix_fadvise", lambda fd, offset, length, advice: advised.append(
        (offset, length, advice)))  # fmt: skip
    sink = RotatingFileSink(tmp_path / "events.jsonl", RotationConfig(interval=None))
    lines = [line(n) for n in range(200)]
    for n in range(0, 200, 10):
        sink.write(lines[n : n + 10])
    size = len(b"".join(lines))
    assert advised, "no advice given"
    assert all(offset == 0 and advice == os.POSIX_FADV_DONTNEED for offset, _, advice in advised)
    ends = [length for _, length, _ in advised]
    assert ends == sorted(ends)
    assert size - 4096 - 2 * 2048 <= ends[-1] <= size - 4096
    sink.close()
    assert (tmp_path / "events.jsonl").read_bytes() == b"".join(lines)


def test_the_advice_follows_the_file_that_several_workers_append_to(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    advised: list[int] = []
    monkeypatch.setattr(rotating, "KEEP_CACHED", 1024)
    monkeypatch.setattr(rotating, "ADVISE_EVERY", 1024)
    monkeypatch.setattr(os, "posix_fadvise", lambda fd, offset, length, advice: advised.append(
        length))  # fmt: skip
    path = tmp_path / "events.jsonl"
    first = RotatingFileSink(path, RotationConfig(interval=None))
    second = RotatingFileSink(path, RotationConfig(interval=None))
    for n in range(0, 100, 10):
        first.write([line(i) for i in range(n, n + 10)])
    advised.clear()
    for n in range(0, 100, 10):
        second.write([line(i) for i in range(n, n + 10)])
    # the second worker wrote half the file, and advises up to near the end of all of it
    assert advised[-1] > path.stat().st_size - 1024 - 2 * 1024
    assert advised[-1] > path.stat().st_size // 2
    first.close()
    second.close()
