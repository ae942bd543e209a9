"""A consumer seen from a country it was never seen from before.

The client address is the one the engine derived from trusted proxies (``X-Forwarded-For`` is
believed only from ``proxy.trusted_proxies``), so a client cannot pick its own country. Only
authenticated requests count: a consumer is an identity, an address alone is not.

Each (consumer, address) pair is looked up once (an LRU of ``max_addresses`` pairs), so a
steady client costs one dictionary probe per request (none when the request before it had the
same pair) and the GeoIP database is read only for new pairs. A consumer's first country is
learned silently; a later, different one fires. Addresses without a country (private, loopback,
unknown) are ignored.

Memory: ``max_addresses`` pairs, ``max_consumers`` x ``max_countries`` country codes.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import ClassVar

from bastion.config.monitoring import NewCountryConfig
from bastion.observability.alerts.model import Alert
from bastion.observability.detect.geoip import CountryLookup
from bastion.observability.detect.lru import Lru


class NewCountryDetector:
    detector: ClassVar[str] = "new_country"

    def __init__(self, config: NewCountryConfig, countries: CountryLookup) -> None:
        self.config = config
        self.lookup = countries
        self.pairs: Lru[tuple[str, str], str] = Lru(config.max_addresses)
        self.known: Lru[str, list[str]] = Lru(config.max_consumers)
        # The last pair found in ``pairs`` (its most recent entry while nothing else was put).
        self._last_consumer: str | None = None
        self._last_ip = ""
        # Set by the Redis sharing: takes a (consumer, ip, country, now) over when it can.
        self.remote: Callable[[str, str, str, float], bool] | None = None

    def observe(self, consumer: str, ip: str, now: float) -> Alert | None:
        if consumer is self._last_consumer and ip == self._last_ip:
            # The pair of the previous request, known and already the LRU's most recent entry:
            # the probe below would change nothing (a client's requests come in runs).
            return None
        pair = (consumer, ip)
        if self.pairs.get(pair) is not None:
            self._last_consumer, self._last_ip = consumer, ip
            return None
        self._last_consumer = None  # the put below makes another pair the most recent
        country = self.lookup.country(ip) or ""
        self.pairs.put(pair, country)
        if not country:
            return None
        if self.remote is not None and self.remote(consumer, ip, country, now):
            return None
        return self.learn(consumer, ip, country, now)

    def learn(self, consumer: str, ip: str, country: str, now: float) -> Alert | None:
        """Remember ``country`` for ``consumer``; an alert when it is new and not the first."""
        known = self.known.get(consumer)
        if known is None:
            self.known.put(consumer, [country])
            return None
        if country in known:
            return None
        before = list(known)
        known.append(country)
        if len(known) > self.config.max_countries:
            del known[0]
        return self.alert(consumer, ip, country, before, now)

    def alert(self, consumer: str, ip: str, country: str, before: list[str], now: float) -> Alert:
        return Alert(
            detector=self.detector,
            key=f"new_country:{consumer}:{country}",
            summary=f"consumer {consumer} seen from a new country {country} (address {ip})",
            timestamp=now,
            severity="warning",
            evidence={
                "consumer": consumer,
                "ip": ip,
                "country": country,
                "known_countries": before,
            },
        )
