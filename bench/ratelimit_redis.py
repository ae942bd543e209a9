"""Rate-limit decisions per second in Redis: bastion's batched limiters against ``limits``.

Every mode makes decisions (one hit on one key each) against the same Redis for ``--seconds``,
keys drawn from 10,000 client keys, with a quota no key exhausts. Modes:

- ``bastion gcra`` / ``bastion sliding_window``: :class:`RedisLimiter` with ``--concurrency``
  concurrent callers on uvloop; one Lua script per decision, batched per event-loop tick.
- ``limits sync <strategy>``: ``limits.storage.RedisStorage`` (redis-py, hiredis), one thread;
  ``limits sync fixed x8 threads``: eight threads sharing it.
- ``limits async <impl> <strategy>``: ``limits.aio.storage.RedisStorage`` with redis-py or coredis
  (when installed), ``--concurrency`` concurrent callers on uvloop.
- ``redis.asyncio evalsha gcra``: bastion's own GCRA script through ``redis.asyncio`` (context for
  the client choice, not counted as a ``limits`` mode).

Rounds interleave every mode (order reversed every other round); the ratio bastion gcra / the
best ``limits`` mode of the same round is taken per round and its median printed. CPU is the
client process's (``time.process_time``) and the Redis server's (``INFO cpu``) per decision.
Keys live under fresh prefixes and are deleted at the end.

    .venv/bin/python bench/ratelimit_redis.py                 # 4 rounds of 1 s per mode (~1 min)
    .venv/bin/python bench/ratelimit_redis.py --quick         # 1 round of 0.3 s per mode
    .venv/bin/python bench/ratelimit_redis.py --url redis://127.0.0.1:6380 --concurrency 128
"""

from __future__ import annotations

import argparse
import asyncio
import random
import statistics
import threading
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from functools import partial
from typing import Any, cast

import limits
import limits.aio.storage
import limits.aio.strategies
import limits.storage
import limits.strategies
import redis
import redis.asyncio
import uvloop

from bastion.backends.redis import RedisClient
from bastion.ratelimit.core import Rate
from bastion.ratelimit.storage.redis import SCRIPTS, RedisLimiter

KEYS = [f"10.{n // 65536}.{n // 256 % 256}.{n % 256}" for n in range(10_000)]
QUOTA = "1000000/hour"
STRATEGIES = {
    "fixed": (
        limits.strategies.FixedWindowRateLimiter,
        limits.aio.strategies.FixedWindowRateLimiter,
    ),
    "moving": (
        limits.strategies.MovingWindowRateLimiter,
        limits.aio.strategies.MovingWindowRateLimiter,
    ),
    "sliding": (
        limits.strategies.SlidingWindowCounterRateLimiter,
        limits.aio.strategies.SlidingWindowCounterRateLimiter,
    ),
}


@dataclass
class Result:
    decisions: int
    seconds: float
    client_cpu: float
    server_cpu: float

    @property
    def rate(self) -> float:
        return self.decisions / self.seconds

    def per_decision(self, cpu: float) -> float:
        return cpu / self.decisions * 1e6 if self.decisions else float("nan")


@dataclass
class Mode:
    name: str
    run: Callable[[float], Awaitable[int]]
    is_limits: bool = True
    results: list[Result] = field(default_factory=list)


def server_cpu(admin: redis.Redis) -> float:
    info: dict[str, Any] = admin.info("cpu")  # type: ignore[assignment]
    return float(info["used_cpu_sys"]) + float(info["used_cpu_user"])


async def run_callers(
    concurrency: int, seconds: float, *, decide: Callable[[str], Awaitable[object]]
) -> int:
    """``concurrency`` tasks deciding in a loop until ``seconds`` have passed; the total."""
    running = True
    counts = [0] * concurrency

    async def caller(number: int) -> None:
        rng = random.Random(number)
        done = 0
        while running:
            for _ in range(8):
                await decide(KEYS[rng.randrange(10_000)])
            done += 8
        counts[number] = done

    tasks = [asyncio.ensure_future(caller(n)) for n in range(concurrency)]
    await asyncio.sleep(seconds)
    running = False
    await asyncio.gather(*tasks)
    return sum(counts)


def run_threads(threads: int, seconds: float, decide: Callable[[str], object]) -> int:
    """``threads`` threads deciding in a loop until ``seconds`` have passed; the total."""
    deadline = time.perf_counter() + seconds
    counts = [0] * threads

    def work(number: int) -> None:
        rng = random.Random(number)
        done = 0
        while time.perf_counter() < deadline:
            for _ in range(8):
                decide(KEYS[rng.randrange(10_000)])
            done += 8
        counts[number] = done

    pool = [threading.Thread(target=work, args=(n,)) for n in range(threads)]
    for thread in pool:
        thread.start()
    for thread in pool:
        thread.join()
    return sum(counts)


