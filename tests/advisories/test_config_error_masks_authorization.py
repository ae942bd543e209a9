"""Regression: a config error under a field named ``Authorization`` or ``Cookie`` (an alert
webhook's headers) printed the bad value, which is a credential: only names with "secret",
"password", "token", "key", "credential", "dsn" or "url" were masked."""

from __future__ import annotations

import pytest

from bastion.config.loader import _is_secret, build_config
from bastion.errors import ConfigError


def test_authorization_and_cookie_fields_are_secret() -> None:
    assert _is_secret(["monitoring", "alerts", "sinks", 0, "headers", "Authorization"])
    assert _is_secret(["monitoring", "alerts", "sinks", 0, "headers", "Cookie"])


def test_a_bad_authorization_header_value_is_not_echoed() -> None:
    secret = "Bearer s3cr3t-0123456789abcdef"
    sink = {
        "type": "webhook",
        "url": "https://hooks.example/x",
        "headers": {"Authorization": [secret]},
    }
    with pytest.raises(ConfigError) as raised:
        build_config({"monitoring": {"alerts": {"sinks": [sink]}}}, "test")
    assert "s3cr3t" not in str(raised.value)
    assert "Authorization" in str(raised.value)
