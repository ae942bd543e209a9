"""What a config reload changed, as a list an operator can read in the audit log, secrets masked.

A value is masked when its field name says it holds a secret (as the loader decides for its
error messages: ``secret``, ``password``, ``token``, ``key``, ``dsn``, ``url``, ``hash``...), and
a URL's ``user:password@`` is masked wherever it appears. The diff says *that* such a field
changed, never what it changed from or to.
"""

from __future__ import annotations

import re
from typing import Any

from bastion.config.models import BastionConfig

_SECRET_WORDS = ("secret", "password", "token", "key", "credential", "dsn", "url", "hash", "pepper")
# Names that match a secret word but hold settings, not secrets (shown so a diff stays useful).
_NOT_SECRET = frozenset(
    {
        "upstream",
        "request_id_header",
        "openapi",
        "key_prefix",
        "key_dir",
        "key_id",
        "max_keys",
        "forward_credentials",
        "query_credential_names",
        "token_lifetime",
        "max_token_lifetime",
        "max_token_size",
    }
)
_URL_USERINFO = re.compile(r"(?i)\b([a-z][a-z0-9+.-]*://)[^/@\s]*@")
MASK = "***"


def _secret(name: str) -> bool:
    lowered = name.lower()
    return lowered not in _NOT_SECRET and any(word in lowered for word in _SECRET_WORDS)


def _flatten(value: Any, path: str, out: dict[str, tuple[Any, bool]], name: str) -> None:
    """Leaves as ``path -> (raw value, secret?)``; ``name`` is the nearest field name, which
    decides (as in the loader's errors) whether the leaf holds a secret."""
    if isinstance(value, dict):
        if not value:
            out[path] = ({}, False)
        for key, item in value.items():
            _flatten(item, f"{path}.{key}" if path else str(key), out, str(key))
        return
    if isinstance(value, list):
        if not value:
            out[path] = ([], False)
        for index, item in enumerate(value):
            label = item.get("name") if isinstance(item, dict) else None
            where = f"{path}[{label}]" if isinstance(label, str) else f"{path}[{index}]"
            _flatten(item, where, out, name)
        return
    out[path] = (value, _secret(name) and value is not None)


def _shown(leaf: tuple[Any, bool]) -> Any:
    value, secret = leaf
    if secret:
        return MASK
    if isinstance(value, str):
        return _URL_USERINFO.sub(r"\1***@", value)
    return value


def _leaves(config: BastionConfig) -> dict[str, tuple[Any, bool]]:
    out: dict[str, tuple[Any, bool]] = {}
    _flatten(config.model_dump(mode="json"), "", out, "")
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
