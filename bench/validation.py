"""What request validation costs, side by side in one run (numbers are noisy on a shared machine).

1. **Validators**: the same request (``POST /stores/{store}/orders?dry_run=false`` with a 1 KB
   JSON body) validated whole by openapi-core (the reference pure-Python OpenAPI validator) and by
   bastion's ``validation`` guard (routing, parameters, JSON limits, parse, compiled schema).
   Target: bastion >= 100x faster (issue 5).
2. **Gateway**: the engine's whole per-request Python path (bench/micro_engine.py: parsing,
   chain, forwarding, response; fake transports, so no kernel or event-loop time) for the same
   request with the validation guard against the same engine without it (the body then streams
   unbuffered). Target: >= 0.8x the throughput.
3. With ``--wrk``: the same comparison end to end, two ``bastion serve`` processes behind wrk
   posting the body to an nginx upstream (the bench/guards.py layout; needs nginx and wrk).

    .venv/bin/python bench/validation.py            # parts 1 and 2 (~20 s)
    .venv/bin/python bench/validation.py --wrk      # and part 3 (~40 s more)
    .venv/bin/python bench/validation.py --wrk --defaults   # part 3 with auth etc. in both
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, ClassVar

import orjson
import uvloop
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))

import micro_engine
from bastion.assembly import build_gateway_chain
from bastion.config.models import BastionConfig
from bastion.observability.events import NullSink
from bastion.pipeline.chain import GuardChain
from bastion.pipeline.decisions import ALLOW, Allow, Decision
from bastion.pipeline.guard import Phase
from bastion.pipeline.request import ClientAddress, Headers, Request
from bastion.pipeline.routing import Route, Router
from bastion.validation.assembly import validation_guards
from bastion.validation.guard import ValidationGuard

ORDER = "#/components/schemas/Order"
SPEC: dict[str, Any] = {
    "openapi": "3.0.3",
    "info": {"title": "orders", "version": "1"},
    "paths": {
        "/stores/{store}/orders": {
            "post": {
                "parameters": [
                    {
                        "name": "store",
                        "in": "path",
                        "required": True,
                        "schema": {"type": "integer", "minimum": 1},
                    },
                    {"name": "dry_run", "in": "query", "schema": {"type": "boolean"}},
                ],
                "requestBody": {
                    "required": True,
                    "content": {"application/json": {"schema": {"$ref": ORDER}}},
                },
                "responses": {"200": {"description": "ok"}},
            }
        },
        "/": {"get": {"responses": {"200": {"description": "ok"}}}},
    },
    "components": {
        "schemas": {
            "Order": {
                "type": "object",
                "required": ["customer", "items"],
                "additionalProperties": False,
                "properties": {
                    "id": {"type": "integer", "readOnly": True},
                    "customer": {"$ref": "#/components/schemas/Customer"},
                    "items": {
                        "type": "array",
                        "maxItems": 100,
                        "items": {"$ref": "#/components/schemas/Line"},
                    },
                    "note": {"type": "string", "maxLength": 500, "nullable": True},
                    "express": {"type": "boolean"},
                },
            },
            "Customer": {
                "type": "object",
                "required": ["name", "email"],
                "properties": {
                    "name": {"type": "string", "maxLength": 100},
                    "email": {"type": "string", "format": "email"},
                    "country": {"type": "string", "enum": ["DE", "FR", "GB", "US", "JP"]},
                },
            },
            "Line": {
                "type": "object",
                "required": ["sku", "quantity", "price"],
                "properties": {
                    "sku": {"type": "string", "pattern": "^[A-Z]{3}-[0-9]{4}$"},
                    "quantity": {"type": "integer", "minimum": 1, "maximum": 1000},
                    "price": {"type": "number", "minimum": 0},
                },
            },
        }
    },
}

BODY = orjson.dumps(
    {
        "customer": {"name": "Ada Lovelace", "email": "ada@example.com", "country": "GB"},
        "items": [
            {"sku": f"ABC-{1000 + i}", "quantity": i + 1, "price": 9.99 + i} for i in range(12)
        ],
        "note": "Leave at the door, please. " * 11,
        "express": True,
    }
)
PATH = "/stores/42/orders"
QUERY = "dry_run=false"


def write_spec(directory: Path) -> Path:
    path = directory / "orders.yaml"
    path.write_text(yaml.safe_dump(SPEC, sort_keys=False))
    return path


def timed(func: Any, n: int, runs: int) -> float:
    """Median µs per call of ``func`` over ``runs`` runs of ``n`` calls."""
    results = []
    for _ in range(runs):
        start = time.perf_counter()
        for _ in range(n):
            func()
        results.append((time.perf_counter() - start) / n * 1e6)
    return statistics.median(results)


def validators(spec_path: Path, n: int) -> float:
    from openapi_core import OpenAPI
    from openapi_core.testing import MockRequest

    openapi = OpenAPI.from_dict(SPEC)
    config = BastionConfig.model_validate(
        {"openapi": str(spec_path), "validation": {"enabled": True}, "admin": {"enabled": False}}
    )
    guard = validation_guards(config, NullSink())[0]
    assert isinstance(guard, ValidationGuard)
    raw_headers = [
        (b"host", b"api.example"),
        (b"content-type", b"application/json"),
        (b"content-length", str(len(BODY)).encode()),
    ]
    client = ClientAddress("127.0.0.1", 40000)

    def bastion() -> None:
        request = Request(
            method="POST",
            path=PATH,
            query=QUERY,
            headers=Headers(raw_headers),
            client=client,
            body=BODY,
        )
        if not isinstance(guard.check(request), Allow):
            raise AssertionError("bastion refused the benchmark's valid request")

    def reference() -> None:
        request = MockRequest(
            "http://api.example",
            "post",
            PATH,
            args={"dry_run": "false"},
            data=BODY,
            content_type="application/json",
        )
        openapi.validate_request(request)

    bastion()
    reference()
    ours = timed(bastion, n, 7)
    theirs = timed(reference, max(n // 200, 50), 5)
    ratio = theirs / ours
    print("1. validating one whole request (1 KB JSON body, path and query parameters)")
    print(f"   openapi-core {theirs:9.1f} us/request")
    print(f"   bastion      {ours:9.2f} us/request")
    verdict = "met" if ratio >= 100 else "NOT met"
    print(f"   bastion is {ratio:.0f}x faster (target >= 100x: {verdict})")
    return ratio


def _post_request() -> bytes:
    return (
        f"POST {PATH}?{QUERY} HTTP/1.1\r\nHost: 127.0.0.1:8080\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(BODY)}\r\n\r\n"
    ).encode() + BODY


def _engine_run(chain: GuardChain, config: BastionConfig, n: int) -> float:
    loop = asyncio.get_event_loop()
    client, client_transport, up, up_transport = micro_engine.wire(config, chain, loop)
    request = _post_request()
    response = micro_engine.RESPONSE
    feed_client, feed_up = client.data_received, up.data_received
    sent_up, sent_client = up_transport.sent, client_transport.sent
    feed_client(request)
    feed_up(response)
    if b"".join(sent_client).split(b" ", 2)[1] != b"200" or BODY not in b"".join(sent_up):
        raise AssertionError("the engine did not forward the benchmark's request")
    sent_up.clear()
    sent_client.clear()
    return micro_engine.exchanges(client, client_transport, up, up_transport, n, request)


class BodyReader:
    """A guard that asks for the body and allows everything: the engine's price of any guard
    that reads bodies (the chain, the request view, buffering), without validation's work."""

    name: ClassVar[str] = "bench.body_reader"
    phase: ClassVar[Phase] = Phase.VALIDATE
    requires_body: ClassVar[bool] = True

    def __init__(self) -> None:
        self.fail_open = False

    def check(self, request: Request) -> Decision:
        return ALLOW


