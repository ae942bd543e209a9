"""The ``bastion`` entry point. Exit codes: 0 ok, 1 findings or failure, 2 usage or config error."""

from __future__ import annotations

import click

from bastion.cli.admin import admin
from bastion.cli.audit import audit
from bastion.cli.check import check_config
from bastion.cli.db import db
from bastion.cli.demo import demo
from bastion.cli.events import events
from bastion.cli.jwks import jwks
from bastion.cli.keys import keys
from bastion.cli.serve import serve
from bastion.cli.tls import fields, tls
from bastion.cli.token import token
from bastion.version import __version__


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
def cli() -> None:
    """bastion: a production security baseline for any HTTP API."""


@cli.command()
def version() -> None:
    """Print the installed version."""
    click.echo(f"bastion {__version__}")


cli.add_command(serve)
cli.add_command(check_config)
cli.add_command(demo)
cli.add_command(keys)
cli.add_command(tls)
cli.add_command(fields)
cli.add_command(jwks)
cli.add_command(token)
cli.add_command(db)
cli.add_command(events)
cli.add_command(audit)
cli.add_command(admin)


def main() -> None:
    cli(prog_name="bastion")
