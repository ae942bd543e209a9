"""Where bastion's signing keys persist: the three-method :class:`SigningKeyStore` contract, and
its implementations in memory and in owner-only files under the state directory.

``append`` is a compare-and-set (it adds a key only if the newest stored key is still the one the
caller saw), so that gateway instances rotating at the same moment create one key, not several.
A shared store (PostgreSQL) implements the same contract in one statement per method.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import re
import secrets
import stat
from collections.abc import Collection, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal, Protocol

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from bastion.auth.jwt.jose import PrivateKey
from bastion.errors import StateError

SigningAlgorithm = Literal["EdDSA", "ES256"]
_KID = re.compile(r"^[A-Za-z0-9_-]{8,64}$")


@dataclass(frozen=True, slots=True)
class StoredSigningKey:
    """One signing key as a store holds it. ``private_pem`` is PKCS#8 PEM (never logged)."""

    kid: str
    alg: SigningAlgorithm
    created_at: float
    activates_at: float
    private_pem: bytes = field(repr=False)

    def to_json(self) -> bytes:
        return json.dumps(
            {
                "kid": self.kid,
                "alg": self.alg,
                "created_at": self.created_at,
                "activates_at": self.activates_at,
                "private_key": self.private_pem.decode("ascii"),
            }
        ).encode()

    @classmethod
    def from_json(cls, raw: bytes) -> StoredSigningKey:
        doc = json.loads(raw)
        if doc.get("alg") not in ("EdDSA", "ES256") or not _KID.match(str(doc.get("kid"))):
            raise ValueError("not a bastion signing key")
        return cls(
            kid=doc["kid"],
            alg=doc["alg"],
            created_at=float(doc["created_at"]),
            activates_at=float(doc["activates_at"]),
            private_pem=doc["private_key"].encode("ascii"),
        )


def generate_key(alg: SigningAlgorithm, *, now: float, activates_at: float) -> StoredSigningKey:
    """A fresh key: Ed25519 for EdDSA, P-256 for ES256; the kid is random (not derived)."""
    private: PrivateKey = (
        Ed25519PrivateKey.generate() if alg == "EdDSA" else ec.generate_private_key(ec.SECP256R1())
    )
    pem = private.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    return StoredSigningKey(secrets.token_urlsafe(12), alg, now, activates_at, pem)


class SigningKeyStore(Protocol):
    """Where signing keys persist. ``append`` adds ``key`` only if the most recently created key
    is still ``after`` (``None``: the store is empty) and says whether it did: one rotation wins
    when instances race. ``delete`` removes keys by kid (retired ones, or compromised ones).
    ``version`` is a cheap marker that changes whenever the keys do (instances poll it)."""

    async def load(self) -> list[StoredSigningKey]: ...

    async def version(self) -> object: ...

    async def append(self, key: StoredSigningKey, *, after: str | None) -> bool: ...

    async def delete(self, kids: Collection[str]) -> None: ...


def newest_kid(keys: Iterable[StoredSigningKey]) -> str | None:
    ordered = sorted(keys, key=lambda k: (k.created_at, k.kid))
    return ordered[-1].kid if ordered else None


class MemorySigningKeyStore:
    """Keys in this process only (tests, and gateways that accept new keys at each start)."""

    def __init__(self) -> None:
        self._keys: dict[str, StoredSigningKey] = {}
        self._version = 0

    async def load(self) -> list[StoredSigningKey]:
        return list(self._keys.values())

    async def version(self) -> object:
        return self._version

    async def append(self, key: StoredSigningKey, *, after: str | None) -> bool:
        if newest_kid(self._keys.values()) != after:
            return False
        self._keys[key.kid] = key
        self._version += 1
        return True

    async def delete(self, kids: Collection[str]) -> None:
        for kid in kids:
            if self._keys.pop(kid, None) is not None:
                self._version += 1


class FileSigningKeyStore:
    """One ``<kid>.json`` file per key (mode 0600) in a 0700 directory, under ``state_dir``.

    Appends and deletes hold an exclusive ``flock`` on ``.lock`` so that gateway processes on one
    machine rotate once. Files readable by group or others are refused at load (as ssh does).
    """

    def __init__(self, directory: Path) -> None:
        self.directory = directory

    def _ensure_dir(self) -> None:
        try:
            self.directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        except OSError as exc:
            raise StateError(f"signing key directory cannot be created ({exc.strerror})") from None

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        self._ensure_dir()
        fd = os.open(self.directory / ".lock", os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)  # closing releases the lock

    def _read_all(self) -> list[StoredSigningKey]:
        if not self.directory.exists():
            return []
        keys = []
        for path in sorted(self.directory.glob("*.json")):
            info = path.stat()
            if info.st_mode & (stat.S_IRWXG | stat.S_IRWXO):
                raise StateError(
                    f"signing key file {path.name} is accessible to others (chmod 600)"
                )
            try:
                key = StoredSigningKey.from_json(path.read_bytes())
            except (ValueError, KeyError, TypeError, UnicodeError):
                raise StateError(f"signing key file {path.name} is not a bastion key") from None
            if path.stem != key.kid:
                raise StateError(f"signing key file {path.name} does not match its kid")
            keys.append(key)
        return keys

    async def load(self) -> list[StoredSigningKey]:
        return self._read_all()

    async def version(self) -> object:
        """The key files' names: keys are only ever added and removed (never rewritten in
        place), so the set of names changes exactly when the keys do."""
        try:
            return tuple(sorted(p.name for p in self.directory.glob("*.json")))
        except OSError as exc:
            raise StateError(f"signing key directory cannot be read ({exc.strerror})") from None

    async def append(self, key: StoredSigningKey, *, after: str | None) -> bool:
        with self._locked():
            if newest_kid(self._read_all()) != after:
                return False
            temporary = self.directory / f".{key.kid}.tmp"
            fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            try:
                os.write(fd, key.to_json())
                os.fsync(fd)
            finally:
                os.close(fd)
            os.replace(temporary, self.directory / f"{key.kid}.json")
            return True

    async def delete(self, kids: Collection[str]) -> None:
        with self._locked():
            for kid in kids:
                if _KID.match(kid):
                    with contextlib.suppress(FileNotFoundError):
                        (self.directory / f"{kid}.json").unlink()
