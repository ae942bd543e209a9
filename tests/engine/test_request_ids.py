"""Request ids the engine writes as bytes are the ids ``new_request_id`` would give."""

from __future__ import annotations

import asyncio
import itertools
import tempfile

from bastion.config.models import BastionConfig
from bastion.engine.context import EngineContext
from bastion.observability.events import NullSink
from bastion.observability.traffic import TrafficStats
from bastion.pipeline.chain import GuardChain
from bastion.pipeline.routing import Route, Router


def _context(loop: asyncio.AbstractEventLoop) -> EngineContext:
    config = BastionConfig.model_validate(
        {
            "routes": [{"name": "api", "upstream": "http://127.0.0.1:9000"}],
            "events": {"sink": "none"},
            "admin": {"enabled": False},
            "state_dir": tempfile.mkdtemp(prefix="bastion-ids-"),
        }
    )
    chain = GuardChain([Router([Route.from_config(r) for r in config.routes])], NullSink())
    return EngineContext(config=config, chain=chain, stats=TrafficStats(), loop=loop, scheme="http")


def test_request_id_field_matches_formatting_across_digit_boundaries() -> None:
    loop = asyncio.new_event_loop()
    try:
        ctx = _context(loop)
        for start in (1, 0xFF, 0xFFFF_FF00, 0xFFFF_FFFE, 0x1_0000_0000):
            ctx.request_numbers = itertools.count(start)
            expected = itertools.count(start)
            for _ in range(600):
                field = ctx.new_request_id_field()
                assert field == ctx.request_id_prefix + b"%08x\r\n" % next(expected)
        assert field.startswith(b"x-request-id: ")
    finally:
        loop.close()


def test_single_catch_all_route_is_fixed_and_others_are_not() -> None:
    loop = asyncio.new_event_loop()
    try:
        ctx = _context(loop)
        assert ctx.fixed_route is not None
        assert ctx.fixed_route.name == "api"
        two = [
            Route.from_config(r)
            for r in BastionConfig.model_validate(
                {
                    "routes": [
                        {"name": "a", "upstream": "http://127.0.0.1:9000", "path_prefix": "/a"},
                        {"name": "b", "upstream": "http://127.0.0.1:9001"},
                    ],
                    "state_dir": tempfile.mkdtemp(prefix="bastion-ids-"),
                }
            ).routes
        ]
        ctx.use_chain(GuardChain([Router(two)], NullSink()))
        assert ctx.fixed_route is None
        assert ctx.router_only is not None
    finally:
        loop.close()
