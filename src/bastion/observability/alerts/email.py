"""The email sink: one plain-text message per alert over SMTP (STARTTLS, implicit TLS, or plain
on loopback only). The password comes from an environment variable, never from the config file,
and is never part of an error message."""

from __future__ import annotations

import smtplib
import ssl
import time
from collections.abc import Sequence
from email.message import EmailMessage
from typing import ClassVar

import orjson

from bastion.observability.alerts.model import Alert, DeliveryError, inert


def message(alert: Alert, sender: str, to: Sequence[str], prefix: str) -> EmailMessage:
    mail = EmailMessage()
    # Every line carries client-chosen text only through inert(): no line break of theirs can
    # fail the message (a header may not hold one) or forge a line of the body.
    mail["Subject"] = inert(f"{prefix} {alert.severity}: {alert.summary}".strip())
    mail["From"] = sender
    mail["To"] = ", ".join(to)
    mail["Date"] = time.strftime("%a, %d %b %Y %H:%M:%S +0000", time.gmtime(alert.timestamp))
    lines = [
        inert(alert.summary),
        "",
        f"alert:    {alert.action}",
        f"key:      {inert(alert.key)}",
        f"severity: {alert.severity}",
        f"time:     {alert.document()['timestamp']}",
    ]
    if alert.repeats:
        lines.append(f"repeats held back by the cooldown: {alert.repeats}")
    lines += ["", "evidence:"]
    for name, value in alert.evidence.items():
        text = value if isinstance(value, str) else orjson.dumps(value).decode()
        lines.append(f"  {inert(name)}: {inert(text)}")
    mail.set_content("\n".join(lines) + "\n")
    return mail


class EmailSink:
    kind: ClassVar[str] = "email"

    def __init__(
        self,
        *,
        host: str,
        port: int,
        sender: str,
        to: Sequence[str],
        name: str = "email",
        security: str = "starttls",
        username: str | None = None,
        password: str | None = None,
        subject_prefix: str = "[bastion]",
        timeout: float = 10.0,
        context: ssl.SSLContext | None = None,
    ) -> None:
        self.name = name
        self.host = host
        self.port = port
        self.sender = sender
        self.to = tuple(to)
        self.security = security
        self._username = username
        self._password = password
        self._prefix = subject_prefix
        self._timeout = timeout
        self._context = context or ssl.create_default_context()

    def deliver(self, alert: Alert) -> None:
        mail = message(alert, self.sender, self.to, self._prefix)
        where = f"smtp {self.host}:{self.port}"
        try:
            smtp: smtplib.SMTP
            if self.security == "tls":
                smtp = smtplib.SMTP_SSL(
                    self.host, self.port, timeout=self._timeout, context=self._context
                )
            else:
                smtp = smtplib.SMTP(self.host, self.port, timeout=self._timeout)
            with smtp:
                if self.security == "starttls":
                    smtp.starttls(context=self._context)
                if self._username is not None and self._password is not None:
                    smtp.login(self._username, self._password)
                smtp.send_message(mail)
        except smtplib.SMTPException as exc:
            # The reply text of an authentication failure may quote what was sent: name the
            # error class only.
            raise DeliveryError(f"{where}: {type(exc).__name__}") from exc
        except (OSError, ssl.SSLError) as exc:
            raise DeliveryError(f"{where}: {type(exc).__name__}") from exc

    def __repr__(self) -> str:
        return f"EmailSink({self.name!r}, {self.host}:{self.port}, to={len(self.to)})"
