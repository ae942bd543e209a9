"""Keys at rest: HMAC-SHA256 under a pepper that never enters the key store.

A stolen database alone cannot be used to check guesses: the pepper lives in a file of its own
(``state_dir/api-key-pepper``, mode 0600, created on first use) or in the environment variable
``BASTION_API_KEY_PEPPER``. Every instance that shares a PostgreSQL store must share the pepper;
the store keeps a fingerprint of it, so an instance with another pepper refuses to start instead
of refusing every key.

The HMAC (RFC 2104) is computed from SHA-256 states with the key pads already absorbed: the
same digest as ``hmac.digest(pepper, key, "sha256")``, at half the cost on the request path.

:meth:`KeyHasher.quick` is a second MAC, for memory only: BLAKE2s over a random 200-bit key made
when the process starts (never written anywhere) followed by the key's part after its id (the
prefix-MAC that BLAKE2 is designed for, without length extension). The key index remembers, per
key id, the quick MAC of the key that last verified with that id (see :mod:`.index`), so that a
key seen before is recognised for a fraction of the HMAC's cost: the id selects the entry and
the MAC proves the rest equal, so the whole key is the one that verified. Key and rest fit one
64-byte BLAKE2s block (one compression; BLAKE2s's own keyed mode pads the key to a block of its
own and costs two).
"""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
import stat
from collections.abc import Callable
from pathlib import Path
from typing import Final

from bastion.auth.keys.format import ID_LENGTH, PREFIX
from bastion.errors import StateError

PEPPER_ENV = "BASTION_API_KEY_PEPPER"
PEPPER_FILE = "api-key-pepper"
PEPPER_BYTES = 32
MIN_PEPPER_BYTES = 32
_BLOCK = 64
QUICK_BYTES = 32
_QUICK_KEY_BYTES = 25  # + the 39 characters after a key's id = one 64-byte block
_AFTER_ID: Final = 16  # a literal, so the compiled quick MAC reads no module global
if len(PREFIX) + ID_LENGTH != _AFTER_ID:
    raise ImportError("bastion.auth.keys.hashing: the key shape differs from .format")


class KeyHasher:
    """HMAC-SHA256 of keys under one pepper."""

    __slots__ = ("_inner", "_outer", "_quick", "_quick_copy", "fingerprint")

    def __init__(self, pepper: bytes) -> None:
        if len(pepper) < MIN_PEPPER_BYTES:
            raise StateError(
                f"the API key pepper has {len(pepper)} bytes; expected at least {MIN_PEPPER_BYTES}"
            )
        block = hashlib.sha256(pepper).digest() if len(pepper) > _BLOCK else pepper
        block = block.ljust(_BLOCK, b"\0")
        self._inner = hashlib.sha256(bytes(b ^ 0x36 for b in block))
        self._outer = hashlib.sha256(bytes(b ^ 0x5C for b in block))
        self._quick = hashlib.blake2s(
            secrets.token_bytes(_QUICK_KEY_BYTES), digest_size=QUICK_BYTES
        )
        # Bound once: a copy of the state with the random key already absorbed, per MAC.
        self._quick_copy: Callable[[], hashlib.blake2s] = self._quick.copy
        check = hmac.digest(pepper, b"bastion api-key pepper fingerprint", "sha256")
        self.fingerprint = check[:16].hex()

    def digest(self, key: str) -> bytes:
        inner = self._inner.copy()
        inner.update(key.encode("ascii", "replace"))
        outer = self._outer.copy()
        outer.update(inner.digest())
        return outer.digest()

    def quick(self, key: str) -> bytes:
        """The in-memory MAC of ``key`` after its prefix and id (see the module docstring), so
        only to be compared with the MAC remembered for that id: never stored, never compared
        across processes, different after every restart. The rest is encoded as UTF-8, which is
        one-to-one (a key with other characters than base62 ones never verified, so it can
        never equal a remembered MAC either way; it only costs a second block)."""
        mac = self._quick_copy()
        mac.update(key[_AFTER_ID:].encode())
        return mac.digest()

    def hexdigest(self, key: str) -> str:
        return self.digest(key).hex()

    def __repr__(self) -> str:
        return f"KeyHasher(fingerprint={self.fingerprint})"


def read_pepper(path: Path, *, create: bool) -> bytes | None:
    """The pepper in ``path``; created (mode 0600) when missing and ``create``; ``None`` when
    missing and not ``create``. A file others may read is refused: it guards every key."""
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
    except FileNotFoundError:
        if not create:
            return None
        return _create_pepper(path)
    except OSError as exc:
        raise StateError(f"pepper file {path} cannot be read ({exc.strerror})") from None
    try:
        info = os.fstat(fd)
        if info.st_mode & (stat.S_IRWXG | stat.S_IRWXO):
            raise StateError(
                f"pepper file {path} has mode {stat.S_IMODE(info.st_mode):o}; expected 600"
                " (readable by its owner only)"
            )
        with os.fdopen(fd, "rb", closefd=False) as handle:
            data = handle.read(4096)
    finally:
        os.close(fd)
    pepper = data.strip()
    if len(pepper) < MIN_PEPPER_BYTES:
        raise StateError(
            f"pepper file {path} holds {len(pepper)} bytes; expected at least {MIN_PEPPER_BYTES}"
        )
    return pepper


def _create_pepper(path: Path) -> bytes:
    """Write a new pepper to ``path`` atomically: a complete private temporary file is linked
    into place, so a process starting at the same moment reads all of it or none of it."""
    pepper = secrets.token_urlsafe(PEPPER_BYTES).encode("ascii")
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}")
    try:
        fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as handle:
            handle.write(pepper + b"\n")
        try:
            os.link(temporary, path)
        except FileExistsError:  # another process created it first: use theirs
            result = read_pepper(path, create=False)
            assert result is not None
            return result
    except OSError as exc:
        raise StateError(f"pepper file {path} cannot be created ({exc.strerror})") from None
    finally:
        temporary.unlink(missing_ok=True)
    return pepper


def load_pepper(file: Path, *, create: bool) -> bytes | None:
    """The pepper: ``$BASTION_API_KEY_PEPPER`` when set, else the contents of ``file``."""
    from_env = os.environ.get(PEPPER_ENV)
    if from_env:
        value = from_env.strip().encode("utf-8")
        if len(value) < MIN_PEPPER_BYTES:
            raise StateError(
                f"${PEPPER_ENV} holds {len(value)} bytes; expected at least {MIN_PEPPER_BYTES}"
                " (for example the output of: openssl rand -base64 32)"
            )
        return value
    return read_pepper(file, create=create)
