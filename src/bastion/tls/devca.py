"""The development certificate: a local CA and a server certificate in ``state_dir/tls/``.

``bastion serve --tls`` (or ``tls.enabled: true`` without certificates) serves HTTPS on the
first run with nothing configured. The CA (ECDSA P-256, ten years, name-constrained to
``tls.dev_names``) is made once (again if the names change); the server
certificate (ECDSA P-256, 90 days, the Mozilla modern lifetime) is made again when it is
missing, expires within 30 days, was issued by another CA, or does not cover ``tls.dev_names``.
Private keys are written 0600 (created with that mode, never loosened), under a lock so that
worker processes starting at once agree on one CA. Trusting the CA is the operator's act:
:func:`trust_instructions` says how, bastion never touches a trust store.
"""

from __future__ import annotations

import datetime as dt
import fcntl
import ipaddress
import os
import socket
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from bastion.tls.certs import CertificateFacts

CA_DAYS = 3650
LEAF_DAYS = 90
RENEW_WITHIN_DAYS = 30


@dataclass(frozen=True, slots=True)
class DevCertificate:
    """Where the development CA and server certificate live."""

    directory: Path

    @property
    def ca_cert(self) -> Path:
        return self.directory / "dev-ca.pem"

    @property
    def ca_key(self) -> Path:
        return self.directory / "dev-ca-key.pem"

    @property
    def cert(self) -> Path:
        return self.directory / "dev-cert.pem"

    @property
    def key(self) -> Path:
        return self.directory / "dev-key.pem"


def dev_paths(state_dir: Path) -> DevCertificate:
    return DevCertificate(state_dir / "tls")