# As in bench/guards.py, the baseline is the router alone: the other practices' default guards
# (auth, the login limit) are off in both gateways, so the only difference is validation.
ONLY_ROUTER = {"rate_limit": {"login": {"enabled": False}}, "auth": {"enabled": False}}


def _chains(spec_path: Path) -> dict[str, tuple[GuardChain, BastionConfig]]:
    """The three engines of part 2: the router alone, a no-op body guard, validation."""
    data = {
        "routes": [{"name": "api", "upstream": "http://127.0.0.1:9000"}],
        "events": {"sink": "none"},
        "admin": {"enabled": False},
        "state_dir": tempfile.mkdtemp(prefix="bastion-bench-validation-"),
        **ONLY_ROUTER,
    }
    plain = BastionConfig.model_validate(data)
    validating = BastionConfig.model_validate(
        {**data, "openapi": str(spec_path), "validation": {"enabled": True}}
    )
    base_chain = build_gateway_chain(plain, NullSink())
    router = Router([Route.from_config(r) for r in plain.routes])
    reader_chain = GuardChain([router, BodyReader()], NullSink())
    with_chain = build_gateway_chain(validating, NullSink())
    assert base_chain.names() == ["router"]
    assert with_chain.names() == ["router", "validation"]
    return {
        "base": (base_chain, plain),
        "with": (with_chain, validating),
        "reader": (reader_chain, plain),
    }


