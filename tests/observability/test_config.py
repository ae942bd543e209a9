"""The ``events`` section: one sink or several, and errors that name the field."""

from __future__ import annotations

import pytest

from bastion.config.loader import build_config
from bastion.errors import ConfigError


def problems_of(events: dict[str, object]) -> list[str]:
    with pytest.raises(ConfigError) as info:
        build_config({"events": events})
    return info.value.problems


def test_one_sink_or_a_list() -> None:
    assert build_config({}).events.sinks == ("stdout",)
    assert build_config({"events": {"sink": "none"}}).events.sinks == ()
    config = build_config(
        {
            "events": {
                "sink": ["stdout", "file", "http"],
                "path": "/tmp/e.jsonl",
                "http": {"url": "http://127.0.0.1:9200"},
            }
        }
    )
    assert config.events.sinks == ("stdout", "file", "http")
    again = build_config(config.model_dump(mode="json", by_alias=True))
    assert again.events == config.events


@pytest.mark.parametrize(
    ("events", "expected"),
    [
        ({"sink": ["none", "stdout"]}, "sink 'none' cannot be combined with other sinks"),
        ({"sink": "file"}, "sink 'file' needs events.path"),
        ({"sink": ["stdout", "http"]}, "sink 'http' needs events.http.url"),
        ({"http": {"url": "es:9200"}}, "expected a URL starting with http:// or https://"),
        ({"http": {"api_key_env": "not a name"}}, "expected an environment variable name"),
        ({"redact": {"path_patterns": ["(unclosed"]}}, "is not a regular expression"),
        ({"store": {"outcomes": ["maybe"]}}, "events.store.outcomes"),
    ],
)
def test_errors_name_the_field(events: dict[str, object], expected: str) -> None:
    assert any(expected in problem for problem in problems_of(events)), problems_of(events)
