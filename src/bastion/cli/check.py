"""``bastion check-config``: the loader the gateway uses, without starting anything."""

from __future__ import annotations

from pathlib import Path

import click

from bastion.cli.common import fail_config, load_or_exit
from bastion.errors import ConfigError
from bastion.validation.compiler import compile_api
from bastion.validation.document import load_api, load_document


@click.command("check-config")
@click.argument("path", type=click.Path(path_type=Path))
def check_config(path: Path) -> None:
    """Validate PATH; exit 0 when valid, 2 with every problem listed when not."""
    config = load_or_exit(path)
    if config.openapi is not None:
        try:
            load_document(config.openapi)
            if config.validation.enabled:  # the whole check and compilation serve would do
                compile_api(load_api(config.openapi), strict=config.validation.strict)
        except ConfigError as exc:
            fail_config(exc)
    from bastion.observability.detect.assembly import check_monitoring

    try:
        check_monitoring(config)
    except ConfigError as exc:
        fail_config(exc)
    routes = ", ".join(f"{r.name} -> {r.upstream}" for r in config.routes) or "none"
    click.echo(f"{path}: valid (listen {config.listen}, routes: {routes})")
