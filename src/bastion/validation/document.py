"""Loading an OpenAPI document: read once at start, refused with a precise reason when broken."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml

from bastion.errors import ConfigError

_MAX_DOCUMENT_BYTES = 64 * 1024 * 1024
_VERSION = re.compile(r"^3\.[01]\.\d+$")


def load_document(path: Path) -> dict[str, Any]:
    """The parsed document at ``path`` (YAML or JSON), checked to be OpenAPI 3.0 or 3.1."""
    try:
        if path.stat().st_size > _MAX_DOCUMENT_BYTES:
            raise ConfigError(f"openapi: {str(path)!r} is over 64 MiB; expected a smaller document")
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(
            f"openapi: {str(path)!r} does not exist; expected an OpenAPI file"
        ) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"openapi: {str(path)!r} cannot be read ({exc})") from None
    try:
        document = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        raise ConfigError(f"openapi: {str(path)!r} is not valid YAML or JSON{where}") from None
    if not isinstance(document, dict):
        raise ConfigError(f"openapi: {str(path)!r} top level is not a mapping")
    version = str(document.get("openapi", ""))
    if not _VERSION.match(version):
        raise ConfigError(
            f"openapi: {str(path)!r} has openapi {version or '(missing)'!r};"
            " expected 3.0.x or 3.1.x"
        )
    if not isinstance(document.get("paths", {}), dict):
        raise ConfigError(f"openapi: {str(path)!r} paths is not a mapping")
    return document
