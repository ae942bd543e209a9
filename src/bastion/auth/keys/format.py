"""The API key format: ``bst_<id>_<secret><checksum>``, recognisable, checkable, high-entropy.

``bst_`` lets secret scanners (and people) recognise a bastion key; the 12-character id is
public (logs, events, ``bastion keys list``); the 32-character secret carries about 190 bits of
randomness; the last 6 characters are the CRC32 of everything before them in base62, so a
scanner can tell a real key from a look-alike offline, and the gateway refuses a mistyped or
truncated key before any lookup. All parts are base62, so a double-click selects the whole key.

Shape, for scanners: ``bst_[0-9A-Za-z]{12}_[0-9A-Za-z]{38}``.
"""

from __future__ import annotations

import re
import secrets
import zlib
from dataclasses import dataclass

PREFIX = "bst_"
ID_LENGTH = 12
SECRET_LENGTH = 32
CHECKSUM_LENGTH = 6
KEY_LENGTH = len(PREFIX) + ID_LENGTH + 1 + SECRET_LENGTH + CHECKSUM_LENGTH
ALPHABET = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
KEY_PATTERN = re.compile(
    rf"{PREFIX}[0-9A-Za-z]{{{ID_LENGTH}}}_[0-9A-Za-z]{{{SECRET_LENGTH + CHECKSUM_LENGTH}}}"
)
ID_PATTERN = re.compile(rf"[0-9A-Za-z]{{{ID_LENGTH}}}")
_SPLIT = len(PREFIX) + ID_LENGTH
_BODY = KEY_LENGTH - CHECKSUM_LENGTH
_VALUES = {char: value for value, char in enumerate(ALPHABET)}


def base62(number: int, width: int) -> str:
    """``number`` in base62, left-padded with ``0`` to ``width`` characters."""
    digits: list[str] = []
    while number:
        number, digit = divmod(number, 62)
        digits.append(ALPHABET[digit])
    return "".join(reversed(digits)).rjust(width, "0")


def checksum(body: str) -> str:
    """The CRC32 of ``body`` (``bst_<id>_<secret>``) in 6 base62 characters."""
    return base62(zlib.crc32(body.encode("ascii")), CHECKSUM_LENGTH)


def random_text(length: int) -> str:
    return "".join(secrets.choice(ALPHABET) for _ in range(length))


@dataclass(frozen=True, slots=True)
class NewKey:
    """A freshly generated key: ``secret`` is the whole key, shown once and never stored."""

    id: str
    secret: str

    def __repr__(self) -> str:  # never print the secret by accident
        return f"NewKey(id={self.id!r}, secret='***')"


def generate() -> NewKey:
    key_id = random_text(ID_LENGTH)
    body = f"{PREFIX}{key_id}_{random_text(SECRET_LENGTH)}"
    return NewKey(key_id, body + checksum(body))


def key_id_of(key: str) -> str | None:
    """The id of ``key`` if it has the shape of a bastion key with a valid checksum, else None.

    This is the cheap first check on the request path: a wrong length, prefix, alphabet or
    checksum is refused without touching the key index (about a microsecond).
    """
    if len(key) != KEY_LENGTH or key[_SPLIT] != "_" or not key.startswith(PREFIX):
        return None
    key_id = key[len(PREFIX) : _SPLIT]
    if not (key.isascii() and key_id.isalnum() and key[_SPLIT + 1 :].isalnum()):
        return None
    value = 0
    for char in key[_BODY:]:
        value = value * 62 + _VALUES[char]
    if value != zlib.crc32(key[:_BODY].encode("ascii")):
        return None
    return key_id


def looks_like_key(text: str) -> bool:
    """Whether ``text`` contains something shaped like a bastion key (checksum verified)."""
    return any(key_id_of(m.group(0)) is not None for m in KEY_PATTERN.finditer(text))
