"""What full logging costs per request, without sockets: the gateway's Python path with an API
key on every request, with logging off against logging on.

The harness of ``micro_engine.py`` (fake transports, a pooled upstream fed an nginx-like
response) with the API-key guard of ``auth_keys.py`` (a valid key on every request, so every
request makes an ``auth.success`` event). Two setups, built from the same config but for
``events``:

- ``off``: ``events.sink: none``, no access events, no event store (the writer only counts);
- ``full``: access events and security events to a rotated JSON-lines file in a temp dir, the
  event store on: the real :class:`EventWriter` and :class:`RotatingFileSink`, wired as
  ``bastion serve`` wires them (``events = Tee([writer, recent])``, ``access=writer.access``,
  ``stats.events = writer``). Two lines per request;
- ``monitor``: ``full`` with every detector on (``monitoring.enabled``): the detectors' tee in
  front of the events and the ``monitor`` guard in the chain, as ``build_gateway_chain`` puts
  them. This is what issue 7's target compares with ``off``.

The time of a run includes ``writer.flush()`` at its end, so every line of the run is formatted
and written within it (the writer thread's work is counted, as it is on a core under load).

    .venv/bin/python bench/micro_logging.py                    # us/request, interleaved runs
    .venv/bin/python bench/micro_logging.py --mode full --profile
    .venv/bin/python bench/micro_logging.py --callgrind     # instructions per request
    .venv/bin/python bench/micro_logging.py --callgrind --path /   # event_logging.py's request

``--callgrind`` runs each mode under valgrind's callgrind twice, with ``-n`` requests and with
three times as many, without toggles (every thread counted: the writer's formatting and
writing too), and reports the difference divided by the extra requests: the per-request
instructions without the process's start-up. Deterministic enough to compare changes
(a few tenths of a percent between runs), unlike the times on a shared machine.
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import uvloop

from bastion.assembly import build_events
from bastion.auth.assembly import auth_guards
from bastion.auth.keys.hashing import KeyHasher
from bastion.auth.keys.manager import KeyManager
from bastion.config.loader import build_config
from bastion.config.models import BastionConfig
from bastion.control.recent import RecentEvents, Tee
from bastion.engine.protocol import ClientProtocol
from bastion.engine.upstream import UpstreamConnection
from bastion.observability.assembly import event_redactor
from bastion.observability.detect.assembly import monitored_events, monitoring_guards
from bastion.observability.writer import EventWriter
from bastion.pipeline.chain import GuardChain
from bastion.pipeline.routing import Route, Router
from bastion.store import MemoryKeyStore
from micro_engine import RESPONSE, exchanges, wire

MODES = ("off", "full", "monitor")
PATH = "/orders/42?page=2"  # an identifier's last segment: the enumeration detector looks at it


def config_for(mode: str, work: Path) -> BastionConfig:
    if mode in ("full", "monitor"):
        events: dict[str, Any] = {
            "sink": "file",
            "path": str(work / "logs" / "events.jsonl"),
            "access": True,
            "store": {"enabled": True},
        }
    else:
        events = {"sink": "none", "access": False, "store": {"enabled": False}}
    return build_config(
        {
            "routes": [{"name": "api", "upstream": "http://127.0.0.1:9000"}],
            "events": events,
            "monitoring": {"enabled": mode == "monitor"},
            "admin": {"enabled": False},
            "auth": {"default": "required"},
            "state_dir": str(work / "state"),
        },
        "bench",
    )


class Setup:
    """One gateway of ``mode`` on fake transports, and the request that carries the key."""

    def __init__(self, mode: str, loop: asyncio.AbstractEventLoop, path: str = PATH) -> None:
        self.work = Path(tempfile.mkdtemp(prefix=f"bastion-micro-logging-{mode}-"))
        config = config_for(mode, self.work)
        # As bastion serve (engine/runtime.py): the writer and the recent ring behind one sink.
        recent = RecentEvents(config.admin.recent_events, redactor=event_redactor(config))
        self.writer: EventWriter = build_events(config)
        events = monitored_events(config, Tee([self.writer, recent]))
        store, hasher = MemoryKeyStore(), KeyHasher(b"bench-pepper-" + b"x" * 32)
        guards = auth_guards(config, events, key_store=lambda: (store, hasher), start=False)
        issued = KeyManager(config, store=store, hasher=hasher).create(
            "acme", scopes=("orders:read",), tier="gold"
        )
        for guard in guards:
            sync = getattr(guard, "sync", None)
            if sync is not None:
                sync.refresh()
        routes = [Route.from_config(r) for r in config.routes]
        chain = GuardChain([Router(routes), *guards, *monitoring_guards(config, events)], events)
        client, self.client_transport, up, self.up_transport = wire(config, chain, loop)
        ctx = client.ctx
        ctx.stats.events = self.writer
        if config.events.access and self.writer.sinks:
            ctx.access = self.writer.access
        self.client: ClientProtocol = client
        self.up: UpstreamConnection = up
        self.request = (
            f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1:8080\r\nUser-Agent: bench/1.0\r\n"
            f"Accept: application/json\r\nX-API-Key: {issued.secret}\r\n\r\n"
        ).encode()

    def one(self) -> None:
        self.client.data_received(self.request)
        self.up.data_received(RESPONSE)
        head = b"".join(self.up_transport.sent)
        assert b"x-bastion-consumer: acme" in head, head
        assert b" 200 " in b"".join(self.client_transport.sent), self.client_transport.sent
        self.up_transport.sent.clear()
        self.client_transport.sent.clear()
        assert self.writer.flush()

    def run(self, n: int) -> float:
        """µs per request for ``n`` requests, the writer's backlog written included (the timed
        loop is ``micro_engine.exchanges``; the flush is timed with it)."""
        start = time.perf_counter()
        exchanges(self.client, self.client_transport, self.up, self.up_transport, n, self.request)
        assert self.writer.flush(60.0)
        return (time.perf_counter() - start) / n * 1e6

    def lines(self) -> int:
        """Lines in the live file and the files rotated out (past 100 MB, many runs)."""
        return sum(path.read_bytes().count(b"\n") for path in (self.work / "logs").glob("*.jsonl"))

    def close(self) -> None:
        """Stop the writer and delete the run's files (a run of ``monitor`` writes over 100 MB)."""
        self.writer.close()
        shutil.rmtree(self.work, ignore_errors=True)


