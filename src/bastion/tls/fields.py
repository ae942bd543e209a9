"""Field-level encryption: JSON values as JWE compact tokens (RFC 7516), with key ids and rotation.

A value is encrypted as ``BASE64URL(header)..BASE64URL(iv).BASE64URL(ciphertext).BASE64URL(tag)``
with the header ``{"alg":"dir","enc":"A256GCM","kid":...,"cty":"json"}``: direct encryption with a
256-bit key of the ring, AES-256-GCM with a random 96-bit IV, the protected header as additional
data (so the key id cannot be swapped), the plaintext being the value's JSON (a number comes back
a number). Decryption refuses any other ``alg``/``enc`` (no algorithm is taken from the token
beyond this allowlist), an encrypted-key part, and wrong IV or tag sizes.

The key ring is a JSON file (0600) of keys by id and the id of the primary key, which encrypts;
every key in the ring decrypts, so rotating (a new primary) keeps older values readable until the
old key is retired. Random IVs bound how much one key may encrypt (NIST SP 800-38D: 2^32
messages); rotate well before, e.g. monthly.
"""

from __future__ import annotations

import base64
import datetime as dt
import os
import secrets
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from bastion.errors import BastionError, ConfigError

HEADER_ALG = "dir"
HEADER_ENC = "A256GCM"
KEY_BYTES = 32
IV_BYTES = 12
TAG_BYTES = 16
MAX_TOKEN = 1 << 20


class FieldEncryptionError(BastionError):
    """A value could not be decrypted: malformed token, unknown key id, or failed integrity.

    The message never contains the token, the value or key material."""

    code = "fields.decryption_failed"
    status = 400


