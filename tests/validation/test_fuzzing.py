"""Property-based fuzzing of the real gateway from the document, with Schemathesis.

Schemathesis generates requests from ``fuzz-3.0.yaml`` and ``petstore-3.1.yaml`` (whose
schemas live in other files): valid ones (positive) and ones that violate the schema on
purpose (negative: wrong types, missing required values, out-of-range numbers, undocumented
properties, ...). Each goes through the real engine with the validation
guard to the recording upstream. What must hold for every request:

- no 5xx, ever;
- a request bastion refuses never reached the upstream, and its answer is a 4xx problem;
- a request that violates the schema never reaches the upstream (Schemathesis's own
  ``negative_data_rejection`` judges which inputs really violate it once serialised);
- a valid request is not refused (``positive_data_acceptance``).
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import schemathesis
import uvloop
from hypothesis import HealthCheck, settings
from schemathesis.checks import CHECKS
from schemathesis.config import SchemathesisConfig

from bastion.engine.server import GatewayServer
from tests.engine.upstream_app import Upstream, start_upstream
from tests.validation.gateway import gateway_config, start_validating_gateway
from tests.validation.helpers import PETS_31, SPECS

FUZZ = SPECS / "fuzz-3.0.yaml"

config = SchemathesisConfig.from_dict({"generation": {"mode": "all"}})
schema_30 = schemathesis.openapi.from_path(FUZZ, config=config)
schema_31 = schemathesis.openapi.from_path(PETS_31, config=config)  # refs across files
EXAMPLES = settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=list(HealthCheck),
    derandomize=True,
    database=None,
)


@dataclass
class Running:
    base: str
    upstream: Upstream
    loop: asyncio.AbstractEventLoop
    server: GatewayServer


@contextlib.contextmanager
def running_gateway(spec: Path, base_path: str) -> Iterator[Running]:
    """The gateway and the recording upstream on their own uvloop thread, since Schemathesis
    calls synchronously."""
    loop = uvloop.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()

    async def start() -> Running:
        upstream = await start_upstream()
        server = await start_validating_gateway(gateway_config(spec, upstream.url))
        return Running(f"http://127.0.0.1:{server.port}{base_path}", upstream, loop, server)

    running = asyncio.run_coroutine_threadsafe(start(), loop).result(10)
    try:
        yield running
    finally:

        async def stop() -> None:
            await running.server.shutdown(1.0)
            assert running.upstream.server is not None
            running.upstream.server.close()

        asyncio.run_coroutine_threadsafe(stop(), loop).result(10)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(5)


@pytest.fixture(scope="module")
def running_30() -> Iterator[Running]:
    with running_gateway(FUZZ, "/v1") as running:
        yield running


@pytest.fixture(scope="module")
def running_31() -> Iterator[Running]:
    with running_gateway(PETS_31, "") as running:
        yield running


def _check(name: str) -> Any:
    return next(check for check in CHECKS.get_all() if check.__name__ == name)


def exercise(case: schemathesis.Case, running: Running) -> None:
    before = len(running.upstream.seen)
    response = case.call(base_url=running.base, timeout=5)
    reached = len(running.upstream.seen) > before
    assert response.status_code < 500, response.text
    if not reached:
        assert 400 <= response.status_code < 500
        assert response.headers["content-type"] == ["application/problem+json"]
    case.validate_response(
        response,
        checks=[_check("negative_data_rejection"), _check("positive_data_acceptance")],
    )


@schema_30.parametrize()
@EXAMPLES
def test_the_gateway_refuses_what_an_openapi_30_document_does_not_allow(
    case: schemathesis.Case, running_30: Running
) -> None:
    exercise(case, running_30)


@schema_31.parametrize()
@EXAMPLES
def test_the_gateway_refuses_what_an_openapi_31_document_does_not_allow(
    case: schemathesis.Case, running_31: Running
) -> None:
    exercise(case, running_31)