async def build_modes(
    url: str, concurrency: int, bastion_prefix: str, limits_prefix: str
) -> tuple[list[Mode], list[Callable[[], Awaitable[None]]]]:
    modes: list[Mode] = []
    closers: list[Callable[[], Awaitable[None]]] = []

    client = RedisClient(url, command_timeout=5.0)
    await client.connect()
    closers.append(client.close)
    for algorithm in ("gcra", "sliding_window"):
        limiter = RedisLimiter(
            client,
            algorithm,
            Rate(1_000_000, 3600.0, 1_000_000),
            namespace="bench",
            key_prefix=bastion_prefix,
        )
        hit: Callable[[str], Awaitable[object]] = limiter.hit
        modes.append(
            Mode(
                f"bastion {algorithm} x{concurrency}",
                partial(run_callers, concurrency, decide=hit),
                is_limits=False,
            )
        )

    item = limits.parse(QUOTA)
    # One storage per mode: the strategies keep different Redis types under the same key names.
    for name, (sync_strategy, _) in STRATEGIES.items():
        storage = limits.storage.RedisStorage(url, key_prefix=f"{limits_prefix}s{name}")
        strategy = sync_strategy(storage)

        async def run_sync(s: float, hit: Callable[..., bool] = strategy.hit) -> int:
            return run_threads(1, s, lambda key: hit(item, key))

        modes.append(Mode(f"limits sync {name}", run_sync))
    fixed = limits.strategies.FixedWindowRateLimiter(
        limits.storage.RedisStorage(url, key_prefix=f"{limits_prefix}threads")
    )

    async def run_sync_threads(s: float) -> int:
        return run_threads(8, s, lambda key: fixed.hit(item, key))

    modes.append(Mode("limits sync fixed x8 threads", run_sync_threads))

    implementations = ["redispy"]
    try:
        import coredis  # noqa: F401

        implementations.append("coredis")
    except ImportError:
        print("(coredis is not installed: limits' default async Redis implementation is skipped)")
    for implementation in implementations:
        for name, (_, async_strategy) in STRATEGIES.items():
            astorage = limits.aio.storage.RedisStorage(
                url,
                implementation=implementation,  # type: ignore[arg-type]
                key_prefix=f"{limits_prefix}{implementation}{name}",
            )
            ahit = partial(async_strategy(astorage).hit, item)
            modes.append(
                Mode(
                    f"limits async {implementation} {name} x{concurrency}",
                    partial(run_callers, concurrency, decide=ahit),
                )
            )

    pyredis = redis.asyncio.Redis.from_url(url)
    closers.append(pyredis.aclose)
    script = SCRIPTS["gcra"]
    await pyredis.script_load(script.source)
    head = f"{bastion_prefix}rl:{{pyredis:"

    async def evalsha(key: str) -> object:
        return await pyredis.evalsha(  # type: ignore[misc]
            script.sha, 1, head + key + "}:g", 1, "", 1, 3600, 3600 * 1_000_000, 1_000_000
        )

    modes.append(
        Mode(
            f"redis.asyncio evalsha gcra x{concurrency}",
            partial(run_callers, concurrency, decide=evalsha),
            is_limits=False,
        )
    )
    return modes, closers


def cleanup(admin: redis.Redis, prefixes: list[str]) -> int:
    deleted = 0
    for prefix in prefixes:
        keys = list(admin.scan_iter(match=prefix + "*", count=2000))
        for start in range(0, len(keys), 2000):
            deleted += cast(int, admin.delete(*keys[start : start + 2000]))
    return deleted


async def main(args: argparse.Namespace) -> None:
    tag = uuid.uuid4().hex[:8]
    bastion_prefix, limits_prefix = f"bench:{tag}:", f"benchlimits{tag}"
    admin = redis.Redis.from_url(args.url)
    modes, closers = await build_modes(args.url, args.concurrency, bastion_prefix, limits_prefix)
    try:
        print(f"warm-up 0.2 s per mode; {args.rounds} rounds of {args.seconds:g} s per mode")
        for mode in modes:
            await mode.run(0.2)
        ratios: list[float] = []
        for number in range(args.rounds):
            order = modes if number % 2 == 0 else modes[::-1]
            print(f"\nround {number + 1}")
            print(f"  {'mode':40} {'decisions/s':>12} {'client µs/dec':>14} {'redis µs/dec':>13}")
            for mode in order:
                cpu0, redis0, t0 = time.process_time(), server_cpu(admin), time.perf_counter()
                decisions = await mode.run(args.seconds)
                result = Result(
                    decisions,
                    time.perf_counter() - t0,
                    time.process_time() - cpu0,
                    server_cpu(admin) - redis0,
                )
                mode.results.append(result)
                print(
                    f"  {mode.name:40} {result.rate:12,.0f} "
                    f"{result.per_decision(result.client_cpu):14.1f} "
                    f"{result.per_decision(result.server_cpu):13.1f}"
                )
            best = max((m for m in modes if m.is_limits), key=lambda m: m.results[-1].rate)
            ratio = modes[0].results[-1].rate / best.results[-1].rate
            ratios.append(ratio)
            print(f"  {modes[0].name} / best limits ({best.name}): {ratio:.2f}x")
        print(f"\nmedian over {args.rounds} rounds (decisions/s, client µs/decision):")
        for mode in modes:
            rate = statistics.median(r.rate for r in mode.results)
            cpu = statistics.median(r.per_decision(r.client_cpu) for r in mode.results)
            print(f"  {mode.name:40} {rate:12,.0f} {cpu:10.1f}")
        median = statistics.median(ratios)
        verdict = "met" if median >= 2.0 else "NOT met"
        print(
            f"bastion gcra / limits' best, median per-round ratio: {median:.2f}x "
            f"(target >= 2x: {verdict})"
        )
    finally:
        for close in closers:
            await close()
        deleted = cleanup(admin, [bastion_prefix, limits_prefix])
        admin.close()
        print(f"(deleted {deleted} benchmark keys)")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--url", default="redis://127.0.0.1:6379")
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--seconds", type=float, default=1.0)
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--quick", action="store_true", help="1 round of 0.3 s per mode")
    arguments = parser.parse_args()
    if arguments.quick:
        arguments.rounds, arguments.seconds = 1, 0.3
    uvloop.run(main(arguments))
