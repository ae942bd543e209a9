"""What an audit is made of: checks (what is tested, and why), findings (what was seen).

A check is described once by :class:`CheckInfo` (id, practice, severity, pass criterion,
references) and implemented by a plain function registered under that id: a static check reads the
OpenAPI document, a live check talks to the target through an :class:`~bastion.audit.context.
LiveContext`. A check returns findings; a finding whose outcome is ``fail`` is what reports show,
what the baseline remembers and what ``--fail-on`` counts.
"""

from __future__ import annotations

import enum
import hashlib
from collections.abc import Awaitable, Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from bastion.audit.context import LiveContext
    from bastion.config.models import BastionConfig


class Practice(enum.StrEnum):
    """The five practices every API needs before production, in their usual order."""

    AUTHENTICATION = "authentication"
    RATE_LIMITING = "rate-limiting"
    VALIDATION = "validation"
    ENCRYPTION = "encryption"
    LOGGING = "logging"


class Severity(enum.IntEnum):
    """How bad a failed check is. Ordered, so ``--fail-on high`` means high and critical."""

    INFO = 0
    LOW = 1
    MEDIUM = 2
    HIGH = 3
    CRITICAL = 4

    @classmethod
    def parse(cls, text: str) -> Severity:
        try:
            return cls[text.strip().upper()]
        except KeyError:
            names = ", ".join(s.name.lower() for s in cls)
            raise ValueError(f"severity {text!r} is unknown; expected one of: {names}") from None

    @property
    def label(self) -> str:
        return self.name.lower()


class Kind(enum.StrEnum):
    """How a check learns its answer; ``aggressive`` runs only with ``--aggressive``."""

    STATIC = "static"
    LIVE = "live"
    AGGRESSIVE = "aggressive"
    ATTESTATION = "attestation"


class Outcome(enum.StrEnum):
    PASS = "pass"  # noqa: S105 - an outcome, not a password
    FAIL = "fail"
    SKIP = "skip"  # not applicable to this target, or not allowed (budget, profile, no credential)
    ERROR = "error"  # the check could not complete (connection refused, budget exhausted mid-way)


@dataclass(frozen=True, slots=True)
class CheckInfo:
    """One check, as reports and the docs page describe it."""

    id: str  # stable, dotted: "static.security-defined", "live.tls-versions"
    title: str
    practice: Practice
    severity: Severity
    kind: Kind
    criterion: str  # what passing means, in one sentence
    rationale: str = ""
    references: tuple[str, ...] = ()  # "OWASP API2:2023", "ASVS 5.0 V6.4.1", "RFC 6750 §3"


@dataclass(frozen=True, slots=True)
class Evidence:
    """What was seen. Secrets never appear here: ``curl`` and ``response`` are masked already."""

    summary: str
    location: str = ""  # a JSON pointer into the OpenAPI document, or "GET /path"
    curl: str = ""  # a reproducible command (live findings), secrets masked
    response: str = ""  # status line and the relevant headers or body excerpt


@dataclass(frozen=True, slots=True)
class Finding:
    check: CheckInfo
    outcome: Outcome
    message: str
    evidence: tuple[Evidence, ...] = ()
    details: Mapping[str, Any] = field(default_factory=dict)

    @property
    def fingerprint(self) -> str:
        """Stable across runs against the same target: the check id and the evidence locations
        (never timings or request ids), so a baseline can recognise a finding it has seen."""
        locations = "|".join(sorted(e.location for e in self.evidence))
        digest = hashlib.sha256(f"{self.check.id}|{locations}".encode()).hexdigest()
        return digest[:16]


StaticCheck = Callable[[Mapping[str, Any]], Iterable[Finding]]
LiveCheck = Callable[["LiveContext"], Awaitable[list[Finding]]]
AttestationCheck = Callable[["BastionConfig"], Iterable[Finding]]
"""Reads a bastion configuration (``--gateway-config``): what it proves that no request can see."""


@dataclass(frozen=True, slots=True)
class Registered:
    info: CheckInfo
    static: StaticCheck | None = None
    live: LiveCheck | None = None
    attest: AttestationCheck | None = None


class Registry:
    """The checks one audit can run, by id. Built explicitly (no import-time global state):
    each family module exposes ``register(registry)``."""

    def __init__(self) -> None:
        self._checks: dict[str, Registered] = {}

    def add_static(self, info: CheckInfo, check: StaticCheck) -> None:
        self._add(Registered(info, static=check))

    def add_live(self, info: CheckInfo, check: LiveCheck) -> None:
        self._add(Registered(info, live=check))

    def add_attestation(self, info: CheckInfo, check: AttestationCheck) -> None:
        self._add(Registered(info, attest=check))

    def _add(self, entry: Registered) -> None:
        if entry.info.id in self._checks:
            raise ValueError(f"check id {entry.info.id!r} is registered twice")
        self._checks[entry.info.id] = entry

    def __getitem__(self, check_id: str) -> Registered:
        return self._checks[check_id]

    def __iter__(self) -> Iterator[Registered]:
        return iter(self._checks.values())

    def __len__(self) -> int:
        return len(self._checks)

    def infos(self) -> list[CheckInfo]:
        return [entry.info for entry in self._checks.values()]


def passed(info: CheckInfo, message: str, *evidence: Evidence) -> Finding:
    return Finding(info, Outcome.PASS, message, evidence)


def failed(info: CheckInfo, message: str, *evidence: Evidence, **details: Any) -> Finding:
    return Finding(info, Outcome.FAIL, message, evidence, details)


def skipped(info: CheckInfo, message: str) -> Finding:
    return Finding(info, Outcome.SKIP, message)


def errored(info: CheckInfo, message: str, *evidence: Evidence) -> Finding:
    return Finding(info, Outcome.ERROR, message, evidence)
