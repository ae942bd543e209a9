"""The detector tests' fixtures: a test GeoIP database and real alert receivers."""

from tests.observability.alerts.receivers import country_db, receiver, smtp_server

__all__ = ["country_db", "receiver", "smtp_server"]
