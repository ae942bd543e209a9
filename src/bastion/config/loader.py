"""Reads a YAML file into :class:`BastionConfig`, with errors an operator can act on.

Each problem names the field path (``routes[0].upstream``), the value given (masked when the
field holds a secret) and what was expected. ``bastion check-config`` runs this same loader.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from bastion.config.models import BastionConfig
from bastion.errors import ConfigError

_SECRET_WORDS = (
    "secret",
    "password",
    "token",
    "key",
    "credential",
    "dsn",
    "url",
    "authorization",
    "cookie",
)
_MAX_CONFIG_BYTES = 4 * 1024 * 1024


def _is_secret(path: Sequence[str | int]) -> bool:
    names = [p for p in path if isinstance(p, str)]
    return (
        bool(names)
        and any(word in names[-1].lower() for word in _SECRET_WORDS)
        and (names[-1] not in ("upstream", "request_id_header", "openapi"))
    )


def _path_text(path: Sequence[str | int]) -> str:
    text = ""
    for part in path:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else part)
    return text or "(top level)"


_EXPECTED = {
    "tuple_type": "expected a list",
    "list_type": "expected a list",
    "dict_type": "expected a mapping",
    "model_type": "expected a mapping",
    "model_attributes_type": "expected a mapping",
}
_URL_USERINFO = re.compile(r"(?i)\b([a-z][a-z0-9+.-]*://)[^/@\s]*@")


def _shown(value: Any) -> str:
    """The bad value as an operator may see it: never a URL's user:password, never the contents
    of a whole section (it may hold secrets whose own fields are masked), and never long."""
    if isinstance(value, Mapping):
        return "a mapping"
    if isinstance(value, list | tuple):
        return f"a list of {len(value)} items"
    text = _URL_USERINFO.sub(r"\1***@", repr(value))
    return text if len(text) <= 80 else text[:77] + "..."


def format_validation_error(error: ValidationError) -> list[str]:
    problems: list[str] = []
    for item in error.errors(include_url=False):
        path = [p for p in item["loc"] if not (isinstance(p, str) and p.startswith("function-"))]
        message = _EXPECTED.get(item["type"]) or item["msg"].removeprefix("Value error, ")
        where = _path_text(path)
        if item["type"] == "extra_forbidden":
            problems.append(f"{where}: unknown field; expected one of the documented fields")
            continue
        if item["type"] == "missing":
            problems.append(f"{where}: required field is missing")
            continue
        value = item.get("input")
        shown = "'***' (secret, not shown)" if _is_secret(path) else _shown(value)
        if isinstance(value, Mapping) and len(path) == 0:
            problems.append(f"{where}: {message}")
        else:
            problems.append(f"{where}: got {shown}; {message}")
    return problems


def build_config(data: Mapping[str, Any], source: str = "config") -> BastionConfig:
    """Validate already-parsed data (from YAML, a dict or CLI flags)."""
    try:
        return BastionConfig.model_validate(dict(data))
    except ValidationError as exc:
        raise ConfigError(f"{source} is invalid", format_validation_error(exc)) from None


def read_yaml(
    path: Path,
    *,
    what: str = "a YAML config file",
    prefix: str = "",
    max_bytes: int = _MAX_CONFIG_BYTES,
) -> dict[str, Any]:
    """The mapping in the YAML (or JSON) file at ``path``; every failure names file and place.

    ``what`` says what the file should have been, ``prefix`` names the config field that pointed
    to it (``openapi: ``), so that the operator knows which setting to fix.
    """
    name = f"{prefix}{path}"
    try:
        size = os.stat(path).st_size
        if size > max_bytes:
            raise ConfigError(f"{name}: {size} bytes; expected {what} of at most {max_bytes}")
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"{name}: no such file; expected {what}") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{name}: cannot be read ({exc.__class__.__name__}: {exc})") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or "not valid YAML"
        raise ConfigError(f"{name}: {problem}{where}; expected valid YAML or JSON") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"{name}: top level is a {type(data).__name__}; expected a mapping")
    return data


def load_config(path: Path | None, overrides: Mapping[str, Any] | None = None) -> BastionConfig:
    """The file at ``path`` (or embedded defaults) with ``overrides`` laid over its top level."""
    data: dict[str, Any] = read_yaml(path) if path is not None else {}
    if overrides:
        data.update({k: v for k, v in overrides.items() if v is not None})
    return build_config(data, str(path) if path is not None else "configuration")
