"""Field-level encryption for applications: read (and write) the values bastion encrypts.

The gateway encrypts configured JSON fields of request bodies (``tls.field_encryption``) before
the upstream sees them; the application that needs a value in clear decrypts it with the same
key ring file::

    from bastion.fields import decrypt, load_key_ring

    ring = load_key_ring(Path("/etc/bastion/field-keys.json"))
    card_number = decrypt(order["card"]["number"], ring)

Tokens are JWE compact (``dir`` + ``A256GCM``, key id in the protected header); see
:mod:`bastion.tls.fields` for the format and docs/tls.md for rotation.
"""

from bastion.tls.fields import (
    FieldEncryptionError,
    KeyRing,
    decrypt,
    decrypt_fields,
    encrypt,
    encrypt_fields,
    load_key_ring,
    token_kid,
)

__all__ = [
    "FieldEncryptionError",
    "KeyRing",
    "decrypt",
    "decrypt_fields",
    "encrypt",
    "encrypt_fields",
    "load_key_ring",
    "token_kid",
]
