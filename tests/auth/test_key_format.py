"""The key format: recognisable prefix, public id, high-entropy secret, CRC32 checksum."""

from __future__ import annotations

import re
import zlib

import pytest

from bastion.auth.keys.format import (
    ALPHABET,
    KEY_LENGTH,
    base62,
    checksum,
    generate,
    key_id_of,
    looks_like_key,
)

SCANNER_REGEX = re.compile(r"\bbst_[0-9A-Za-z]{12}_[0-9A-Za-z]{38}\b")


def test_a_key_has_the_documented_shape_and_its_own_id() -> None:
    key = generate()
    assert len(key.secret) == KEY_LENGTH == 55
    assert SCANNER_REGEX.fullmatch(key.secret)
    assert key.secret.startswith(f"bst_{key.id}_")
    assert key_id_of(key.secret) == key.id


def test_the_checksum_is_crc32_in_base62_so_scanners_can_validate_offline() -> None:
    key = generate().secret
    body, tail = key[:-6], key[-6:]
    value = 0
    for char in tail:
        value = value * 62 + ALPHABET.index(char)
    assert value == zlib.crc32(body.encode())
    assert checksum(body) == tail


def test_keys_are_unique_and_random() -> None:
    made = [generate() for _ in range(2000)]
    assert len({k.secret for k in made}) == len({k.id for k in made}) == 2000
    secrets = "".join(k.secret[17:49] for k in made)
    # ~190 bits per secret: every base62 character shows up, none dominates.
    counts = [secrets.count(c) for c in ALPHABET]
    assert min(counts) > 0.5 * len(secrets) / 62
    assert max(counts) < 1.5 * len(secrets) / 62


@pytest.mark.parametrize("position", [0, 4, 10, 16, 17, 30, 48, 49, 54])
def test_any_single_character_changed_fails_the_checksum(position: int) -> None:
    key = generate().secret
    replacement = "A" if key[position] != "A" else "B"
    tampered = key[:position] + replacement + key[position + 1 :]
    assert key_id_of(tampered) is None


@pytest.mark.parametrize(
    "text",
    [
        "",
        "bst_",
        "x" * 55,
        "ghp_" + "a" * 51,
        "bst_short_key",
        "bst_é23456789012_" + "a" * 38,
        "bst_123456789012-" + "a" * 38,
        "bst_1234567890ab_" + "a" * 37 + "!",
    ],
)
def test_wrong_shapes_have_no_id(text: str) -> None:
    assert key_id_of(text) is None


def test_truncated_and_extended_keys_have_no_id() -> None:
    key = generate().secret
    assert key_id_of(key[:-1]) is None
    assert key_id_of(key + "0") is None
    assert key_id_of(" " + key) is None


def test_the_secret_never_shows_in_a_repr() -> None:
    key = generate()
    assert key.secret not in repr(key)
    assert key.id in repr(key)


def test_base62_pads_to_width() -> None:
    assert base62(0, 6) == "000000"
    assert base62(61, 2) == "0z"
    assert base62(2**32 - 1, 6) == "4gfFC3"


def test_looks_like_key_finds_a_key_inside_text() -> None:
    key = generate().secret
    assert looks_like_key(f"q=1&x={key}&y=2")
    other = "Z" if key[-1] != "Z" else "Y"  # a checksum character that differs, always
    assert not looks_like_key(f"q=1&x={key[:-1]}{other}&y=2")
