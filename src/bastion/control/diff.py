"""What a config reload changed, as a list an operator can read in the audit log, secrets masked.

A value is masked when its field name says it holds a secret (as the loader decides for its
error messages: ``secret``, ``password``, ``token``, ``key``, ``dsn``, ``url``...), and a URL's
``user:password@`` is masked wherever it appears. The diff says *that* such a field changed.
"""

from __future__ import annotations

import re
from typing import Any

from bastion.config.models import BastionConfig

_SECRET_WORDS = ("secret", "password", "token", "key", "credential", "dsn", "url", "hash", "pepper")
_NOT_SECRET = frozenset({"upstream", "request_id_header", "openapi", "key_prefix", "key_dir"})
_URL_USERINFO = re.compile(r"(?i)\b([a-z][a-z0-9+.-]*://)[^/@\s]*@")
MASK = "***"


def _secret(name: str) -> bool:
    lowered = name.lower()
    return lowered not in _NOT_SECRET and any(word in lowered for word in _SECRET_WORDS)


def _flatten(value: Any, path: str, out: dict[str, tuple[Any, bool]], secret: bool) -> None:
    """Leaves as ``path -> (raw value, secret?)``."""
    if isinstance(value, dict):
        if not value:
            out[path] = ({}, False)
        for key, item in value.items():
            _flatten(item, f"{path}.{key}" if path else str(key), out, secret or _secret(str(key)))
        return
    if isinstance(value, list):
        if not value:
            out[path] = ([], False)
        for index, item in enumerate(value):
            name = item.get("name") if isinstance(item, dict) else None
            label = f"{path}[{name}]" if isinstance(name, str) else f"{path}[{index}]"
            _flatten(item, label, out, secret)
        return
    out[path] = (value, secret and value is not None)


def _shown(leaf: tuple[Any, bool]) -> Any:
    value, secret = leaf
    if secret:
        return MASK
    if isinstance(value, str):
        return _URL_USERINFO.sub(r"\1***@", value)
    return value


def _leaves(config: BastionConfig) -> dict[str, tuple[Any, bool]]:
    out: dict[str, tuple[Any, bool]] = {}
    _flatten(config.model_dump(mode="json"), "", out, False)
    return out


def flatten(config: BastionConfig) -> dict[str, Any]:
    """Every leaf of ``config`` as ``path -> value`` (lists of named items by name), masked."""
    return {path: _shown(leaf) for path, leaf in _leaves(config).items()}


def config_diff(old: BastionConfig, new: BastionConfig) -> list[dict[str, Any]]:
    """``[{"path", "change": added|removed|changed, "old", "new"}]``, secrets as ``***``."""
    before, after = _leaves(old), _leaves(new)
    changes: list[dict[str, Any]] = []
    for path in sorted(before.keys() | after.keys()):
        if path not in after:
            changes.append({"path": path, "change": "removed", "old": _shown(before[path])})
        elif path not in before:
            changes.append({"path": path, "change": "added", "new": _shown(after[path])})
        elif before[path][0] != after[path][0]:
            changes.append(
                {
                    "path": path,
                    "change": "changed",
                    "old": _shown(before[path]),
                    "new": _shown(after[path]),
                }
            )
    return changes
