"""Where a database's schema stands against the migrations this bastion ships.

A store opened by a gateway only *checks* the version (a gateway never changes a shared schema:
its database role may not even be allowed to); ``bastion db upgrade`` and the commands that
write records apply what is pending. A schema *ahead* of this release is accepted, since
migrations only add: that is the rolling upgrade, new instances next to old ones.
"""

from __future__ import annotations

from dataclasses import dataclass

from bastion.errors import StateError
from bastion.store.migrations import Migration


class SchemaBehind(StateError):
    """The database has not had every migration this release needs."""

    code = "store.schema_behind"


@dataclass(frozen=True, slots=True)
class Applied:
    """A row of ``schema_version``: what was applied, when (seconds since the epoch)."""

    version: int
    name: str
    applied_at: float
    checksum: str


@dataclass(frozen=True, slots=True)
class SchemaStatus:
    """The applied migrations, the shipped ones, and what lies between."""

    where: str
    applied: tuple[Applied, ...]
    shipped: tuple[Migration, ...]

    @property
    def current(self) -> int:
        return max((a.version for a in self.applied), default=0)

    @property
    def latest(self) -> int:
        return len(self.shipped)

    @property
    def pending(self) -> tuple[Migration, ...]:
        done = {a.version for a in self.applied}
        return tuple(m for m in self.shipped if m.version not in done)

    @property
    def modified(self) -> tuple[int, ...]:
        """Versions whose shipped file differs from the one that was applied."""
        shipped = {m.version: m.checksum for m in self.shipped}
        return tuple(
            a.version for a in self.applied if shipped.get(a.version, a.checksum) != a.checksum
        )


def require(where: str, current: int, needed: int) -> None:
    """Refuse a schema behind ``needed``, telling the operator the one command that fixes it."""
    if current < needed:
        raise SchemaBehind(
            f"{where} is at schema version {current}; this bastion needs version {needed};"
            " run `bastion db upgrade` (with the same --config) first"
        )
