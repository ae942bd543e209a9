"""Configuration of practice 5's detectors and alerts (``monitoring:`` in the YAML file).

Every detector has a documented threshold, a minimum count (so a quiet API never pages anyone)
and a memory bound (``max_keys``): past it the least recently seen key is forgotten. See
docs/monitoring.md for tuning.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated, Literal, Self
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from bastion.config.types import ByteSize, Duration

_ENV = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,127}$")
_HEADER = re.compile(r"^[!#$%&'*+.^_`|~0-9A-Za-z-]+$")

SpikeStatus = Literal["4xx", "401", "403", "404", "429"]
SpikeScope = Literal["consumer", "ip", "overall"]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class SpikesConfig(_Model):
    """Error-status spikes: a window's count against a moving average of earlier windows."""

    enabled: bool = True
    statuses: tuple[SpikeStatus, ...] = ("4xx", "401", "403", "429")
    scopes: tuple[SpikeScope, ...] = ("consumer", "ip", "overall")
    window: Duration = Field(60.0, gt=0, description="length of one counting window")
    factor: float = Field(4.0, gt=1, description="fire when a window exceeds factor x baseline")
    min_count: int = Field(30, ge=1, description="per consumer / IP: never fire below it")
    overall_min_count: int = Field(200, ge=1, description="whole gateway: never fire below it")
    smoothing: float = Field(
        0.2, gt=0, le=1, description="weight of the newest window in the moving average"
    )
    warmup_windows: int = Field(
        3, ge=0, description="windows the overall baseline learns before it may fire"
    )
    max_keys: int = Field(20_000, ge=16, description="consumers and IPs remembered (LRU)")


class PayloadConfig(_Model):
    """Request and response sizes far from a route's median, in MADs (robust to outliers)."""

    enabled: bool = True
    threshold: float = Field(12.0, gt=0, description="distance from the median, in MADs")
    min_bytes: ByteSize = Field(16_384, ge=0, description="sizes below it never fire")
    samples: int = Field(512, ge=32, le=65_536, description="recent sizes kept per route")
    min_samples: int = Field(200, ge=16, description="a route learns this many before firing")
    max_routes: int = Field(1_000, ge=1, description="routes remembered (LRU)")


class NewCountryConfig(_Model):
    """A consumer seen from a country it was never seen from (GeoIP of the client address)."""

    enabled: bool = True
    database: Path | None = Field(
        None, description="a MaxMind-format country database; unset: the bundled one"
    )
    max_consumers: int = Field(100_000, ge=16, description="consumers remembered (LRU)")
    max_countries: int = Field(16, ge=1, description="countries remembered per consumer")
    max_addresses: int = Field(100_000, ge=16, description="(consumer, IP) pairs cached (LRU)")

    @field_validator("database")
    @classmethod
    def _database(cls, value: Path | None) -> Path | None:
        if value is not None and not value.is_file():
            raise ValueError(f"{str(value)!r} is not a file; expected a MaxMind DB (.mmdb) file")
        return value


class StuffingConfig(_Model):
    """Failed logins across many accounts from one source, or on one account from many."""

    enabled: bool = True
    window: Duration = Field(300.0, gt=0)
    accounts_per_source: int = Field(10, ge=2, description="distinct accounts failing, one IP")
    sources_per_account: int = Field(10, ge=2, description="distinct IPs failing, one account")
    max_keys: int = Field(20_000, ge=16, description="sources and accounts remembered (LRU)")


class EnumerationConfig(_Model):
    """A consumer (or anonymous IP) walking sequential identifiers or collecting 404s."""

    enabled: bool = True
    window: Duration = Field(60.0, gt=0)
    not_found: int = Field(50, ge=2, description="404 answers in one window")
    sequential: int = Field(25, ge=3, description="consecutive steps to a neighbouring id")
    max_gap: int = Field(3, ge=1, description="largest id difference that counts as a step")
    max_keys: int = Field(20_000, ge=16, description="(subject, path shape) pairs remembered")


class DetectorsConfig(_Model):
    spikes: SpikesConfig = SpikesConfig()
    payload: PayloadConfig = PayloadConfig()
    new_country: NewCountryConfig = NewCountryConfig()
    credential_stuffing: StuffingConfig = StuffingConfig()
    enumeration: EnumerationConfig = EnumerationConfig()


class WebhookSinkConfig(_Model):
    """POST each alert as JSON: bastion's own document, or a Slack-compatible message."""

    type: Literal["webhook"] = "webhook"
    name: str = "webhook"
    url: str = Field(description="http:// or https:// URL")
    format: Literal["json", "slack"] = "json"
    headers: dict[str, str] = Field(default_factory=dict, description="extra request headers")
    timeout: Duration = Field(5.0, gt=0)

    @field_validator("url")
    @classmethod
    def _url(cls, value: str) -> str:
        # Parsed as the sink will parse it, so that a bad port or host is this field's error
        # (its value masked: the URL may carry a secret) and not a crash at start.
        expected = "expected an http:// or https:// URL with a host (and a port of 1-65535)"
        if not re.match(r"^https?://[^\s/]+", value) or any(c.isspace() for c in value):
            raise ValueError(expected)
        try:
            parts = urlsplit(value)
            port = parts.port
        except ValueError:
            raise ValueError(expected) from None
        if not parts.hostname or port == 0:
            raise ValueError(expected)
        return value

    @field_validator("headers")
    @classmethod
    def _headers(cls, value: dict[str, str]) -> dict[str, str]:
        for name, field_value in value.items():
            if not _HEADER.match(name):
                raise ValueError(f"{name!r} is not an HTTP header name")
            if any(c in field_value for c in "\r\n\x00"):  # every delivery would fail
                raise ValueError(
                    f"the value of {name!r} holds a line break or NUL; expected one line"
                )
        return value


