"""The admin API as the CLI's backend: ``--remote URL --admin-token-file FILE``.

The token is read from a file (never from the command line, where ``ps`` and shell history
would show it) and sent as ``Authorization: Bearer``. A problem answer becomes one line on
stderr with its stable code and exit 1 (2 for a refused input).
"""

from __future__ import annotations

import stat
import sys
from pathlib import Path
from typing import Any, NoReturn

import click
import httpx

from bastion.cli.common import EXIT_FAILURE, EXIT_USAGE

TIMEOUT = 30.0


def _exit(message: str, code: int = EXIT_FAILURE) -> NoReturn:
    click.echo(f"bastion: {message}", err=True)
    sys.exit(code)


def read_token(path: Path | None) -> str:
    if path is None:
        _exit("--remote needs --admin-token-file FILE (a file holding an admin token)", EXIT_USAGE)
    try:
        info = path.stat()
        token = path.read_text(encoding="utf-8").strip()
    except OSError as exc:
        _exit(f"--admin-token-file: {str(path)!r} cannot be read ({exc.strerror})", EXIT_USAGE)
    if info.st_mode & (stat.S_IRWXG | stat.S_IRWXO):
        click.echo(f"bastion: warning: {path} is readable by others; expected mode 600", err=True)
    if not token:
        _exit(f"--admin-token-file: {str(path)!r} is empty; expected an admin token", EXIT_USAGE)
    return token


def call(
    remote: str,
    token_file: Path | None,
    method: str,
    path: str,
    body: dict[str, Any] | None = None,
    params: dict[str, str] | None = None,
) -> Any:
    """The JSON answer of ``method path`` on the admin listener at ``remote``."""
    token = read_token(token_file)
    url = remote.rstrip("/") + path
    try:
        response = httpx.request(
            method,
            url,
            json=body,
            params=params,
            headers={"authorization": f"Bearer {token}"},
            timeout=TIMEOUT,
        )
    except httpx.HTTPError as exc:
        _exit(f"--remote: cannot reach {remote} ({type(exc).__name__})")
    try:
        doc = response.json()
    except ValueError:
        doc = None
    if response.status_code >= 400:
        if isinstance(doc, dict) and "code" in doc:
            detail = doc.get("detail") or doc.get("title")
            problems = doc.get("problems") or [
                f"{e.get('pointer')}: {e.get('message')}" for e in doc.get("errors", [])
            ]
            text = f"{detail} ({doc['code']})" + "".join(f"\n  - {p}" for p in problems)
            _exit(text, EXIT_USAGE if response.status_code in (400, 422) else EXIT_FAILURE)
        _exit(f"--remote: {remote} answered {response.status_code}")
    return doc