def _write(path: Path, data: bytes, mode: int) -> None:
    """Replace ``path`` atomically; the file is created with ``mode`` (keys: 0600)."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    try:
        os.write(fd, data)
        os.fchmod(fd, mode)
    finally:
        os.close(fd)
    os.replace(tmp, path)


@contextmanager
def _locked(directory: Path) -> Iterator[None]:
    directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    fd = os.open(directory / ".lock", os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)


def _key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def _general_names(names: Sequence[str]) -> list[x509.GeneralName]:
    result: list[x509.GeneralName] = []
    for name in names:
        try:
            result.append(x509.IPAddress(ipaddress.ip_address(name)))
        except ValueError:
            result.append(x509.DNSName(name.lower()))
    return result


def _constraints(names: Sequence[str]) -> x509.NameConstraints:
    """The CA may sign for these names only: a leaked development CA key cannot impersonate
    other sites to a machine that trusts it."""
    permitted: list[x509.GeneralName] = []
    for name in names:
        try:
            address = ipaddress.ip_address(name)
        except ValueError:
            permitted.append(x509.DNSName(name.lower()))
            continue
        permitted.append(x509.IPAddress(ipaddress.ip_network(address)))
    return x509.NameConstraints(permitted_subtrees=permitted, excluded_subtrees=None)


def _ca_covers(ca: x509.Certificate, names: Sequence[str]) -> bool:
    try:
        current = ca.extensions.get_extension_for_class(x509.NameConstraints).value
    except x509.ExtensionNotFound:
        return False
    return set(_constraints(names).permitted_subtrees or ()) <= set(
        current.permitted_subtrees or ()
    )


def _new_ca(
    now: dt.datetime, names: Sequence[str]
) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "bastion development"),
            x509.NameAttribute(
                NameOID.COMMON_NAME, f"bastion development CA ({socket.gethostname()[:40]})"
            ),
        ]
    )
    public = key.public_key()
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(public)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=CA_DAYS))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public), critical=False)
        .add_extension(_constraints(names), critical=True)
        .sign(key, hashes.SHA256())
    )
    return cert, key


def issue_server_certificate(
    ca_cert: x509.Certificate,
    ca_key: ec.EllipticCurvePrivateKey,
    names: Sequence[str],
    now: dt.datetime,
    *,
    days: int = LEAF_DAYS,
    client: bool = False,
) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    """A leaf for ``names`` (DNS names or IP addresses), signed by the CA. ``client`` issues a
    client certificate instead (``names[0]`` as its common name), for mTLS tests and demos."""
    key = ec.generate_private_key(ec.SECP256R1())
    usage = ExtendedKeyUsageOID.CLIENT_AUTH if client else ExtendedKeyUsageOID.SERVER_AUTH
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, names[0][:64])]))
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=days))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=False,
                crl_sign=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
        .add_extension(x509.SubjectAlternativeName(_general_names(names)), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()),
            critical=False,
        )
        .sign(ca_key, hashes.SHA256())
    )
    return cert, key


def _load_ca(paths: DevCertificate) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey] | None:
    try:
        cert = x509.load_pem_x509_certificate(paths.ca_cert.read_bytes())
        key = serialization.load_pem_private_key(paths.ca_key.read_bytes(), password=None)
    except (OSError, ValueError):
        return None
    if not isinstance(key, ec.EllipticCurvePrivateKey):
        return None
    return cert, key


def _leaf_is_current(
    paths: DevCertificate, ca: x509.Certificate, names: Sequence[str], now: dt.datetime
) -> bool:
    try:
        leaf = x509.load_pem_x509_certificate(paths.cert.read_bytes())
        paths.key.stat()
    except (OSError, ValueError):
        return False
    if leaf.issuer != ca.subject:
        return False
    try:
        leaf.verify_directly_issued_by(ca)
    except (InvalidSignature, ValueError, TypeError):
        return False
    facts = CertificateFacts.of(leaf)
    if facts.days_left(now) < RENEW_WITHIN_DAYS:
        return False
    wanted = {str(n).lower() for n in names}
    have = {v.lower() for v in facts.san_values}
    return wanted <= have


def ensure_dev_certificate(
    state_dir: Path, names: Sequence[str], *, now: dt.datetime | None = None
) -> tuple[DevCertificate, bool]:
    """The development CA and server certificate, made or renewed as needed; whether the CA was
    created now (the caller then prints :func:`trust_instructions`)."""
    now = now or dt.datetime.now(dt.UTC)
    paths = dev_paths(state_dir)
    with _locked(paths.directory):
        created = False
        ca = _load_ca(paths)
        if (
            ca is None
            or ca[0].not_valid_after_utc - now < dt.timedelta(days=RENEW_WITHIN_DAYS)
            or not _ca_covers(ca[0], names)
        ):
            ca = _new_ca(now, names)
            _write(paths.ca_key, _key_pem(ca[1]), 0o600)
            _write(paths.ca_cert, ca[0].public_bytes(serialization.Encoding.PEM), 0o644)
            created = True
        if created or not _leaf_is_current(paths, ca[0], names, now):
            leaf, key = issue_server_certificate(ca[0], ca[1], names, now)
            _write(paths.key, _key_pem(key), 0o600)
            _write(paths.cert, leaf.public_bytes(serialization.Encoding.PEM), 0o644)
    return paths, created


def trust_instructions(paths: DevCertificate, *, created: bool = False) -> str:
    """How to make clients trust the development CA (never done by bastion itself)."""
    ca = paths.ca_cert.resolve()
    return "\n".join(
        [
            f"development CA{' created' if created else ''}: {ca}",
            "clients trust it with one of:",
            f"  curl --cacert {ca} https://localhost:PORT/",
            f"  export SSL_CERT_FILE={ca}   # Python (httpx, requests via REQUESTS_CA_BUNDLE)",
            f"  export NODE_EXTRA_CA_CERTS={ca}",
            f"  Debian/Ubuntu: sudo cp {ca} /usr/local/share/ca-certificates/bastion-dev.crt"
            " && sudo update-ca-certificates",
            "  macOS: sudo security add-trusted-cert -d -r trustRoot"
            f" -k /Library/Keychains/System.keychain {ca}",
            "it is for development only: the CA signs only for tls.dev_names, and its key"
            f" ({paths.ca_key.resolve()}) must stay on this machine",
        ]
    )
