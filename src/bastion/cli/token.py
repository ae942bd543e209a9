"""``bastion token``: fetch an access token from a gateway's ``/oauth/token``, for scripts.

::

    export BASTION_API_KEY=bst_...
    TOKEN=$(bastion token --url https://api.example.com --scope orders:read)

The API key comes from ``$BASTION_API_KEY`` or from ``--key-file`` (readable by its owner only),
never from an argument: the command lines of running processes are visible to every user of the
machine. The key travels in HTTP Basic (``client_id`` = its id), over HTTPS, or over plain HTTP
to a loopback address only; redirects are not followed (the key would go along). The token is
printed on stdout, alone (or the whole answer with ``--json``); errors go to stderr.
Exit codes: 0 a token was printed, 1 the gateway refused or could not be reached, 2 usage error.
"""

from __future__ import annotations

import ipaddress
import os
import ssl
import stat
import sys
from pathlib import Path
from typing import NoReturn
from urllib.parse import urlsplit

import click
import httpx
import orjson

from bastion.auth.keys.format import key_id_of
from bastion.cli.common import EXIT_FAILURE, EXIT_USAGE

KEY_ENV = "BASTION_API_KEY"
TOKEN_PATH = "/oauth/token"  # noqa: S105 (a path, not a secret)


def _usage(message: str) -> NoReturn:
    click.echo(f"bastion: {message}", err=True)
    sys.exit(EXIT_USAGE)


def _failure(message: str) -> NoReturn:
    click.echo(f"bastion: {message}", err=True)
    sys.exit(EXIT_FAILURE)


def read_key(key_file: Path | None) -> str:
    """The API key from ``key_file`` (owner-only) or ``$BASTION_API_KEY``; exits on failure."""
    if key_file is not None:
        try:
            fd = os.open(key_file, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
        except OSError as exc:
            _usage(f"--key-file: {key_file} cannot be read ({exc.strerror})")
        try:
            mode = os.fstat(fd).st_mode
            if mode & (stat.S_IRWXG | stat.S_IRWXO):
                _usage(
                    f"--key-file: {key_file} has mode {stat.S_IMODE(mode):o}; expected 600"
                    " (readable by its owner only)"
                )
            with os.fdopen(fd, "rb", closefd=False) as handle:
                key = handle.read(4096).decode("ascii", "replace").strip()
        finally:
            os.close(fd)
    else:
        key = os.environ.get(KEY_ENV, "").strip()
        if not key:
            _usage(f"no API key: set ${KEY_ENV} or pass --key-file (never the key itself)")
    if key_id_of(key) is None:
        _usage("the API key is not a bastion key (bst_...) or its checksum is wrong")
    return key


def _loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def endpoint_url(url: str) -> str:
    """``url``'s token endpoint; HTTPS, or HTTP to a loopback address."""
    parts = urlsplit(url)
    if parts.scheme not in ("https", "http") or not parts.hostname:
        _usage(f"--url: got {url!r}; expected the gateway's URL, such as https://api.example.com")
    if parts.username is not None or parts.password is not None or parts.query:
        _usage("--url: expected a URL without user:password or query")
    if parts.scheme == "http" and not _loopback(parts.hostname):
        _usage("--url: an API key is sent over https only (plain http only to a loopback address)")
    base = url.rstrip("/")
    return base if base.endswith(TOKEN_PATH) else base + TOKEN_PATH


@click.command()
@click.option(
    "--url",
    envvar="BASTION_URL",
    required=True,
    help="The gateway's base URL (or $BASTION_URL).",
)
@click.option("--scope", "scopes", multiple=True, help="A scope to ask for (repeatable).")
@click.option("--resource", help="The audience to ask for (RFC 8707), one of the gateway's.")
@click.option(
    "--key-file",
    type=click.Path(path_type=Path),
    help=f"A file holding the API key (mode 600); default ${KEY_ENV}.",
)
@click.option(
    "--cacert",
    type=click.Path(path_type=Path, exists=True, dir_okay=False),
    help="PEM CA file to verify the gateway with (e.g. the development CA); default the system's.",
)
@click.option("--json", "as_json", is_flag=True, help="Print the whole answer as JSON.")
@click.option("--timeout", type=float, default=10.0, show_default=True, help="Seconds.")
def token(
    url: str,
    scopes: tuple[str, ...],
    resource: str | None,
    key_file: Path | None,
    cacert: Path | None,
    as_json: bool,
    timeout: float,
) -> None:
    """Fetch an access token for the API key in $BASTION_API_KEY and print it."""
    target = endpoint_url(url)
    key = read_key(key_file)
    key_id = key_id_of(key)
    assert key_id is not None
    form = {"grant_type": "client_credentials"}
    if scopes:
        form["scope"] = " ".join(scopes)
    if resource:
        form["resource"] = resource
    try:
        verify: ssl.SSLContext | bool = (
            ssl.create_default_context(cafile=str(cacert)) if cacert is not None else True
        )
        with httpx.Client(timeout=timeout, follow_redirects=False, verify=verify) as client:
            response = client.post(target, data=form, auth=(key_id, key))
    except httpx.HTTPError as exc:
        _failure(f"cannot reach {target} ({type(exc).__name__})")
    try:
        doc = orjson.loads(response.content)
    except orjson.JSONDecodeError:
        doc = None
    if response.status_code != 200 or not isinstance(doc, dict) or "access_token" not in doc:
        if isinstance(doc, dict) and isinstance(doc.get("error"), str):
            described = doc.get("error_description") or doc.get("detail") or ""
            _failure(f"{doc['error']}: {described} (HTTP {response.status_code})")
        if isinstance(doc, dict) and isinstance(doc.get("code"), str):
            _failure(f"{doc['code']}: {doc.get('detail', '')} (HTTP {response.status_code})")
        _failure(f"the gateway answered HTTP {response.status_code} without a token")
    if as_json:
        click.echo(orjson.dumps(doc).decode())
    else:
        click.echo(doc["access_token"])
