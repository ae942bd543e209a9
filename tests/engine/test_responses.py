"""Response heads: guards' header lines, remembered by their value's identity, never stale."""

from __future__ import annotations

from bastion.engine.responses import _header_line


def test_a_header_line_follows_its_value() -> None:
    policy = '"per-ip";q=3;w=60'
    assert _header_line("ratelimit-policy", policy) == b'ratelimit-policy: "per-ip";q=3;w=60\r\n'
    assert _header_line("ratelimit-policy", policy) is _header_line("ratelimit-policy", policy)
    for remaining in (2, 1, 0):
        value = f'"per-ip";r={remaining};t=20'
        assert _header_line("ratelimit", value) == f"ratelimit: {value}\r\n".encode()
    equal_but_new = "".join(['"per-ip";', "q=3;w=60"])
    expected = _header_line("ratelimit-policy", policy)
    assert _header_line("ratelimit-policy", equal_but_new) == expected
    assert _header_line("x-other", "é") == b"x-other: \xe9\r\n"
