"""Decisions per second of bastion's in-memory rate limiters against the ``limits`` library.

Single thread, no I/O: each candidate decides the same workload, 1,000 keys hit round-robin
(``--passes`` times each) under 20 hits per minute per key, from an empty state, so that
the first 20 passes are admitted and the rest refused (80% admitted with the default 25 passes).
Candidates: bastion's ``gcra``, ``sliding_window`` and ``sliding_log`` (a full :class:`Verdict`
per hit: remaining, reset, retry-after), and ``limits``' strategies on ``MemoryStorage``
(``hit`` alone, a bool: what a gateway gets for the price, before asking for window stats).

Rounds interleave the candidates (their order rotates each round), so that a machine growing
busier slows all alike, and time them in the thread's CPU time, which leaves out the time other
processes take the core; each bastion limiter's ratio is taken against ``limits``' best strategy
in the same round, and the median over rounds is printed.

    .venv/bin/python bench/ratelimit_memory.py                 # the installed bastion
    PYTHONPATH=src .venv/bin/python bench/ratelimit_memory.py  # the working tree (pure Python)
    .venv/bin/python bench/ratelimit_memory.py --rounds 3      # quicker
"""

from __future__ import annotations

import argparse
import gc
import statistics
import time
from collections.abc import Callable
from importlib.metadata import version
from pathlib import Path

import limits
import limits.strategies
from limits.storage import MemoryStorage

import bastion.ratelimit.algorithms
import bastion.ratelimit.storage.memory
from bastion.ratelimit.core import Algorithm, Rate
from bastion.ratelimit.storage.memory import memory_limiter

LIMIT = 20
PERIOD = 60.0
TARGET = 10.0
BASTION: tuple[Algorithm, ...] = ("gcra", "sliding_window", "sliding_log")
LIMITS = ("FixedWindowRateLimiter", "MovingWindowRateLimiter", "SlidingWindowCounterRateLimiter")

Run = Callable[[list[str], int], int]
"""Decides ``passes`` hits on each key in turn, from an empty state; returns how many passed."""


def bastion_run(algorithm: Algorithm) -> Run:
    rate = Rate(LIMIT, PERIOD, LIMIT)

    def run(keys: list[str], passes: int) -> int:
        hit = memory_limiter(algorithm, rate).hit
        admitted = 0
        for _ in range(passes):
            for key in keys:
                if hit(key).allowed:
                    admitted += 1
        return admitted

    return run


def limits_run(strategy: str) -> Run:
    item = limits.parse(f"{LIMIT}/minute")
    storage = MemoryStorage()
    limiter = getattr(limits.strategies, strategy)(storage)

    def run(keys: list[str], passes: int) -> int:
        storage.reset()
        hit = limiter.hit
        admitted = 0
        for _ in range(passes):
            for key in keys:
                if hit(item, key):
                    admitted += 1
        return admitted

    return run


def build() -> str:
    modules = (bastion.ratelimit.algorithms, bastion.ratelimit.storage.memory)
    files = [Path(module.__file__ or "?") for module in modules]
    kind = "compiled (mypyc)" if all(f.suffix in (".so", ".pyd") for f in files) else "pure Python"
    if kind == "pure Python" and any(f.suffix in (".so", ".pyd") for f in files):
        kind = "partly compiled"
    return f"{kind}, from {files[0].parent.parent}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--keys", type=int, default=1000)
    parser.add_argument("--passes", type=int, default=25)
    args = parser.parse_args()

    keys = [f"10.0.{n // 256}.{n % 256}" for n in range(args.keys)]
    decisions = args.keys * args.passes
    candidates: dict[str, Run] = {f"bastion {a}": bastion_run(a) for a in BASTION}
    candidates.update({f"limits {s.removesuffix('RateLimiter')}": limits_run(s) for s in LIMITS})
    available = [s for s in LIMITS if hasattr(limits.strategies, s)]
    if len(available) < len(LIMITS):
        print(f"limits {version('limits')} lacks {sorted(set(LIMITS) - set(available))}")

    print(f"bastion: {build()}")
    print(f"limits {version('limits')}, MemoryStorage; {args.keys} keys x {args.passes} passes")
    print(f"= {decisions} decisions per candidate per round, {LIMIT}/minute per key\n")

    names = list(candidates)
    seconds: dict[str, list[float]] = {name: [] for name in names}
    admitted: dict[str, int] = {}
    for name in names:  # warm-up, and the admitted counts (the same work for everyone)
        admitted[name] = candidates[name](keys, args.passes)
    for number in range(args.rounds):
        order = names[number % len(names) :] + names[: number % len(names)]
        for name in order:
            gc.collect()
            start = time.thread_time()
            candidates[name](keys, args.passes)
            seconds[name].append(time.thread_time() - start)
        line = "  ".join(f"{n.split()[-1]} {decisions / seconds[n][-1] / 1e3:,.0f}k" for n in names)
        print(f"round {number + 1}: {line} /s")

    limits_names = [n for n in names if n.startswith("limits")]
    best_per_round = [min(seconds[n][r] for n in limits_names) for r in range(args.rounds)]
    print(f"\nmedian over {args.rounds} rounds     decisions/s   ns/decision  admitted")
    for name in names:
        median = statistics.median(seconds[name])
        share = admitted[name] / decisions
        print(
            f"  {name:34} {decisions / median:>11,.0f}   {median / decisions * 1e9:>11,.0f}"
            f"  {share:>7.0%}"
        )
    best = min(limits_names, key=lambda n: statistics.median(seconds[n]))
    print(f"\nagainst limits' best strategy in each round ({best.split()[-1]} by median):")
    for name in names:
        if name.startswith("bastion"):
            ratios = [best_per_round[r] / seconds[name][r] for r in range(args.rounds)]
            ratio = statistics.median(ratios)
            verdict = "met" if ratio >= TARGET else "NOT met"
            print(
                f"  {name:24} {ratio:5.1f}x  (rounds {min(ratios):.1f}-{max(ratios):.1f}x; "
                f"target >= {TARGET:g}x: {verdict})"
            )


if __name__ == "__main__":
    main()
