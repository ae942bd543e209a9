"""Each detector fires on a scripted attack within 60 seconds of its start (simulated time on an
injected clock), with its evidence, as an ``alert.<detector>`` security event."""

from __future__ import annotations

import random
from pathlib import Path

from bastion.observability.detect.enumeration import numbered
from bastion.observability.events import SecurityEvent
from tests.observability.detect.helpers import Harness, harness

WARMUP = 600.0  # ten minutes of ordinary traffic before each attack


def ordinary_traffic(h: Harness, seconds: float, rng: random.Random) -> None:
    """Ten requests a second from a few consumers, with the odd 404 and 401."""
    end = h.clock.now + seconds
    while h.clock.now < end:
        for _ in range(10):
            n = rng.randrange(20)
            status = rng.choices([200, 404, 401], [97, 2, 1])[0]
            h.request(
                ip=f"100.64.0.{n}",
                consumer=f"c{n}" if status != 401 else None,
                path=f"/items/{rng.randrange(10_000)}",
                status=status,
                request_bytes=rng.randint(200, 400),
                response_bytes=rng.randint(800, 1200),
            )
        h.clock.advance(1.0)


def assert_quick(h: Harness, detector: str, start: float) -> None:
    fired = h.of(detector)
    assert fired, f"{detector} did not fire"
    assert fired[0].timestamp - start <= 60.0
    recorded = [e for e in h.events.events if e.action == f"alert.{detector}"]
    assert recorded, "the alert is a security event too"
    assert recorded[0].fields["alert_key"] == fired[0].key


def test_401_spike_from_one_address() -> None:
    h = harness()
    rng = random.Random(1)
    ordinary_traffic(h, WARMUP, rng)
    start = h.clock.now
    for _ in range(60):  # five bad credentials a second
        for _ in range(5):
            h.request(ip="198.51.100.66", status=401)
        ordinary_traffic(h, 1.0, rng)
    assert_quick(h, "spike", start)
    alert = next(a for a in h.of("spike") if a.evidence["scope"] == "ip")
    assert alert.evidence["ip"] == "198.51.100.66"
    assert alert.evidence["status"] in ("401", "4xx")
    assert alert.evidence["count"] >= 30
    event = next(e for e in h.events.events if e.action == "alert.spike")
    assert event.client_ip == "198.51.100.66"


def test_overall_spike_spread_over_many_addresses() -> None:
    h = harness()
    rng = random.Random(2)
    ordinary_traffic(h, WARMUP, rng)
    start = h.clock.now
    for second in range(60):  # a botnet: each address only a few times
        for i in range(20):
            h.request(ip=f"192.0.2.{(second * 20 + i) % 250}", status=401)
        ordinary_traffic(h, 1.0, rng)
    assert_quick(h, "spike", start)
    overall = [a for a in h.of("spike") if a.evidence["scope"] == "overall"]
    assert overall, "the spread attack shows in the overall scope"
    assert overall[0].evidence["count"] >= 200


def test_payload_outlier_on_a_route() -> None:
    h = harness()
    rng = random.Random(3)
    ordinary_traffic(h, WARMUP, rng)
    start = h.clock.now
    h.request(ip="203.0.113.50", consumer="c3", request_bytes=5_000_000)
    assert_quick(h, "payload_outlier", start)
    [alert] = h.of("payload_outlier")
    assert alert.evidence["route"] == "api"
    assert alert.evidence["direction"] == "request"
    assert alert.evidence["bytes"] == 5_000_000
    assert 200 <= alert.evidence["median_bytes"] <= 400
    assert alert.evidence["consumer"] == "c3"


def test_credential_stuffing_across_accounts_from_one_source() -> None:
    h = harness()
    rng = random.Random(4)
    ordinary_traffic(h, WARMUP, rng)
    start = h.clock.now
    for i in range(30):  # one address trying a leaked list: one account every two seconds
        h.auth_failure("198.51.100.23", consumer=f"user{i}", key_id=f"key{i}")
        ordinary_traffic(h, 2.0, rng)
    assert_quick(h, "credential_stuffing", start)
    alert = h.of("credential_stuffing")[0]
    assert alert.evidence["ip"] == "198.51.100.23"
    assert alert.evidence["distinct"] == 10
    assert alert.severity == "critical"


def test_credential_stuffing_on_one_account_from_many_sources() -> None:
    h = harness()
    start = h.clock.now
    for i in range(12):
        h.auth_failure(f"192.0.2.{i}", consumer=None, key_id="key-of-alice")
        h.clock.advance(3)
    assert_quick(h, "credential_stuffing", start)
    alert = h.of("credential_stuffing")[0]
    assert alert.evidence["account"] == "key-of-alice"
    assert len(alert.evidence["ips"]) == 10


