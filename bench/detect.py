"""Cost of the detectors' completion hook (the ``monitor`` guard), side by side in one run.

Two measurements, alternating the variants round by round so that a drift of the machine hits
both alike, and printing the medians and their ratios:

1. *engine*: the engine's whole per-request Python path (``micro_engine.wire``: fake
   transports, no sockets) with the chain ``bastion serve`` builds, monitoring off against
   ``monitoring.enabled: true`` (every detector on, default parameters);
2. *hook*: ``MonitorGuard.on_complete`` alone on prepared requests (anonymous 200, an
   authenticated consumer's 200 with a body, a 401 burst from one address, a numbered path)
   against a completion hook that does nothing.

    .venv/bin/python bench/detect.py              # about 20 s
    .venv/bin/python bench/detect.py --rounds 3   # quicker, noisier

Numbers are noisy on a shared machine: compare ratios, not absolute microseconds.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, ClassVar

import uvloop

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bastion.assembly import build_gateway_chain
from bastion.config.models import BastionConfig
from bastion.observability.detect.assembly import build_monitor
from bastion.observability.detect.guard import MonitorGuard
from bastion.observability.events import NullSink
from bastion.pipeline.chain import GuardChain
from bastion.pipeline.decisions import ALLOW, Decision
from bastion.pipeline.guard import Phase
from bastion.pipeline.identity import IDENTITY, Identity
from bastion.pipeline.request import ClientAddress, Headers, Request
from bastion.pipeline.routing import ROUTE, Route
from micro_engine import exchanges, wire


def config(monitoring: bool) -> BastionConfig:
    data: dict[str, Any] = {
        "routes": [{"name": "api", "upstream": "http://127.0.0.1:9000"}],
        "events": {"sink": "none"},
        "admin": {"enabled": False},
        "state_dir": tempfile.mkdtemp(prefix="bastion-detect-bench-"),
        "monitoring": {"enabled": monitoring},
    }
    return BastionConfig.model_validate(data)


class NoOpGuard:
    """A LOG-phase guard that allows and whose completion hook does nothing: the same chain
    shape as the ``monitor`` guard (so the engine's router-only fast path is off in both)."""

    name: ClassVar[str] = "noop"
    phase: ClassVar[Phase] = Phase.LOG
    requires_body: ClassVar[bool] = False
    fail_open = True

    def check(self, request: Request) -> Decision:
        return ALLOW

    def on_complete(self, request: Request, status: int, bytes_sent: int, seconds: float) -> None:
        return None


def engine_run(
    cfg: BastionConfig, n: int, loop: asyncio.AbstractEventLoop, noop: bool = False
) -> float:
    """µs per proxied request through the engine with the chain ``cfg`` builds."""
    chain = build_gateway_chain(cfg, NullSink())
    if noop:
        chain = GuardChain([*chain.guards, NoOpGuard()], chain.events)
    client, client_transport, up, up_transport = wire(cfg, chain, loop)
    return exchanges(client, client_transport, up, up_transport, n)


class NoHook:
    def on_complete(self, request: Request, status: int, bytes_sent: int, seconds: float) -> None:
        return None


def requests() -> dict[str, tuple[Request, int]]:
    route = Route(name="api")

    def make(path: str, ip: str, consumer: str | None = None, body: int = 0) -> Request:
        raw = [(b"host", b"api.example.com"), (b"user-agent", b"bench"), (b"accept", b"*/*")]
        if body:
            raw.append((b"content-length", str(body).encode()))
        request = Request(
            method="POST" if body else "GET",
            path=path,
            query="",
            headers=Headers(raw),
            client=ClientAddress(ip, 40000),
        )
        request.state[ROUTE] = route
        if consumer is not None:
            request.state[IDENTITY] = Identity(consumer=consumer, method="api_key")
        return request

    return {
        "anonymous 200": (make("/items", "100.64.0.1"), 200),
        "consumer 200 + body": (make("/orders", "100.64.0.2", "acme", body=512), 200),
        "401 burst, one IP": (make("/orders", "198.51.100.66"), 401),
        "numbered path 200": (make("/items/1234", "100.64.0.3", "acme"), 200),
    }


def hook_run(hook: Any, request: Request, status: int, n: int) -> float:
    """ns per ``on_complete`` call."""
    on_complete = hook.on_complete
    start = time.perf_counter()
    for _ in range(n):
        on_complete(request, status, 1200, 0.001)
    return (time.perf_counter() - start) / n * 1e9


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("-n", type=int, default=30_000, help="requests per engine run")
    parser.add_argument("--rounds", type=int, default=7)
    args = parser.parse_args()
    loop = uvloop.new_event_loop()
    asyncio.set_event_loop(loop)
    off, on = config(False), config(True)
    variants = [("off", off, False), ("off + no-op guard", off, True), ("on", on, False)]
    for _, cfg, noop in variants:  # warm-up
        engine_run(cfg, 2_000, loop, noop)
    engine: dict[str, list[float]] = {name: [] for name, _, _ in variants}
    for round_ in range(args.rounds):
        for name, cfg, noop in variants if round_ % 2 == 0 else reversed(variants):
            engine[name].append(engine_run(cfg, args.n, loop, noop))
    medians = {name: statistics.median(times) for name, times in engine.items()}
    print(f"engine, per proxied request (median of {args.rounds} rounds, {args.n} requests each)")
    for name, value in medians.items():
        print(f"  monitoring {name:18s} {value:7.2f} us")
    on_us = medians["on"]
    print(f"  ratio off/on {medians['off'] / on_us:.3f}; "
          f"(off + no-op guard)/on {medians['off + no-op guard'] / on_us:.3f}")  # fmt: skip

    monitor = build_monitor(on, NullSink())
    guard = MonitorGuard(monitor)
    baseline = NoHook()
    n_hook = args.n * 10
    print(f"completion hook alone, per call (median of {args.rounds} rounds, {n_hook} calls)")
    for label, (request, status) in requests().items():
        times: dict[str, list[float]] = {"none": [], "monitor": []}
        hook_run(guard, request, status, 1_000)
        for round_ in range(args.rounds):
            pairs = [("none", baseline), ("monitor", guard)]
            for name, hook in pairs if round_ % 2 == 0 else reversed(pairs):
                times[name].append(hook_run(hook, request, status, n_hook))
        none, mon = statistics.median(times["none"]), statistics.median(times["monitor"])
        print(
            f"  {label:22s} no-op {none:6.0f} ns   monitor {mon:6.0f} ns   (+{mon - none:.0f} ns)"
        )
    monitor.stop_delivery()


if __name__ == "__main__":
    main()
