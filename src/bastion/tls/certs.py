"""Facts about certificates: names served, expiry, SPKI pins, subjects (with ``cryptography``)."""

from __future__ import annotations

import base64
import hashlib
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric.types import PublicKeyTypes
from cryptography.x509.oid import NameOID

from bastion.errors import ConfigError


def spki_pin(public_key: PublicKeyTypes) -> str:
    """The base64 SHA-256 of the DER SubjectPublicKeyInfo (RFC 7469 pin, Android, TrustKit)."""
    der = public_key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return base64.b64encode(hashlib.sha256(der).digest()).decode("ascii")


def spki_pin_of_der(cert_der: bytes) -> str:
    return spki_pin(x509.load_der_x509_certificate(cert_der).public_key())


@dataclass(frozen=True, slots=True)
class CertificateFacts:
    """What bastion reads from one certificate."""

    subject: str
    issuer: str
    common_name: str | None
    dns_names: tuple[str, ...]
    san_values: tuple[str, ...]  # every SAN value as text: DNS, IP, URI, e-mail
    not_before: datetime
    not_after: datetime
    pin: str
    fingerprint: str  # SHA-256 of the DER certificate, hex
    key_type: str
    serial: int

    @classmethod
    def of(cls, cert: x509.Certificate) -> CertificateFacts:
        common = cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
        dns: list[str] = []
        values: list[str] = []
        try:
            san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName)
        except x509.ExtensionNotFound:
            pass
        else:
            names = san.value
            dns = [name.lower() for name in names.get_values_for_type(x509.DNSName)]
            values = [
                *dns,
                *(str(ip) for ip in names.get_values_for_type(x509.IPAddress)),
                *names.get_values_for_type(x509.UniformResourceIdentifier),
                *names.get_values_for_type(x509.RFC822Name),
            ]
        key = cert.public_key()
        size = getattr(key, "key_size", None)
        curve = getattr(getattr(key, "curve", None), "name", None)
        kind = type(key).__name__.removeprefix("_").replace("PublicKey", "")
        return cls(
            subject=cert.subject.rfc4514_string(),
            issuer=cert.issuer.rfc4514_string(),
            common_name=str(common[0].value) if common else None,
            dns_names=tuple(dns),
            san_values=tuple(values),
            not_before=cert.not_valid_before_utc,
            not_after=cert.not_valid_after_utc,
            pin=spki_pin(key),
            fingerprint=cert.fingerprint(hashes.SHA256()).hex(),
            key_type=f"{kind} {curve or size or ''}".strip(),
            serial=cert.serial_number,
        )

    def days_left(self, now: datetime | None = None) -> float:
        now = now or datetime.now(UTC)
        return (self.not_after - now).total_seconds() / 86400

    def serves(self, name: str) -> bool:
        """Whether this certificate's DNS names cover ``name`` (one-label wildcards)."""
        name = name.lower().rstrip(".")
        for pattern in self.dns_names:
            if pattern == name:
                return True
            if pattern.startswith("*.") and name.endswith(pattern[1:]):
                label = name[: len(name) - len(pattern) + 1]
                if label and "." not in label:
                    return True
        return False


def load_chain(path: Path) -> list[x509.Certificate]:
    """The certificates of a PEM file, in file order; a readable error when there are none."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ConfigError(
            f"tls: cannot read certificate file {str(path)!r} ({exc.strerror});"
            " expected a readable PEM file"
        ) from None
    try:
        chain = x509.load_pem_x509_certificates(data)
    except ValueError:
        chain = []
    if not chain:
        raise ConfigError(
            f"tls: {str(path)!r} holds no PEM certificate; expected -----BEGIN CERTIFICATE-----"
        )
    return chain


def leaf_facts(path: Path) -> CertificateFacts:
    return CertificateFacts.of(load_chain(path)[0])
