"""The request view: lazy, case-insensitive headers and typed shared state."""

from __future__ import annotations

import pytest

from bastion.pipeline.request import ClientAddress, Headers, Request, State, StateKey


def test_headers_decode_lazily_and_keep_every_value() -> None:
    headers = Headers([(b"accept", b"a/b"), (b"x-multi", b"1"), (b"x-multi", b"2")])
    assert headers._index is None
    assert headers.get("x-multi") == "1"
    assert headers.get_all("x-multi") == ["1", "2"]
    assert headers.count("x-multi") == 2
    assert headers.get("missing") is None
    assert headers.get("missing", "d") == "d"
    assert "accept" in headers
    assert "nope" not in headers
    assert list(headers) == [("accept", "a/b"), ("x-multi", "1"), ("x-multi", "2")]
    assert len(headers) == 3


def test_header_values_with_non_ascii_bytes_never_raise() -> None:
    headers = Headers([(b"x-name", b"caf\xe9")])
    assert headers.get("x-name") == "café"


def test_state_is_typed_by_key() -> None:
    identity: StateKey[str] = StateKey("identity")
    count: StateKey[int] = StateKey("count")
    state = State()
    assert state.get(identity) is None
    assert state.get(count, 0) == 0
    state[identity] = "alice"
    assert state[identity] == "alice"
    assert identity in state
    assert count not in state


def test_request_peer_defaults_to_client() -> None:
    request = Request(
        method="GET", path="/", query="", headers=Headers([]), client=ClientAddress("::1", 1)
    )
    assert request.peer == request.client
    assert request.body is None


def test_state_holds_values_by_key_whether_slotted_or_not() -> None:
    keys: list[StateKey[int]] = [StateKey(f"k{n}") for n in range(40)]  # past the slots too
    state = State()
    for key in keys:
        assert key not in state
        assert state.get(key) is None
        assert state.get(key, -1) == -1
        with pytest.raises(KeyError):
            state[key]
    for n, key in enumerate(keys):
        state[key] = n
    for n, key in enumerate(keys):
        assert key in state
        assert state[key] == n
        assert state.get(key, -1) == n
    state[keys[0]] = 0  # a falsy value is still a value
    assert state.get(keys[0], -1) == 0
    assert "k0" not in state  # only keys are keys
    assert State().get(keys[-1]) is None  # another request's state is its own
