"""What the access-event capture and hot reload cost the engine's per-request path.

Runs the same socket-free exchange as ``bench/micro_engine.py`` (imported from it: a request fed
into a ``ClientProtocol`` on a fake transport, forwarded on a pooled ``UpstreamConnection``) in
four settings, interleaved: as ``bastion serve`` runs with ``events.sink: none`` (no access
capture), with the access capture on (each finished exchange hands a tuple to a callable, as
``EventWriter.access`` does; here a bounded deque's append, so that only the engine's share is
timed, not the writer thread's formatting), and both again after a config reload
(``EngineContext.use_chain`` with a new chain, which is what ``LiveChain`` does).

    .venv/bin/python bench/engine_hooks.py              # us per request, best of 7 runs each
    valgrind --tool=callgrind ... bench/engine_hooks.py --mode access -n 3000 --runs 1

For a deterministic figure, run it under callgrind with ``--mode`` and two ``-n`` values and
divide the difference in instructions by the difference in requests.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import sys
from pathlib import Path
from typing import Any

import uvloop

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bastion.observability.events import NullSink
from bastion.pipeline.chain import GuardChain
from bastion.pipeline.routing import Router
from micro_engine import exchanges, setup

MODES = ("off", "access", "reloaded", "reloaded+access")


def run(n: int, loop: asyncio.AbstractEventLoop, mode: str) -> float:
    client, client_transport, up_transport = setup(loop)
    ctx = client.ctx
    if mode.startswith("reloaded"):
        router = ctx.chain.guards[0]
        assert isinstance(router, Router)
        ctx.use_chain(GuardChain([Router(router.routes)], NullSink()))
    if mode.endswith("access"):
        records: collections.deque[Any] = collections.deque(maxlen=10_000)
        ctx.access = records.append
    pool = ctx.pool
    assert pool is not None
    up = next(iter(pool.idle.values()))[0]
    return exchanges(client, client_transport, up, up_transport, n)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("-n", type=int, default=30_000)
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--mode", choices=MODES, help="one setting only (for callgrind)")
    args = parser.parse_args()
    loop = uvloop.new_event_loop()
    asyncio.set_event_loop(loop)
    modes = [args.mode] if args.mode else list(MODES)
    results: dict[str, list[float]] = {mode: [] for mode in modes}
    for _ in range(args.runs):
        for mode in modes:  # interleaved, so that a drift of the machine hits all alike
            results[mode].append(run(args.n, loop, mode))
    base = min(results[modes[0]])
    for mode in modes:
        best = min(results[mode])
        print(f"{mode:16} {best:6.2f} us/request (best of {args.runs}), {best - base:+.2f} us")


if __name__ == "__main__":
    main()
