"""What authentication costs the gateway (API keys and cached JWTs), measured two ways, side by
side in one run.

``micro`` (default, ~30 s): the engine's whole per-request Python path, without sockets (the
harness of ``micro_engine.py``: fake transports, a pooled upstream fed an nginx-like response),
for four chains built from the same config, run interleaved:

- ``none``: the router alone (``auth.enabled: false``), the engine's fast path;
- ``anonymous``: the default auth guards on a public route, no credential presented (what every
  gateway now pays: query and duplicate checks, identity headers stripped);
- ``api-key``: a valid key on a route that requires one (index, the key's quick MAC: the HMAC
  runs only the first time, identity headers, the ``auth.success`` event for a ``none`` sink);
- ``jwt``: a valid bastion access token (``Authorization: Bearer``, EdDSA) on the same route,
  verified once and then answered from the token cache (SHA-256 of the signature, a lookup, the
  key-bound revocation check), with the token guard and the key guard both in the chain.

``wrk`` (~1-2 min): the same comparison through sockets, ``bastion serve`` processes pinned to
core 1 and wrk with nginx as upstream on core 0 (the layout of ``run_proxy.py``), interleaved
rounds, throughput ratios computed within a round. Needs nginx and wrk (``bench/proxy.sh``
installs them).

    .venv/bin/python bench/auth_keys.py                 # micro
    .venv/bin/python bench/auth_keys.py wrk --quick     # sockets, smoke run
"""

from __future__ import annotations

import argparse
import asyncio
import json
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

from bastion.auth.assembly import auth_guards
from bastion.auth.bearer import BearerTokenGuard
from bastion.auth.jwt.keystore import MemorySigningKeyStore
from bastion.auth.keys.hashing import KeyHasher
from bastion.auth.keys.manager import KeyManager
from bastion.config.loader import build_config
from bastion.config.models import BastionConfig
from bastion.engine.protocol import ClientProtocol
from bastion.engine.upstream import UpstreamConnection
from bastion.observability.events import NullSink
from bastion.pipeline.chain import GuardChain
from bastion.pipeline.routing import Route, Router
from bastion.store import MemoryKeyStore
from micro_engine import RESPONSE, FakeTransport, exchanges, wire

SCENARIOS = ("none", "anonymous", "api-key", "jwt")
AUTHENTICATED = ("api-key", "jwt")
TARGET = 0.85  # issue 3: the gateway with API-key or JWT auth >= 0.85x the same without guards
SIGNING = {
    "issuer": "https://bench.bastion.test",
    "audiences": ["https://api.bench.test"],
    "token_lifetime": "1h",  # longer than the run: the token stays valid and cached
}


def config_for(scenario: str, upstream: str = "http://127.0.0.1:9000") -> BastionConfig:
    settings: dict[str, dict[str, Any]] = {
        "none": {"enabled": False},
        "anonymous": {"default": "public"},
        "api-key": {"default": "required"},
        "jwt": {"default": "required", "tokens": {"signing": SIGNING}},
    }
    auth = settings[scenario]
    return build_config(
        {
            "routes": [{"name": "api", "upstream": upstream}],
            "events": {"sink": "none"},
            "admin": {"enabled": False},
            "auth": auth,
        },
        "bench",
    )


def credential_header(scenario: str, secret: str | None) -> str:
    if secret is None:
        return ""
    if scenario == "jwt":
        return f"Authorization: Bearer {secret}"
    return f"X-API-Key: {secret}"


def request_bytes(header: str) -> bytes:
    key = f"{header}\r\n" if header else ""
    return (
        "GET /orders/42?page=2 HTTP/1.1\r\nHost: 127.0.0.1:8080\r\nUser-Agent: bench/1.0\r\n"
        f"Accept: application/json\r\n{key}\r\n"
    ).encode()


def setup(
    scenario: str, loop: asyncio.AbstractEventLoop
) -> tuple[ClientProtocol, FakeTransport, UpstreamConnection, FakeTransport, bytes]:
    config = config_for(scenario)
    routes = [Route.from_config(r) for r in config.routes]
    store, hasher = MemoryKeyStore(), KeyHasher(b"bench-pepper-" + b"x" * 32)
    secret = None
    guards = []
    if scenario != "none":
        guards = auth_guards(
            config,
            NullSink(),
            key_store=lambda: (store, hasher),
            start=False,
            signing_store=MemorySigningKeyStore(),
        )
        if scenario in AUTHENTICATED:
            issued = KeyManager(config, store=store, hasher=hasher).create(
                "acme", scopes=("orders:read",), tier="gold"
            )
            secret = issued.secret
            for guard in guards:
                sync = getattr(guard, "sync", None)
                if sync is not None:
                    sync.refresh()
        if scenario == "jwt":
            bearer = next(g for g in guards if isinstance(g, BearerTokenGuard))
            signing = bearer.signing
            assert signing is not None
            loop.run_until_complete(signing.load())  # the key; no background task in a micro run
            secret = signing.issue_access_token(
                subject="acme",
                client_id=issued.record.id,
                audience=SIGNING["audiences"][0],
                scopes=("orders:read",),
            ).token
    chain = GuardChain([Router(routes), *guards], NullSink())
    client, client_transport, up, up_transport = wire(config, chain, loop)
    return (
        client,
        client_transport,
        up,
        up_transport,
        request_bytes(credential_header(scenario, secret)),
    )


