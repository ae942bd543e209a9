"""The detector tests' fixtures: a test GeoIP database, real alert receivers, and (for the
gateway tests) the engine tests' upstream and the auth tests' key store on a fake clock."""

from tests.auth.conftest import clock, hasher, keys, memory_store
from tests.engine.conftest import pytest_asyncio_loop_factories, upstream
from tests.observability.alerts.receivers import country_db, receiver, smtp_server, smtp_tls_server

__all__ = [
    "clock",
    "country_db",
    "hasher",
    "keys",
    "memory_store",
    "pytest_asyncio_loop_factories",
    "receiver",
    "smtp_server",
    "smtp_tls_server",
    "upstream",
]
