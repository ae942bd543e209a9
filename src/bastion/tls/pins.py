"""Public-key pins for mobile apps: the serving key's pin, a backup key's pin, and ready
configuration snippets for Android (``network_security_config.xml``) and iOS (TrustKit).

A pin is the base64 SHA-256 of a certificate's SubjectPublicKeyInfo (RFC 7469 §2.4), so it
survives certificate renewal as long as the key stays. An app must pin at least two keys (TrustKit
refuses fewer): the live one and a backup whose certificate does not exist yet. Renew onto the
backup key when the live one must go, and no installed app stops working. The backup key is made
here (ECDSA P-256, 0600) and belongs offline, away from the gateway, until it is used.
"""

from __future__ import annotations

import datetime as dt
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from xml.sax.saxutils import escape

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from bastion.tls.certs import CertificateFacts, load_chain, spki_pin

BACKUP_KEY = "backup-key.pem"


@dataclass(frozen=True, slots=True)
class Pin:
    """One pin and what it is the pin of."""

    role: str  # "leaf", "intermediate", "root" or "backup"
    pin: str
    label: str  # the certificate's subject, or the backup key's file
    not_after: dt.datetime | None = None


def chain_pins(cert_file: Path) -> list[Pin]:
    """The pins of every certificate in a PEM chain file, leaf first."""
    pins = []
    chain = load_chain(cert_file)
    for index, cert in enumerate(chain):
        facts = CertificateFacts.of(cert)
        role = "leaf" if index == 0 else "intermediate"
        if index > 0 and cert.subject == cert.issuer:
            role = "root"
        pins.append(Pin(role, facts.pin, facts.subject, facts.not_after))
    return pins


def backup_pin(directory: Path) -> tuple[Pin, bool]:
    """The backup key's pin, making the key (0600) when absent; whether it was made now."""
    path = directory / BACKUP_KEY
    created = False
    if not path.exists():
        directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        key = ec.generate_private_key(ec.SECP256R1())
        data = key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            os.write(fd, data)
        finally:
            os.close(fd)
        created = True
    loaded = serialization.load_pem_private_key(path.read_bytes(), password=None)
    return Pin("backup", spki_pin(loaded.public_key()), str(path)), created


def android_config(
    domains: Sequence[str], pins: Sequence[str], expiration: dt.date | None = None
) -> str:
    """``res/xml/network_security_config.xml``: cleartext off, the pins for ``domains``."""
    expires = f' expiration="{expiration.isoformat()}"' if expiration is not None else ""
    lines = [
        '<?xml version="1.0" encoding="utf-8"?>',
        "<network-security-config>",
        '    <domain-config cleartextTrafficPermitted="false">',
        *(f'        <domain includeSubdomains="true">{escape(d)}</domain>' for d in domains),
        f"        <pin-set{expires}>",
        *(f'            <pin digest="SHA-256">{p}</pin>' for p in pins),
        "        </pin-set>",
        "    </domain-config>",
        "</network-security-config>",
    ]
    return "\n".join(lines)


def trustkit_config(domains: Sequence[str], pins: Sequence[str]) -> str:
    """A Swift TrustKit configuration pinning ``pins`` for ``domains`` (enforced)."""
    hashes = ",\n".join(f'                "{p}"' for p in pins)
    entries = []
    for domain in domains:
        entries.append(
            f'        "{domain}": [\n'
            "            kTSKEnforcePinning: true,\n"
            "            kTSKIncludeSubdomains: true,\n"
            "            kTSKPublicKeyHashes: [\n"
            f"{hashes},\n"
            "            ],\n"
            "        ],"
        )
    return "\n".join(
        [
            "let trustKitConfig: [String: Any] = [",
            "    kTSKSwizzleNetworkDelegates: false,",
            "    kTSKPinnedDomains: [",
            *entries,
            "    ],",
            "]",
            "TrustKit.initSharedInstance(withConfiguration: trustKitConfig)",
        ]
    )
