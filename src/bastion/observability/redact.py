"""Redaction by construction: every event passes through here on its way to any sink.

No event carries a header, a cookie, a query string or a body: the access record captures the
method, the path and counts only, and guards pass only chosen fields. What is left that a client
controls (the path, a reason, field values) is scrubbed of anything shaped like a credential, and
fields whose *name* says secret are replaced whatever their value. The writer thread formats every
event through one :class:`Redactor`, so a new sink cannot forget it.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any

REDACTED = "[REDACTED]"

# Names (lower-case, '-' read as '_') whose values never appear, whatever they hold.
SECRET_NAMES = frozenset(
    {
        "authorization",
        "proxy_authorization",
        "cookie",
        "set_cookie",
        "api_key",
        "apikey",
        "x_api_key",
        "key",
        "secret",
        "client_secret",
        "password",
        "passwd",
        "pwd",
        "token",
        "credential",
        "credentials",
        "private_key",
        "session",
        "sessionid",
        "signature",
    }
)
_SECRET_PARTS = ("password", "passwd", "secret", "authorization", "cookie", "credential")

# Credential shapes a client may put anywhere: bastion API keys, JWTs (also JWE), HTTP
# authorization values, and name=value pairs whose name says secret.
_VALUE_PATTERNS = (
    r"bst_[0-9A-Za-z]{6,}_[0-9A-Za-z]{6,}",
    r"eyJ[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]{4,}(?:\.[A-Za-z0-9_-]*){1,3}",
    r"(?i:\b(?:bearer|basic|digest|apikey|token)\s+)[A-Za-z0-9._~+/=-]{8,}",
    r"(?i:(?:api[_-]?key|access[_-]?token|refresh[_-]?token|id[_-]?token|token|password|passwd"
    r"|secret|client[_-]?secret|auth|session|sig|signature)=)[^&\s;]+",
)
# A path segment that looks like a random secret: long, letters and digits mixed. A UUID is an
# identifier people search logs for, so it is kept.
_RANDOM_SEGMENT = (
    r"(?<=/)(?![0-9a-fA-F]{8}-(?:[0-9a-fA-F]{4}-){3}[0-9a-fA-F]{12}(?:/|$))"
    r"(?=[^/]*[0-9])(?=[^/]*[A-Za-z])[A-Za-z0-9_.~%+=-]{24,}"
)
SHORTEST_SECRET = 20  # a path shorter than this cannot hold a pattern above
_CACHE = 4096  # names and short texts remembered (the writer thread is the only user)


def _normal(name: str) -> str:
    return name.lower().replace("-", "_")


class Redactor:
    """Scrubs event text; ``fields`` and ``path_patterns`` extend the built-in rules."""

    def __init__(self, fields: Iterable[str] = (), path_patterns: Iterable[str] = ()) -> None:
        self.names = SECRET_NAMES | {_normal(f) for f in fields}
        self._names: dict[str, bool] = {}
        self._texts: dict[str, str] = {}
        self._values = re.compile("|".join(_VALUE_PATTERNS))
        extra = tuple(path_patterns)
        self._path = re.compile("|".join((*_VALUE_PATTERNS, _RANDOM_SEGMENT, *extra)))
        self.custom_paths = bool(extra)

    def secret_name(self, name: str) -> bool:
        known = self._names.get(name)
        if known is None:
            normal = _normal(name)
            known = (
                normal in self.names
                or normal.endswith("token")
                or any(part in normal for part in _SECRET_PARTS)
            )
            if len(self._names) < _CACHE:
                self._names[name] = known
        return known

    def text(self, value: str) -> str:
        """``value`` with every credential-shaped part replaced."""
        if len(value) < 8 or value.isalnum():  # every pattern needs one of "_.= " too
            return value
        done = self._texts.get(value)
        if done is None:
            done = self._values.sub(REDACTED, value)
            if len(value) <= 256:  # reasons, key ids, consumers: few, and they repeat
                if len(self._texts) >= _CACHE:
                    self._texts.clear()
                self._texts[value] = done
        return done

    def request_id(self, value: str) -> str:
        """A request id: bastion's own are short and safe; a longer one (from a trusted proxy)
        is scrubbed like text, without filling the cache (every id is new)."""
        if len(value) < SHORTEST_SECRET or value.isalnum():  # every pattern needs "_.= " too
            return value
        return self._values.sub(REDACTED, value)

    def path(self, path: str) -> str:
        """A URL path with credential-shaped or random-looking segments replaced."""
        if len(path) < SHORTEST_SECRET and not self.custom_paths:
            return path
        return self._path.sub(REDACTED, path)

    def fields(self, fields: Mapping[str, Any]) -> dict[str, Any]:
        """A copy of ``fields`` with secret-named entries replaced and text values scrubbed."""
        return {name: self.value(name, value) for name, value in fields.items()}

    def value(self, name: str, value: Any) -> Any:
        if self.secret_name(name):
            return REDACTED
        if isinstance(value, str):
            return self.text(value)
        if isinstance(value, Mapping):
            return self.fields(value)
        if isinstance(value, list | tuple):
            return [self.value(name, item) for item in value]
        return value
