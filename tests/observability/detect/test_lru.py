"""The detectors' memory bound: a mapping that forgets its least recently used key."""

from __future__ import annotations

import gc

import pytest

from bastion.observability.detect.lru import Lru


def test_forgets_the_least_recently_used_key() -> None:
    lru: Lru[str, int] = Lru(3)
    for n, key in enumerate("abc"):
        lru.put(key, n)
    assert lru.get("a") == 0  # a is now the most recent: b goes first
    lru.put("d", 3)
    assert "b" not in lru
    assert lru.get("b") is None
    assert lru.keys() == ["c", "a", "d"]
    assert (len(lru), lru.evicted) == (3, 1)
    lru.put("c", 20)  # an update marks the key as used too
    lru.put("e", 4)
    assert lru.keys() == ["d", "c", "e"]
    assert lru.get("c") == 20
    assert lru.evicted == 2


def test_a_capacity_of_one_keeps_the_last_key() -> None:
    lru: Lru[tuple[str, str], str] = Lru(1)
    lru.put(("a", "1"), "x")
    assert lru.get(("a", "1")) == "x"
    lru.put(("b", "2"), "y")
    assert lru.keys() == [("b", "2")]
    assert lru.get(("a", "1")) is None


def test_the_order_stays_consistent_under_any_sequence() -> None:
    """Against a plain reference model, over a long mixed sequence of gets and puts."""
    lru: Lru[int, int] = Lru(8)
    model: list[int] = []  # least recently used first
    values: dict[int, int] = {}
    state = 12345
    for step in range(5000):
        state = (state * 1103515245 + 12345) % 2**31
        key = state % 13
        if state % 3:
            lru.put(key, step)
            values[key] = step
            if key in model:
                model.remove(key)
            model.append(key)
            if len(model) > 8:
                values.pop(model.pop(0))
        else:
            found = lru.get(key)
            assert found == values.get(key)
            if key in model:
                model.remove(key)
                model.append(key)
        assert lru.keys() == model


def test_refuses_a_capacity_under_one() -> None:
    with pytest.raises(ValueError, match="at least 1"):
        Lru(0)


def test_a_large_lru_is_freed_without_trouble() -> None:
    """The entries link to each other: dropping 200,000 of them must not recurse deeply."""
    lru: Lru[int, int] = Lru(200_000)
    for n in range(200_000):
        lru.put(n, n)
    del lru
    gc.collect()