def micro_run(scenario: str, n: int, loop: asyncio.AbstractEventLoop) -> float:
    client, client_transport, up, up_transport, request = setup(scenario, loop)
    feed_client, feed_up = client.data_received, up.data_received
    sent_up, sent_client = up_transport.sent, client_transport.sent
    feed_client(request)
    feed_up(RESPONSE)
    head = b"".join(sent_up)
    assert head.startswith(b"GET /orders/42?page=2"), head
    if scenario in AUTHENTICATED:
        assert b"x-bastion-consumer: acme" in head, head
        assert b" 200 " in b"".join(sent_client), sent_client
    sent_up.clear()
    sent_client.clear()
    return exchanges(client, client_transport, up, up_transport, n, request)


def micro(args: argparse.Namespace) -> int:
    loop = uvloop.new_event_loop()
    asyncio.set_event_loop(loop)
    scenarios = args.scenario or list(SCENARIOS)
    if args.profile:
        import cProfile
        import pstats

        for scenario in scenarios:
            profiler = cProfile.Profile()
            profiler.runcall(micro_run, scenario, args.n, loop)
            print(f"-- {scenario}")
            pstats.Stats(profiler).sort_stats("tottime").print_stats(30)
        return 0
    results: dict[str, list[float]] = {s: [] for s in scenarios}
    for _ in range(args.runs):
        for scenario in scenarios:  # interleaved: a drift of the machine hits all alike
            results[scenario].append(micro_run(scenario, args.n, loop))
    base = min(results["none"]) if "none" in results else 0.0
    print(f"engine Python path per request, best of {args.runs} runs of {args.n} (interleaved):")
    for scenario in scenarios:
        best = min(results[scenario])
        print(
            f"  {scenario:10} {best:6.2f} us  (median {statistics.median(results[scenario]):.2f})"
            f"  +{best - base:5.2f} us over none, throughput bound {base / best:.2f}x"
        )
    return 0


# -- through sockets, with wrk


def wrk(args: argparse.Namespace) -> int:
    import run_proxy as rp

    work = Path(tempfile.mkdtemp(prefix="bastion-auth-bench-"))
    fleet = rp.Fleet(work)
    try:
        up_port = rp.free_port()
        up = work / "upstream"
        up.mkdir()
        (up / "nginx.conf").write_text(rp.upstream_conf(up, up_port))
        upstream = fleet.start(
            "upstream", ["nginx", "-p", str(up), "-c", str(up / "nginx.conf")], rp.LOAD_CORE
        )
        rp.wait_ready(upstream, up_port, 20)
        slots: dict[str, tuple[Any, int, str | None]] = {}
        secrets: dict[str, str] = {}
        for scenario in SCENARIOS:
            state = work / f"{scenario}-state"
            config = config_for(scenario, f"http://{rp.HOST}:{up_port}")
            data = json.loads(config.model_dump_json(by_alias=True))
            data.update({"state_dir": str(state), "rate_limit": {"login": {"enabled": False}}})
            if args.no_event_store:
                data["events"] = {**data["events"], "store": {"enabled": False}}
            path = work / f"{scenario}.json"
            path.write_text(json.dumps(data))
            if scenario in AUTHENTICATED:
                made = subprocess.run(
                    [args.bastion, "keys", "create", "--consumer", "acme", "--config", str(path),
                     "--json"],
                    capture_output=True, text=True, check=True,
                )  # fmt: skip
                secrets[scenario] = json.loads(made.stdout)["secret"]
            port = rp.free_port()
            argv = [args.bastion, "serve", "--config", str(path), "--listen", f"{rp.HOST}:{port}"]
            header = (
                credential_header(scenario, secrets[scenario]) if scenario == "api-key" else None
            )
            slots[scenario] = (fleet.start(scenario, argv, rp.PROXY_CORE), port, header)
        proc, port, _ = slots["jwt"]
        token = fetch_token(proc, port, secrets["jwt"], rp)
        slots["jwt"] = (proc, port, credential_header("jwt", token))
        for proc, port, header in slots.values():
            wait_ready(proc, port, header, rp)
        ours = {proc.popen.pid for proc in fleet.procs}
        print(f"wrk -t1 -c{args.connections} -d{args.duration:g}s per run; bastion on core 1")
        ratios: dict[str, list[float]] = {s: [] for s in SCENARIOS if s != "none"}
        for index in range(1, args.rounds + 1):
            order = list(SCENARIOS) if index % 2 else list(reversed(SCENARIOS))
            rps = {s: run_wrk(*slots[s], args, ours, rp) for s in order}
            for scenario in ratios:
                ratios[scenario].append(rps[scenario] / rps["none"])
            print(
                f"round {index}: "
                + ", ".join(f"{s} {rps[s]:.0f} req/s" for s in SCENARIOS)
                + "; "
                + ", ".join(f"{s}/none {ratios[s][-1]:.2f}x" for s in ratios),
                flush=True,
            )
        print(f"\nmedian over {args.rounds} rounds:")
        for scenario, values in ratios.items():
            median = statistics.median(values)
            verdict = (
                f" (target >= {TARGET}x: {'met' if median >= TARGET else 'NOT met'})"
                if scenario in AUTHENTICATED
                else ""
            )
            print(f"  {scenario}/none {median:.2f}x{verdict}")
        return 0
    finally:
        fleet.stop_all()
        shutil.rmtree(work, ignore_errors=True)


