"""The numbered schema migrations bastion ships, one SQL file each, per database dialect.

``postgres/NNNN_name.sql`` and ``sqlite/NNNN_name.sql`` are package data. Versions start at 1
and have no gaps; a file is never edited once released (its checksum is recorded when it is
applied, and ``bastion db status`` reports a file that changed since). Migrations only add
(tables, columns with defaults, indexes), so instances of the previous release keep working
against an upgraded schema during a rolling upgrade. PostgreSQL files name the schema as
``{schema}``, substituted as a quoted identifier (so a literal brace is written ``{{``); a
file is sent as one multi-statement query, without parameters.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from functools import cache
from importlib import resources
from typing import Literal

Dialect = Literal["postgres", "sqlite"]

_FILE = re.compile(r"^(\d{4})_([a-z0-9_]+)\.sql$")


@dataclass(frozen=True, slots=True)
class Migration:
    """One migration: its number, its name (from the file name) and its SQL text."""

    version: int
    name: str
    sql: str

    @property
    def checksum(self) -> str:
        return hashlib.sha256(self.sql.encode()).hexdigest()

    def __str__(self) -> str:
        return f"{self.version:04d}_{self.name}"


@cache
def shipped(dialect: Dialect) -> tuple[Migration, ...]:
    """Every migration for ``dialect``, in order; a gap or a duplicate number is a bug."""
    found: list[Migration] = []
    for entry in resources.files(__package__).joinpath(dialect).iterdir():
        match = _FILE.match(entry.name)
        if match is not None:
            found.append(Migration(int(match[1]), match[2], entry.read_text(encoding="utf-8")))
    found.sort(key=lambda m: m.version)
    numbers = [m.version for m in found]
    if numbers != list(range(1, len(found) + 1)):
        raise RuntimeError(f"{dialect} migrations are not numbered 1..n without gaps: {numbers}")
    return tuple(found)


def latest(dialect: Dialect) -> int:
    return len(shipped(dialect))
