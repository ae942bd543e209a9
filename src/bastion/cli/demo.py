"""``bastion demo``: the bundled demo API behind the gateway, on embedded defaults.

The gateway serves HTTPS with the development certificate of a local CA it creates in the state
directory (``--no-tls``: plain HTTP), and a plain-HTTP listener beside it that redirects to HTTPS
and refuses credentials sent in clear.

At start the demo creates an API key for the consumer ``demo-client`` (scope ``orders:read``,
valid 30 days) in its state directory, revoking the one a previous run made, and prints it: the
tour's authentication steps use it, and so can whoever tries the printed commands. Tokens are
signed with keys kept in the same state directory.
"""

from __future__ import annotations

import asyncio
import os
import signal
import ssl
import sys
import threading
import time
import urllib.request
from pathlib import Path

import click

from bastion.auth.keys.manager import IssuedKey, KeyManager
from bastion.cli.common import (
    EXIT_FAILURE,
    EXIT_OK,
    fail_config,
    load_or_exit,
    prepare_state_dir,
    run_gateway,
)
from bastion.config.models import BastionConfig
from bastion.config.types import HostPort, parse_host_port
from bastion.demo.api import DEMO_VALIDATION, DemoAPI, openapi_path
from bastion.demo.tour import DEMO_CONSUMER, Step, steps, use_tls
from bastion.errors import ConfigError, StateError
from bastion.observability.events import NullSink
from bastion.pipeline.chain import GuardChain
from bastion.pipeline.routing import Router

PUBLIC = {"require": "public"}
USER_RULE = {"in": "path", "template": "/users/{user_id}", "name": "user_id", "claim": "sub"}


class DemoUpstream:
    """The demo API served by bastion's engine on its own thread and event loop."""

    def __init__(self, config: BastionConfig, listen: HostPort) -> None:
        self._config = config
        self._listen = listen
        self._ready = threading.Event()
        self._error: BaseException | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._thread = threading.Thread(target=self._main, name="bastion-demo-api", daemon=True)

    def start(self) -> None:
        self._thread.start()
        self._ready.wait(10)
        if self._error is not None:
            raise self._error

    def _main(self) -> None:
        try:
            asyncio.run(self._serve())
        except BaseException as exc:
            self._error = exc
            self._ready.set()

    async def _serve(self) -> None:
        from bastion.engine.server import GatewayServer

        self._loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        chain = GuardChain([Router(DemoAPI().routes())], NullSink())
        server = GatewayServer(config=self._config, chain=chain, listen=self._listen)
        await server.start()
        self._ready.set()
        await self._stop.wait()
        await server.shutdown(1.0)

    def stop(self) -> None:
        if self._loop is not None and self._stop is not None:
            self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(5)


DEMO_KEY_NAME = "bastion demo"
DEMO_SCOPES = ("orders:read",)
DEMO_KEY_LIFETIME = 30 * 86400.0


def demo_key(config: BastionConfig) -> IssuedKey:
    """A fresh key for this run; the key a previous run made is revoked (it was printed)."""
    try:
        manager = KeyManager(config)
    except (ConfigError, StateError) as exc:
        fail_config(ConfigError(f"state_dir: the demo's API key cannot be created ({exc})"))
    try:
        for record in manager.list(DEMO_CONSUMER):
            if record.name == DEMO_KEY_NAME and record.revoked_at is None:
                manager.revoke(record.id)
        return manager.create(
            DEMO_CONSUMER, scopes=DEMO_SCOPES, name=DEMO_KEY_NAME, expires_in=DEMO_KEY_LIFETIME
        )
    except StateError as exc:
        fail_config(ConfigError(f"state_dir: the demo's API key cannot be created ({exc})"))
    finally:
        manager.close()


def _dev_ca(config: BastionConfig) -> Path:
    """The development CA the gateway's certificate is issued by (created on first use)."""
    from bastion.tls.server import ServerTLS

    tls = ServerTLS(config.tls, config.state_dir)
    try:
        tls.load()
    except ConfigError as exc:
        fail_config(exc)
    if tls.dev is None:  # pragma: no cover - the demo configures no certificate of its own
        fail_config(ConfigError("tls: the demo expected the development certificate"))
    return tls.dev.ca_cert


