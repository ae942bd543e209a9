"""Builds the monitor, its event tee and its guard from ``monitoring`` in the config."""

from __future__ import annotations

import time
from collections.abc import Callable

from bastion.config.models import BastionConfig
from bastion.config.monitoring import check_shared
from bastion.errors import ConfigError
from bastion.observability.alerts.assembly import build_dispatcher, check_sinks
from bastion.observability.detect.enumeration import EnumerationDetector
from bastion.observability.detect.geoip import CountryLookup, open_countries
from bastion.observability.detect.guard import MonitorGuard
from bastion.observability.detect.monitor import Monitor
from bastion.observability.detect.newcountry import NewCountryDetector
from bastion.observability.detect.payload import PayloadDetector
from bastion.observability.detect.spikes import SpikeDetector
from bastion.observability.detect.stuffing import StuffingDetector
from bastion.observability.detect.tee import MonitoredSink
from bastion.observability.events import EventSink
from bastion.pipeline.guard import Guard


def build_monitor(
    config: BastionConfig,
    events: EventSink,
    *,
    clock: Callable[[], float] = time.time,
    countries: CountryLookup | None = None,
) -> Monitor:
    """The enabled detectors, alerting into ``events`` and the configured alert sinks."""
    monitoring = config.monitoring
    detectors = monitoring.detectors
    new_country = None
    if detectors.new_country.enabled:
        if countries is None:
            countries = open_countries(detectors.new_country.database)
        new_country = NewCountryDetector(detectors.new_country, countries)
    monitor = Monitor(
        events=events,
        dispatcher=build_dispatcher(monitoring.alerts, clock),
        spikes=SpikeDetector(detectors.spikes) if detectors.spikes.enabled else None,
        payload=PayloadDetector(detectors.payload) if detectors.payload.enabled else None,
        new_country=new_country,
        stuffing=(
            StuffingDetector(detectors.credential_stuffing)
            if detectors.credential_stuffing.enabled
            else None
        ),
        enumeration=(
            EnumerationDetector(detectors.enumeration) if detectors.enumeration.enabled else None
        ),
        clock=clock,
    )
    if use_redis(config):
        from bastion.observability.detect.shared import RedisShared

        monitor.shared = RedisShared(config)
    return monitor


def check_monitoring(config: BastionConfig) -> None:
    """Everything about ``monitoring`` that only shows when the monitor is built (the GeoIP
    database opens, the SMTP passwords are in the environment, Redis is configured when asked
    for), checked up front so that ``bastion serve`` and ``bastion check-config`` report it as
    one line naming the field instead of failing inside the engine's start."""
    if not config.monitoring.enabled:
        return
    use_redis(config)
    new_country = config.monitoring.detectors.new_country
    if new_country.enabled:
        open_countries(new_country.database).close()
    check_sinks(config.monitoring.alerts)


def use_redis(config: BastionConfig) -> bool:
    try:
        return check_shared(config.monitoring, config.redis.url)
    except ValueError as exc:
        raise ConfigError(str(exc)) from None


def monitored_events(config: BastionConfig, sink: EventSink) -> EventSink:
    """``sink`` with the monitor's tee in front when monitoring is on (else ``sink`` itself)."""
    if not config.monitoring.enabled or isinstance(sink, MonitoredSink):
        return sink
    return MonitoredSink(sink, build_monitor(config, sink))


def monitoring_guards(config: BastionConfig, events: EventSink) -> list[Guard]:
    """The ``monitor`` guard, sharing the tee's monitor when ``events`` is the tee; a chain
    given some other sink gets a monitor of its own (without the security-event feed)."""
    if not config.monitoring.enabled:
        return []
    monitor = events.monitor if isinstance(events, MonitoredSink) else build_monitor(config, events)
    login = frozenset(r.name for r in config.routes if r.login)
    return [
        MonitorGuard(
            monitor,
            login_routes=login,
            account_header=config.rate_limit.login.account_header,
        )
    ]
