"""Regression: an alert webhook URL that cannot be used (a port out of range, a broken IPv6
literal, no host) is a config error naming the field, with the URL masked (a Slack webhook URL
is itself the secret); it used to pass validation and crash the start with a bare ValueError,
or build a sink posting to ``http://None``."""

from __future__ import annotations

import pytest

from bastion.config import build_config
from bastion.errors import ConfigError

SECRET = "T000/B000/s3cr3t"


@pytest.mark.parametrize(
    "url",
    [
        f"https://hooks.example:99999/services/{SECRET}",
        f"https://[::1/services/{SECRET}",
        f"http://:80/services/{SECRET}",
        f"https://hooks.example:0/services/{SECRET}",
    ],
)
def test_unusable_webhook_url_is_a_config_error_naming_the_field(url: str) -> None:
    data = {"monitoring": {"enabled": True, "alerts": {"sinks": [{"type": "webhook", "url": url}]}}}
    with pytest.raises(ConfigError) as caught:
        build_config(data)
    [problem] = caught.value.problems
    assert problem.startswith("monitoring.alerts.sinks[0].webhook.url: got '***'")
    assert "expected an http:// or https:// URL with a host" in problem
    assert "s3cr3t" not in problem


def test_a_good_webhook_url_still_passes() -> None:
    url = f"https://hooks.example:8443/services/{SECRET}"
    config = build_config({"monitoring": {"alerts": {"sinks": [{"type": "webhook", "url": url}]}}})
    assert config.monitoring.alerts.sinks[0].url == url  # type: ignore[union-attr]


def test_a_webhook_header_value_with_a_line_break_is_a_config_error() -> None:
    sink = {"type": "webhook", "url": "https://hooks.example/x", "headers": {"x-token": "a\nb"}}
    with pytest.raises(ConfigError) as caught:
        build_config({"monitoring": {"alerts": {"sinks": [sink]}}})
    [problem] = caught.value.problems
    assert problem == (
        "monitoring.alerts.sinks[0].webhook.headers: got a mapping; the value of 'x-token' holds"
        " a line break or NUL; expected one line"
    )


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("to", ["oncall"]),
        ("to", ["oncall@example.test\nBcc: someone@example.test"]),
        ("to", ["oncall@example.test, sec@example.test"]),
        ("sender", "bastion <bastion@example.test>"),
    ],
)
def test_a_malformed_mail_address_is_a_config_error(field: str, value: object) -> None:
    """Each of these was accepted, and failed (or misrouted) every delivery of every alert."""
    sink = {"type": "email", "host": "smtp.example", "sender": "b@example.test", "to": ["a@x.io"]}
    sink[field] = value
    with pytest.raises(ConfigError) as caught:
        build_config({"monitoring": {"alerts": {"sinks": [sink]}}})
    [problem] = caught.value.problems
    assert problem.startswith(f"monitoring.alerts.sinks[0].email.{field}")
    assert "expected a bare address such as oncall@example.com" in problem


def test_a_subject_prefix_with_a_line_break_is_a_config_error() -> None:
    sink = {"type": "email", "host": "h", "sender": "b@example.test", "to": ["a@example.test"]}
    with pytest.raises(ConfigError, match="expected one line of printable text"):
        build_config({"monitoring": {"alerts": {"sinks": [{**sink, "subject_prefix": "a\nb"}]}}})
    build_config({"monitoring": {"alerts": {"sinks": [sink]}}})  # the well-formed one loads
