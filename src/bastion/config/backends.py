"""Connections to the shared backends: Redis (counters, revocations, notifications) and
PostgreSQL (consumers, keys, signing keys, events). Both are optional; without them bastion keeps
its state in memory and in SQLite under ``state_dir``."""

from __future__ import annotations

import re

from pydantic import BaseModel, ConfigDict, Field, field_validator

from bastion.config.types import Duration

_PREFIX = re.compile(r"^[A-Za-z0-9_.:-]{0,64}$")
_SCHEMA = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class RedisConfig(_Model):
    """A Redis server shared by every gateway instance. Unset ``url``: no Redis."""

    url: str | None = Field(None, description="redis://[user:password@]host:port/db or rediss://")
    key_prefix: str = Field("bastion:", description="prefix of every key bastion writes")
    connect_timeout: Duration = Field(1.0, gt=0)
    command_timeout: Duration = Field(0.25, gt=0, description="one round trip, batch included")

    @field_validator("url")
    @classmethod
    def _url(cls, value: str | None) -> str | None:
        if value is not None and not re.match(r"^(redis|rediss|unix)://", value):
            raise ValueError("expected a URL starting with redis://, rediss:// or unix://")
        return value

    @field_validator("key_prefix")
    @classmethod
    def _prefix(cls, value: str) -> str:
        if not _PREFIX.match(value):
            raise ValueError("expected up to 64 letters, digits or '_.:-' (no braces or spaces)")
        return value


class PostgresConfig(_Model):
    """A PostgreSQL database shared by every gateway instance. Unset ``dsn``: SQLite."""

    dsn: str | None = Field(None, description="postgresql://user[:password]@host:port/db")
    db_schema: str = Field("bastion", alias="schema", description="schema bastion's tables live in")

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    @field_validator("dsn")
    @classmethod
    def _dsn(cls, value: str | None) -> str | None:
        if value is not None and not re.match(r"^postgres(ql)?://", value):
            raise ValueError("expected a URL starting with postgresql://")
        return value

    @field_validator("db_schema")
    @classmethod
    def _schema(cls, value: str) -> str:
        if not _SCHEMA.match(value):
            raise ValueError("expected a lower-case SQL identifier")
        return value
