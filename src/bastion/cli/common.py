"""What every command shares: exit codes and how a config error reaches the operator."""

from __future__ import annotations

import re
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any, NoReturn

import click

from bastion.config.loader import load_config
from bastion.config.models import BastionConfig
from bastion.control.reload import ConfigSource
from bastion.errors import ConfigError

EXIT_OK = 0
EXIT_FAILURE = 1
EXIT_USAGE = 2


def fail_config(error: ConfigError) -> NoReturn:
    click.echo(f"bastion: {error}", err=True)
    sys.exit(EXIT_USAGE)


def load_or_exit(path: Path | None, overrides: Mapping[str, Any] | None = None) -> BastionConfig:
    try:
        return load_config(path, overrides)
    except ConfigError as exc:
        fail_config(exc)


def prepare_state_dir(config: BastionConfig) -> None:
    """Create the state directory (owner-only: it will hold keys) or explain why it cannot be."""
    try:
        config.state_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    except OSError as exc:
        fail_config(
            ConfigError(
                f"state_dir: {str(config.state_dir)!r} cannot be created ({exc.strerror});"
                " expected a writable directory"
            )
        )


def run_gateway(config: BastionConfig, source: ConfigSource | None = None) -> int:
    """Run the engine until it stops; a listener that cannot be opened is one readable line.
    ``source`` (the file and the flags that made ``config``) is what a reload re-reads."""
    from bastion.engine.runtime import run

    try:
        return run(config, source)
    except OSError as exc:
        reason = re.sub(r"^\[Errno \d+\] ", "", str(exc))
        click.echo(
            f"bastion: cannot listen ({reason}); expected listen {config.listen} and"
            f" admin.listen {config.admin.listen} to be free addresses of this machine",
            err=True,
        )
        return EXIT_FAILURE
