"""Webhook sinks: bastion's JSON alert document, or a Slack-compatible incoming-webhook message.

Slack webhook URLs carry their secret in the path, so errors and logs name only the scheme, host
and port of the destination.
"""

from __future__ import annotations

from typing import Any, ClassVar
from urllib.parse import urlsplit

import httpx
import orjson

from bastion.observability.alerts.model import Alert, DeliveryError, inert

_SEVERITY_MARK = {
    "critical": ":rotating_light:",
    "warning": ":warning:",
    "info": ":information_source:",
}
_MAX_SLACK_FIELDS = 10  # Slack refuses a section with more


def destination(url: str) -> str:
    """``scheme://host:port`` of ``url``: enough to say where, nothing secret."""
    parts = urlsplit(url)
    port = f":{parts.port}" if parts.port else ""
    return f"{parts.scheme}://{parts.hostname}{port}"


def mrkdwn(text: str) -> str:
    """``text`` as literal Slack mrkdwn: ``&``, ``<`` and ``>`` escaped as Slack asks, so a
    client-chosen value (a user name, a path) cannot become a ``<!channel>`` mention or a
    disguised ``<url|label>`` link in the operators' channel."""
    return inert(text).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def slack_message(alert: Alert) -> dict[str, Any]:
    """A Slack incoming-webhook payload: ``text`` (notifications, fallback) plus blocks."""
    mark = _SEVERITY_MARK.get(alert.severity, "")
    title = f"{mark} bastion {alert.severity}: {mrkdwn(alert.summary)}".strip()
    repeats = f" (held back {alert.repeats} repeats)" if alert.repeats else ""
    fields = [
        {"type": "mrkdwn", "text": f"*{mrkdwn(name)}*\n{mrkdwn(_short(value))}"}
        for name, value in list(alert.evidence.items())[:_MAX_SLACK_FIELDS]
    ]
    blocks: list[dict[str, Any]] = [
        {"type": "section", "text": {"type": "mrkdwn", "text": f"*{title}*{repeats}"}},
        {
            "type": "context",
            "elements": [
                {"type": "mrkdwn", "text": f"`{alert.action}` · key `{mrkdwn(alert.key)}`"}
            ],
        },
    ]
    if fields:
        blocks.append({"type": "section", "fields": fields})
    return {"text": title + repeats, "blocks": blocks}


def _short(value: Any) -> str:
    text = value if isinstance(value, str) else orjson.dumps(value).decode()
    return text if len(text) <= 200 else text[:197] + "..."


class WebhookSink:
    """POSTs each alert to ``url``; any 2xx answer is a delivery."""

    kind: ClassVar[str] = "webhook"

    def __init__(
        self,
        url: str,
        *,
        name: str = "webhook",
        format: str = "json",
        headers: dict[str, str] | None = None,
        timeout: float = 5.0,
    ) -> None:
        if format not in ("json", "slack"):
            raise ValueError(f"webhook format {format!r}: expected 'json' or 'slack'")
        self.name = name
        self.url = url
        self.format = format
        self.where = destination(url)
        self._headers = {"content-type": "application/json", **(headers or {})}
        self._timeout = timeout

    def body(self, alert: Alert) -> bytes:
        payload = slack_message(alert) if self.format == "slack" else alert.document()
        return orjson.dumps(payload)

    def deliver(self, alert: Alert) -> None:
        try:
            response = httpx.post(
                self.url, content=self.body(alert), headers=self._headers, timeout=self._timeout
            )
        except httpx.HTTPError as exc:
            raise DeliveryError(f"{self.where}: {type(exc).__name__}") from exc
        if not 200 <= response.status_code < 300:
            raise DeliveryError(f"{self.where} answered {response.status_code}")

    def __repr__(self) -> str:
        return f"WebhookSink({self.name!r}, {self.where}, format={self.format!r})"
