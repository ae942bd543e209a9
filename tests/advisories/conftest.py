"""The advisories run through the real engine, with the engine tests' uvloop and upstream."""

from tests.engine.conftest import pytest_asyncio_loop_factories, upstream

__all__ = ["pytest_asyncio_loop_factories", "upstream"]
