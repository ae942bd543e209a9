"""Regression: text a client chooses (an HTTP Basic user name on a login route, which may hold
any character) reaches alerts only as inert text: no Slack mention or link, no extra mail header,
and never a delivery that fails because of it (an attacker could otherwise silence the alert
about their own credential stuffing)."""

from __future__ import annotations

import base64
import json
import logging
import sys
from pathlib import Path

import pytest

from bastion.config.monitoring import StuffingConfig
from bastion.observability.alerts.command import CommandSink
from bastion.observability.alerts.dispatcher import AlertDispatcher
from bastion.observability.alerts.email import EmailSink
from bastion.observability.alerts.model import Alert
from bastion.observability.alerts.webhook import WebhookSink
from bastion.observability.detect.guard import MonitorGuard
from bastion.observability.detect.monitor import Monitor
from bastion.observability.detect.stuffing import StuffingDetector
from bastion.observability.events import MemorySink
from bastion.pipeline.request import ClientAddress, Headers, Request
from tests.observability.alerts.receivers import HttpReceiver, Mailbox, receiver, smtp_server
from tests.ports import free_port

__all__ = ["receiver", "smtp_server"]

# A Basic user name cannot hold ":", but any other character (CR, LF, NUL, "<", "|") it can.
HOSTILE = "<!channel> <https//evil.example/reset|reset here>\r\nX-Injected\x00"


def stuffing_alert(user: str) -> Alert:
    """The credential stuffing alert the real detector raises for ten failed logins on ``user``
    from ten addresses, the account taken from each request's Basic header by the guard."""
    caught: list[Alert] = []
    monitor = Monitor(
        events=MemorySink(),
        dispatcher=AlertDispatcher([]),
        stuffing=StuffingDetector(StuffingConfig()),
        clock=lambda: 1_800_000_000.0,
    )
    monitor.listeners.append(caught.append)
    guard = MonitorGuard(monitor, login_routes=frozenset({"login"}))
    basic = "Basic " + base64.b64encode(f"{user}:guess".encode()).decode()
    for i in range(10):
        request = Request(
            method="POST",
            path="/login",
            query="",
            headers=Headers([(b"authorization", basic.encode())]),
            client=ClientAddress(f"198.51.100.{i + 1}", 1),
            request_id="rid",
        )
        account = guard.account(request)
        assert account is not None
        monitor.login_failure(request.client.ip, account)
    [alert] = [a for a in caught if a.key.startswith("stuffing:account:")]
    assert user in alert.summary
    return alert


def test_slack_message_neutralises_mentions_and_links(receiver: HttpReceiver) -> None:
    WebhookSink(receiver.url(), format="slack").deliver(stuffing_alert(HOSTILE))
    [posted] = receiver.received
    text = json.dumps(posted.json())
    assert "<!channel>" not in text
    assert "<https//evil.example" not in text
    assert "&lt;!channel&gt;" in text


def test_email_subject_cannot_gain_a_header_and_is_delivered(smtp_server: Mailbox) -> None:
    sink = EmailSink(
        host="127.0.0.1",
        port=smtp_server.port,
        security="none",
        sender="bastion@example.test",
        to=["oncall@example.test"],
    )
    sink.deliver(stuffing_alert(HOSTILE))
    [mail] = smtp_server.wait_for(1)
    assert smtp_server.envelopes == [("bastion@example.test", ["oncall@example.test"])]
    subject = str(mail["Subject"])
    assert "credential stuffing on account" in subject
    assert "X-Injected" in subject
    assert "\nX-Injected" not in mail.get_content()


def test_command_receives_an_alert_with_control_characters(tmp_path: Path) -> None:
    out = tmp_path / "summary"
    script = f"import os; open({str(out)!r}, 'w').write(os.environ['BASTION_ALERT_SUMMARY'])"
    CommandSink([sys.executable, "-c", script]).deliver(stuffing_alert(HOSTILE))
    summary = out.read_text()
    assert summary.startswith("credential stuffing on account")
    assert "\n" not in summary


def test_delivery_failures_log_the_alert_key_on_one_line(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The dispatcher logs each failed delivery with the alert's key, which names the account a
    client chose: its line break must not start a forged log line."""
    forged = "x\nCRITICAL bastion all keys revoked"
    dead = WebhookSink(f"http://127.0.0.1:{free_port()}/hook", timeout=1.0)
    dispatcher = AlertDispatcher([dead], retries=0, cooldown=0.0)
    with caplog.at_level(logging.WARNING, logger="bastion.alerts"):
        dispatcher.offer(stuffing_alert(forged))
        assert dispatcher.flush(5.0)
    dispatcher.close()
    assert "not delivered" in caplog.text
    assert all(not line.startswith("CRITICAL bastion") for line in caplog.text.splitlines())
    assert "x\\nCRITICAL bastion all keys revoked" in caplog.text