def fetch_token(proc: Any, port: int, secret: str, rp: Any) -> str:
    """An access token from the gateway's /oauth/token for ``secret`` (once it answers)."""
    import base64
    import urllib.error
    import urllib.request

    key_id = secret.split("_")[1]
    basic = base64.b64encode(f"{key_id}:{secret}".encode()).decode()
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        if not proc.alive():
            raise RuntimeError(f"{proc.name} exited: {proc.log_tail()}")
        request = urllib.request.Request(
            f"http://{rp.HOST}:{port}/oauth/token",
            data=b"grant_type=client_credentials",
            headers={"Authorization": f"Basic {basic}"},
        )
        try:
            with urllib.request.urlopen(request, timeout=1) as response:  # noqa: S310
                return str(json.loads(response.read())["access_token"])
        except (OSError, urllib.error.HTTPError):
            time.sleep(0.1)
    raise RuntimeError(f"{proc.name} did not issue a token on port {port}")


def wait_ready(proc: Any, port: int, header: str | None, rp: Any) -> None:
    """Until the gateway answers 200 with the scenario's request (its credential, if any)."""
    import urllib.error
    import urllib.request

    headers = dict([header.split(": ", 1)]) if header else {}
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        if not proc.alive():
            raise RuntimeError(f"{proc.name} exited: {proc.log_tail()}")
        request = urllib.request.Request(f"http://{rp.HOST}:{port}/orders/42", headers=headers)
        try:
            with urllib.request.urlopen(request, timeout=1) as response:  # noqa: S310
                if response.status == 200:
                    return
        except (OSError, urllib.error.HTTPError):
            pass
        time.sleep(0.1)
    raise RuntimeError(f"{proc.name} did not answer 200 on port {port}")


def run_wrk(
    proc: Any, port: int, header: str | None, args: argparse.Namespace, ours: set[int], rp: Any
) -> float:
    argv = ["taskset", "-c", rp.LOAD_CORE, "wrk", "-t1", f"-c{args.connections}",
            f"-d{args.duration:g}s", "--timeout", "5s", "--latency"]  # fmt: skip
    if header is not None:
        argv += ["-H", header]
    argv.append(f"http://{rp.HOST}:{port}/orders/42")
    done = subprocess.run(argv, capture_output=True, text=True, timeout=args.duration + 30)
    if done.returncode != 0 or not proc.alive():
        raise RuntimeError(f"wrk or {proc.name} failed: {done.stderr or done.stdout}")
    result = rp.parse_wrk(done.stdout)
    if result.non_2xx:
        raise RuntimeError(f"{proc.name}: {result.non_2xx} non-2xx answers")
    return float(result.rps)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("mode", nargs="?", choices=["micro", "wrk"], default="micro")
    parser.add_argument("-n", type=int, default=20_000, help="micro: requests per run")
    parser.add_argument("--runs", type=int, default=9, help="micro: runs per scenario")
    parser.add_argument(
        "--scenario",
        action="append",
        choices=SCENARIOS,
        help="micro: only this scenario (repeatable); one alone suits callgrind",
    )
    parser.add_argument("--profile", action="store_true", help="micro: cProfile of one run each")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--duration", type=float, default=5)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--quick", action="store_true", help="wrk: 2 rounds of 2 s")
    parser.add_argument(
        "--no-event-store",
        action="store_true",
        help="wrk: events.store.enabled false (what the per-request auth.success event costs)",
    )
    parser.add_argument("--bastion", default=str(Path(sys.executable).parent / "bastion"))
    args = parser.parse_args()
    if args.quick:
        args.rounds, args.duration = 2, 2.0
    return micro(args) if args.mode == "micro" else wrk(args)


if __name__ == "__main__":
    sys.exit(main())