def _b64e(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _b64d(text: str) -> bytes:
    if "=" in text:
        raise FieldEncryptionError("the token is not base64url without padding")
    try:
        return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except (ValueError, TypeError):
        raise FieldEncryptionError("the token is not base64url") from None


@dataclass
class KeyRing:
    """Keys by id; ``primary`` encrypts, every key decrypts."""

    keys: dict[str, bytes] = field(default_factory=dict)
    primary: str | None = None
    created: dict[str, str] = field(default_factory=dict)

    def add(self, kid: str | None = None, *, primary: bool = True) -> str:
        """A new random key (its id is made from the date and randomness unless given)."""
        now = dt.datetime.now(dt.UTC)
        kid = kid or f"{now:%Y%m%d}-{secrets.token_hex(4)}"
        if kid in self.keys:
            raise ConfigError(f"field key {kid!r} exists already; expected a new key id")
        self.keys[kid] = secrets.token_bytes(KEY_BYTES)
        self.created[kid] = now.isoformat(timespec="seconds")
        if primary or self.primary is None:
            self.primary = kid
        return kid

    def retire(self, kid: str) -> None:
        """Remove a key: values encrypted with it can no longer be read."""
        if kid == self.primary:
            raise ConfigError(f"field key {kid!r} is the primary; rotate to a new key first")
        if kid not in self.keys:
            raise ConfigError(f"no field key {kid!r} in the ring")
        del self.keys[kid]
        self.created.pop(kid, None)

    def to_json(self) -> bytes:
        return orjson.dumps(
            {
                "primary": self.primary,
                "keys": [
                    {"kid": kid, "k": _b64e(key), "created": self.created.get(kid)}
                    for kid, key in self.keys.items()
                ],
            },
            option=orjson.OPT_INDENT_2,
        )

    @classmethod
    def from_json(cls, data: bytes, source: str = "field key ring") -> KeyRing:
        try:
            doc = orjson.loads(data)
            ring = cls(primary=doc.get("primary"))
            for entry in doc["keys"]:
                key = base64.urlsafe_b64decode(entry["k"] + "=" * (-len(entry["k"]) % 4))
                if len(key) != KEY_BYTES:
                    raise ValueError
                ring.keys[str(entry["kid"])] = key
                if entry.get("created"):
                    ring.created[str(entry["kid"])] = str(entry["created"])
        except (ValueError, KeyError, TypeError, AttributeError):
            raise ConfigError(
                f"{source}: not a bastion field key ring; expected JSON with 32-byte keys"
            ) from None
        if ring.primary is not None and ring.primary not in ring.keys:
            raise ConfigError(f"{source}: the primary key is not in the ring")
        return ring

    def save(self, path: Path) -> None:
        """Write atomically, 0600 from creation (the file holds secret keys)."""
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            os.write(fd, self.to_json())
            os.fchmod(fd, 0o600)
        finally:
            os.close(fd)
        os.replace(tmp, path)


def load_key_ring(path: Path, *, create: bool = False) -> KeyRing:
    """The ring in ``path``; with ``create``, a new ring with one key when the file is absent."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        if not create:
            raise ConfigError(
                f"field key ring {str(path)!r} does not exist; expected one made by"
                " bastion fields keygen"
            ) from None
        ring = KeyRing()
        ring.add()
        ring.save(path)
        return ring
    except OSError as exc:
        raise ConfigError(f"field key ring {str(path)!r} cannot be read ({exc.strerror})") from None
    return KeyRing.from_json(data, str(path))


def encrypt(value: Any, ring: KeyRing, kid: str | None = None) -> str:
    """``value`` (any JSON value) as a JWE compact token under ``kid`` (default: primary)."""
    kid = kid or ring.primary
    if kid is None or kid not in ring.keys:
        raise ConfigError("no field key to encrypt with; expected bastion fields keygen")
    header = _b64e(orjson.dumps({"alg": HEADER_ALG, "enc": HEADER_ENC, "kid": kid, "cty": "json"}))
    iv = secrets.token_bytes(IV_BYTES)
    sealed = AESGCM(ring.keys[kid]).encrypt(iv, orjson.dumps(value), header.encode("ascii"))
    ciphertext, tag = sealed[:-TAG_BYTES], sealed[-TAG_BYTES:]
    return f"{header}..{_b64e(iv)}.{_b64e(ciphertext)}.{_b64e(tag)}"


def token_kid(token: str) -> str:
    """The key id a token names (after checking its header against the allowlist)."""
    return _header(token.split(".", 1)[0])["kid"]


def _header(part: str) -> dict[str, str]:
    try:
        header = orjson.loads(_b64d(part))
    except orjson.JSONDecodeError:
        raise FieldEncryptionError("the token header is not JSON") from None
    if not isinstance(header, dict):
        raise FieldEncryptionError("the token header is not a JSON object")
    if header.get("alg") != HEADER_ALG or header.get("enc") != HEADER_ENC:
        raise FieldEncryptionError("the token is not dir + A256GCM (the only form accepted)")
    if set(header) - {"alg", "enc", "kid", "cty", "typ"}:
        raise FieldEncryptionError("the token header has members this decryptor does not know")
    kid = header.get("kid")
    if not isinstance(kid, str):
        raise FieldEncryptionError("the token header names no key id")
    return header


def decrypt(token: str, ring: KeyRing) -> Any:
    """The value a token from :func:`encrypt` holds; :class:`FieldEncryptionError` otherwise."""
    if not isinstance(token, str) or len(token) > MAX_TOKEN:
        raise FieldEncryptionError("the value is not a field encryption token")
    parts = token.split(".")
    if len(parts) != 5:
        raise FieldEncryptionError("the value is not a JWE compact token (five parts)")
    protected, encrypted_key, iv_text, ciphertext_text, tag_text = parts
    kid = _header(protected)["kid"]
    if encrypted_key:
        raise FieldEncryptionError("dir tokens carry no encrypted key")
    key = ring.keys.get(kid)
    if key is None:
        raise FieldEncryptionError("the token's key id is not in the key ring")
    iv, tag = _b64d(iv_text), _b64d(tag_text)
    if len(iv) != IV_BYTES or len(tag) != TAG_BYTES:
        raise FieldEncryptionError("the token's IV or tag has the wrong size")
    try:
        plain = AESGCM(key).decrypt(iv, _b64d(ciphertext_text) + tag, protected.encode("ascii"))
    except InvalidTag:
        raise FieldEncryptionError("the token failed its integrity check") from None
    try:
        return orjson.loads(plain)
    except orjson.JSONDecodeError:
        raise FieldEncryptionError("the decrypted value is not JSON") from None


def _unescape(token: str) -> str:
    return token.replace("~1", "/").replace("~0", "~")


def _walk(doc: Any, pointer: str) -> tuple[Any, str | int] | None:
    """The container holding the value at ``pointer`` (RFC 6901) and its key, or None."""
    tokens = [_unescape(t) for t in pointer.split("/")[1:]]
    node = doc
    for index, token in enumerate(tokens):
        last = index == len(tokens) - 1
        if isinstance(node, dict):
            if token not in node:
                return None
            if last:
                return node, token
            node = node[token]
        elif isinstance(node, list):
            if not token.isdigit() or (len(token) > 1 and token.startswith("0")):
                return None
            position = int(token)
            if position >= len(node):
                return None
            if last:
                return node, position
            node = node[position]
        else:
            return None
    return None


def _wildcard_pointers(doc: Any, pointer: str) -> list[str]:
    """``pointer`` with each ``*`` segment expanded to every index of the array there."""
    segments = pointer.split("/")[1:]
    if "*" not in segments:
        return [pointer]
    at = segments.index("*")
    head = "".join(f"/{s}" for s in segments[:at])
    tail = "".join(f"/{s}" for s in segments[at + 1 :])
    if head:
        found = _walk(doc, head)
        if found is None:
            return []
        container, key = found
        array = container[key]
    else:
        array = doc
    if not isinstance(array, list):
        return []
    result: list[str] = []
    for index in range(len(array)):
        result.extend(_wildcard_pointers(doc, f"{head}/{index}{tail}"))
    return result


def encrypt_fields(
    doc: Any, pointers: Iterable[str], ring: KeyRing, kid: str | None = None
) -> list[str]:
    """Encrypt in place the values ``pointers`` name (``*`` matches every array index);
    absent ones are left absent. The pointers that were encrypted."""
    done = []
    for pattern in pointers:
        for pointer in _wildcard_pointers(doc, pattern):
            found = _walk(doc, pointer)
            if found is None:
                continue
            container, key = found
            container[key] = encrypt(container[key], ring, kid)
            done.append(pointer)
    return done


def decrypt_fields(doc: Any, pointers: Iterable[str], ring: KeyRing) -> list[str]:
    """Decrypt in place the tokens ``pointers`` name; a value there that is not a token of this
    ring raises :class:`FieldEncryptionError`. The pointers that were decrypted."""
    done = []
    for pattern in pointers:
        for pointer in _wildcard_pointers(doc, pattern):
            found = _walk(doc, pointer)
            if found is None:
                continue
            container, key = found
            container[key] = decrypt(container[key], ring)
            done.append(pointer)
    return done


def describe_ring(ring: KeyRing) -> list[Mapping[str, Any]]:
    """The ring without key material: ids, creation, which is primary."""
    return [
        {"kid": kid, "created": ring.created.get(kid), "primary": kid == ring.primary}
        for kid in ring.keys
    ]
