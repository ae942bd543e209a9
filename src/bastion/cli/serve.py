"""``bastion serve``: the gateway in front of any HTTP API."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import click

from bastion.cli.common import fail_config, load_or_exit, prepare_state_dir, run_gateway
from bastion.config.loader import read_yaml
from bastion.config.models import BastionConfig
from bastion.control.reload import ConfigSource
from bastion.errors import ConfigError
from bastion.validation.document import load_document


@click.command()
@click.option("--upstream", metavar="URL", help="Forward every request to this API.")
@click.option("--listen", metavar="HOST:PORT", help="Public address (default 127.0.0.1:8080).")
@click.option("--openapi", type=click.Path(path_type=Path), help="The API's OpenAPI document.")
@click.option(
    "--config", "config_path", type=click.Path(path_type=Path), help="YAML configuration file."
)
@click.option("--admin-listen", metavar="HOST:PORT", help="Admin address (default 127.0.0.1:9901).")
@click.option("--workers", type=click.IntRange(1, 256), help="Worker processes (SO_REUSEPORT).")
@click.option("--state-dir", type=click.Path(path_type=Path), help="Where keys and state live.")
@click.option(
    "--tls",
    "tls_on",
    is_flag=True,
    help="Serve HTTPS; without --tls-cert, with the development certificate (local CA).",
)
@click.option(
    "--tls-cert",
    type=click.Path(path_type=Path),
    multiple=True,
    help="PEM certificate chain (repeat with --tls-key for several names by SNI).",
)
@click.option("--tls-key", type=click.Path(path_type=Path), multiple=True, help="PEM private key.")
def serve(
    upstream: str | None,
    listen: str | None,
    openapi: Path | None,
    config_path: Path | None,
    admin_listen: str | None,
    workers: int | None,
    state_dir: Path | None,
    tls_on: bool,
    tls_cert: tuple[Path, ...],
    tls_key: tuple[Path, ...],
) -> None:
    """Run the gateway. Flags override the config file; no file is needed with --upstream."""
    overrides: dict[str, Any] = {
        "listen": listen,
        "workers": workers,
        "state_dir": state_dir,
        "openapi": openapi,
    }
    if upstream is not None:
        overrides["routes"] = [{"name": "default", "upstream": upstream}]
    if tls_on or tls_cert or tls_key:
        overrides["tls"] = tls_section(config_path, tls_cert, tls_key)
    config = load_or_exit(config_path, overrides)
    if admin_listen is not None:
        admin = config.admin.model_dump() | {"listen": admin_listen}
        overrides = overrides | {"admin": admin}
        config = load_or_exit(config_path, overrides)
    if not config.routes:
        fail_config(
            ConfigError("routes: none configured; expected --upstream URL or routes in --config")
        )
    if config.openapi is not None:
        try:
            load_document(config.openapi)
        except ConfigError as exc:
            fail_config(exc)
    prepare_state_dir(config)
    from bastion.observability.detect.assembly import check_monitoring
    from bastion.tls.upstream import check_upstream_tls

    try:
        check_upstream_tls(config)
        check_monitoring(config)
    except ConfigError as exc:
        fail_config(exc)
    if config.tls.enabled:
        config = prepare_tls(config)

    sys.exit(run_gateway(config, ConfigSource(config_path, overrides)))


def tls_section(
    path: Path | None, certs: tuple[Path, ...], keys: tuple[Path, ...]
) -> dict[str, Any]:
    """The file's ``tls`` section with TLS on and the command line's certificates (which
    replace the file's), validated with the rest of the file."""
    if len(certs) != len(keys):
        fail_config(ConfigError("--tls-cert and --tls-key: expected one key per certificate"))
    section: dict[str, Any] = {}
    if path is not None:
        try:
            found = read_yaml(path).get("tls")
        except ConfigError as exc:
            fail_config(exc)
        if isinstance(found, dict):
            section = dict(found)
    section["enabled"] = True
    if certs:
        section["certificates"] = [
            {"cert": str(cert), "key": str(key)} for cert, key in zip(certs, keys, strict=True)
        ]
    return section


def prepare_tls(config: BastionConfig) -> BastionConfig:
    """Load the certificates once before serving, so that a bad file is one readable line and
    exit 2, and the development certificate exists before any worker starts (its trust
    instructions are printed at every start, since a new user reads them there)."""
    from bastion.tls.devca import trust_instructions
    from bastion.tls.server import ServerTLS

    tls = ServerTLS(config.tls, config.state_dir)
    try:
        tls.load()
    except ConfigError as exc:
        fail_config(exc)
    if tls.dev is None:
        return config
    click.echo(f"bastion: HTTPS with the development certificate {tls.dev.cert}", err=True)
    click.echo(
        "\n".join(
            f"bastion: {line}"
            for line in trust_instructions(tls.dev, created=tls.dev_created).splitlines()
        ),
        err=True,
    )
    return config