def instructions(mode: str, n: int, out: Path, path: str) -> int:
    """Instructions callgrind counts for the whole process running ``n`` requests of ``mode``."""
    argv = ["valgrind", "--tool=callgrind", f"--callgrind-out-file={out}", sys.executable,
            __file__, "--mode", mode, "-n", str(n), "--runs", "1", "--no-check",
            "--path", path]  # fmt: skip
    subprocess.run(argv, check=True, capture_output=True)
    for line in out.read_text().splitlines():
        if line.startswith(("summary:", "totals:")):
            return int(line.split()[1])
    raise RuntimeError(f"no totals in {out}")


def callgrind(modes: list[str], n: int, path: str) -> int:
    work = Path(tempfile.mkdtemp(prefix="bastion-micro-logging-cg-"))
    print(f"instructions per request (callgrind, {n} and {3 * n} requests, difference):")
    for mode in modes:
        small = instructions(mode, n, work / f"{mode}-small.cg", path)
        large = instructions(mode, 3 * n, work / f"{mode}-large.cg", path)
        print(f"  {mode:5} {(large - small) / (2 * n):10,.0f}", flush=True)
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("-n", type=int, default=20_000, help="requests per run")
    parser.add_argument("--runs", type=int, default=7, help="runs per mode (interleaved)")
    parser.add_argument("--mode", action="append", choices=MODES, help="only this (repeatable)")
    parser.add_argument("--profile", action="store_true", help="cProfile of one run per mode")
    parser.add_argument("--callgrind", action="store_true", help="instructions per request")
    parser.add_argument(
        "--no-check", action="store_true", help="skip counting the lines written (callgrind)"
    )
    parser.add_argument(
        "--path", default=PATH, help=f"the request's target ({PATH}; bench/event_logging.py: /)"
    )
    args = parser.parse_args()
    if args.callgrind:
        return callgrind(args.mode or list(MODES), args.n if args.n != 20_000 else 2000, args.path)
    loop = uvloop.new_event_loop()
    asyncio.set_event_loop(loop)
    modes = args.mode or list(MODES)
    setups = {mode: Setup(mode, loop, args.path) for mode in modes}
    try:
        for setup in setups.values():
            setup.one()  # warm: the key's MAC, the route's decision, the file opened
        if args.profile:
            import cProfile
            import pstats

            for mode, setup in setups.items():
                profiler = cProfile.Profile()
                profiler.runcall(setup.run, args.n)
                print(f"-- {mode}")
                pstats.Stats(profiler).sort_stats("tottime").print_stats(30)
            return 0
        results: dict[str, list[float]] = {mode: [] for mode in modes}
        for _ in range(args.runs):
            for mode, setup in setups.items():  # interleaved: a drift of the machine hits all
                results[mode].append(setup.run(args.n))
        for mode in ("full", "monitor"):
            if mode in setups and not args.no_check:
                expected = 2 * (1 + args.n * args.runs)  # access + auth.success per request
                lines = setups[mode].lines()
                assert lines == expected, f"{mode}: {lines} lines written, {expected} expected"
        print(f"per request, best of {args.runs} runs of {args.n} (writer flushed in the run):")
        base = min(results["off"]) if "off" in results else 0.0
        for mode in modes:
            best = min(results[mode])
            extra = (
                f"  +{best - base:5.2f} us over off, bound {base / best:.2f}x"
                if base and mode != "off"
                else ""
            )
            print(
                f"  {mode:5} {best:6.2f} us  (median {statistics.median(results[mode]):.2f}){extra}"
            )
        return 0
    finally:
        for setup in setups.values():
            setup.close()


if __name__ == "__main__":
    sys.exit(main())
