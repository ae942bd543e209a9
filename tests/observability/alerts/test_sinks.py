"""Each alert sink delivers to a real receiver: a local HTTP server (generic JSON and Slack
format), a local SMTP server (aiosmtpd), and a real command."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from bastion.observability.alerts.command import CommandSink
from bastion.observability.alerts.email import EmailSink
from bastion.observability.alerts.model import DeliveryError
from bastion.observability.alerts.webhook import WebhookSink
from tests.observability.alerts.helpers import alert
from tests.observability.alerts.receivers import SMTP_PASSWORD, SMTP_USER, HttpReceiver, Mailbox
from tests.ports import free_port


def test_generic_webhook_posts_the_alert_document(receiver: HttpReceiver) -> None:
    sink = WebhookSink(receiver.url("/alerts"), headers={"x-token": "abc"})
    sink.deliver(alert())
    [posted] = receiver.received
    assert posted.path == "/alerts"
    assert posted.headers["content-type"] == "application/json"
    assert posted.headers["x-token"] == "abc"
    doc = posted.json()
    assert doc["alert"] == "alert.spike"
    assert doc["key"] == "spike:ip:203.0.113.9:401"
    assert doc["severity"] == "warning"
    assert doc["evidence"] == {"ip": "203.0.113.9", "count": 40, "status": "401"}
    assert doc["timestamp"] == "2027-01-15T08:00:00Z"


def test_slack_webhook_posts_text_and_blocks(receiver: HttpReceiver) -> None:
    sink = WebhookSink(receiver.url("/services/T000/B000/XXXX"), format="slack")
    sink.deliver(alert().with_repeats(3))
    doc = receiver.received[0].json()
    assert set(doc) == {"text", "blocks"}
    assert "401 spike from ip 203.0.113.9" in doc["text"]
    assert "held back 3 repeats" in doc["text"]
    assert doc["blocks"][0]["type"] == "section"
    fields = {f["text"] for f in doc["blocks"][-1]["fields"]}
    assert "*ip*\n203.0.113.9" in fields
    assert "*count*\n40" in fields


def test_a_refusing_webhook_is_a_delivery_error_without_the_url_secret(
    receiver: HttpReceiver,
) -> None:
    receiver.failures = 1
    sink = WebhookSink(receiver.url("/services/T000/B000/s3cr3t-path"), format="slack")
    with pytest.raises(DeliveryError) as caught:
        sink.deliver(alert())
    assert "answered 500" in str(caught.value)
    assert "s3cr3t" not in str(caught.value)


def test_an_unreachable_webhook_is_a_delivery_error() -> None:
    sink = WebhookSink(f"http://127.0.0.1:{free_port()}/hook?token=s3cr3t", timeout=1)
    with pytest.raises(DeliveryError) as caught:
        sink.deliver(alert())
    assert "s3cr3t" not in str(caught.value)
    assert str(caught.value).startswith("http://127.0.0.1:")


def test_email_reaches_a_real_smtp_server(smtp_server: Mailbox) -> None:
    sink = EmailSink(
        host="127.0.0.1",
        port=smtp_server.port,
        security="none",
        sender="bastion@example.test",
        to=["oncall@example.test", "sec@example.test"],
    )
    sink.deliver(alert())
    [mail] = smtp_server.wait_for(1)
    assert smtp_server.envelopes == [
        ("bastion@example.test", ["oncall@example.test", "sec@example.test"])
    ]
    subject = " ".join(str(mail["Subject"]).split())  # unfolded
    assert subject == "[bastion] warning: 401 spike from ip 203.0.113.9: 40 in 60 s (baseline 0.0)"
    body = mail.get_content()
    assert "alert:    alert.spike" in body
    assert "key:      spike:ip:203.0.113.9:401" in body
    assert "  ip: 203.0.113.9" in body


def test_email_over_starttls_with_a_password(smtp_tls_server: Mailbox) -> None:
    sink = EmailSink(
        host="127.0.0.1",
        port=smtp_tls_server.port,
        security="starttls",
        username=SMTP_USER,
        password=SMTP_PASSWORD,
        sender="bastion@example.test",
        to=["oncall@example.test"],
        context=smtp_tls_server.client_context,
    )
    sink.deliver(alert())
    [mail] = smtp_tls_server.wait_for(1)
    assert smtp_tls_server.logins == [SMTP_USER]
    assert "key:      spike:ip:203.0.113.9:401" in mail.get_content()


def test_a_wrong_smtp_password_is_a_delivery_error_that_does_not_echo_it(
    smtp_tls_server: Mailbox,
) -> None:
    sink = EmailSink(
        host="127.0.0.1", port=smtp_tls_server.port, username=SMTP_USER,
        password="wrong-pw-1234", sender="b@x.test", to=["o@x.test"],
        context=smtp_tls_server.client_context,
    )  # fmt: skip
    with pytest.raises(DeliveryError, match="SMTPAuthenticationError") as caught:
        sink.deliver(alert())
    assert "wrong-pw-1234" not in str(caught.value)
    assert smtp_tls_server.messages == []


def test_an_untrusted_smtp_certificate_is_refused(smtp_tls_server: Mailbox) -> None:
    sink = EmailSink(  # the system trust store does not know the test CA
        host="127.0.0.1", port=smtp_tls_server.port, username=SMTP_USER,
        password=SMTP_PASSWORD, sender="b@x.test", to=["o@x.test"],
    )  # fmt: skip
    with pytest.raises(DeliveryError, match="SSLCertVerificationError"):
        sink.deliver(alert())
    assert smtp_tls_server.logins == []


def test_an_smtp_server_that_is_not_there_is_a_delivery_error() -> None:
    sink = EmailSink(
        host="127.0.0.1", port=free_port(), security="none", sender="a@b.test", to=["c@d.test"],
        timeout=1,
    )  # fmt: skip
    with pytest.raises(DeliveryError, match=r"smtp 127\.0\.0\.1:\d+: ConnectionRefusedError"):
        sink.deliver(alert())


def test_the_command_gets_the_document_on_stdin_and_fields_in_its_environment(
    tmp_path: Path,
) -> None:
    out = tmp_path / "alert.json"
    script = (
        "import json, os, sys; doc = json.load(sys.stdin); "
        "doc['env'] = {k: v for k, v in os.environ.items() if k.startswith('BASTION_ALERT')}; "
        f"open({str(out)!r}, 'w').write(json.dumps(doc))"
    )
    CommandSink([sys.executable, "-c", script]).deliver(alert())
    doc = json.loads(out.read_text())
    assert doc["alert"] == "alert.spike"
    assert doc["evidence"]["ip"] == "203.0.113.9"
    assert doc["env"] == {
        "BASTION_ALERT": "alert.spike",
        "BASTION_ALERT_KEY": "spike:ip:203.0.113.9:401",
        "BASTION_ALERT_SEVERITY": "warning",
        "BASTION_ALERT_SUMMARY": "401 spike from ip 203.0.113.9: 40 in 60 s (baseline 0.0)",
    }


def test_a_failing_or_missing_command_is_a_delivery_error(tmp_path: Path) -> None:
    with pytest.raises(DeliveryError, match="exited with status 3"):
        CommandSink([sys.executable, "-c", "raise SystemExit(3)"]).deliver(alert())
    with pytest.raises(DeliveryError, match="could not start"):
        CommandSink([str(tmp_path / "no-such-program")]).deliver(alert())
    with pytest.raises(DeliveryError, match=r"ran past 0\.2 s"):
        CommandSink([sys.executable, "-c", "import time; time.sleep(5)"], timeout=0.2).deliver(
            alert()
        )
