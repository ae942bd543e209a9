"""Validation tests run the engine on uvloop, as production does, with the recording upstream."""

from __future__ import annotations

from tests.engine.conftest import pytest_asyncio_loop_factories, upstream

__all__ = ["pytest_asyncio_loop_factories", "upstream"]
