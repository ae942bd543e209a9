"""The config loader: defaults need no file; every error names field, value and expectation."""

from __future__ import annotations

from pathlib import Path

import pytest

from bastion.config import build_config, load_config
from bastion.config.types import parse_duration, parse_size
from bastion.errors import ConfigError


def problems_of(data: dict[str, object]) -> list[str]:
    with pytest.raises(ConfigError) as info:
        build_config(data)
    return info.value.problems


def test_embedded_defaults_are_safe() -> None:
    config = load_config(None)
    assert str(config.listen) == "127.0.0.1:8080"
    assert str(config.admin.listen) == "127.0.0.1:9901"
    assert config.proxy.trusted_proxies == ()
    assert config.responses.mask_upstream_errors is True
    assert config.responses.server_header is None
    assert config.limits.max_headers == 100
    assert config.state_dir == Path(".bastion")


def test_every_problem_is_listed_with_path_value_and_expectation() -> None:
    problems = problems_of(
        {
            "routes": [{"name": "a", "upstream": "ftp://x"}],
            "timeouts": {"idle": "soon"},
            "limits": {"max_headers": 0},
            "bogus": 1,
        }
    )
    assert "routes[0].upstream: got 'ftp://x'; expected an http:// or https:// URL" in problems[0]
    assert any(p.startswith("timeouts.idle: got 'soon'; expected a duration") for p in problems)
    assert any(p.startswith("limits.max_headers: got 0;") for p in problems)
    assert "bogus: unknown field; expected one of the documented fields" in problems


def test_upstream_with_credentials_is_refused_without_echoing_them() -> None:
    problems = problems_of({"routes": [{"name": "a", "upstream": "http://u:hunter2@api:80"}]})
    assert "expected a URL without user:password" in problems[0]


def test_secret_values_are_masked_in_errors() -> None:
    from bastion.config.loader import _is_secret

    assert _is_secret(["auth", "client_secret"])
    assert _is_secret(["redis", "password"])
    assert not _is_secret(["routes", 0, "upstream"])


def test_duplicate_routes_and_admin_on_public_port_are_refused() -> None:
    up = "http://127.0.0.1:9000"
    problems = problems_of(
        {"routes": [{"name": "a", "upstream": up}, {"name": "a", "upstream": up}]}
    )
    assert "route name 'a' is used twice" in problems[0]
    problems = problems_of(
        {
            "routes": [
                {"name": "a", "upstream": up, "path_prefix": "/x"},
                {"name": "b", "upstream": up, "path_prefix": "/x"},
            ]
        }
    )
    assert "two routes match host * and path_prefix '/x'" in problems[0]
    problems = problems_of({"listen": "127.0.0.1:9901"})
    assert "admin.listen equals listen" in problems[0]


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("path_prefix", "api"),
        ("path_prefix", "/a/../b"),
        ("host", "bad host!"),
        ("name", "Has Spaces"),
    ],
)
def test_route_fields_are_checked(field: str, value: str) -> None:
    route = {"name": "a", "upstream": "http://127.0.0.1:1", field: value}
    problems = problems_of({"routes": [route]})
    assert problems[0].startswith(f"routes[0].{field}: got {value!r};")


def test_yaml_file_errors_name_the_place(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("listen: [unclosed\n")
    with pytest.raises(ConfigError, match=r"bad.yaml: .* at line \d+, column \d+"):
        load_config(bad)
    with pytest.raises(ConfigError, match="no such file"):
        load_config(tmp_path / "missing.yaml")
    listed = tmp_path / "list.yaml"
    listed.write_text("- a\n- b\n")
    with pytest.raises(ConfigError, match="top level is a list; expected a mapping"):
        load_config(listed)


def test_file_and_overrides(tmp_path: Path) -> None:
    path = tmp_path / "bastion.yaml"
    path.write_text(
        "listen: 0.0.0.0:8443\n"
        "routes:\n  - name: api\n    upstream: http://127.0.0.1:9000\n"
        "proxy:\n  trusted_proxies: [10.0.0.0/8, '::1']\n"
        "timeouts: {header_read: 500ms, idle: 2m}\n"
        "limits: {max_body_bytes: 1MiB}\n"
    )
    config = load_config(path, {"workers": 4, "listen": None})
    assert str(config.listen) == "0.0.0.0:8443"
    assert config.workers == 4
    assert config.timeouts.header_read == 0.5
    assert config.timeouts.idle == 120.0
    assert config.limits.max_body_bytes == 1024 * 1024
    assert [str(n) for n in config.proxy.trusted_proxies] == ["10.0.0.0/8", "::1/128"]


def test_config_is_frozen() -> None:
    config = load_config(None)
    with pytest.raises(ValueError, match="frozen"):
        config.workers = 3  # type: ignore[misc]


@pytest.mark.parametrize(
    ("text", "seconds"), [(5, 5.0), ("250ms", 0.25), ("10s", 10.0), ("2m", 120.0), ("1h", 3600.0)]
)
def test_durations(text: object, seconds: float) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize(
    ("text", "size"), [(10, 10), ("64KiB", 65536), ("1MB", 1_000_000), ("2m", 2 * 1024**2)]
)
def test_sizes(text: object, size: int) -> None:
    assert parse_size(text) == size


@pytest.mark.parametrize("bad", ["-1s", "ten", True, None])
def test_bad_durations(bad: object) -> None:
    with pytest.raises(ValueError, match="duration"):
        parse_duration(bad)
