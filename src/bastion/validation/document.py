"""Loading an OpenAPI document: read once at start, refused with a precise reason when broken."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from bastion.config.loader import read_yaml
from bastion.errors import ConfigError

_MAX_DOCUMENT_BYTES = 64 * 1024 * 1024
_VERSION = re.compile(r"^3\.[01]\.\d+$")


def load_document(path: Path) -> dict[str, Any]:
    """The parsed document at ``path`` (YAML or JSON), checked to be OpenAPI 3.0 or 3.1."""
    document = read_yaml(
        path, what="an OpenAPI document", prefix="openapi: ", max_bytes=_MAX_DOCUMENT_BYTES
    )
    version = str(document.get("openapi", ""))
    if not _VERSION.match(version):
        raise ConfigError(
            f"openapi: {path}: has openapi {version or '(missing)'!r}; expected 3.0.x or 3.1.x"
        )
    if not isinstance(document.get("paths", {}), dict):
        raise ConfigError(f"openapi: {path}: paths is not a mapping; expected a mapping")
    return document
