"""``bastion tls``: pins for mobile apps, inspecting what an endpoint serves, the development CA;
``bastion fields``: the field encryption key ring, and encrypting or decrypting one value.

Exit codes: 0 done, 1 the endpoint could not be inspected, 2 usage or config error.
"""

from __future__ import annotations

import datetime as dt
import sys
from pathlib import Path
from typing import Any

import click
import orjson

from bastion.cli.common import EXIT_FAILURE, fail_config, load_or_exit, prepare_state_dir
from bastion.errors import ConfigError


@click.group()
def tls() -> None:
    """TLS certificates: pins, inspection, the development CA."""


@tls.command()
@click.option(
    "--config", "config_path", type=click.Path(path_type=Path), help="YAML configuration file."
)
@click.option(
    "--cert",
    "certs",
    type=click.Path(path_type=Path),
    multiple=True,
    help="PEM certificate chain to pin (default: tls.certificates, or the dev certificate).",
)
@click.option("--domain", "domains", multiple=True, help="Domain the snippets pin (repeatable).")
@click.option("--state-dir", type=click.Path(path_type=Path), help="Where the backup key lives.")
@click.option(
    "--format",
    "output",
    type=click.Choice(["text", "android", "ios", "json"]),
    default="text",
    help="text (pins and both snippets), one snippet alone, or JSON.",
)
def pins(
    config_path: Path | None,
    certs: tuple[Path, ...],
    domains: tuple[str, ...],
    state_dir: Path | None,
    output: str,
) -> None:
    """SPKI SHA-256 pins of the serving certificate and of a backup key (made on first use,
    kept in state_dir/tls/backup-key.pem: move it offline), with Android and iOS snippets."""
    from bastion.tls.devca import dev_paths
    from bastion.tls.pins import android_config, backup_pin, chain_pins, trustkit_config

    config = load_or_exit(config_path, {"state_dir": state_dir})
    files = list(certs) or [c.cert for c in config.tls.certificates]
    if not files:
        dev = dev_paths(config.state_dir)
        if not dev.cert.exists():
            fail_config(
                ConfigError(
                    "no certificate to pin: expected --cert FILE, tls.certificates in --config,"
                    " or a development certificate (bastion serve --tls makes one)"
                )
            )
        files = [dev.cert]
    try:
        found = [chain_pins(path) for path in files]
    except ConfigError as exc:
        fail_config(exc)
    prepare_state_dir(config)
    backup, created = backup_pin(config.state_dir / "tls")
    leaves = [chain[0] for chain in found]
    names = list(domains)
    if not names:
        from bastion.tls.certs import leaf_facts

        for path in files:
            names.extend(n for n in leaf_facts(path).dns_names if n not in names)
    names = [n.removeprefix("*.") for n in names] or ["localhost"]
    pinned = [*dict.fromkeys(leaf.pin for leaf in leaves), backup.pin]
    ends = [leaf.not_after for leaf in leaves if leaf.not_after is not None]
    expiration = min(ends).date() if ends else None
    if output == "json":
        doc = {
            "certificates": [
                [
                    {
                        "role": p.role,
                        "pin": p.pin,
                        "subject": p.label,
                        "not_after": p.not_after.isoformat() if p.not_after else None,
                    }
                    for p in chain
                ]
                for chain in found
            ],
            "backup": {"pin": backup.pin, "key_file": backup.label, "created": created},
            "domains": names,
        }
        click.echo(orjson.dumps(doc, option=orjson.OPT_INDENT_2).decode())
        return
    if output == "android":
        click.echo(android_config(names, pinned, expiration))
        return
    if output == "ios":
        click.echo(trustkit_config(names, pinned))
        return
    for path, chain in zip(files, found, strict=True):
        click.echo(f"{path}:")
        for pin in chain:
            ends_text = f" (expires {pin.not_after:%Y-%m-%d})" if pin.not_after else ""
            click.echo(f"  {pin.role:<12} sha256/{pin.pin}  {pin.label}{ends_text}")
    made = " (made now)" if created else ""
    click.echo(f"backup key {backup.label}{made}:")
    click.echo(f"  {'backup':<12} sha256/{backup.pin}")
    click.echo(
        "\nPin the leaf key and the backup key (never the leaf alone). Keep the backup key"
        " offline; when the live key must go, issue the next certificate for the backup key."
    )
    click.echo("\nAndroid, res/xml/network_security_config.xml:\n")
    click.echo(android_config(names, pinned, expiration))
    click.echo("\niOS, TrustKit (Swift):\n")
    click.echo(trustkit_config(names, pinned))


@tls.command("inspect")
@click.argument("target")
@click.option("--ca", type=click.Path(path_type=Path), help="PEM CA to verify with.")
@click.option("--server-name", help="SNI name to send (default: the URL's host).")
@click.option("--json", "as_json", is_flag=True, help="One JSON document.")
@click.option("--timeout", type=float, default=5.0, show_default=True)
def inspect_command(
    target: str, ca: Path | None, server_name: str | None, as_json: bool, timeout: float
) -> None:
    """What TARGET (https://host[:port] or host:port) serves: TLS versions, suites, ALPN,
    HSTS, and the certificate chain with expiry and pins."""
    from bastion.tls.inspect import inspect, render

    try:
        report = inspect(
            target,
            cafile=str(ca) if ca is not None else None,
            server_name=server_name,
            timeout=timeout,
        )
    except ValueError as exc:
        fail_config(ConfigError(f"{target}: {exc}"))
    if as_json:
        click.echo(orjson.dumps(report.to_json(), option=orjson.OPT_INDENT_2).decode())
    else:
        click.echo(render(report, dt.datetime.now(dt.UTC)))
    if report.error is not None or not report.chain:
        sys.exit(EXIT_FAILURE)


