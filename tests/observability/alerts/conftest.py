"""Real alert receivers (HTTP, SMTP) for the alert tests."""

from tests.observability.alerts.receivers import receiver, smtp_server, smtp_tls_server

__all__ = ["receiver", "smtp_server", "smtp_tls_server"]
