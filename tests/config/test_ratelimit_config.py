"""The rate_limit section: errors name the field, the value and the expectation."""

from __future__ import annotations

from typing import Any

import pytest

from bastion.config.loader import build_config
from bastion.errors import ConfigError

ROUTE = {"name": "api", "upstream": "http://127.0.0.1:9000"}


def problems(data: dict[str, Any]) -> str:
    with pytest.raises(ConfigError) as info:
        build_config(data)
    return "\n".join(info.value.problems)


def test_defaults_have_the_login_preset_and_no_policies() -> None:
    config = build_config({})
    assert config.rate_limit.policies == ()
    assert config.rate_limit.login.enabled
    assert config.rate_limit.login.paths == ("/oauth/token",)
    assert config.rate_limit.storage == "memory"
    assert config.rate_limit.on_backend_failure == "closed"


def test_a_full_policy_parses() -> None:
    config = build_config(
        {
            "routes": [{**ROUTE, "login": True, "rate_limits": {"per-ip": "5/s"}}],
            "rate_limit": {
                "policies": [
                    {
                        "name": "per-ip",
                        "rate": "100/minute",
                        "burst": 20,
                        "key": ["ip", "route"],
                        "methods": ["POST"],
                        "tiers": {"gold": "1000/minute", "internal": "unlimited"},
                    }
                ]
            },
        }
    )
    policy = config.rate_limit.policies[0]
    rate = policy.parsed_rate()
    assert rate is not None
    assert (rate.limit, rate.period, rate.burst) == (100, 60.0, 20)
    assert policy.parsed_rate("internal") is None
    gold = policy.parsed_rate("gold")
    assert gold is not None
    assert gold.limit == 1000
    assert config.routes[0].login


def test_bad_rate_names_field_value_and_expectation() -> None:
    text = problems({"rate_limit": {"policies": [{"name": "x", "rate": "100/fortnight"}]}})
    assert "rate_limit.policies[0].rate" in text
    assert "100/fortnight" in text
    assert "100/minute" in text


def test_unknown_key_part_is_refused() -> None:
    text = problems({"rate_limit": {"policies": [{"name": "x", "rate": "1/s", "key": ["cookie"]}]}})
    assert "rate_limit.policies[0].key" in text


def test_duplicate_policy_names_are_refused() -> None:
    text = problems(
        {"rate_limit": {"policies": [{"name": "a", "rate": "1/s"}, {"name": "a", "rate": "2/s"}]}}
    )
    assert "repeated: a" in text


def test_login_is_a_reserved_policy_name() -> None:
    assert "reserved" in problems({"rate_limit": {"policies": [{"name": "login", "rate": "1/s"}]}})


def test_route_override_must_name_an_existing_policy() -> None:
    text = problems({"routes": [{**ROUTE, "rate_limits": {"nope": "1/s"}}]})
    assert "routes[api].rate_limits" in text
    assert "nope" in text


def test_route_override_rate_is_checked() -> None:
    text = problems(
        {
            "routes": [{**ROUTE, "rate_limits": {"a": "fast"}}],
            "rate_limit": {"policies": [{"name": "a", "rate": "1/s"}]},
        }
    )
    assert "rate_limits.a" in text
    assert "fast" in text


def test_policy_routes_must_exist() -> None:
    text = problems(
        {
            "routes": [ROUTE],
            "rate_limit": {"policies": [{"name": "a", "rate": "1/s", "routes": ["other"]}]},
        }
    )
    assert "unknown routes other" in text
    assert "api" in text


def test_sliding_log_is_for_small_limits() -> None:
    text = problems(
        {
            "rate_limit": {
                "policies": [{"name": "a", "rate": "100000/minute", "algorithm": "sliding_log"}]
            }
        }
    )
    assert "sliding_log" in text
    assert "gcra" in text


def test_redis_storage_needs_a_redis_url() -> None:
    assert "redis.url" in problems({"rate_limit": {"storage": "redis"}})


def test_lockout_longer_than_max_is_refused() -> None:
    text = problems({"rate_limit": {"login": {"lockout": "2h", "max_lockout": "1h"}}})
    assert "max_lockout" in text


def test_methods_must_be_upper_case() -> None:
    policy = {"name": "a", "rate": "1/s", "methods": ["get"]}
    text = problems({"rate_limit": {"policies": [policy]}})
    assert "'get'" in text


def test_a_rate_too_fast_to_count_is_refused_at_load() -> None:
    text = problems({"rate_limit": {"policies": [{"name": "a", "rate": "1000000000/s"}]}})
    assert "1000000000/s" in text
    assert "1,000,000" in text


def test_a_route_override_too_fast_to_count_is_refused_at_load() -> None:
    text = problems(
        {
            "routes": [{**ROUTE, "rate_limits": {"a": "2000000/s"}}],
            "rate_limit": {"policies": [{"name": "a", "rate": "1/s"}]},
        }
    )
    assert "routes[api].rate_limits.a" in text