_ADDRESS = re.compile(r"^[^\s@<>,;:\"()\[\]\\]+@[^\s@<>,;:\"()\[\]\\]+$")  # root@localhost too


def _address(value: str) -> str:
    """One bare mail address: checked at load, since a malformed one fails every delivery
    (a line break cannot even be put in a header) and is noticed only when an alert fires."""
    if not _ADDRESS.match(value) or not value.isprintable():
        raise ValueError(
            f"{value[:80]!r} is not one mail address; expected a bare address such as "
            "oncall@example.com (one per list item)"
        )
    return value


class EmailSinkConfig(_Model):
    """Send each alert as a plain-text email over SMTP."""

    type: Literal["email"]
    name: str = "email"
    host: str
    port: int = Field(587, ge=1, le=65_535)
    security: Literal["starttls", "tls", "none"] = Field(
        "starttls", description="STARTTLS on a plain port, implicit TLS, or none (loopback only)"
    )
    username: str | None = None
    password_env: str | None = Field(None, description="environment variable holding the password")
    sender: str = Field(description="From: address")
    to: tuple[str, ...] = Field(min_length=1, description="recipients")
    subject_prefix: str = "[bastion]"
    timeout: Duration = Field(10.0, gt=0)

    @field_validator("sender")
    @classmethod
    def _sender(cls, value: str) -> str:
        return _address(value)

    @field_validator("to")
    @classmethod
    def _to(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        return tuple(_address(address) for address in value)

    @field_validator("subject_prefix")
    @classmethod
    def _prefix(cls, value: str) -> str:
        if not value.isprintable():
            raise ValueError("expected one line of printable text")
        return value

    @field_validator("password_env")
    @classmethod
    def _env(cls, value: str | None) -> str | None:
        if value is not None and not _ENV.match(value):
            raise ValueError("expected an environment variable name such as SMTP_PASSWORD")
        return value

    @model_validator(mode="after")
    def _plain_only_on_loopback(self) -> Self:
        if self.security == "none" and self.host not in ("127.0.0.1", "::1", "localhost"):
            raise ValueError(
                f"security 'none' sends mail in clear to {self.host}; expected starttls or tls "
                "(plain SMTP is accepted only on a loopback host)"
            )
        return self


class CommandSinkConfig(_Model):
    """Run a command per alert: the alert JSON on standard input, key fields in the environment."""

    type: Literal["command"]
    name: str = "command"
    argv: tuple[str, ...] = Field(min_length=1, description="program and arguments (no shell)")
    timeout: Duration = Field(10.0, gt=0)


AlertSinkConfig = Annotated[
    WebhookSinkConfig | EmailSinkConfig | CommandSinkConfig, Field(discriminator="type")
]


class AlertsConfig(_Model):
    """Where alerts go, how often the same one may repeat, and how failed deliveries retry."""

    sinks: tuple[AlertSinkConfig, ...] = ()
    cooldown: Duration = Field(600.0, ge=0, description="one alert per key per cooldown")
    queue: int = Field(
        1_000, ge=1, description="alerts waiting for delivery, and retries waiting; beyond: dropped"
    )
    retries: int = Field(5, ge=0, description="further attempts after a failed delivery")
    backoff: Duration = Field(1.0, gt=0, description="first retry delay; doubles each time")
    backoff_max: Duration = Field(300.0, gt=0)
    max_keys: int = Field(10_000, ge=16, description="alert keys remembered for cooldown")

    @model_validator(mode="after")
    def _names_unique(self) -> Self:
        names = [s.name for s in self.sinks]
        duplicate = next((n for n in names if names.count(n) > 1), None)
        if duplicate is not None:
            raise ValueError(f"alert sink name {duplicate!r} is used twice; expected unique names")
        return self


class MonitoringConfig(_Model):
    """Streaming detectors on every exchange and security event; their alerts."""

    enabled: bool = Field(False, description="run the detectors and deliver alerts")
    shared: Literal["auto", "memory", "redis"] = Field(
        "auto", description="detector state in Redis (many instances) or per process"
    )
    sync_interval: Duration = Field(1.0, gt=0, description="how often counts meet in Redis")
    detectors: DetectorsConfig = DetectorsConfig()
    alerts: AlertsConfig = AlertsConfig()


def check_shared(monitoring: MonitoringConfig, redis_url: str | None) -> bool:
    """Whether detector state goes to Redis; :class:`ValueError` naming the field when
    ``shared: redis`` has no ``redis.url``."""
    if monitoring.shared == "redis" and redis_url is None:
        raise ValueError("monitoring.shared is 'redis' but redis.url is not set")
    return monitoring.shared != "memory" and redis_url is not None
