"""What full logging costs the gateway: bastion writing every event against the same bastion
with logging off, side by side in one run.

Same machine layout as ``run_proxy.py`` and ``guards.py`` (nginx upstream and wrk on core 0, the
two gateways pinned to core 1, loaded one at a time, interleaved rounds, ratios within a round),
except that both gateways are started afresh for every round (a process keeps its memory
placement for its whole life, which alone moved an identical twin by several percent).
Scenarios:

- ``auth`` (default): both gateways run the same API-key guard (routes ``optional``; wrk sends a
  valid key, so every request is authenticated). The candidate writes two events per request
  to a rotated file: the access event and the ``auth.success`` security event (the event store
  is on, and keeps refusals: none here).
- ``access``: the router alone; the candidate writes the access event of every request.

In both scenarios the candidate also runs every detector (``monitoring.enabled``, defaults).
The baseline has ``events.sink: none``, no access events, no store and no detectors.
Target: >= 0.9x (issue 7). It also reports the events/s the candidate wrote during the rounds,
its drops (``bastion_events_dropped_total``), and the events/s one writer thread sustains
alone (format + redact + write, measured in this process).

    bench/event_logging.sh                              # 5 rounds of 10 s
    bench/event_logging.sh --rounds 10 --duration 5     # issue 7's figures
    bench/event_logging.sh --quick                      # smoke run
    BENCH_CANDIDATE='{"monitoring": {"enabled": false}}' bench/event_logging.sh   # one part off

(Not ``bench/logging.py``: a script here named so would shadow the standard library's
``logging`` module for every benchmark run from this directory.)
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import guards
import run_proxy as rp

TARGET = 0.9


def logging_config(events_file: Path) -> dict[str, Any]:
    return {
        "events": {
            "sink": "file",
            "path": str(events_file),
            "access": True,
            "store": {"enabled": True},
        },
        # "full logging and detectors on" (issue 7): every detector at its defaults.
        "monitoring": {"enabled": True},
    }


OFF: dict[str, Any] = {"events": {"sink": "none", "access": False, "store": {"enabled": False}}}
SCENARIOS: dict[str, dict[str, Any]] = {
    "auth": {"auth": {"enabled": True}, **OFF},
    "access": {"auth": {"enabled": False}, **OFF},
}


def merge(base: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in extra.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def writer_capacity(work: Path, count: int = 200_000, batch: int = 2000) -> float:
    """Events per second one writer thread formats and writes to a file, fed in batches as a
    busy gateway would (half access records, half security events; the feeding included)."""
    sys.path.insert(0, str(rp.ROOT / "src"))
    from bastion.config.events import RotationConfig
    from bastion.observability.events import SecurityEvent
    from bastion.observability.sinks.rotating import RotatingFileSink
    from bastion.observability.writer import EventWriter

    sink = RotatingFileSink(work / "capacity.jsonl", RotationConfig())
    writer = EventWriter([sink], capacity=batch + 1, flush_interval=0.001)
    now = time.time()
    rid = b"x-request-id: 0123abcd\r\n"
    record = (now, b"GET", b"/orders/42", 200, 0, 180, 0.0004, "127.0.0.1",
              rid, "api", "bench", "127.0.0.1", 0.0002, "127.0.0.1")  # fmt: skip
    event = SecurityEvent("auth.success", "success", now, "api_key", "r1", "127.0.0.1", "GET",
                          "/orders/42", None, "", "bench", {"key_id": "AbCdEf012345"})  # fmt: skip
    started = time.perf_counter()
    for _ in range(count // batch):
        for n in range(batch):
            if n % 2:
                writer.emit(event)
            else:
                writer.access(record)  # type: ignore[arg-type]
        writer.flush()
    writer.close()
    elapsed = time.perf_counter() - started
    if writer.dropped:
        raise RuntimeError(f"the capacity run dropped {writer.dropped} events")
    return count / elapsed


def median_interval(ratios: list[float], draws: int = 2000) -> tuple[float, float]:
    """A 90% bootstrap interval of the median ratio: the rounds drawn again with replacement,
    ``draws`` times (seeded: the same rounds give the same interval). On this kind of machine
    one round's ratio varies by +-15% with the pair of processes started for it, so the
    interval, not the median alone, says whether the rounds decided the target."""
    if len(ratios) < 2:
        return ratios[0], ratios[0]
    pick = random.Random(7)
    medians = sorted(statistics.median(pick.choices(ratios, k=len(ratios))) for _ in range(draws))
    return medians[int(0.05 * draws)], medians[int(0.95 * draws) - 1]


def scrape(admin_port: int) -> dict[str, float]:
    text = urllib.request.urlopen(f"http://{rp.HOST}:{admin_port}/metrics", timeout=5).read()
    values: dict[str, float] = {}
    for line in text.decode().splitlines():
        if line.startswith(("bastion_events_written_total", "bastion_events_dropped_total")):
            name, _, value = line.rpartition(" ")
            values[name] = values.get(name, 0.0) + float(value)
    return values


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = rp.pair_parser("the cost of logging (see bench/README.md)", SCENARIOS, "auth")
    return rp.pair_args(parser, argv)


def create_key(bastion: str, state: Path) -> str:
    done = subprocess.run(
        [bastion, "keys", "create", "--consumer", "bench", "--state-dir", str(state), "--json"],
        capture_output=True,
        text=True,
        check=True,
    )
    return str(json.loads(done.stdout)["secret"])


def run(args: argparse.Namespace) -> int:
    if not Path(args.bastion).exists():
        raise SystemExit(f"no bastion at {args.bastion}; run bench/event_logging.sh")
    work = Path(tempfile.mkdtemp(prefix="bastion-logging-"))
    fleet = rp.Fleet(work)
    try:
        state = work / "state"
        base = SCENARIOS[args.scenario]
        auth = args.scenario == "auth"
        headers = [f"x-api-key: {create_key(args.bastion, state)}"] if auth else []
        up_port, base_port, cand_port = rp.free_port(), rp.free_port(), rp.free_port()
        admin_port = rp.free_port()
        up = work / "upstream"
        up.mkdir()
        (up / "nginx.conf").write_text(rp.upstream_conf(up, up_port))
        upstream = fleet.start(
            "upstream", ["nginx", "-p", str(up), "-c", str(up / "nginx.conf")], rp.LOAD_CORE
        )
        rp.wait_ready(upstream, up_port, args.ready_timeout)
        events_file = work / "logs" / "events.jsonl"
        candidate = {**logging_config(events_file), "admin": {"enabled": True}}
        if os.environ.get("BENCH_CANDIDATE"):  # an experiment: extra candidate settings
            candidate = merge(candidate, json.loads(os.environ["BENCH_CANDIDATE"]))
        argvs: dict[str, list[str]] = {}
        ports: dict[str, int] = {}
        for name, port, extra in (
            ("bastion", base_port, base),
            ("bastion+logging", cand_port, merge(base, candidate)),
        ):
            path = work / f"{name}.json"
            config = json.loads(guards.gateway_config(state, extra))
            config["routes"] = [
                {
                    "name": "api",
                    "upstream": f"http://{rp.HOST}:{up_port}",
                    "auth": {"require": "optional"},
                }
            ]
            path.write_text(json.dumps(config))
            argv = [args.bastion, "serve", "--listen", f"{rp.HOST}:{port}", "--config", str(path)]
            if name != "bastion":
                argv += ["--admin-listen", f"{rp.HOST}:{admin_port}"]
            argvs[name], ports[name] = argv, port
        names = list(argvs)
        print(
            f"scenario {args.scenario}: {names[1]} (events to a file, event store on, detectors on)"
            f" against {names[0]} (logging off), core {rp.PROXY_CORE};"
            f" wrk -t{args.threads} -c{args.connections} -d{args.duration:g}s"
            + (", API key on every request" if auth else "")
            + "; both gateways started afresh every round"
        )
        ratios: list[float] = []
        cpu_ratios: list[float] = []
        written = busy = dropped = 0.0
        for index in range(1, args.rounds + 1):
            # A fresh pair each round: a process keeps the memory placement it started with for
            # its whole life, and on this VM that alone moved one process's speed by several
            # percent against an identical twin, for every round of a run.
            slots = {
                name: (fleet.start(name.replace("+", "_"), argvs[name], rp.PROXY_CORE), ports[name])
                for name in names
            }
            for proc, port in slots.values():
                rp.wait_ready(proc, port, args.ready_timeout)
            for name in names:
                rp.run_wrk(*slots[name], args, args.warmup, set(), headers)
            ours = {proc.popen.pid for proc in fleet.procs}
            before = scrape(admin_port).get("bastion_events_written_total", 0.0)
            order = names if index % 2 else names[::-1]
            results = {}
            for name in order:
                results[name] = rp.run_wrk(*slots[name], args, args.duration, ours, headers)
            busy += results[names[1]].duration_s
            time.sleep(0.5)  # the writer's last block of the round
            after = scrape(admin_port)
            written += after.get("bastion_events_written_total", 0.0) - before
            dropped += after.get("bastion_events_dropped_total", 0.0)
            for name in names:
                fleet.stop(slots[name][0])
            base_run, cand = results[names[0]], results[names[1]]
            base_cpu = base_run.cpu_us_per_request
            if cand.non_2xx or base_run.non_2xx:
                raise RuntimeError(f"non-2xx answers: {base_run.non_2xx} / {cand.non_2xx}")
            ratio = cand.rps / base_run.rps if base_run.rps else 0.0
            cpu = cand.cpu_us_per_request / base_cpu if base_run.requests else 0.0
            ratios.append(ratio)
            cpu_ratios.append(cpu)
            print(
                f"round {index}: {names[0]} {base_run.rps:.0f} req/s"
                f" ({base_run.cpu_us_per_request:.1f} us/req), {names[1]} {cand.rps:.0f} req/s"
                f" ({cand.cpu_us_per_request:.1f} us/req); throughput {ratio:.2f}x,"
                f" cpu/req {cpu:.2f}x; other processes"
                f" {max(base_run.foreign_share, cand.foreign_share):.0%} of a core",
                flush=True,
            )
        events_per_s = written / busy if busy else 0.0
        capacity = writer_capacity(work)
        median = statistics.median(ratios)
        low, high = min(ratios), max(ratios)
        lower, upper = median_interval(ratios)
        verdict = "met" if lower >= TARGET else "NOT met" if upper < TARGET else "undecided"
        print(
            f"\nmedian over {args.rounds} rounds (from {low:.2f}x to {high:.2f}x):"
            f" throughput {median:.2f}x, 90% interval {lower:.2f}x to {upper:.2f}x"
            f" (target >= {TARGET}x: {verdict}), cpu/req {statistics.median(cpu_ratios):.2f}x"
        )
        print(
            f"events written by the candidate under load: {events_per_s:,.0f}/s"
            f" ({dropped:.0f} dropped); one writer thread alone sustains {capacity:,.0f} events/s"
            " (format, redact, write)"
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
    except (RuntimeError, subprocess.TimeoutExpired, subprocess.CalledProcessError) as exc:
        print(f"\nbenchmark failed: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    sys.exit(main())