def gateway(spec_path: Path, n: int, rounds: int) -> float:
    chains = _chains(spec_path)
    ratios, bases, withs, readers = [], [], [], []
    for index in range(rounds):
        order = [(label, *chains[label]) for label in ("base", "with", "reader")]
        if index % 2:
            order.reverse()
        times = {label: _engine_run(chain, cfg, n) for label, chain, cfg in order}
        bases.append(times["base"])
        withs.append(times["with"])
        readers.append(times["reader"])
        ratios.append(times["base"] / times["with"])
    ratio = statistics.median(ratios)
    print("2. the engine's per-request Python path, POST with the 1 KB JSON body")
    print(f"   without validation {statistics.median(bases):7.2f} us/request (body streamed)")
    print(f"   a no-op body guard {statistics.median(readers):7.2f} us/request (the engine's"
          " price of any guard that reads bodies)")  # fmt: skip
    print(
        f"   with validation    {statistics.median(withs):7.2f} us/request (body buffered,"
        " validated)"
    )
    print(
        f"   throughput {ratio:.2f}x (target >= 0.8x: {'met' if ratio >= 0.8 else 'NOT met'};"
        f" median of {rounds} interleaved rounds)"
    )
    return ratio


WRK_SCRIPT = """
wrk.method = "POST"
wrk.path = "{path}"
wrk.headers["Content-Type"] = "application/json"
wrk.body = [==[{body}]==]
"""


