"""The dispatcher: one alert per key per cooldown (repeats counted), retries with growing
back-off on a real failing receiver, give-up logged, a full queue that drops instead of blocking.
"""

from __future__ import annotations

import itertools
import logging
import os
import sys
from pathlib import Path

import pytest

from bastion.config.loader import build_config
from bastion.errors import ConfigError
from bastion.observability.alerts.assembly import build_dispatcher
from bastion.observability.alerts.command import CommandSink
from bastion.observability.alerts.dispatcher import AlertDispatcher
from bastion.observability.alerts.email import EmailSink
from bastion.observability.alerts.webhook import WebhookSink
from tests.observability.alerts.helpers import FakeClock, FlakySink, GateSink, alert
from tests.observability.alerts.receivers import HttpReceiver, Mailbox


def test_one_alert_per_key_per_cooldown_and_repeats_are_counted(receiver: HttpReceiver) -> None:
    clock = FakeClock()
    dispatcher = AlertDispatcher([WebhookSink(receiver.url())], cooldown=600, clock=clock)
    try:
        assert dispatcher.offer(alert(at=clock())) is not None
        for _ in range(4):
            clock.advance(60)
            assert dispatcher.offer(alert(at=clock())) is None  # same key, cooling down
        other = dispatcher.offer(alert("spike:ip:198.51.100.7:401", at=clock()))
        assert other is not None  # another key is another incident
        clock.advance(600)
        again = dispatcher.offer(alert(at=clock()))
        assert again is not None
        assert again.repeats == 4
        posted = receiver.wait_for(3)
        assert [p.json()["repeats"] for p in posted] == [0, 0, 4]
        assert dispatcher.cooldown.suppressed == 4
    finally:
        dispatcher.close()


def test_failed_deliveries_are_retried_with_growing_back_off_and_logged(
    receiver: HttpReceiver, caplog: pytest.LogCaptureFixture
) -> None:
    receiver.failures = 3
    dispatcher = AlertDispatcher([WebhookSink(receiver.url())], retries=5, backoff=0.05)
    caplog.set_level(logging.WARNING, "bastion.alerts")
    try:
        dispatcher.offer(alert())
        [posted] = receiver.wait_for(1)
        assert posted.json()["key"] == "spike:ip:203.0.113.9:401"
        assert dispatcher.flush()
    finally:
        dispatcher.close()
    attempts = receiver.attempts
    assert len(attempts) == 4
    gaps = [b - a for a, b in itertools.pairwise(attempts)]
    assert gaps[0] >= 0.05
    assert gaps[1] >= 0.1
    assert gaps[2] >= 0.2
    failures = [r.getMessage() for r in caplog.records]
    assert len(failures) == 3
    assert "(attempt 1 of 6)" in failures[0]
    assert "answered 500" in failures[0]
    assert dispatcher.delivered == 1
    assert dispatcher.failed == 0


def test_delivery_is_given_up_after_the_last_retry_and_logged_as_an_error(
    caplog: pytest.LogCaptureFixture,
) -> None:
    sink = FlakySink(failures=100)
    dispatcher = AlertDispatcher([sink], retries=2, backoff=0.01)
    caplog.set_level(logging.WARNING, "bastion.alerts")
    dispatcher.offer(alert())
    assert dispatcher.flush()
    dispatcher.close()
    assert sink.calls == 3
    assert dispatcher.failed == 1
    errors = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert len(errors) == 1
    assert "not delivered to flaky after 3 attempts" in errors[0].getMessage()


def test_a_failing_sink_does_not_hold_up_the_others() -> None:
    flaky = FlakySink(failures=100)
    good = FlakySink(name="good")
    dispatcher = AlertDispatcher([flaky, good], retries=3, backoff=0.05)
    dispatcher.offer(alert())
    dispatcher.offer(alert("spike:ip:198.51.100.7:401"))
    assert dispatcher.flush()
    dispatcher.close()
    assert [a.key for a in good.delivered] == [
        "spike:ip:203.0.113.9:401",
        "spike:ip:198.51.100.7:401",
    ]
    assert flaky.calls == 8  # 2 alerts x (1 + 3 retries)


def test_a_full_queue_drops_and_counts_instead_of_blocking(
    caplog: pytest.LogCaptureFixture,
) -> None:
    sink = GateSink()
    dispatcher = AlertDispatcher([sink], queue=2)
    caplog.set_level(logging.WARNING, "bastion.alerts")
    dispatcher.offer(alert("k0"))
    assert sink.entered.wait(5)  # the thread is stuck in a delivery
    for i in range(1, 6):  # returns at once although nothing is delivered
        assert dispatcher.offer(alert(f"k{i}")) is not None
    assert dispatcher.dropped == 3
    assert any("alert queue full" in r.getMessage() for r in caplog.records)
    sink.gate.set()
    assert dispatcher.flush()
    dispatcher.close()
    assert [a.key for a in sink.delivered] == ["k0", "k1", "k2"]


def test_close_delivers_what_is_queued() -> None:
    sink = FlakySink()
    dispatcher = AlertDispatcher([sink])
    for i in range(3):
        dispatcher.offer(alert(f"k{i}"))
    dispatcher.close()
    assert len(sink.delivered) == 3


def test_sinks_are_built_from_config(
    receiver: HttpReceiver, smtp_server: Mailbox, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TEST_SMTP_PASSWORD", "pw-not-logged")
    config = build_config(
        {
            "monitoring": {
                "alerts": {
                    "cooldown": "5m",
                    "sinks": [
                        {"type": "webhook", "url": receiver.url(), "format": "slack"},
                        {"type": "email", "host": "127.0.0.1", "port": smtp_server.port,
                         "security": "none", "sender": "b@x.test", "to": ["o@x.test"]},
                        {"type": "command", "argv": [sys.executable, "-c", "pass"]},
                    ],
                }
            }
        },
        "test",
    )  # fmt: skip
    dispatcher = build_dispatcher(config.monitoring.alerts)
    kinds = [type(s) for s in dispatcher.sinks]
    assert kinds == [WebhookSink, EmailSink, CommandSink]
    assert dispatcher.cooldown.period == 300
    dispatcher.offer(alert())
    assert dispatcher.flush()
    dispatcher.close()
    assert dispatcher.delivered == 3
    assert "blocks" in receiver.received[0].json()
    assert len(smtp_server.messages) == 1


def test_config_errors_name_the_field() -> None:
    os.environ.pop("NO_SUCH_SMTP_PASSWORD", None)
    config = build_config(
        {"monitoring": {"alerts": {"sinks": [
            {"type": "email", "host": "mail.example.test", "sender": "b@x.test", "to": ["o@x.test"],
             "username": "bastion", "password_env": "NO_SUCH_SMTP_PASSWORD"}]}}},
        "test",
    )  # fmt: skip
    with pytest.raises(ConfigError, match=r"sinks\[0\]\.password_env.*NO_SUCH_SMTP_PASSWORD"):
        build_dispatcher(config.monitoring.alerts)
    with pytest.raises(ConfigError, match="plain SMTP is accepted only on a loopback host"):
        build_config(
            {"monitoring": {"alerts": {"sinks": [
                {"type": "email", "host": "mail.example.test", "security": "none",
                 "sender": "b@x.test", "to": ["o@x.test"]}]}}},
            "test",
        )  # fmt: skip
    with pytest.raises(ConfigError, match="expected an http:// or https:// URL"):
        build_config(
            {"monitoring": {"alerts": {"sinks": [{"type": "webhook", "url": "ftp://x"}]}}}, "t"
        )
