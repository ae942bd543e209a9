"""The ``events`` section: where access and security events go, how long they are kept, and
what is redacted from them (see docs/logging.md)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Literal, Self

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from bastion.config.types import ByteSize, Duration

SinkName = Literal["stdout", "stderr", "file", "http", "none"]
_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_INDEX = re.compile(r"^[a-z0-9][a-z0-9_.+-]{0,254}$")


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class RotationConfig(_Model):
    """The ``file`` sink's rotation: a new file past a size or an age, old files deleted."""

    max_bytes: ByteSize = Field(100 * 1024 * 1024, ge=1024, description="rotate past this size")
    interval: Duration | None = Field(
        86_400.0, gt=0, description="rotate a file this old (none: by size only)"
    )
    max_age: Duration = Field(
        7 * 86_400.0, gt=0, description="delete rotated files older than this"
    )


class HttpSinkConfig(_Model):
    """The ``http`` sink: batches to an Elasticsearch/OpenSearch ``_bulk`` endpoint.

    Credentials are never written in the config: ``api_key_env`` and ``password_env`` name
    environment variables read at start."""

    url: str | None = Field(None, description="http(s)://host:port; /_bulk is added if missing")
    index: str = Field("bastion-events", description="the index (or data stream) written to")
    username: str | None = Field(None, description="basic authentication user")
    password_env: str | None = Field(None, description="environment variable holding the password")
    api_key_env: str | None = Field(
        None, description="environment variable holding an Elasticsearch API key"
    )
    batch_size: int = Field(500, ge=1, le=100_000, description="events per bulk request at most")
    flush_interval: Duration = Field(1.0, gt=0, description="send a partial batch this often")
    buffer: int = Field(20_000, ge=16, description="events held for the endpoint; beyond: dropped")
    timeout: Duration = Field(5.0, gt=0, description="one bulk request")
    retries: int = Field(5, ge=0, le=100, description="retries of a failed batch before drop")
    backoff: Duration = Field(0.5, gt=0, description="first retry delay; doubles, up to 30s")

    @field_validator("url")
    @classmethod
    def _url(cls, value: str | None) -> str | None:
        if value is not None and not re.match(r"^https?://[^/\s]+", value):
            raise ValueError("expected a URL starting with http:// or https://")
        return value

    @field_validator("index")
    @classmethod
    def _index(cls, value: str) -> str:
        if not _INDEX.match(value):
            raise ValueError("expected a lower-case index name such as bastion-events")
        return value

    @field_validator("password_env", "api_key_env")
    @classmethod
    def _env(cls, value: str | None) -> str | None:
        if value is not None and not _ENV_NAME.match(value):
            raise ValueError("expected an environment variable name such as ES_API_KEY")
        return value


class EventStoreConfig(_Model):
    """Security events kept in the state store (SQLite under ``state_dir``, or PostgreSQL when
    ``postgres.dsn`` is set) for ``bastion events``; purged past ``max_age``."""

    enabled: bool = True
    outcomes: tuple[Literal["success", "failure", "unknown"], ...] = Field(
        ("failure", "unknown"),
        description="which events are kept: refusals and warnings by default; add success to"
        " keep every successful authentication too (one row per request)",
    )
    max_age: Duration = Field(30 * 86_400.0, gt=0, description="purge events older than this")
    purge_interval: Duration = Field(3600.0, gt=0, description="how often the purge runs")


class RedactConfig(_Model):
    """What is removed from events beyond the built-in list (credentials, cookies, passwords)."""

    fields: tuple[str, ...] = Field(
        (), description="more field names whose values never appear (case-insensitive)"
    )
    path_patterns: tuple[str, ...] = Field(
        (), description="regular expressions; their matches in url.path are replaced"
    )

    @field_validator("path_patterns")
    @classmethod
    def _patterns(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for pattern in value:
            try:
                re.compile(pattern)
            except re.error as exc:
                raise ValueError(f"{pattern!r} is not a regular expression ({exc})") from None
        return value


class EventsConfig(_Model):
    """Where access and security events go (JSON lines, Elastic Common Schema).

    ``sink`` is one sink or a list of them: ``stdout``, ``stderr``, ``file`` (with ``path`` and
    ``rotation``), ``http`` (with ``http.url``), or ``none``."""

    sink: SinkName | tuple[SinkName, ...] = "stdout"
    path: Path | None = Field(None, description="the file of the file sink")
    buffer: int = Field(65_536, ge=16, description="events waiting for the writer; beyond: dropped")
    buffer_bytes: int = Field(
        64 * 1024 * 1024,
        ge=64 * 1024,
        description="bytes of lines waiting for the writer; beyond: dropped",
    )
    access: bool = Field(True, description="an access event for every request")
    rotation: RotationConfig = RotationConfig()
    http: HttpSinkConfig = HttpSinkConfig()
    store: EventStoreConfig = EventStoreConfig()
    redact: RedactConfig = RedactConfig()

    @property
    def sinks(self) -> tuple[str, ...]:
        """The sinks as a tuple without ``none``."""
        names = (self.sink,) if isinstance(self.sink, str) else self.sink
        return tuple(dict.fromkeys(n for n in names if n != "none"))

    @model_validator(mode="after")
    def _sinks_complete(self) -> Self:
        names = (self.sink,) if isinstance(self.sink, str) else self.sink
        if "none" in names and len(names) > 1:
            raise ValueError("sink 'none' cannot be combined with other sinks")
        if "file" in names and self.path is None:
            raise ValueError("sink 'file' needs events.path")
        if "http" in names and self.http.url is None:
            raise ValueError("sink 'http' needs events.http.url")
        return self
