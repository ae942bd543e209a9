"""Keys at rest: HMAC-SHA256 under a pepper kept apart from the store."""

from __future__ import annotations

import hashlib
import hmac
import os
import stat
import threading
from pathlib import Path

import pytest

from bastion.auth.keys.hashing import PEPPER_ENV, KeyHasher, load_pepper, read_pepper
from bastion.errors import StateError


@pytest.mark.parametrize("pepper", [b"p" * 32, b"q" * 64, b"r" * 100])
def test_the_digest_is_exactly_hmac_sha256(pepper: bytes) -> None:
    hasher = KeyHasher(pepper)
    key = "bst_abcdefABCDEF_" + "x" * 38
    assert hasher.digest(key) == hmac.digest(pepper, key.encode(), hashlib.sha256)
    assert hasher.hexdigest(key) == hasher.digest(key).hex()


def test_another_pepper_gives_another_digest_and_fingerprint() -> None:
    a, b = KeyHasher(b"a" * 32), KeyHasher(b"b" * 32)
    assert a.digest("k") != b.digest("k")
    assert a.fingerprint != b.fingerprint
    assert KeyHasher(b"a" * 32).fingerprint == a.fingerprint
    assert "a" * 32 not in repr(a)


def test_a_short_pepper_is_refused() -> None:
    with pytest.raises(StateError, match="at least 32"):
        KeyHasher(b"short")


def test_the_pepper_file_is_created_owner_only_and_reused(tmp_path: Path) -> None:
    path = tmp_path / "state" / "api-key-pepper"
    assert read_pepper(path, create=False) is None
    first = read_pepper(path, create=True)
    assert first is not None
    assert len(first) >= 32
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert read_pepper(path, create=True) == first
    assert [p.name for p in path.parent.iterdir()] == ["api-key-pepper"]  # no temporary left


def test_processes_creating_the_pepper_at_once_agree(tmp_path: Path) -> None:
    path = tmp_path / "api-key-pepper"
    results: list[bytes | None] = []
    threads = [
        threading.Thread(target=lambda: results.append(read_pepper(path, create=True)))
        for _ in range(8)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(set(results)) == 1


def test_a_pepper_file_others_may_read_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "api-key-pepper"
    path.write_bytes(b"x" * 40)
    os.chmod(path, 0o644)
    with pytest.raises(StateError, match="expected 600"):
        read_pepper(path, create=False)


def test_the_environment_pepper_wins(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(PEPPER_ENV, "e" * 40)
    assert load_pepper(tmp_path / "none", create=True) == b"e" * 40
    assert not (tmp_path / "none").exists()
    monkeypatch.setenv(PEPPER_ENV, "short")
    with pytest.raises(StateError) as caught:
        load_pepper(tmp_path / "none", create=True)
    assert "short" not in str(caught.value)
