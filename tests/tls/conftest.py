"""TLS tests run on uvloop (as the engine does in production) against real handshakes."""

from tests.engine.conftest import pytest_asyncio_loop_factories, upstream

__all__ = ["pytest_asyncio_loop_factories", "upstream"]