def test_login_route_failures_count_by_basic_user() -> None:
    h = harness()
    for i in range(10):
        h.monitor.login_failure("198.51.100.30", f"victim{i}")
    assert h.of("credential_stuffing")[0].evidence["ip"] == "198.51.100.30"


def test_enumeration_by_sequential_identifiers() -> None:
    h = harness()
    rng = random.Random(5)
    ordinary_traffic(h, WARMUP, rng)
    start = h.clock.now
    for n in range(1000, 1040):  # one id a second
        h.request(ip="100.64.0.3", consumer="c3", path=f"/api/invoices/{n}/pdf")
        ordinary_traffic(h, 1.0, rng)
    assert_quick(h, "enumeration", start)
    alert = h.of("enumeration")[0]
    assert alert.evidence["signal"] == "sequential"
    assert alert.evidence["path_shape"] == "/api/invoices/{id}/pdf"
    assert alert.evidence["consumer"] == "c3"
    assert alert.evidence["first_id"] == 1000


def test_enumeration_by_collecting_404s() -> None:
    h = harness()
    rng = random.Random(6)
    ordinary_traffic(h, WARMUP, rng)
    start = h.clock.now
    for _ in range(60):
        h.request(ip="203.0.113.77", path=f"/admin-{rng.randrange(10**6)}.php", status=404)
        ordinary_traffic(h, 0.5, rng)
    assert_quick(h, "enumeration", start)
    alert = h.of("enumeration")[0]
    assert alert.evidence["signal"] == "not_found"
    assert alert.key == "enumeration:not_found:ip:203.0.113.77"


def test_a_consumer_from_a_new_country(country_db: Path) -> None:
    h = harness(country_db=country_db)
    for _ in range(50):
        h.request(ip="203.0.113.10", consumer="acme")  # NL, learned
        h.clock.advance(10)
    assert h.of("new_country") == []
    start = h.clock.now
    h.request(ip="198.51.100.99", consumer="acme")  # JP
    assert_quick(h, "new_country", start)
    [alert] = h.of("new_country")
    assert alert.evidence == {
        "consumer": "acme",
        "ip": "198.51.100.99",
        "country": "JP",
        "known_countries": ["NL"],
    }
    h.request(ip="198.51.100.100", consumer="acme")  # JP again: known now
    h.request(ip="10.1.2.3", consumer="acme")  # no country: ignored
    assert len(h.of("new_country")) == 1


def test_repeated_detections_are_one_alert_per_cooldown() -> None:
    h = harness()
    for _ in range(5):  # five windows of the same attack
        for _ in range(100):
            h.request(ip="198.51.100.66", status=401)
        h.clock.advance(60)
    keys = [a.key for a in h.alerts if a.evidence.get("scope") == "ip"]
    assert sorted(set(keys)) == sorted(keys)  # each key once within the 10-minute cooldown
    assert h.monitor.detections > len(h.alerts)


def test_path_shapes_are_cut_so_that_memory_stays_bounded() -> None:
    assert numbered("/users/42") == ("/users/{id}", 42)
    assert numbered("/users/42/orders") == ("/users/{id}/orders", 42)
    assert numbered("/users/x") is None
    assert numbered("/users/" + "9" * 40) is None  # not a counter
    shape, number = numbered("/" + "a" * 8000 + "/7") or ("", 0)
    assert len(shape) == 128
    assert number == 7


def test_expired_keys_and_other_token_refusals_are_not_login_failures() -> None:
    h = harness()
    for i in range(12):  # a consumer's own fleet still using its expired key
        h.monitor.event(
            SecurityEvent("auth.expired_credentials", "failure", h.clock(),
                          client_ip=f"100.64.1.{i}", fields={"consumer": "acme", "key_id": "k1"})
        )  # fmt: skip
        h.monitor.event(
            SecurityEvent("auth.token_refused", "failure", h.clock(), client_ip=f"100.64.2.{i}",
                          fields={"error": "unsupported_grant_type", "consumer": "acme"})
        )  # fmt: skip
    assert h.of("credential_stuffing") == []
    for i in range(10):
        h.monitor.event(
            SecurityEvent("auth.token_refused", "failure", h.clock(), client_ip=f"100.64.3.{i}",
                          fields={"error": "invalid_client", "key_id": "k2"})
        )  # fmt: skip
    assert h.of("credential_stuffing")[0].evidence["account"] == "k2"
