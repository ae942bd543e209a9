"""Reverse-proxy benchmark: bastion against nginx, same upstream, same core, same load.

One upstream (an nginx answering ``200 ok`` from memory) runs with the load generator (wrk) on
core 0; the two proxies under test each run pinned to core 1 and forward to that upstream over
keep-alive connections. Rounds are interleaved (nginx, candidate, nginx, candidate, ...) so that
a drift of the machine hits both alike, and ratios are computed within a round.

Everything listens on 127.0.0.1 only, lives in a temporary directory, and is stopped at the end,
on error and on Ctrl-C. Run it through ``bench/proxy.sh``, which installs what is missing.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import re
import shlex
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
RESULTS_DIR = ROOT / "bench" / "results"
HOST = "127.0.0.1"
BODY = "ok"

# Targets from DESIGN.md section 4 / docs/benchmarks.md.
TARGET_THROUGHPUT_RATIO = 0.7
TARGET_P99_RATIO = 2.0

LOAD_CORE = "0"  # upstream + wrk
PROXY_CORE = "1"  # the proxy under test

CLK_TCK = os.sysconf("SC_CLK_TCK")


# --------------------------------------------------------------------------------------------
# nginx configurations


def _nginx_common(prefix: Path) -> str:
    return f"""\
daemon off;
master_process on;
worker_processes 1;
pid {prefix}/nginx.pid;
error_log {prefix}/error.log warn;
events {{
    worker_connections 4096;
    multi_accept on;
}}
"""


def _nginx_temp_paths(prefix: Path) -> str:
    return "\n".join(
        f"    {kind}_temp_path {prefix}/tmp_{kind};"
        for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
    )


def upstream_conf(prefix: Path, port: int) -> str:
    return f"""\
{_nginx_common(prefix)}
http {{
    access_log off;
{_nginx_temp_paths(prefix)}
    keepalive_requests 10000000;
    keepalive_timeout 300s;
    server {{
        listen {HOST}:{port} reuseport backlog=4096;
        location / {{
            default_type text/plain;
            return 200 "{BODY}";
        }}
    }}
}}
"""


def nginx_proxy_conf(prefix: Path, port: int, upstream_port: int) -> str:
    return f"""\
{_nginx_common(prefix)}
http {{
    access_log off;
{_nginx_temp_paths(prefix)}
    keepalive_requests 10000000;
    keepalive_timeout 300s;
    upstream backend {{
        server {HOST}:{upstream_port};
        keepalive 64;
        keepalive_requests 10000000;
        keepalive_timeout 300s;
    }}
    server {{
        listen {HOST}:{port} backlog=4096;
        location / {{
            proxy_pass http://backend;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
        }}
    }}
}}
"""


def bastion_config(state_dir: Path) -> str:
    # JSON is YAML; the loader reads either.
    return json.dumps(
        {
            "events": {"sink": "none"},
            "admin": {"enabled": False},
            "state_dir": str(state_dir),
        },
        indent=2,
    )


# --------------------------------------------------------------------------------------------
# processes


@dataclass
class Proc:
    name: str
    popen: subprocess.Popen[bytes]
    log: Path

    def alive(self) -> bool:
        return self.popen.poll() is None

    def log_tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""


class Fleet:
    """Processes started by this run; each in its own process group, all stopped on exit."""

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.procs: list[Proc] = []

    def start(self, name: str, argv: list[str], core: str) -> Proc:
        log = self.workdir / f"{name}.log"
        with log.open("wb") as out:
            popen = subprocess.Popen(
                ["taskset", "-c", core, *argv],
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                cwd=self.workdir,
            )
        proc = Proc(name, popen, log)
        self.procs.append(proc)
        return proc

    def stop_all(self) -> None:
        _stop(list(reversed(self.procs)))
        self.procs.clear()

    def stop(self, proc: Proc) -> None:
        """Stop one process of the fleet (a benchmark that restarts it between rounds)."""
        _stop([proc])
        self.procs.remove(proc)


def _stop(procs: list[Proc]) -> None:
    for proc in procs:
        if proc.alive():
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.popen.pid, signal.SIGTERM)
    deadline = time.monotonic() + 5
    for proc in procs:
        try:
            proc.popen.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.popen.pid, signal.SIGKILL)
            proc.popen.wait(timeout=5)
        # nginx workers outlive a killed master only in pathological cases; be thorough.
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.popen.pid, signal.SIGKILL)


def core_times() -> dict[str, tuple[int, int]]:
    """(busy, total) jiffies per core from /proc/stat, for the load-side utilisation."""
    times = {}
    for line in Path("/proc/stat").read_text().splitlines():
        name, *values = line.split()
        if name.startswith("cpu") and name != "cpu":
            ticks = [int(v) for v in values]
            idle = ticks[3] + ticks[4]  # idle + iowait
            times[name[3:]] = (sum(ticks[:8]) - idle, sum(ticks[:8]))
    return times


def core_busy(
    before: dict[str, tuple[int, int]], after: dict[str, tuple[int, int]], core: str
) -> float:
    busy = after[core][0] - before[core][0]
    total = after[core][1] - before[core][1]
    return busy / total if total else 0.0


def cpu_snapshot() -> dict[int, tuple[int, float]]:
    """{pid: (process group, CPU seconds)} of every user-space process, children included.

    Counting cutime/cstime too makes the sum over all processes consistent across the exit of
    a short-lived process: its time moves into its parent's cutime when it is reaped. Kernel
    threads (ksoftirqd, kworker) are left out: under load they mostly serve our own loopback.
    """
    snap = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        fields = stat[stat.rfind(")") + 2 :].split()
        # fields[0] is field 3 (state): ppid 4, pgrp 5, flags 9, utime..cstime 14..17.
        if int(fields[6]) & 0x00200000 or int(entry) == 2:  # PF_KTHREAD, kthreadd
            continue
        ticks = sum(int(v) for v in fields[11:15])
        snap[int(entry)] = (int(fields[2]), ticks / CLK_TCK)
    return snap


def user_seconds(pgid: int) -> float:
    """User-mode CPU seconds of the live processes of one process group (the proxy)."""
    total = 0
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        fields = stat[stat.rfind(")") + 2 :].split()
        if int(fields[2]) == pgid:
            total += int(fields[11])
    return total / CLK_TCK


def cpu_delta(
    before: dict[int, tuple[int, float]], after: dict[int, tuple[int, float]], pgids: set[int]
) -> tuple[float, float]:
    """CPU seconds spent between two snapshots by the given process groups, and by the rest."""
    mine = other = 0.0
    for snap, sign in ((after, 1.0), (before, -1.0)):
        for pgrp, seconds in snap.values():
            if pgrp in pgids:
                mine += sign * seconds
            else:
                other += sign * seconds
    return mine, max(other, 0.0)


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


def http_get(port: int, timeout: float = 1.0) -> tuple[int, str]:
    """A minimal GET /, enough to tell that a proxy is up and forwards to the upstream."""
    with socket.create_connection((HOST, port), timeout=timeout) as sock:
        sock.sendall(f"GET / HTTP/1.1\r\nHost: {HOST}:{port}\r\nConnection: close\r\n\r\n".encode())
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    status_line = head.split(b"\r\n", 1)[0].decode("latin-1")
    parts = status_line.split()
    status = int(parts[1]) if len(parts) > 1 and parts[1].isdigit() else 0
    return status, body.decode("latin-1")


def wait_ready(proc: Proc, port: int, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    last = "no answer"
    while time.monotonic() < deadline:
        if not proc.alive():
            raise RuntimeError(
                f"{proc.name} exited with code {proc.popen.returncode} before answering;"
                f" its output:\n{proc.log_tail()}"
            )
        try:
            status, body = http_get(port)
        except OSError as exc:
            last = str(exc)
        else:
            if status == 200 and BODY in body:
                return
            last = f"status {status}, body {body[:80]!r}"
        time.sleep(0.1)
    raise RuntimeError(
        f"{proc.name} did not answer 200 {BODY!r} on {HOST}:{port} within {timeout:.0f}s"
        f" (last: {last}); its output:\n{proc.log_tail()}"
    )


# --------------------------------------------------------------------------------------------
# wrk


_UNIT = {"us": 1e-3, "ms": 1.0, "s": 1e3, "m": 60e3, "h": 3600e3}


def _ms(text: str) -> float:
    match = re.fullmatch(r"([\d.]+)(us|ms|s|m|h)", text.strip())
    if not match:
        raise ValueError(f"unexpected wrk latency {text!r}")
    return float(match.group(1)) * _UNIT[match.group(2)]


@dataclass
class WrkResult:
    rps: float
    p50_ms: float
    p75_ms: float
    p90_ms: float
    p99_ms: float
    requests: int
    non_2xx: int
    socket_errors: int
    proxy_cpu_s: float = 0.0
    duration_s: float = 0.0
    load_core_busy: float = 0.0
    foreign_cpu_s: float = 0.0
    proxy_user_s: float = 0.0

    @property
    def errors(self) -> int:
        return self.non_2xx + self.socket_errors

    @property
    def proxy_core_busy(self) -> float:
        return self.proxy_cpu_s / self.duration_s if self.duration_s else 0.0

    @property
    def foreign_share(self) -> float:
        """CPU used meanwhile by processes this benchmark did not start, in cores."""
        return self.foreign_cpu_s / self.duration_s if self.duration_s else 0.0

    @property
    def cpu_us_per_request(self) -> float:
        return self.proxy_cpu_s / self.requests * 1e6 if self.requests else 0.0

    @property
    def user_us_per_request(self) -> float:
        """The user-mode part of cpu_us_per_request; the rest is the kernel (sockets)."""
        return self.proxy_user_s / self.requests * 1e6 if self.requests else 0.0


def parse_wrk(out: str) -> WrkResult:
    def find(pattern: str) -> re.Match[str]:
        match = re.search(pattern, out, re.MULTILINE)
        if not match:
            raise ValueError(f"wrk output has no {pattern!r}:\n{out}")
        return match

    pct = {p: _ms(find(rf"^\s+{p}%\s+(\S+)\s*$").group(1)) for p in ("50", "75", "90", "99")}
    socket_errors = 0
    if match := re.search(r"Socket errors: (.*)$", out, re.MULTILINE):
        socket_errors = sum(int(n) for n in re.findall(r"\d+", match.group(1)))
    non_2xx = 0
    if match := re.search(r"Non-2xx or 3xx responses: (\d+)", out):
        non_2xx = int(match.group(1))
    return WrkResult(
        rps=float(find(r"^Requests/sec:\s+([\d.]+)").group(1)),
        p50_ms=pct["50"],
        p75_ms=pct["75"],
        p90_ms=pct["90"],
        p99_ms=pct["99"],
        requests=int(find(r"^\s+(\d+) requests in").group(1)),
        non_2xx=non_2xx,
        socket_errors=socket_errors,
    )


def run_wrk(
    proxy: Proc,
    port: int,
    args: argparse.Namespace,
    duration: float,
    ours: set[int],
    headers: Sequence[str] = (),
) -> WrkResult:
    """One wrk run against a proxy; ``ours`` are the process groups this benchmark started;
    ``headers`` (``"name: value"``) are sent with every request."""
    argv = [
        "taskset",
        "-c",
        LOAD_CORE,
        "wrk",
        f"-t{args.threads}",
        f"-c{args.connections}",
        f"-d{duration:g}s",
        "--timeout",
        "5s",
        "--latency",
        *(part for header in headers for part in ("-H", header)),
        f"http://{HOST}:{port}/",
    ]
    user_before = user_seconds(proxy.popen.pid)
    snap_before = cpu_snapshot()
    cores_before = core_times()
    started = time.monotonic()
    done = subprocess.run(argv, capture_output=True, text=True, timeout=duration + 30, check=False)
    elapsed = time.monotonic() - started
    cores_after = core_times()
    snap_after = cpu_snapshot()
    user_after = user_seconds(proxy.popen.pid)
    if done.returncode != 0:
        raise RuntimeError(f"wrk failed ({done.returncode}): {done.stderr or done.stdout}")
    if not proxy.alive():
        raise RuntimeError(f"{proxy.name} died during the run; its output:\n{proxy.log_tail()}")
    result = parse_wrk(done.stdout)
    result.proxy_cpu_s, _ = cpu_delta(snap_before, snap_after, {proxy.popen.pid})
    result.proxy_user_s = user_after - user_before
    # wrk is reaped by this process, so its time lands in our own group's cutime.
    _, foreign = cpu_delta(snap_before, snap_after, ours | {os.getpgrp()})
    result.foreign_cpu_s = foreign
    result.duration_s = elapsed
    result.load_core_busy = core_busy(cores_before, cores_after, LOAD_CORE)
    return result


def wait_quiet(ours: set[int], limit: float, max_wait: float) -> float:
    """Wait until processes we did not start use at most ``limit`` cores; the seconds waited."""
    started = time.monotonic()
    told = False
    while True:
        before, t0 = cpu_snapshot(), time.monotonic()
        time.sleep(1.0)
        _, foreign = cpu_delta(before, cpu_snapshot(), ours | {os.getpgrp()})
        foreign /= time.monotonic() - t0
        waited = time.monotonic() - started
        if foreign <= limit or waited >= max_wait:
            if told:
                print(f" {waited:.0f}s", flush=True)
            return waited
        if not told:
            print("  waiting for other processes to quiet down ...", end="", flush=True)
            told = True


# --------------------------------------------------------------------------------------------
# reporting


def fmt_ms(value: float) -> str:
    return f"{value * 1000:.0f}us" if value < 1 else f"{value:.2f}ms"


def round_record(
    index: int, results: dict[str, WrkResult], cand_name: str, foreign_limit: float
) -> dict[str, Any]:
    ref, cand = results["nginx"], results[cand_name]
    return {
        "round": index,
        **{
            name: {
                **asdict(r),
                "proxy_core_busy": r.proxy_core_busy,
                "foreign_cores": r.foreign_share,
                "cpu_us_per_request": r.cpu_us_per_request,
                "user_us_per_request": r.user_us_per_request,
            }
            for name, r in results.items()
        },
        "throughput_ratio": cand.rps / ref.rps if ref.rps else 0.0,
        "p99_ratio": cand.p99_ms / ref.p99_ms if ref.p99_ms else 0.0,
        "cpu_per_request_ratio": (
            cand.cpu_us_per_request / ref.cpu_us_per_request if ref.cpu_us_per_request else 0.0
        ),
        "disturbed": max(r.foreign_share for r in results.values()) > foreign_limit,
    }


def pooled_clean_runs(
    rounds: list[dict[str, Any]], names: tuple[str, str], foreign_limit: float
) -> dict[str, Any]:
    """Per proxy, medians over its undisturbed runs, whichever round they belong to."""
    pooled: dict[str, Any] = {}
    for name in names:
        runs = [rd[name] for rd in rounds if rd[name]["foreign_cores"] <= foreign_limit]
        if not runs:
            return {}
        pooled[name] = {
            "runs": len(runs),
            "rps": statistics.median(r["rps"] for r in runs),
            "p99_ms": statistics.median(r["p99_ms"] for r in runs),
            "cpu_us": statistics.median(r["cpu_us_per_request"] for r in runs),
        }
    pooled["throughput_ratio"] = pooled[names[1]]["rps"] / pooled[names[0]]["rps"]
    return pooled


def print_round(
    record: dict[str, Any], results: dict[str, WrkResult], names: tuple[str, str], cand_name: str
) -> None:
    print(f"\nround {record['round']}")
    print(
        f"  {'proxy':<10} {'req/s':>10} {'p50':>9} {'p99':>9} {'core1':>6} {'core0':>6}"
        f" {'other':>6} {'cpu/req':>9} {'usr/req':>9} {'errors':>7}"
    )
    for name in names:
        r = results[name]
        print(
            f"  {name:<10} {r.rps:>10.0f} {fmt_ms(r.p50_ms):>9} {fmt_ms(r.p99_ms):>9}"
            f" {r.proxy_core_busy:>6.0%} {r.load_core_busy:>6.0%} {r.foreign_share:>6.0%}"
            f" {r.cpu_us_per_request:>7.1f}us {r.user_us_per_request:>7.1f}us {r.errors:>7}"
        )
    print(
        f"  {cand_name}/nginx: throughput {record['throughput_ratio']:.2f}x,"
        f" p99 {record['p99_ratio']:.2f}x, cpu/req {record['cpu_per_request_ratio']:.2f}x"
        + ("  [disturbed by other processes: not counted]" if record["disturbed"] else ""),
        flush=True,
    )


def machine_info() -> dict[str, Any]:
    cpu_model = ""
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu_model = line.split(":", 1)[1].strip()
                break

    def version(argv: list[str], any_status: bool = False) -> str:
        try:
            done = subprocess.run(argv, capture_output=True, text=True, timeout=10, check=False)
        except (OSError, subprocess.TimeoutExpired):
            return ""
        lines = (done.stdout + done.stderr).strip().splitlines()
        return lines[0] if (done.returncode == 0 or any_status) and lines else ""

    return {
        "cores": os.cpu_count(),
        "cpu_model": cpu_model,
        "kernel": platform.release(),
        "python": platform.python_version(),
        "nginx": version(["nginx", "-v"]),
        "wrk": version(["wrk", "-v"], any_status=True),  # wrk -v exits 1
        "git_commit": version(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"]),
        "src_modified": bool(
            version(["git", "-C", str(ROOT), "status", "--porcelain", "--", "src"])
        ),
    }


# --------------------------------------------------------------------------------------------
# main


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="bastion vs nginx reverse-proxy benchmark (see bench/README.md)"
    )
    parser.add_argument("--rounds", type=int, default=5, help="interleaved rounds (default 5)")
    parser.add_argument("--duration", type=float, default=10, help="seconds per run (default 10)")
    parser.add_argument("--warmup", type=float, default=3, help="warm-up seconds per proxy")
    parser.add_argument("--connections", type=int, default=32, help="wrk connections (32)")
    parser.add_argument("--threads", type=int, default=1, help="wrk threads (1)")
    parser.add_argument(
        "--quick", action="store_true", help="smoke run: 2 rounds of 2s, 1s warm-up"
    )
    parser.add_argument(
        "--candidate",
        choices=("bastion", "nginx"),
        default="bastion",
        help="what runs in the candidate slot; 'nginx' is a stand-in to test this script",
    )
    parser.add_argument(
        "--candidate-cmd",
        help="custom candidate command; {port}, {upstream} ({upstream_port}) and {config}"
        " are substituted; it must listen on 127.0.0.1:{port}",
    )
    parser.add_argument(
        "--bastion", default=str(ROOT / ".venv" / "bin" / "bastion"), help="bastion executable"
    )
    parser.add_argument(
        "--order",
        choices=("alternate", "fixed"),
        default="alternate",
        help="alternate: nginx first in odd rounds, candidate first in even ones (cancels a"
        " bias against whichever runs second); fixed: nginx first in every round",
    )
    parser.add_argument(
        "--max-retries",
        type=int,
        default=10,
        help="runs repeated, in all, because other processes disturbed them (10)",
    )
    parser.add_argument(
        "--foreign-limit",
        type=float,
        default=0.05,
        help="a round is disturbed when other processes used more than this many cores (0.05)",
    )
    parser.add_argument(
        "--quiet-wait",
        type=float,
        default=120,
        help="before a round, wait up to this many seconds for other processes to go quiet (120)",
    )
    parser.add_argument("--ready-timeout", type=float, default=20, help="seconds to start up")
    parser.add_argument("--no-json", action="store_true", help="do not write bench/results/")
    args = parser.parse_args(argv)
    if args.quick:
        args.rounds, args.duration, args.warmup = 2, 2.0, 1.0
        args.max_retries, args.quiet_wait = 0, 0.0
    if args.rounds < 1 or args.duration <= 0 or args.connections < 1 or args.threads < 1:
        parser.error("--rounds, --duration, --connections and --threads must be positive")
    if args.threads > args.connections:
        parser.error("--threads must not exceed --connections")
    return args


def candidate_argv(
    args: argparse.Namespace, work: Path, port: int, upstream_port: int
) -> tuple[str, list[str]]:
    upstream = f"http://{HOST}:{upstream_port}"
    config = work / "bastion.yaml"
    config.write_text(bastion_config(work / "bastion-state"))
    if args.candidate_cmd:
        cmd = args.candidate_cmd.format(
            port=port, upstream=upstream, upstream_port=upstream_port, config=config
        )
        return "candidate", shlex.split(cmd)
    if args.candidate == "nginx":
        prefix = work / "standin"
        prefix.mkdir()
        conf = prefix / "nginx.conf"
        conf.write_text(nginx_proxy_conf(prefix, port, upstream_port))
        return "standin", ["nginx", "-p", str(prefix), "-c", str(conf)]
    listen = f"{HOST}:{port}"
    return "bastion", [
        args.bastion,
        "serve",
        "--upstream",
        upstream,
        "--listen",
        listen,
        "--config",
        str(config),
    ]


def bastion_build(executable: str) -> str:
    """Whether the bastion behind ``executable`` runs the compiled engine (mypyc) or the
    pure-Python one (an editable install, BASTION_PURE_PYTHON=1): a 1.5x difference in cost."""
    python = Path(executable).parent / "python"
    probe = "import bastion.engine.protocol as m; print(m.__file__)"
    try:
        done = subprocess.run(
            [str(python), "-c", probe], capture_output=True, text=True, timeout=30, check=False
        )
    except (OSError, subprocess.TimeoutExpired):
        return "unknown"
    where = done.stdout.strip()
    if done.returncode != 0 or not where:
        return "unknown"
    return "compiled (mypyc)" if where.endswith(".so") else "pure Python"


def check_tools(args: argparse.Namespace) -> None:
    missing = [tool for tool in ("nginx", "wrk", "taskset") if shutil.which(tool) is None]
    if missing:
        raise SystemExit(f"missing {', '.join(missing)}; run bench/proxy.sh, which installs them")
    if not args.candidate_cmd and args.candidate == "bastion" and not Path(args.bastion).exists():
        raise SystemExit(f"no bastion at {args.bastion}; run bench/proxy.sh, which installs it")
    if (os.cpu_count() or 1) < 2:
        raise SystemExit("needs 2 cores: the proxy on core 1, upstream and wrk on core 0")


def run(args: argparse.Namespace) -> int:
    check_tools(args)
    machine = machine_info()  # before bastion starts: the commit it runs
    work = Path(tempfile.mkdtemp(prefix="bastion-bench-"))
    fleet = Fleet(work)
    try:
        up_port, ngx_port, cand_port = free_port(), free_port(), free_port()
        while len({up_port, ngx_port, cand_port}) < 3:
            cand_port = free_port()

        up_prefix, ngx_prefix = work / "upstream", work / "nginx"
        up_prefix.mkdir()
        ngx_prefix.mkdir()
        (up_prefix / "nginx.conf").write_text(upstream_conf(up_prefix, up_port))
        (ngx_prefix / "nginx.conf").write_text(nginx_proxy_conf(ngx_prefix, ngx_port, up_port))

        upstream = fleet.start(
            "upstream",
            ["nginx", "-p", str(up_prefix), "-c", str(up_prefix / "nginx.conf")],
            LOAD_CORE,
        )
        wait_ready(upstream, up_port, args.ready_timeout)
        nginx = fleet.start(
            "nginx",
            ["nginx", "-p", str(ngx_prefix), "-c", str(ngx_prefix / "nginx.conf")],
            PROXY_CORE,
        )
        cand_name, cand_cmd = candidate_argv(args, work, cand_port, up_port)
        candidate = fleet.start(cand_name, cand_cmd, PROXY_CORE)
        wait_ready(nginx, ngx_port, args.ready_timeout)
        wait_ready(candidate, cand_port, args.ready_timeout)

        names = ("nginx", cand_name)
        slots = {"nginx": (nginx, ngx_port), cand_name: (candidate, cand_port)}
        print(
            f"upstream {HOST}:{up_port} (core {LOAD_CORE}), nginx {HOST}:{ngx_port} and"
            f" {cand_name} {HOST}:{cand_port} (core {PROXY_CORE});"
            f" wrk -t{args.threads} -c{args.connections} -d{args.duration:g}s on core {LOAD_CORE}"
        )
        print(f"{cand_name}: {shlex.join(cand_cmd)}")
        dirty = " + uncommitted changes in src/" if machine["src_modified"] else ""
        print(f"commit {machine['git_commit']}{dirty}; nginx {machine['nginx']}")
        if cand_name == "bastion":
            machine["bastion_build"] = bastion_build(args.bastion)
            print(f"bastion engine: {machine['bastion_build']}")
            if machine["bastion_build"] == "pure Python":
                print(
                    "  WARNING: the pure-Python engine is measured (an editable install?);"
                    " bastion as users install it is compiled: pip install . (not -e)"
                )
        if args.warmup > 0:
            print(f"warm-up {args.warmup:g}s each ...", flush=True)
            for name in names:
                proc, port = slots[name]
                run_wrk(proc, port, args, args.warmup, set())

        ours = {proc.popen.pid for proc in fleet.procs}
        rounds: list[dict[str, Any]] = []
        retries_left = args.max_retries
        for index in range(1, args.rounds + 1):
            results = {}
            order = names if args.order == "fixed" or index % 2 else names[::-1]
            for name in order:
                proc, port = slots[name]
                while True:
                    if args.quiet_wait > 0:
                        wait_quiet(ours, args.foreign_limit, args.quiet_wait)
                    results[name] = run_wrk(proc, port, args, args.duration, ours)
                    share = results[name].foreign_share
                    if share <= args.foreign_limit or retries_left <= 0:
                        break
                    retries_left -= 1
                    print(
                        f"  {name}: other processes used {share:.0%} of a core meanwhile;"
                        f" run again ({retries_left} retries left)",
                        flush=True,
                    )
            rounds.append(round_record(index, results, cand_name, args.foreign_limit))
            print_round(rounds[-1], results, names, cand_name)

        clean = [rd for rd in rounds if not rd["disturbed"]]
        counted = clean or rounds
        med_tp = statistics.median(rd["throughput_ratio"] for rd in counted)
        med_p99 = statistics.median(rd["p99_ratio"] for rd in counted)
        med_cpu = statistics.median(rd["cpu_per_request_ratio"] for rd in counted)
        tp_ok = med_tp >= TARGET_THROUGHPUT_RATIO
        p99_ok = med_p99 <= TARGET_P99_RATIO
        errors = sum(
            rd[name]["non_2xx"] + rd[name]["socket_errors"] for rd in rounds for name in names
        )
        print(f"\nmedian over {len(counted)} rounds, {cand_name}/nginx:")
        print(
            f"  throughput {med_tp:.2f}x  (target >= {TARGET_THROUGHPUT_RATIO}x:"
            f" {'met' if tp_ok else 'NOT met'})"
        )
        print(
            f"  p99        {med_p99:.2f}x  (target <= {TARGET_P99_RATIO}x:"
            f" {'met' if p99_ok else 'NOT met'})"
        )
        print(f"  cpu/req    {med_cpu:.2f}x  (CPU time of the proxy per request)")
        ref_busy = statistics.median(rd["nginx"]["proxy_core_busy"] for rd in counted)
        load_busy = statistics.median(rd["nginx"]["load_core_busy"] for rd in counted)
        if ref_busy < 0.9 and load_busy >= 0.9:
            print(
                f"  note: nginx kept core {PROXY_CORE} only {ref_busy:.0%} busy while core"
                f" {LOAD_CORE} (upstream + wrk) was {load_busy:.0%} busy: the load side limited"
                f" nginx, so the throughput ratio flatters {cand_name}; cpu/req does not"
            )
        if not clean:
            print(
                "  WARNING: every round was disturbed by other processes (column 'other');"
                " these medians are unreliable, run again on a quiet machine"
            )
        elif len(clean) < len(rounds):
            print(
                f"  {len(rounds) - len(clean)} disturbed round(s) left out; with them:"
                f" throughput {statistics.median(rd['throughput_ratio'] for rd in rounds):.2f}x,"
                f" p99 {statistics.median(rd['p99_ratio'] for rd in rounds):.2f}x,"
                f" cpu/req {statistics.median(rd['cpu_per_request_ratio'] for rd in rounds):.2f}x"
            )
        pooled = pooled_clean_runs(rounds, names, args.foreign_limit)
        if pooled:
            print(
                "  clean runs pooled across rounds (median):"
                + "".join(
                    f" {name} {pooled[name]['rps']:.0f} req/s, p99"
                    f" {fmt_ms(pooled[name]['p99_ms'])}, {pooled[name]['cpu_us']:.1f}us/req"
                    f" ({pooled[name]['runs']} runs);"
                    for name in names
                )
                + f" throughput {pooled['throughput_ratio']:.2f}x"
            )
        if errors:
            print(f"  WARNING: {errors} non-2xx responses or socket errors; see the rounds above")

        if not args.no_json:
            RESULTS_DIR.mkdir(parents=True, exist_ok=True)
            stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
            path = RESULTS_DIR / f"proxy-{stamp}.json"
            path.write_text(
                json.dumps(
                    {
                        "benchmark": "proxy",
                        "timestamp": datetime.now(UTC).isoformat(timespec="seconds"),
                        "candidate": cand_name,
                        "candidate_cmd": cand_cmd,
                        "machine": machine,
                        "params": {
                            "rounds": args.rounds,
                            "max_retries": args.max_retries,
                            "duration_s": args.duration,
                            "warmup_s": args.warmup,
                            "connections": args.connections,
                            "threads": args.threads,
                            "order": args.order,
                            "foreign_limit_cores": args.foreign_limit,
                            "proxy_core": PROXY_CORE,
                            "load_core": LOAD_CORE,
                        },
                        "rounds": rounds,
                        "rounds_counted": [rd["round"] for rd in counted],
                        "median": {
                            "throughput_ratio": med_tp,
                            "p99_ratio": med_p99,
                            "cpu_per_request_ratio": med_cpu,
                        },
                        "targets": {
                            "throughput_ratio_min": TARGET_THROUGHPUT_RATIO,
                            "p99_ratio_max": TARGET_P99_RATIO,
                            "throughput_met": tp_ok,
                            "p99_met": p99_ok,
                        },
                        "pooled_clean_runs": pooled,
                        "errors": errors,
                    },
                    indent=2,
                )
                + "\n"
            )
            print(f"\nresults written to {path.relative_to(ROOT)}")
        return 0
    finally:
        fleet.stop_all()
        shutil.rmtree(work, ignore_errors=True)


def _terminate(signum: int, _frame: object) -> None:
    raise SystemExit(128 + signum)


def pair_parser(
    description: str, scenarios: Sequence[str], default: str
) -> argparse.ArgumentParser:
    """The options of a bastion-against-bastion benchmark (``guards.py``, ``event_logging.py``):
    the scenario, interleaved rounds, wrk's load, the bastion to run. See :func:`pair_args`."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--scenario", choices=sorted(scenarios), default=default)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--duration", type=float, default=10)
    parser.add_argument("--warmup", type=float, default=3)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--quick", action="store_true", help="2 rounds of 2 s, 1 s warm-up")
    parser.add_argument("--bastion", default=str(ROOT / ".venv" / "bin" / "bastion"))
    parser.add_argument("--ready-timeout", type=float, default=20)
    return parser


def pair_args(parser: argparse.ArgumentParser, argv: list[str] | None) -> argparse.Namespace:
    args = parser.parse_args(argv)
    if args.quick:
        args.rounds, args.duration, args.warmup = 2, 2.0, 1.0
    return args


def main(argv: list[str] | None = None) -> int:
    signal.signal(signal.SIGTERM, _terminate)
    signal.signal(signal.SIGHUP, _terminate)
    args = parse_args(argv)
    try:
        return run(args)
    except KeyboardInterrupt:
        print("\ninterrupted; everything started was stopped", file=sys.stderr)
        return 130
    except (RuntimeError, subprocess.TimeoutExpired, ValueError) as exc:
        print(f"\nbenchmark failed: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
