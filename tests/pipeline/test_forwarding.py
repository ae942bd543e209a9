"""Forwarding headers are believed only from trusted proxies, walked from the right."""

from __future__ import annotations

import ipaddress

import pytest

from bastion.pipeline.forwarding import ForwardingPolicy, forwarded_for_value, new_request_id

TRUSTED = ForwardingPolicy([ipaddress.ip_network("10.0.0.0/8"), ipaddress.ip_network("::1/128")])


def test_untrusted_peer_headers_are_ignored() -> None:
    origin = TRUSTED.origin("198.51.100.7", "http", ["6.6.6.6"], [], "https", "evil.test")
    assert (origin.client_ip, origin.scheme, origin.host) == ("198.51.100.7", "http", None)
    assert origin.forwarded_for == ()
    assert forwarded_for_value(origin, "198.51.100.7") == "198.51.100.7"


def test_no_trusted_proxies_means_nothing_is_believed() -> None:
    origin = ForwardingPolicy().origin("10.0.0.1", "http", ["6.6.6.6"])
    assert origin.client_ip == "10.0.0.1"


def test_trusted_peer_first_untrusted_hop_from_the_right_is_the_client() -> None:
    origin = TRUSTED.origin("10.0.0.1", "http", ["6.6.6.6, 203.0.113.5, 10.0.0.2"], [], "https")
    assert origin.client_ip == "203.0.113.5"
    assert origin.scheme == "https"
    # The spoofed left part is dropped from what is passed on.
    assert forwarded_for_value(origin, "10.0.0.1") == "203.0.113.5, 10.0.0.2, 10.0.0.1"


def test_rotating_the_leftmost_value_never_changes_the_client() -> None:
    a = TRUSTED.origin("10.0.0.1", "http", ["1.1.1.1, 203.0.113.5"])
    b = TRUSTED.origin("10.0.0.1", "http", ["2.2.2.2, 203.0.113.5"])
    assert a.client_ip == b.client_ip == "203.0.113.5"


def test_forwarded_header_rfc7239_is_preferred() -> None:
    origin = TRUSTED.origin(
        "::1", "http", ["9.9.9.9"], ['for=192.0.2.60;proto=http, for="[2001:db8::1]:4711"']
    )
    assert origin.client_ip == "2001:db8::1"


def test_garbage_hop_stops_what_is_believed() -> None:
    origin = TRUSTED.origin("10.0.0.1", "http", ["203.0.113.5, not-an-ip, 10.0.0.3"])
    assert origin.client_ip == "10.0.0.3"


def test_ipv4_mapped_peer_is_trusted_by_its_v4_network() -> None:
    assert TRUSTED.is_trusted("::ffff:10.1.2.3")


@pytest.mark.parametrize(
    ("peer", "inbound", "kept"),
    [
        ("10.0.0.1", "abc-123", True),
        ("198.51.100.7", "abc-123", False),
        ("10.0.0.1", "bad id with spaces", False),
        ("10.0.0.1", "x" * 129, False),
    ],
)
def test_request_id_accepted_only_from_trusted_proxies(peer: str, inbound: str, kept: bool) -> None:
    rid = TRUSTED.request_id(peer, inbound)
    assert (rid == inbound) is kept


def test_generated_request_ids_are_unique() -> None:
    ids = {new_request_id() for _ in range(10_000)}
    assert len(ids) == 10_000
