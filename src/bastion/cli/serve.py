"""``bastion serve``: the gateway in front of any HTTP API."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import click

from bastion.cli.common import fail_config, load_or_exit, prepare_state_dir, run_gateway
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
def serve(
    upstream: str | None,
    listen: str | None,
    openapi: Path | None,
    config_path: Path | None,
    admin_listen: str | None,
    workers: int | None,
    state_dir: Path | None,
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
    config = load_or_exit(config_path, overrides)
    if admin_listen is not None:
        admin = config.admin.model_dump() | {"listen": admin_listen}
        config = load_or_exit(config_path, overrides | {"admin": admin})
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

    sys.exit(run_gateway(config))
