"""What a guard costs the gateway: bastion with a guard against the same bastion without it.

Same machine layout as ``run_proxy.py`` (upstream nginx and wrk on core 0; the two gateways pinned
to core 1, loaded one at a time), same interleaved rounds, ratios computed within a round. The
scenario picks the guard configuration merged into the candidate's config:

- ``ratelimit``: one in-memory GCRA policy per client IP, high enough never to refuse (so every
  request pays the decision and the ``RateLimit`` headers). Target: >= 0.9x (issue 4).
- ``ratelimit-redis``: the same policy on the shared Redis at 127.0.0.1:6379.

Run it through ``bench/guards.sh``, which installs nginx and wrk when missing::

    bench/guards.sh --scenario ratelimit            # 5 rounds of 10 s
    bench/guards.sh --scenario ratelimit --quick    # smoke run
"""

from __future__ import annotations

import argparse
import json
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import run_proxy as rp

SCENARIOS: dict[str, tuple[dict[str, Any], float]] = {
    "ratelimit": (
        {"rate_limit": {"policies": [{"name": "per-ip", "rate": "1000000/s"}]}},
        0.9,
    ),
    "ratelimit-redis": (
        {
            "rate_limit": {
                "storage": "redis",
                "policies": [{"name": "per-ip", "rate": "1000000/s"}],
            },
            "redis": {"url": "redis://127.0.0.1:6379/0", "key_prefix": "bastion-bench:"},
        },
        0.0,
    ),
}


def gateway_config(state_dir: Path, extra: dict[str, Any]) -> str:
    base: dict[str, Any] = {
        "events": {"sink": "none"},
        "admin": {"enabled": False},
        "state_dir": str(state_dir),
        # The baseline is the router alone: every scenario turns on exactly what it measures.
        "rate_limit": {"login": {"enabled": False}},
        "auth": {"enabled": False},
    }
    for key, value in extra.items():
        if isinstance(value, dict) and isinstance(base.get(key), dict):
            base[key] = {**base[key], **value}
        else:
            base[key] = value
    return json.dumps(base, indent=2)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = rp.pair_parser("the cost of a guard (see bench/README.md)", SCENARIOS, "ratelimit")
    return rp.pair_args(parser, argv)


def run(args: argparse.Namespace) -> int:
    if not Path(args.bastion).exists():
        raise SystemExit(f"no bastion at {args.bastion}; run bench/guards.sh")
    extra, target = SCENARIOS[args.scenario]
    work = Path(tempfile.mkdtemp(prefix="bastion-guards-"))
    fleet = rp.Fleet(work)
    try:
        up_port, base_port, cand_port = rp.free_port(), rp.free_port(), rp.free_port()
        up = work / "upstream"
        up.mkdir()
        (up / "nginx.conf").write_text(rp.upstream_conf(up, up_port))
        upstream = fleet.start(
            "upstream", ["nginx", "-p", str(up), "-c", str(up / "nginx.conf")], rp.LOAD_CORE
        )
        rp.wait_ready(upstream, up_port, args.ready_timeout)
        slots: dict[str, tuple[rp.Proc, int]] = {}
        for name, port, cfg in (
            ("bastion", base_port, {}),
            (f"bastion+{args.scenario}", cand_port, extra),
        ):
            path = work / f"{name}.json"
            path.write_text(gateway_config(work / f"{name}-state", cfg))
            argv = [
                args.bastion,
                "serve",
                "--upstream",
                f"http://{rp.HOST}:{up_port}",
                "--listen",
                f"{rp.HOST}:{port}",
                "--config",
                str(path),
            ]
            slots[name] = (fleet.start(name.replace("+", "_"), argv, rp.PROXY_CORE), port)
        for proc, port in slots.values():
            rp.wait_ready(proc, port, args.ready_timeout)
        names = list(slots)
        print(
            f"scenario {args.scenario}: {names[1]} against {names[0]}, core {rp.PROXY_CORE};"
            f" wrk -t{args.threads} -c{args.connections} -d{args.duration:g}s"
        )
        for name in names:
            proc, port = slots[name]
            rp.run_wrk(proc, port, args, args.warmup, set())
        ours = {proc.popen.pid for proc in fleet.procs}
        ratios: list[float] = []
        cpu_ratios: list[float] = []
        for index in range(1, args.rounds + 1):
            order = names if index % 2 else names[::-1]
            results = {name: rp.run_wrk(*slots[name], args, args.duration, ours) for name in order}
            base, cand = results[names[0]], results[names[1]]
            ratio = cand.rps / base.rps if base.rps else 0.0
            cpu = cand.cpu_us_per_request / base.cpu_us_per_request if base.requests else 0.0
            ratios.append(ratio)
            cpu_ratios.append(cpu)
            print(
                f"round {index}: {names[0]} {base.rps:.0f} req/s ({base.cpu_us_per_request:.1f}"
                f" us/req), {names[1]} {cand.rps:.0f} req/s ({cand.cpu_us_per_request:.1f}"
                f" us/req, {cand.non_2xx} non-2xx); throughput {ratio:.2f}x, cpu/req {cpu:.2f}x;"
                f" other processes {max(base.foreign_share, cand.foreign_share):.0%} of a core",
                flush=True,
            )
        median = statistics.median(ratios)
        verdict = f"target >= {target}x: {'met' if median >= target else 'NOT met'}"
        print(
            f"\nmedian over {args.rounds} rounds: throughput {median:.2f}x"
            f" ({verdict if target else 'no target'}),"
            f" cpu/req {statistics.median(cpu_ratios):.2f}x"
        )
        return 0
    finally:
        fleet.stop_all()
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
