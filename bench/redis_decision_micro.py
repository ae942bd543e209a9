"""What one Redis rate-limit decision costs the gateway process: the client side alone.

Drives ``FailoverLimiter(RedisLimiter)`` (the gateway's stack: failure policy, GCRA script,
batching client) against the real Redis with ``--concurrency`` requests in flight, each request
its own task awaiting one decision (as the engine runs an awaiting guard), on uvloop. Prints the
process CPU per decision (``time.process_time``) and the decisions per batch. The Redis server's
work is not counted: this is what the gateway pays.

Meant for instruction counts too, where the machine is too noisy for timings: callgrind counts
only this process's instructions. The Ir of a run of 30,000 decisions minus that of 10,000, over
20,000, is the instructions per decision; the same with ``--baseline`` (no Redis: futures
answered on a later tick, the asyncio part of a decision alone) subtracted leaves the Redis
client's own share.

    PYTHONPATH=src valgrind --tool=callgrind --callgrind-out-file=/tmp/cg.%p \\
        .venv/bin/python bench/redis_decision_micro.py --decisions 30000 --concurrency 16

    PYTHONPATH=src .venv/bin/python bench/redis_decision_micro.py     # CPU µs per decision
"""

from __future__ import annotations

import argparse
import asyncio
import time
import uuid
from collections.abc import Awaitable, Callable

import redis
import uvloop

from bastion.backends.redis import RedisClient
from bastion.observability.events import NullSink
from bastion.ratelimit.core import Rate, Verdict
from bastion.ratelimit.storage.failover import BackendHealth, FailoverLimiter
from bastion.ratelimit.storage.redis import RedisLimiter

KEYS = [f"10.0.{n // 256}.{n % 256}" for n in range(1000)]
VERDICT = Verdict(True, 1_000_000, 999_999, 0.000001)


async def drive(decide: Callable[[str], Awaitable[Verdict]], total: int, concurrency: int) -> None:
    """``total`` requests, ``concurrency`` in flight, each a task awaiting one decision."""
    loop = asyncio.get_running_loop()
    started = 0
    finished = asyncio.Event()
    done = 0

    async def request(key: str) -> Verdict:
        return await decide(key)

    def finish(_: object) -> None:
        nonlocal started, done
        done += 1
        if started < total:
            start()
        elif done == total:
            finished.set()

    def start() -> None:
        nonlocal started
        task = loop.create_task(request(KEYS[started % 1000]))
        started += 1
        task.add_done_callback(finish)

    for _ in range(min(concurrency, total)):
        start()
    await finished.wait()


async def main(args: argparse.Namespace) -> None:
    prefix = f"bench-micro:{uuid.uuid4().hex[:8]}:"
    client = RedisClient(args.url, command_timeout=5.0)
    await client.connect()
    health = BackendHealth(NullSink())
    limiter = FailoverLimiter(
        RedisLimiter(
            client, "gcra", Rate(1_000_000, 1.0, 1_000_000), namespace="micro", key_prefix=prefix
        ),
        health,
    )
    loop = asyncio.get_running_loop()

    waiting: list[asyncio.Future[Verdict]] = []

    def answer() -> None:
        batch = waiting[:]
        waiting.clear()
        for future in batch:
            future.set_result(VERDICT)

    def resolved(key: str) -> asyncio.Future[Verdict]:
        """The asyncio part of a decision alone: a future answered on a later tick."""
        future = loop.create_future()
        if not waiting:
            loop.call_soon(answer)
        waiting.append(future)
        return future

    decide: Callable[[str], Awaitable[Verdict]] = resolved if args.baseline else limiter.hit
    try:
        await drive(decide, 2000, args.concurrency)  # warm-up: scripts loaded, caches filled
        flushes, commands = client.flushes, client.commands
        cpu, wall = time.process_time(), time.perf_counter()
        await drive(decide, args.decisions, args.concurrency)
        cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
        batches = client.flushes - flushes
        per_batch = (client.commands - commands) / batches if batches else 0.0
        print(
            f"{'baseline' if args.baseline else 'redis'}: {args.decisions} decisions,"
            f" {args.concurrency} in flight: {cpu / args.decisions * 1e6:.2f} µs CPU per decision,"
            f" {args.decisions / wall:,.0f}/s, {per_batch:.1f} decisions per batch"
        )
    finally:
        await client.close()
        admin = redis.Redis.from_url(args.url)
        keys = list(admin.scan_iter(match=prefix + "*", count=1000))
        if keys:
            admin.delete(*keys)
        admin.close()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--url", default="redis://127.0.0.1:6379")
    parser.add_argument("--decisions", type=int, default=200_000)
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument(
        "--baseline", action="store_true", help="no Redis: futures answered a tick later"
    )
    uvloop.run(main(parser.parse_args()))
