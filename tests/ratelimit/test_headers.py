"""What clients are told: IETF fields, Retry-After never early, the 429 problem."""

from __future__ import annotations

import orjson

from bastion.pipeline.problem import problem_response
from bastion.ratelimit.core import Rate, Verdict
from bastion.ratelimit.headers import (
    allowed_headers,
    exceeded,
    limit_item,
    policy_item,
    seconds,
)


def test_policy_item_is_a_structured_field_item() -> None:
    assert policy_item("per-ip", Rate.parse("100/minute")) == '"per-ip";q=100;w=60'
    assert policy_item("fast", Rate.parse("10/s", burst=3)) == '"fast";q=10;w=1'


def test_seconds_round_up_so_clients_are_never_early() -> None:
    assert seconds(0) == 0
    assert seconds(-1.0) == 0
    assert seconds(0.2) == 1
    assert seconds(1.0) == 1
    assert seconds(1.0000001) == 2
    assert seconds(59.5) == 60


def test_limit_item_uses_reset_when_admitted_and_retry_when_refused() -> None:
    admitted = Verdict(True, 100, 42, reset_after=34.2)
    refused = Verdict(False, 100, 0, reset_after=60.0, retry_after=0.6)
    assert limit_item("per-ip", admitted) == '"per-ip";r=42;t=35'
    assert limit_item("per-ip", refused) == '"per-ip";r=0;t=1'


def test_allowed_headers_ietf_and_legacy() -> None:
    verdict = Verdict(True, 100, 7, reset_after=3.5)
    pairs = dict(allowed_headers('"a";q=100;w=60', "a", verdict, ietf=True, legacy=True))
    assert pairs == {
        "ratelimit-policy": '"a";q=100;w=60',
        "ratelimit": '"a";r=7;t=4',
        "x-ratelimit-limit": "100",
        "x-ratelimit-remaining": "7",
        "x-ratelimit-reset": "4",
    }
    assert allowed_headers('"a";q=1;w=1', "a", verdict, ietf=False, legacy=False) == ()


def test_exceeded_is_a_429_problem_with_retry_after_matching_t() -> None:
    verdict = Verdict(False, 10, 0, reset_after=9.0, retry_after=2.01)
    deny = exceeded('"a";q=10;w=60', "a", verdict, ietf=True, legacy=False, fields={})
    headers = dict(deny.headers)
    assert deny.status == 429
    assert deny.code == "ratelimit.exceeded"
    assert headers["retry-after"] == "3"
    assert headers["ratelimit"] == '"a";r=0;t=3'
    body = orjson.loads(problem_response(deny, "rid-1").body)
    assert body["violated-policies"] == ["a"]
    assert body["status"] == 429
    assert body["request_id"] == "rid-1"
    assert body["type"] == "urn:bastion:problem:ratelimit.exceeded"


def test_retry_after_is_at_least_one_second() -> None:
    verdict = Verdict(False, 10, 0, reset_after=0.0, retry_after=0.0)
    deny = exceeded('"a";q=10;w=60', "a", verdict, ietf=False, legacy=True, fields={})
    headers = dict(deny.headers)
    assert headers["retry-after"] == "1"
    assert headers["x-ratelimit-reset"] == "1"
    assert "ratelimit" not in headers


def test_problem_extensions_cannot_override_standard_members() -> None:
    verdict = Verdict(False, 10, 0, reset_after=1.0, retry_after=1.0)
    deny = exceeded('"a";q=10;w=60', "a", verdict, ietf=True, legacy=False, fields={})
    body = orjson.loads(problem_response(deny, "rid").body)
    assert body["code"] == "ratelimit.exceeded"
