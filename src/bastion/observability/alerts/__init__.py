"""Alerts: what the detectors found, delivered to people (webhooks, Slack, email, a command).

Delivery never touches the request path: :class:`AlertDispatcher` takes alerts into a bounded
queue and a background thread delivers them, retrying with back-off, once per alert key per
cooldown.
"""

from bastion.observability.alerts.dispatcher import AlertDispatcher
from bastion.observability.alerts.model import Alert, AlertSink, DeliveryError

__all__ = ["Alert", "AlertDispatcher", "AlertSink", "DeliveryError"]
