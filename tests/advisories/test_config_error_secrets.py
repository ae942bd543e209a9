"""Regression: a config error never echoes a URL's user:password or a whole section's contents
(where a secret field would sit unmasked); it still names the field and the expectation."""

from __future__ import annotations

import pytest

from bastion.config import build_config
from bastion.errors import ConfigError

SECRET = "hunter2"


def problems_of(data: dict[str, object]) -> list[str]:
    with pytest.raises(ConfigError) as info:
        build_config(data)
    return info.value.problems


@pytest.mark.parametrize(
    "url",
    [f"http://user:{SECRET}@api:80", f"redis://:{SECRET}@cache/0", f"postgres://u:{SECRET}@db"],
)
def test_config_error_never_echoes_url_password(url: str) -> None:
    problems = problems_of({"routes": [{"name": "a", "upstream": url}]})
    assert len(problems) == 1
    assert problems[0].startswith("routes[0].upstream: got '")
    assert "***@" in problems[0]
    assert SECRET not in problems[0]


def test_config_error_never_echoes_a_whole_section() -> None:
    # A section-level rule fails on the section as a whole: its contents are not shown, since
    # a section may hold secret fields whose own masking would be bypassed.
    problems = problems_of({"events": {"sink": "file", "buffer": 4096}})
    assert problems == ["events: got a mapping; sink 'file' needs events.path"]
    problems = problems_of({"events": {"sink": "file", "buffer": 64, "note": SECRET}})
    assert problems == ["events.note: unknown field; expected one of the documented fields"]


def test_wrong_shapes_say_what_was_expected() -> None:
    assert problems_of({"routes": "x"}) == ["routes: got 'x'; expected a list"]
    assert problems_of({"timeouts": 5}) == ["timeouts: got 5; expected a mapping"]
