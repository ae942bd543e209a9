"""Many instances, one policy: what sharing state through Redis costs, and how fast a key
change reaches every instance.

1. **Throughput on one core budget.** The same gateway twice, each with ``--workers`` worker
   processes (default 1: one per core) sharing one port (SO_REUSEPORT), pinned to one core
   (``run_proxy.py``'s layout: upstream nginx and wrk on core 0, the gateway on core 1): once
   with the rate-limit policy counted in memory (each process alone: not a cluster-wide
   limit), once counted in Redis, batched per event-loop tick (exact across every process and
   machine). Rounds interleave the two; the ratio redis / memory is taken within a round and
   its median printed. Target: >= 0.6x.
2. **Per-decision Redis cost.** The gateway CPU per request of the Redis run minus that of the
   memory run, and the Redis server's own CPU (``INFO cpu``) per decision.
3. **Key-change delay across instances.** Three ``bastion serve`` processes on one PostgreSQL
   schema and one Redis prefix, the periodic store read slowed to 30 s: a key is created, then
   revoked, ``--changes`` times; the time from the start of each change until all three
   instances answer accordingly (200, then 401) is printed as median and worst.

Needs nginx and wrk (``bench/guards.sh`` installs them: ``BENCH_SCRIPT=cluster.py
bench/proxy.sh``), Redis at 127.0.0.1:6379 and PostgreSQL at 127.0.0.1:5432 (database
``test``). Numbers on a shared 2-core machine are noisy: compare ratios, not absolute figures.

    python bench/cluster.py                 # 3 rounds of 5 s, 10 key changes (~50 s)
    python bench/cluster.py --quick         # 2 rounds of 2 s, 5 key changes
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import httpx
import psycopg
import redis
from psycopg import sql

sys.path.insert(0, str(Path(__file__).resolve().parent))

import guards
import run_proxy as rp

REDIS_URL = "redis://127.0.0.1:6379/0"
POSTGRES_DSN = "postgresql://postgres@127.0.0.1:5432/test"
POLICY = {"name": "per-ip", "rate": "1000000/s"}  # never refuses: every request pays a decision


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="Redis vs memory on one core; key-change delay")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--duration", type=float, default=5)
    parser.add_argument("--warmup", type=float, default=2)
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--workers", type=int, default=1, help="gateway processes on the core")
    parser.add_argument("--changes", type=int, default=10, help="key create/revoke pairs")
    parser.add_argument("--quick", action="store_true", help="2 rounds of 2 s, 5 key changes")
    parser.add_argument("--bastion", default=None, help="the bastion executable to run")
    parser.add_argument("--ready-timeout", type=float, default=20)
    args = parser.parse_args(argv)
    if args.quick:
        args.rounds, args.duration, args.warmup, args.changes = 2, 2.0, 1.0, 5
    if args.bastion is None:
        local = rp.ROOT / ".venv" / "bin" / "bastion"
        args.bastion = str(local if local.exists() else Path(sys.executable).with_name("bastion"))
    return args


def redis_cpu(client: redis.Redis) -> float:
    info: Any = client.info("cpu")
    return float(info["used_cpu_sys"]) + float(info["used_cpu_user"])


# -- 1 and 2: throughput and per-decision cost ------------------------------------------------


def throughput(args: argparse.Namespace, work: Path, fleet: rp.Fleet, prefix: str) -> None:
    up_port = rp.free_port()
    up = work / "upstream"
    up.mkdir()
    (up / "nginx.conf").write_text(rp.upstream_conf(up, up_port))
    upstream = fleet.start(
        "upstream", ["nginx", "-p", str(up), "-c", str(up / "nginx.conf")], rp.LOAD_CORE
    )
    rp.wait_ready(upstream, up_port, args.ready_timeout)
    modes: dict[str, dict[str, Any]] = {
        "memory": {"workers": args.workers, "rate_limit": {"policies": [POLICY]}},
        "redis": {
            "workers": args.workers,
            "rate_limit": {"storage": "redis", "policies": [POLICY]},
            "redis": {"url": REDIS_URL, "key_prefix": prefix},
        },
    }
    slots: dict[str, tuple[rp.Proc, int]] = {}
    for name, extra in modes.items():
        port = rp.free_port()
        path = work / f"{name}.json"
        path.write_text(guards.gateway_config(work / f"{name}-state", extra))
        argv = [args.bastion, "serve", "--upstream", f"http://{rp.HOST}:{up_port}",
                "--listen", f"{rp.HOST}:{port}", "--config", str(path)]  # fmt: skip
        slots[name] = (fleet.start(name, argv, rp.PROXY_CORE), port)
    for proc, port in slots.values():
        rp.wait_ready(proc, port, args.ready_timeout)
    print(
        f"throughput: {args.workers} gateway workers on core {rp.PROXY_CORE} per mode;"
        f" wrk -t{args.threads} -c{args.connections} -d{args.duration:g}s on core {rp.LOAD_CORE}"
    )
    for name in slots:
        rp.run_wrk(*slots[name], args, args.warmup, set())
    ours = {proc.popen.pid for proc in fleet.procs}
    server = redis.Redis.from_url(REDIS_URL)
    ratios: list[float] = []
    extra_cpu: list[float] = []
    server_cpu: list[float] = []
    try:
        for index in range(1, args.rounds + 1):
            order = ["memory", "redis"] if index % 2 else ["redis", "memory"]
            results: dict[str, rp.WrkResult] = {}
            for name in order:
                before = redis_cpu(server)
                results[name] = rp.run_wrk(*slots[name], args, args.duration, ours)
                if name == "redis":
                    spent = redis_cpu(server) - before
                    server_cpu.append(spent / max(1, results[name].requests) * 1e6)
            memory, shared = results["memory"], results["redis"]
            ratio = shared.rps / memory.rps if memory.rps else 0.0
            ratios.append(ratio)
            extra_cpu.append(shared.cpu_us_per_request - memory.cpu_us_per_request)
            print(
                f"round {index}: memory {memory.rps:.0f} req/s ({memory.cpu_us_per_request:.1f}"
                f" us/req), redis {shared.rps:.0f} req/s ({shared.cpu_us_per_request:.1f} us/req,"
                f" {shared.errors} errors); throughput {ratio:.2f}x; redis-server"
                f" {server_cpu[-1]:.1f} us/decision; other processes"
                f" {max(memory.foreign_share, shared.foreign_share):.0%} of a core",
                flush=True,
            )
    finally:
        server.close()
    median = statistics.median(ratios)
    print(
        f"\nmedian over {args.rounds} rounds: redis/memory throughput {median:.2f}x"
        f" (target >= 0.6x: {'met' if median >= 0.6 else 'NOT met'});"
        f" per decision: gateway +{statistics.median(extra_cpu):.1f} us CPU,"
        f" redis-server {statistics.median(server_cpu):.1f} us CPU"
    )


# -- 3: key-change delay across three instances -----------------------------------------------


async def all_answer(client: httpx.AsyncClient, ports: list[int], key: str, wanted: int) -> None:
    deadline = time.monotonic() + 10
    while True:
        answers = await asyncio.gather(
            *(client.get(f"http://{rp.HOST}:{p}/", headers={"x-api-key": key}) for p in ports)
        )
        if all(a.status_code == wanted for a in answers):
            return
        if time.monotonic() > deadline:
            raise RuntimeError(f"instances answered {[a.status_code for a in answers]}")
        await asyncio.sleep(0.002)


async def measure_changes(
    manager: Any, ports: list[int], changes: int
) -> tuple[list[float], list[float]]:
    created: list[float] = []
    revoked: list[float] = []
    async with httpx.AsyncClient(timeout=2) as client:
        for n in range(changes):
            started = time.monotonic()
            issued = await asyncio.to_thread(manager.create, f"bench-{n}")
            await all_answer(client, ports, issued.secret, 200)
            created.append(time.monotonic() - started)
            started = time.monotonic()
            await asyncio.to_thread(manager.revoke, issued.record.id)
            await all_answer(client, ports, issued.secret, 401)
            revoked.append(time.monotonic() - started)
    return created, revoked


def notification_delay(args: argparse.Namespace, work: Path, fleet: rp.Fleet, prefix: str) -> str:
    from bastion.auth.keys.manager import KeyManager
    from bastion.config.loader import build_config

    schema = f"bench_{uuid.uuid4().hex[:12]}"
    up_port = rp.free_port()
    data = {
        "state_dir": str(work / "keys-state"),
        "routes": [{"name": "api", "upstream": f"http://{rp.HOST}:{up_port}"}],
        "postgres": {"dsn": POSTGRES_DSN, "schema": schema},
        "redis": {"url": REDIS_URL, "key_prefix": prefix},
        "auth": {"api_keys": {"refresh_interval": "30s"}},
        "events": {"sink": "none"},
        "admin": {"enabled": False},
    }
    config = build_config(data)
    manager = KeyManager(config)  # migrates the schema, makes the pepper
    manager.create("bootstrap")
    path = work / "keys.json"
    path.write_text(json.dumps(data))
    ports = [rp.free_port() for _ in range(3)]
    (work / "upstream" / "k.conf").write_text(rp.upstream_conf(work / "upstream", up_port))
    fleet.start(
        "keys-upstream",
        ["nginx", "-p", str(work / "upstream"), "-c", str(work / "upstream" / "k.conf")],
        rp.LOAD_CORE,
    )
    for n, port in enumerate(ports):
        argv = [args.bastion, "serve", "--config", str(path), "--listen", f"{rp.HOST}:{port}"]
        fleet.start(f"keys-{n}", argv, "0,1")
    try:
        deadline = time.monotonic() + args.ready_timeout
        for port in ports:
            while True:
                try:
                    httpx.get(f"http://{rp.HOST}:{port}/", timeout=0.5)
                    break
                except httpx.HTTPError:
                    if time.monotonic() > deadline:
                        raise RuntimeError("a key-change instance did not start") from None
                    time.sleep(0.05)
        time.sleep(0.5)  # every instance subscribed
        created, revoked = asyncio.run(measure_changes(manager, ports, args.changes))
    finally:
        manager.close()
        with psycopg.connect(POSTGRES_DSN, autocommit=True) as conn:
            conn.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(schema)))

    def ms(values: list[float]) -> str:
        return (
            f"median {statistics.median(values) * 1000:.0f} ms, worst {max(values) * 1000:.0f} ms"
        )

    return (
        f"key change in force on all 3 instances ({args.changes} each, store read every 30 s,"
        f" so through Redis): created {ms(created)}; revoked {ms(revoked)}"
        f" (target < 1000 ms)"
    )


def run(args: argparse.Namespace) -> int:
    if not Path(args.bastion).exists():
        raise SystemExit(f"no bastion at {args.bastion}; pass --bastion")
    for tool in ("nginx", "wrk", "taskset"):
        if shutil.which(tool) is None:
            raise SystemExit(
                f"{tool} is missing; BENCH_SCRIPT=cluster.py bench/proxy.sh installs it"
            )
    work = Path(tempfile.mkdtemp(prefix="bastion-cluster-"))
    fleet = rp.Fleet(work)
    prefix = f"bastion-bench-{uuid.uuid4().hex[:8]}:"
    os.environ.setdefault("BASTION_API_KEY_PEPPER", "bench-cluster-pepper-" + "b" * 32)
    try:
        throughput(args, work, fleet, prefix)
        fleet.stop_all()
        print(notification_delay(args, work, fleet, prefix))
        return 0
    finally:
        fleet.stop_all()
        client = redis.Redis.from_url(REDIS_URL)
        keys = list(client.scan_iter(match=f"{prefix}*", count=1000))
        if keys:
            client.delete(*keys)
        client.close()
        shutil.rmtree(work, ignore_errors=True)


def main(argv: list[str] | None = None) -> int:
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(128 + signum))
    args = parse_args(argv)
    try:
        return run(args)
    except (RuntimeError, subprocess.TimeoutExpired, ValueError) as exc:
        print(f"\nbenchmark failed: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