@tls.command("dev-ca")
@click.option(
    "--config", "config_path", type=click.Path(path_type=Path), help="YAML configuration file."
)
@click.option("--state-dir", type=click.Path(path_type=Path), help="Where the CA lives.")
def dev_ca(config_path: Path | None, state_dir: Path | None) -> None:
    """Make (or renew) the development CA and certificate; print how to trust the CA."""
    from bastion.tls.devca import ensure_dev_certificate, trust_instructions

    config = load_or_exit(config_path, {"state_dir": state_dir})
    prepare_state_dir(config)
    paths, created = ensure_dev_certificate(config.state_dir, config.tls.dev_names)
    click.echo(trust_instructions(paths, created=created))
    click.echo(f"server certificate: {paths.cert.resolve()}")


@click.group()
def fields() -> None:
    """Field-level encryption keys and values (tls.field_encryption)."""


def _ring_path(config_path: Path | None, keys_file: Path | None, state_dir: Path | None) -> Path:
    from bastion.tls.field_guard import ring_path

    if keys_file is not None:
        return keys_file
    return ring_path(load_or_exit(config_path, {"state_dir": state_dir}))


def _ring_options(func: Any) -> Any:
    func = click.option(
        "--keys-file", type=click.Path(path_type=Path), help="The key ring (default from config)."
    )(func)
    func = click.option("--state-dir", type=click.Path(path_type=Path))(func)
    return click.option(
        "--config", "config_path", type=click.Path(path_type=Path), help="YAML configuration."
    )(func)


@fields.command()
@_ring_options
@click.option("--kid", help="Key id of the new key (default: date and random).")
def keygen(
    config_path: Path | None, state_dir: Path | None, keys_file: Path | None, kid: str | None
) -> None:
    """Make the key ring, or add a key to it; the new key becomes the primary (rotation).
    Older keys stay to decrypt what they encrypted. Key material is never printed."""
    from bastion.tls.fields import KeyRing, describe_ring, load_key_ring

    path = _ring_path(config_path, keys_file, state_dir)
    try:
        ring = load_key_ring(path) if path.exists() else KeyRing()
        new = ring.add(kid)
        ring.save(path)
    except ConfigError as exc:
        fail_config(exc)
    click.echo(f"{path}: key {new} is now the primary")
    for entry in describe_ring(ring):
        mark = " (primary)" if entry["primary"] else ""
        click.echo(f"  {entry['kid']}  created {entry['created']}{mark}")


@fields.command("list")
@_ring_options
def list_keys(config_path: Path | None, state_dir: Path | None, keys_file: Path | None) -> None:
    """The key ids in the ring (no key material)."""
    from bastion.tls.fields import describe_ring, load_key_ring

    try:
        ring = load_key_ring(_ring_path(config_path, keys_file, state_dir))
    except ConfigError as exc:
        fail_config(exc)
    for entry in describe_ring(ring):
        mark = " (primary)" if entry["primary"] else ""
        click.echo(f"{entry['kid']}  created {entry['created']}{mark}")


@fields.command()
@_ring_options
@click.argument("kid")
def retire(
    config_path: Path | None, state_dir: Path | None, keys_file: Path | None, kid: str
) -> None:
    """Remove key KID: values it encrypted can no longer be decrypted."""
    from bastion.tls.fields import load_key_ring

    path = _ring_path(config_path, keys_file, state_dir)
    try:
        ring = load_key_ring(path)
        ring.retire(kid)
        ring.save(path)
    except ConfigError as exc:
        fail_config(exc)
    click.echo(f"{path}: key {kid} retired")


@fields.command()
@_ring_options
@click.option("--kid", help="Encrypt with this key instead of the primary.")
@click.option("--json", "as_json", is_flag=True, help="VALUE is JSON (a number, object, ...).")
@click.argument("value", required=False)
def encrypt(
    config_path: Path | None,
    state_dir: Path | None,
    keys_file: Path | None,
    kid: str | None,
    as_json: bool,
    value: str | None,
) -> None:
    """Encrypt VALUE (a string; read from stdin when absent) and print the JWE token."""
    from bastion.tls import fields as fe

    text = value if value is not None else sys.stdin.read().rstrip("\n")
    try:
        payload = orjson.loads(text) if as_json else text
    except orjson.JSONDecodeError:
        fail_config(ConfigError("--json: VALUE is not valid JSON"))
    try:
        ring = fe.load_key_ring(_ring_path(config_path, keys_file, state_dir))
        click.echo(fe.encrypt(payload, ring, kid))
    except ConfigError as exc:
        fail_config(exc)


@fields.command()
@_ring_options
@click.argument("token", required=False)
def decrypt(
    config_path: Path | None, state_dir: Path | None, keys_file: Path | None, token: str | None
) -> None:
    """Decrypt TOKEN (read from stdin when absent) and print the value (JSON unless a string)."""
    from bastion.tls import fields as fe

    text = token if token is not None else sys.stdin.read().strip()
    try:
        ring = fe.load_key_ring(_ring_path(config_path, keys_file, state_dir))
    except ConfigError as exc:
        fail_config(exc)
    try:
        value = fe.decrypt(text, ring)
    except fe.FieldEncryptionError as exc:
        click.echo(f"bastion: cannot decrypt: {exc.message}", err=True)
        sys.exit(EXIT_FAILURE)
    click.echo(value if isinstance(value, str) else orjson.dumps(value).decode())