def end_to_end(spec_path: Path, duration: float, rounds: int, defaults: bool = False) -> float:
    """``defaults``: both gateways keep the guards a default config enables (API keys, the
    login limit), as a deployment would, instead of the router alone."""
    import bastion
    import run_proxy as rp

    # the gateways run the code this benchmark imports (a relative PYTHONPATH=src would not
    # survive their working directory)
    source = str(Path(bastion.__file__).resolve().parents[1])
    os.environ["PYTHONPATH"] = os.pathsep.join(
        p for p in (source, os.environ.get("PYTHONPATH", "")) if p
    )
    work = Path(tempfile.mkdtemp(prefix="bastion-bench-validation-"))
    fleet = rp.Fleet(work)
    script = work / "post.lua"
    script.write_text(WRK_SCRIPT.format(path=f"{PATH}?{QUERY}", body=BODY.decode()))
    try:
        up_port = rp.free_port()
        up = work / "upstream"
        up.mkdir()
        (up / "nginx.conf").write_text(rp.upstream_conf(up, up_port))
        upstream = fleet.start(
            "upstream", ["nginx", "-p", str(up), "-c", str(up / "nginx.conf")], rp.LOAD_CORE
        )
        rp.wait_ready(upstream, up_port, 20)
        executable = str(Path(sys.executable).parent / "bastion")
        slots: dict[str, tuple[Any, int]] = {}
        validating = {"openapi": str(spec_path), "validation": {"enabled": True}}
        for name, extra in (("plain", {}), ("validating", validating)):
            port = rp.free_port()
            cfg = work / f"{name}.json"
            cfg.write_text(
                json.dumps(
                    {
                        "events": {"sink": "none"},
                        "admin": {"enabled": False},
                        "state_dir": str(work / f"{name}-state"),
                        **({} if defaults else ONLY_ROUTER),
                        **extra,
                    }
                )
            )
            argv = [
                executable,
                "serve",
                "--upstream",
                f"http://{rp.HOST}:{up_port}",
                "--listen",
                f"{rp.HOST}:{port}",
                "--config",
                str(cfg),
            ]
            slots[name] = (fleet.start(name, argv, rp.PROXY_CORE), port)
        for proc, port in slots.values():
            rp.wait_ready(proc, port, 20)
        ratios = []
        for index in range(rounds):
            names = ["plain", "validating"] if index % 2 == 0 else ["validating", "plain"]
            rps = {}
            for name in names:
                proc, port = slots[name]
                argv = [
                    "taskset",
                    "-c",
                    rp.LOAD_CORE,
                    "wrk",
                    "-t1",
                    "-c32",
                    f"-d{duration:g}s",
                    "--timeout",
                    "5s",
                    "--latency",
                    "-s",
                    str(script),
                    f"http://{rp.HOST}:{port}/",
                ]
                done = subprocess.run(
                    argv, capture_output=True, text=True, timeout=duration + 30, check=True
                )
                result = rp.parse_wrk(done.stdout)
                if result.non_2xx:
                    raise RuntimeError(f"{name}: {result.non_2xx} non-2xx answers")
                rps[name] = result.rps
            ratios.append(rps["validating"] / rps["plain"])
            print(
                f"   round {index + 1}: plain {rps['plain']:.0f} req/s, validating"
                f" {rps['validating']:.0f} req/s: {ratios[-1]:.2f}x"
            )
        ratio = statistics.median(ratios)
        baseline = "default guards in both" if defaults else "the router alone in both"
        print(
            f"3. end to end (wrk, nginx upstream; {baseline}): throughput {ratio:.2f}x"
            f" (target >= 0.8x: {'met' if ratio >= 0.8 else 'NOT met'})"
        )
        return ratio
    finally:
        fleet.stop_all()
        shutil.rmtree(work, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("-n", type=int, default=20_000, help="requests per timed run")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--wrk", action="store_true", help="also run part 3 (nginx, wrk)")
    parser.add_argument("--duration", type=float, default=4, help="seconds per wrk run")
    parser.add_argument("--wrk-rounds", type=int, default=3, help="interleaved wrk rounds")
    parser.add_argument(
        "--defaults", action="store_true", help="part 3 with the default guards on in both"
    )
    parser.add_argument(
        "--engine-only",
        choices=("base", "reader", "with"),
        help="only run -n requests through one engine of part 2, untimed (for callgrind:"
        " the difference of two -n values is the instructions of that many requests)",
    )
    args = parser.parse_args()
    loop = uvloop.new_event_loop()
    asyncio.set_event_loop(loop)
    directory = Path(tempfile.mkdtemp(prefix="bastion-bench-spec-"))
    try:
        spec_path = write_spec(directory)
        if args.engine_only:
            chain, config = _chains(spec_path)[args.engine_only]
            _engine_run(chain, config, args.n)
            return
        print(
            f"request: POST {PATH}?{QUERY}, {len(BODY)} byte JSON body; noisy numbers on a"
            " shared machine\n"
        )
        validators(spec_path, args.n)
        print()
        gateway(spec_path, args.n, args.rounds)
        if args.wrk:
            print()
            end_to_end(spec_path, args.duration, args.wrk_rounds, args.defaults)
    finally:
        shutil.rmtree(directory, ignore_errors=True)


if __name__ == "__main__":
    main()
