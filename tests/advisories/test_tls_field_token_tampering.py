"""Advisory: tampering with field-encryption tokens (JWE). A token whose ciphertext, tag, IV
or header was changed, that names another algorithm (``none``, another ``enc``), carries an
encrypted key or header members the decryptor does not know, or was made with another key under
the same key id, is refused with :class:`FieldEncryptionError`, whose message never holds the
value (RFC 8725-style algorithm allowlisting, applied to JWE)."""

from __future__ import annotations

import base64

import pytest

from bastion.fields import FieldEncryptionError, KeyRing, decrypt, encrypt


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


@pytest.fixture
def ring() -> KeyRing:
    ring = KeyRing()
    ring.add("k1")
    return ring


def tamper(token: str, index: int, part: str) -> str:
    parts = token.split(".")
    parts[index] = part
    return ".".join(parts)


def test_tampered_and_foreign_tokens_are_refused(ring: KeyRing) -> None:
    token = encrypt("secret", ring)
    ciphertext = token.split(".")[3]
    other = KeyRing()
    other.add("k1")  # the same key id, another key
    cases = {
        "ciphertext": tamper(
            token, 3, b64(b"\x00" * len(base64.urlsafe_b64decode(ciphertext + "==")))
        ),
        "tag": tamper(token, 4, b64(b"\x00" * 16)),
        "iv size": tamper(token, 2, b64(b"\x00" * 8)),
        "encrypted key": tamper(token, 1, b64(b"k" * 32)),
        "alg none": tamper(token, 0, b64(b'{"alg":"none","enc":"A256GCM","kid":"k1"}')),
        "other enc": tamper(token, 0, b64(b'{"alg":"dir","enc":"A128GCM","kid":"k1"}')),
        "swapped header": tamper(token, 0, b64(b'{"alg":"dir","enc":"A256GCM","kid":"k1"}')),
        "extra header": tamper(
            token, 0, b64(b'{"alg":"dir","enc":"A256GCM","kid":"k1","zip":"DEF"}')
        ),
        "four parts": ".".join(token.split(".")[:4]),
        "padding": token + "=",
        "not a string": 12,
    }
    for name, bad in cases.items():
        with pytest.raises(FieldEncryptionError) as caught:
            decrypt(bad, ring)  # type: ignore[arg-type]
        assert "secret" not in str(caught.value), name
    with pytest.raises(FieldEncryptionError, match="integrity"):
        decrypt(token, other)
