"""The monitor: feeds each exchange and each security event to the detectors, and turns their
detections into alerts (a security event ``alert.<detector>`` plus a delivery).

Everything here runs on the serving thread and returns at once: detectors are O(1) per call in
bounded memory, and delivery is the dispatcher's background thread. The clock is injected, so
tests replay an attack in simulated time.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable
from typing import Any, Protocol

from bastion.observability.alerts.dispatcher import AlertDispatcher
from bastion.observability.alerts.model import Alert
from bastion.observability.detect.enumeration import EnumerationDetector
from bastion.observability.detect.newcountry import NewCountryDetector
from bastion.observability.detect.payload import PayloadDetector
from bastion.observability.detect.spikes import SpikeDetector
from bastion.observability.detect.stuffing import StuffingDetector
from bastion.observability.events import EventSink, SecurityEvent

logger = logging.getLogger("bastion.detect")

LOGIN_FAILURES = frozenset({"auth.invalid_credentials", "auth.invalid_token", "auth.token_refused"})
"""Security events that can be a failed login attempt (the credential stuffing detector's feed).

Not an expired credential: it was once valid, so it is a forgotten rotation, not a guess (a
fleet of a consumer's own clients with an expired key would look like one account attacked from
many addresses). The token endpoint's refusals count only for wrong client credentials."""


def is_login_failure(event: SecurityEvent) -> bool:
    action = event.action
    if action not in LOGIN_FAILURES:
        return False
    return action != "auth.token_refused" or event.fields.get("error") == "invalid_client"


_ACCOUNT_FIELDS = ("consumer", "key_id", "client_id", "account")


def account_of(event: SecurityEvent) -> str | None:
    """The account a failed login was for, from the event's redacted fields."""
    if event.user_id:
        return event.user_id
    fields = event.fields
    for name in _ACCOUNT_FIELDS:
        value = fields.get(name)
        if isinstance(value, str) and value:
            return value
    return None


class SharedState(Protocol):
    """Detector state shared between gateway instances (see :mod:`.shared`)."""

    async def start(self, monitor: Monitor) -> None: ...

    def claim(self, alert: Alert) -> bool:
        """True when the shared state takes ``alert`` over (it publishes it later, unless
        another instance already did); false to publish it here and now."""
        ...

    async def close(self) -> None: ...


class Monitor:
    """The detectors of one process, their alert output and their counters."""

    def __init__(
        self,
        *,
        events: EventSink,
        dispatcher: AlertDispatcher,
        spikes: SpikeDetector | None = None,
        payload: PayloadDetector | None = None,
        new_country: NewCountryDetector | None = None,
        stuffing: StuffingDetector | None = None,
        enumeration: EnumerationDetector | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.events = events
        self.dispatcher = dispatcher
        self.spikes = spikes
        self.payload = payload
        self.new_country = new_country
        self.stuffing = stuffing
        self.enumeration = enumeration
        self.clock = clock
        self.detections = 0  # every detection, including those the cooldown held back
        self.fired: dict[str, int] = {}  # alerts admitted, by detector
        self.listeners: list[Callable[[Alert], None]] = []
        self.shared: SharedState | None = None

    async def start(self) -> None:
        """Start what needs the serving loop (shared state in Redis, when configured)."""
        if self.shared is not None:
            await self.shared.start(self)

    async def close(self) -> None:
        if self.shared is not None:
            await self.shared.close()
        self.stop_delivery()

    def stop_delivery(self) -> None:
        """Deliver what is queued, then stop the delivery thread (idempotent)."""
        self.dispatcher.close()

    def snapshot(self) -> dict[str, Any]:
        """Counters for metrics and the dashboard: detections, alerts published per detector,
        deliveries, drops, and keys forgotten to stay within each memory bound."""
        dispatcher = self.dispatcher
        evicted: dict[str, int] = {}
        if self.spikes is not None:
            evicted["spike"] = self.spikes.windows.evicted
        if self.new_country is not None:
            evicted["new_country"] = self.new_country.pairs.evicted + self.new_country.known.evicted
        if self.stuffing is not None:
            evicted["credential_stuffing"] = self.stuffing.keys.evicted
        if self.enumeration is not None:
            evicted["enumeration"] = (
                self.enumeration.walks.evicted + self.enumeration.misses.evicted
            )
        return {
            "detections": self.detections,
            "alerts": dict(self.fired),
            "suppressed": dispatcher.cooldown.suppressed,
            "delivered": dispatcher.delivered,
            "delivery_failed": dispatcher.failed,
            "dropped": dispatcher.dropped,
            "evicted": evicted,
        }

    def exchange(
        self,
        consumer: str | None,
        ip: str,
        route: str,
        path: str,
        status: int,
        request_bytes: int = 0,
        response_bytes: int = 0,
        now: float | None = None,
    ) -> None:
        """One completed exchange (positional arguments: this is called per request)."""
        if now is None:
            now = self.clock()
        if status >= 400 and self.spikes is not None:
            alerts = self.spikes.observe(status, consumer, ip, now)
            if alerts:
                self.fire_all(alerts)
        payload = self.payload
        if payload is not None:
            if request_bytes:
                alert = payload.observe(route, "request", request_bytes, consumer, ip, now)
                if alert is not None:
                    self.fire(alert)
            alert = payload.observe(route, "response", response_bytes, consumer, ip, now)
            if alert is not None:
                self.fire(alert)
        if consumer is not None and self.new_country is not None:
            alert = self.new_country.observe(consumer, ip, now)
            if alert is not None:
                self.fire(alert)
        enumeration = self.enumeration
        # (a path's last character, and a find from index 1: no slice copied per request)
        if enumeration is not None and (
            status == 404 or (path != "" and path[-1].isdigit()) or path.find("/", 1) >= 0
        ):
            subject = consumer if consumer is not None else "ip:" + ip
            alert = enumeration.observe(subject, path, status, consumer, ip, now)
            if alert is not None:
                self.fire(alert)

    def login_failure(self, source: str, account: str, now: float | None = None) -> None:
        """A failed login on ``account`` from ``source`` (an upstream's own login answer)."""
        if self.stuffing is not None:
            self.fire_all(
                self.stuffing.failure(source, account, self.clock() if now is None else now)
            )

    def event(self, event: SecurityEvent) -> None:
        """One security event (from the guard chain, the engine or the token endpoint)."""
        # A success (an ``auth.success`` per authenticated request) is never a failed login:
        # one comparison, before the set of login failures is looked at.
        if event.outcome == "success" or self.stuffing is None or not is_login_failure(event):
            return
        account = account_of(event)
        if account is None or not event.client_ip:
            return
        self.fire_all(self.stuffing.failure(event.client_ip, account, self.clock()))

    def fire_all(self, alerts: Iterable[Alert]) -> None:
        for alert in alerts:
            self.fire(alert)

    def fire(self, alert: Alert) -> None:
        """Deduplicate ``alert`` (locally, then across instances when shared); an admitted alert
        is published."""
        self.detections += 1
        admitted = self.dispatcher.admit(alert)
        if admitted is None:
            return
        if self.shared is not None and self.shared.claim(admitted):
            return  # published by the shared state if no other instance alerted first
        self.publish(admitted)

    def publish(self, alert: Alert) -> None:
        """Record ``alert`` as a security event and hand it to the delivery thread."""
        self.fired[alert.detector] = self.fired.get(alert.detector, 0) + 1
        self.events.emit(alert_event(alert))
        self.dispatcher.deliver(alert)
        for listener in self.listeners:
            try:
                listener(alert)
            except Exception:
                logger.exception("an alert listener failed")


def alert_event(alert: Alert) -> SecurityEvent:
    """The security event recording ``alert`` (action ``alert.<detector>``, evidence in fields)."""
    evidence = alert.evidence
    ip = evidence.get("ip")
    consumer = evidence.get("consumer")
    fields: dict[str, Any] = {
        "alert_key": alert.key,
        "severity": alert.severity,
        "repeats": alert.repeats,
        **evidence,
    }
    return SecurityEvent(
        alert.action,
        "unknown",
        alert.timestamp,
        guard="monitor",
        client_ip=ip if isinstance(ip, str) else "",
        reason=alert.summary,
        user_id=consumer if isinstance(consumer, str) else None,
        fields=fields,
    )
