"""Advisory: a development CA is a root a developer's machine trusts. If its key leaked (it
sits in a project directory), it could sign a certificate for any site. bastion's development CA
is name-constrained (critical ``NameConstraints``) to ``tls.dev_names``: a certificate it signs
for another name fails verification."""

from __future__ import annotations

import datetime as dt
import subprocess
from pathlib import Path

from cryptography import x509

from bastion.tls.devca import ensure_dev_certificate, issue_server_certificate

NAMES = ("localhost", "127.0.0.1", "::1")


def test_a_leaked_dev_ca_cannot_sign_for_other_sites(tmp_path: Path) -> None:
    """Name constraints: a certificate the CA signs for another name is not trusted."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    paths, _ = ensure_dev_certificate(tmp_path, NAMES)
    ca_cert = x509.load_pem_x509_certificate(paths.ca_cert.read_bytes())
    ca_key = serialization.load_pem_private_key(paths.ca_key.read_bytes(), None)
    assert isinstance(ca_key, ec.EllipticCurvePrivateKey)
    forged, _ = issue_server_certificate(
        ca_cert, ca_key, ["bank.example.com"], dt.datetime.now(dt.UTC)
    )
    forged_path = tmp_path / "forged.pem"
    forged_path.write_bytes(forged.public_bytes(serialization.Encoding.PEM))
    verified = subprocess.run(
        ["openssl", "verify", "-CAfile", str(paths.ca_cert), str(forged_path)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert verified.returncode != 0
    assert "permitted subtree violation" in verified.stdout + verified.stderr
