"""The admin listener's configuration: where it listens, who may call it, and what it keeps.

Admin tokens are never in the file: only their SHA-256 (``bastion admin token create`` prints a
new token once, with the line to paste here). A token has 256 bits of entropy, so a fast hash
is enough (nobody can guess a preimage) and lets the gateway compare in constant time.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Literal, Self

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from bastion.config.types import Duration, HostPort, ListenAddress

AdminRole = Literal["read-only", "operator", "admin"]
ROLE_RANK: dict[str, int] = {"read-only": 0, "operator": 1, "admin": 2}

_TOKEN_NAME = re.compile(r"^[a-z0-9][a-z0-9_.-]{0,63}$")
_TOKEN_HASH = re.compile(r"^sha256:[0-9a-f]{64}$")


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class AdminTokenConfig(_Model):
    """One admin token: a name the audit log shows, a role, and the hash of the secret (named
    ``token_hash`` so that an error about it never shows its value, should a token be pasted
    there by mistake)."""

    name: str
    role: AdminRole = "read-only"
    token_hash: str = Field(description="sha256:<64 hex digits> of the token (never the token)")

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        if not _TOKEN_NAME.match(value):
            raise ValueError("expected a lower-case name of letters, digits, '-', '_' or '.'")
        return value

    @field_validator("token_hash")
    @classmethod
    def _hash(cls, value: str) -> str:
        value = value.strip().lower()
        if not _TOKEN_HASH.match(value):
            raise ValueError(
                "expected sha256: and 64 hex digits, as printed by bastion admin token create"
            )
        return value


class AdminConfig(_Model):
    """The operator's listener: health, readiness, metrics, the admin API and the dashboard.

    Never the public port. ``/healthz``, ``/readyz`` and ``/metrics`` answer anyone who can reach
    it; ``/admin/...`` and ``/dashboard`` need an admin token (none configured: refused).
    """

    enabled: bool = True
    listen: ListenAddress = HostPort("127.0.0.1", 9901)
    tokens: tuple[AdminTokenConfig, ...] = ()
    audit_log: Path | None = Field(
        None, description="append-only JSON lines of admin calls; default state_dir/audit.log"
    )
    recent_events: int = Field(1000, ge=10, le=100_000, description="events kept for queries")
    session_ttl: Duration = Field(
        8 * 3600.0, gt=0, le=7 * 86400, description="how long a dashboard sign-in lasts"
    )

    @model_validator(mode="after")
    def _unique_tokens(self) -> Self:
        names = [t.name for t in self.tokens]
        twice = next((n for n in names if names.count(n) > 1), None)
        if twice is not None:
            raise ValueError(f"admin.tokens: the name {twice!r} is used twice; expected unique")
        hashes = [t.token_hash for t in self.tokens]
        if len(set(hashes)) != len(hashes):
            raise ValueError("admin.tokens: two tokens have the same hash; expected one each")
        return self
