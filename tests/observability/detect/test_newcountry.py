"""The new-country detector's pair cache: the previous request's pair skips the LRU probe, and
only while it is still the LRU's most recent entry."""

from __future__ import annotations

from bastion.config.monitoring import NewCountryConfig
from bastion.observability.detect.newcountry import NewCountryDetector


class Countries:
    """A country table (the CountryLookup protocol) that counts its lookups."""

    def __init__(self, table: dict[str, str]) -> None:
        self.table = table
        self.lookups: list[str] = []

    def country(self, ip: str) -> str | None:
        self.lookups.append(ip)
        return self.table.get(ip)


def detector(max_addresses: int = 16) -> tuple[NewCountryDetector, Countries]:
    countries = Countries({"192.0.2.1": "NL", "192.0.2.2": "JP", "192.0.2.3": "DE"})
    config = NewCountryConfig(max_addresses=max_addresses)
    return NewCountryDetector(config, countries), countries


def test_a_repeated_pair_is_looked_up_once() -> None:
    found, countries = detector()
    for _ in range(5):
        assert found.observe("acme", "192.0.2.1", 0.0) is None
    assert countries.lookups == ["192.0.2.1"]


def test_a_pair_pushed_out_of_the_cache_is_looked_up_again() -> None:
    found, countries = detector(max_addresses=16)
    found.observe("acme", "192.0.2.1", 0.0)
    found.observe("acme", "192.0.2.1", 0.0)  # the remembered pair now
    # Sixteen other pairs fill the cache: acme's pair is the oldest entry and goes.
    for n in range(16):
        found.observe(f"consumer-{n}", "192.0.2.3", 0.0)
    assert ("acme", "192.0.2.1") not in found.pairs
    countries.lookups.clear()
    found.observe("acme", "192.0.2.1", 0.0)
    assert countries.lookups == ["192.0.2.1"]
    assert ("acme", "192.0.2.1") in found.pairs


def test_the_remembered_pair_does_not_hide_a_new_country() -> None:
    found, _ = detector()
    assert found.observe("acme", "192.0.2.1", 0.0) is None  # NL learned
    assert found.observe("acme", "192.0.2.1", 1.0) is None
    alert = found.observe("acme", "192.0.2.2", 2.0)  # JP
    assert alert is not None
    assert alert.evidence["country"] == "JP"
    assert alert.evidence["known_countries"] == ["NL"]


def test_an_equal_consumer_of_another_object_is_still_recognised() -> None:
    found, countries = detector()
    found.observe("acme", "192.0.2.1", 0.0)
    found.observe("".join(["ac", "me"]), "192.0.2.1", 0.0)  # equal, not the same object
    assert countries.lookups == ["192.0.2.1"]
