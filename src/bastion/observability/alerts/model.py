"""An alert (one detection with its evidence) and the one-method contract of a delivery sink."""

from __future__ import annotations

import time
import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar, Protocol


@dataclass(frozen=True, slots=True)
class Alert:
    """One detection.

    ``key`` identifies what is alerted about (``spike:ip:203.0.113.9:401``): alerts with the same
    key are one incident, deduplicated by the cooldown. ``evidence`` holds the numbers that made
    the detector fire (counts, baselines, thresholds, the consumer and address concerned), never a
    secret: detectors see only redacted values. ``repeats`` counts the same key's detections that
    the cooldown held back since the last delivered one.
    """

    detector: str
    key: str
    summary: str
    timestamp: float
    severity: str = "warning"  # "info" | "warning" | "critical"
    evidence: Mapping[str, Any] = field(default_factory=dict)
    repeats: int = 0

    @property
    def action(self) -> str:
        """The security event action of this alert (``alert.<detector>``)."""
        return "alert." + self.detector

    def document(self) -> dict[str, Any]:
        """The alert as a JSON document (what the generic webhook and the command receive)."""
        stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(self.timestamp))
        return {
            "alert": self.action,
            "detector": self.detector,
            "key": self.key,
            "severity": self.severity,
            "summary": self.summary,
            "timestamp": stamp,
            "evidence": dict(self.evidence),
            "repeats": self.repeats,
        }

    def with_repeats(self, repeats: int) -> Alert:
        return Alert(
            self.detector,
            self.key,
            self.summary,
            self.timestamp,
            self.severity,
            self.evidence,
            repeats,
        )


def inert(text: str) -> str:
    """``text`` with every control, format and line/paragraph separator character written as an
    escape (``\\r``, ``\\x00``, ``\\u202e``).

    An alert's summary, key and evidence may quote what a client chose (a Basic user name on a
    login route holds any character but ``:``): a line break in a mail header or a NUL in an
    environment variable would make every delivery of that alert fail, and a bidi override
    would disguise it. The escapes keep the text readable and honest.
    """
    if text.isprintable():
        return text
    return "".join(
        ch.encode("unicode_escape").decode("ascii")
        if unicodedata.category(ch) in ("Cc", "Cf", "Zl", "Zp")
        else ch
        for ch in text
    )


class DeliveryError(Exception):
    """A sink could not deliver an alert (the dispatcher retries). The message names the
    destination without secrets (no URL query, no password)."""


class AlertSink(Protocol):
    """Delivers one alert, blocking (it runs on the dispatcher's thread); raises
    :class:`DeliveryError` (or any ``OSError``) when it could not."""

    kind: ClassVar[str]
    name: str

    def deliver(self, alert: Alert) -> None: ...