def _wait_ready(admin: HostPort, seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            url = f"http://{admin}/readyz"
            with urllib.request.urlopen(url, timeout=1) as response:
                if response.status == 200:
                    return True
        except OSError:
            pass
        time.sleep(0.05)
    return False


def _run_tour(
    config: BastionConfig, tour: list[Step], results: list[bool], ca: Path | None
) -> None:
    """Send every step of the tour, print its outcome, then stop the gateway."""
    use_tls(ssl.create_default_context(cafile=str(ca)) if ca is not None else None)
    try:
        if not _wait_ready(config.admin.listen, 15):
            click.echo("demo: the gateway did not become ready", err=True)
            results.append(False)
            return
        host, port = config.listen.host, config.listen.port
        for step in tour:
            try:
                outcome = step.send(host, port)
                ok = step.expect(outcome)
                got = str(outcome.status)
            except OSError as exc:
                ok, got = False, f"error: {exc}"
            results.append(ok)
            click.echo(f"  [{'ok' if ok else 'FAILED'}] {step.title}: {got} ({step.shows})")
    finally:
        os.kill(os.getpid(), signal.SIGTERM)


@click.command()
@click.option("--listen", default="127.0.0.1:8443", show_default=True, help="Gateway (HTTPS).")
@click.option(
    "--http-listen",
    default="127.0.0.1:8080",
    show_default=True,
    help="Plain-HTTP listener beside HTTPS (redirects; refuses credentials).",
)
@click.option("--no-tls", is_flag=True, help="Serve plain HTTP on --http-listen only.")
@click.option("--api-listen", default="127.0.0.1:8081", show_default=True, help="Demo API address.")
@click.option("--admin-listen", default="127.0.0.1:9901", show_default=True, help="Admin address.")
@click.option("--state-dir", type=click.Path(path_type=Path), help="Where state lives.")
@click.option("--check", is_flag=True, help="Send the tour's requests, report, and exit.")
def demo(
    listen: str,
    http_listen: str,
    no_tls: bool,
    api_listen: str,
    admin_listen: str,
    state_dir: Path | None,
    check: bool,
) -> None:
    """Start the demo API behind the gateway and show what bastion does to its traffic."""
    try:
        api_address = parse_host_port(api_listen)
    except ValueError as exc:
        fail_config(ConfigError(f"--api-listen: got {api_listen!r}; {exc}"))
    tls: dict[str, object] = (
        {"enabled": True, "plain_http": {"listen": http_listen, "policy": "redirect"}}
        if not no_tls
        else {}
    )
    scheme = "http" if no_tls else "https"
    config = load_or_exit(
        None,
        {
            "listen": http_listen if no_tls else listen,
            "state_dir": state_dir,
            "tls": tls,
            "admin": {"listen": admin_listen},
            "routes": [
                {"name": "demo", "upstream": f"http://{api_address}", "auth": PUBLIC},
                {
                    "name": "limited",
                    "upstream": f"http://{api_address}/hello",
                    "path_prefix": "/limited",
                    "strip_prefix": True,
                    "auth": PUBLIC,
                },
                {
                    "name": "orders",
                    "upstream": f"http://{api_address}",
                    "path_prefix": "/orders",
                    "auth": {"scopes": ["orders:read"]},
                },
                {
                    "name": "admin",
                    "upstream": f"http://{api_address}",
                    "path_prefix": "/admin",
                    "auth": {"scopes": ["admin"]},
                },
                {
                    "name": "users",
                    "upstream": f"http://{api_address}",
                    "path_prefix": "/users",
                    "auth": {"objects": [USER_RULE], "bypass_scopes": ["admin"]},
                },
            ],
            "auth": {
                "tokens": {"signing": {"issuer": f"{scheme}://{listen}", "audiences": ["demo-api"]}}
            },
            "rate_limit": {
                "policies": [{"name": "demo", "rate": "5/minute", "routes": ["limited"]}]
            },
            "openapi": openapi_path(),
            "validation": DEMO_VALIDATION,
            # Detectors on; alerts delivered to the demo API's inbox (GET /alerts lists them).
            "monitoring": {
                "enabled": True,
                "alerts": {"sinks": [{"type": "webhook", "url": f"http://{api_address}/alerts"}]},
            },
            "injection": {"mode": "block"},
        },
    )
    if api_address in (config.listen, config.admin.listen, config.tls.plain_http.listen):
        fail_config(
            ConfigError("--api-listen: expected a port other than the gateway's or admin's")
        )
    prepare_state_dir(config)
    ca = None if no_tls else _dev_ca(config)
    key = demo_key(config)
    upstream = DemoUpstream(config, api_address)
    try:
        upstream.start()
    except OSError as exc:
        fail_config(ConfigError(f"--api-listen: {api_address} cannot be bound ({exc.strerror})"))

    base = f"{scheme}://{config.listen}"
    plain = None if no_tls else f"http://{config.tls.plain_http.listen}"
    tour = steps(base, key.secret, plain)
    results: list[bool] = []
    record = key.record
    key_text = (
        f"API key {record.id} for consumer {record.consumer} (scope {' '.join(DEMO_SCOPES)},"
        f" valid 30 days), created in {config.state_dir}"
    )
    if check:
        click.echo(f"bastion demo: checking the gateway at {base}")
        click.echo(f"  {key_text}")
        threading.Thread(target=_run_tour, args=(config, tour, results, ca), daemon=True).start()
    else:
        click.echo(f"bastion demo: the demo API ({api_address}) is behind the gateway at {base}")
        click.echo(f"  admin: http://{config.admin.listen}/healthz  /readyz  /metrics")
        if plain is not None:
            click.echo(f"  plain HTTP on {plain} redirects to HTTPS and refuses credentials")
        click.echo(f"  alerts: delivered to the demo API's webhook, listed at {base}/alerts")
        click.echo(f"  {key_text}:\n")
        click.echo(f"  export BASTION_API_KEY={key.secret}")
        if ca is not None:
            click.echo(f"  export CURL_CA_BUNDLE={ca}   # curl trusts the demo's local CA")
        click.echo("")
        click.echo("Try:")
        for step in tour:
            click.echo(f"  # {step.title}: expect {step.shows}\n  {step.curl}\n")
        click.echo("Ctrl-C stops the demo.")

    code = run_gateway(config)
    upstream.stop()
    if check:
        passed = sum(results)
        click.echo(f"{passed} of {len(tour)} tour steps behaved as expected")
        sys.exit(
            EXIT_OK if results and all(results) and len(results) == len(tour) else EXIT_FAILURE
        )
    sys.exit(code)
