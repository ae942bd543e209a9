"""``bastion admin``: admin tokens, config reload through a gateway's admin API, and a check of
the audit log's hash chain.

``token create`` prints a new token once, with the ``admin.tokens`` entry (its hash, never the
token) to paste into the config; reload the gateway to take it in. ``reload`` asks a running
gateway to re-read its config file (the same as SIGHUP) and prints what changed.
Exit codes: 0 done, 1 failure, 2 usage error or a config the gateway refused.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import click
import orjson

from bastion.admin.tokens import generate, token_hash
from bastion.cli.common import EXIT_FAILURE, fail_config, load_or_exit
from bastion.cli.remote import call
from bastion.config.admin import AdminTokenConfig
from bastion.control.audit import audit_path, verify
from bastion.errors import ConfigError


@click.group()
def admin() -> None:
    """Admin tokens and remote config reload (see docs/admin.md)."""


@admin.group()
def token() -> None:
    """Admin tokens: made here, configured by their hash in admin.tokens."""


@token.command("create")
@click.option("--name", required=True, help="The name the audit log shows for this token.")
@click.option(
    "--role",
    type=click.Choice(["read-only", "operator", "admin"]),
    default="read-only",
    show_default=True,
    help="What the token may do.",
)
@click.option(
    "--output",
    type=click.Path(path_type=Path),
    help="Write the token to this file (mode 600) instead of printing it.",
)
def create_token(name: str, role: str, output: Path | None) -> None:
    """Make an admin token; print it once, and the config entry that admits it."""
    secret = generate()
    try:
        entry = AdminTokenConfig(name=name, role=role, token_hash=token_hash(secret))
    except ValueError as exc:
        fail_config(ConfigError(f"--name: got {name!r}; {exc}"))
    if output is not None:
        try:  # owner-only from the start, and never over an existing file
            fd = os.open(output, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except OSError as exc:
            fail_config(
                ConfigError(f"--output: {str(output)!r} cannot be created ({exc.strerror})")
            )
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(secret + "\n")
        click.echo(f"Admin token {name} ({role}) written to {output}.")
    else:
        click.echo(f"Admin token {name} ({role}); shown only now, store it safely:\n")
        click.echo(f"  {secret}\n")
    click.echo("Add this entry under admin.tokens in the config, then reload:\n")
    click.echo(
        f"  - name: {entry.name}\n    role: {entry.role}\n    token_hash: {entry.token_hash}"
    )


@admin.command("audit-verify")
@click.option(
    "--config", "config_path", type=click.Path(path_type=Path), help="YAML configuration."
)
@click.option("--file", "log_file", type=click.Path(path_type=Path), help="The audit log.")
def audit_verify(config_path: Path | None, log_file: Path | None) -> None:
    """Check that no audit log entry was removed, changed or inserted (the hash chain)."""
    path = log_file or audit_path(load_or_exit(config_path))
    try:
        count, broken = verify(path)
    except OSError as exc:
        click.echo(f"bastion: {path}: cannot be read ({exc.strerror})", err=True)
        sys.exit(EXIT_FAILURE)
    if broken is not None:
        click.echo(
            f"bastion: {path}: line {broken} does not follow line {broken - 1}: the log was"
            f" changed after it was written ({count} entries before it verify)",
            err=True,
        )
        sys.exit(EXIT_FAILURE)
    click.echo(f"{path}: {count} entries, the chain is intact")


@admin.command()
@click.option("--remote", required=True, metavar="URL", help="The gateway's admin listener.")
@click.option(
    "--admin-token-file",
    required=True,
    type=click.Path(path_type=Path),
    help="File holding an admin token (operator or admin).",
)
@click.option("--json", "as_json", is_flag=True, help="Print JSON for scripts.")
def reload(remote: str, admin_token_file: Path, as_json: bool) -> None:
    """Make the gateway re-read and apply its config file (refused if invalid)."""
    doc = call(remote, admin_token_file, "POST", "/admin/config/reload")
    if as_json:
        click.echo(orjson.dumps(doc, option=orjson.OPT_INDENT_2).decode())
        return
    changes = doc.get("changes", [])
    click.echo(f"Config applied (generation {doc['generation']}): {len(changes)} change(s).")
    for change in changes:
        old, new = change.get("old", "-"), change.get("new", "-")
        click.echo(f"  {change['change']:8} {change['path']}: {old} -> {new}")
