"""Where credentials may be: in headers, once. Never in the URL, never two at a time.

A credential in a query string ends up in browser history, proxy and server access logs and
``Referer`` headers (RFC 6750 §5.3, RFC 9700 §2.5), so a request carrying one is refused with
400 ``auth.credentials_in_query`` before any credential is checked, and it is never forwarded.
Parameters are matched by name (``auth.query_credential_names``, compared without case, ``-``,
``_`` or a trailing ``[]``, so ``apiKey``, ``API-KEY`` and ``api_key[]`` are one name) and by
value: anything shaped like a bastion key or a signed JWT is refused under any name. The denial
and its event name only the matched configured name; the value never reaches a response, an
event or a log line.

Two credentials in one request (two ``Authorization`` fields, two key headers, or a key header
beside ``Authorization``) are refused with 400 ``auth.ambiguous_credentials``: which one would
decide is exactly the kind of question an attacker exploits (a proxy and an upstream may
answer it differently).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import ClassVar, Final
from urllib.parse import unquote_plus

from bastion.auth.keys.format import looks_like_key
from bastion.config.auth import AuthConfig
from bastion.pipeline.decisions import ALLOW, Decision, Deny
from bastion.pipeline.guard import Phase
from bastion.pipeline.request import Request

_SEPARATORS = re.compile(r"[&;]")
_JWT = re.compile(r"eyJ[A-Za-z0-9_-]{4,}\.eyJ[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]*")

_MEMO_ENTRIES: Final = 256
_MEMO_LENGTH: Final = 128
IN_QUERY_DETAIL = "Credentials must be sent in a request header, never in the URL query string."
AMBIGUOUS_DETAIL = "The request carries more than one credential; send exactly one."


def normalise(name: str) -> str:
    """A parameter name as compared: lower case, without ``-``, ``_``, ``.`` or trailing ``[]``."""
    name = name.strip().lower()
    while name.endswith("[]"):
        name = name[:-2]
    return name.replace("-", "").replace("_", "").replace(".", "")


def name_pattern(names: frozenset[str]) -> re.Pattern[str]:
    """One regular expression that finds any of the normalised ``names`` as a parameter name in
    a raw query (case, ``-``, ``_``, ``.`` and a trailing ``[]`` ignored, as :func:`normalise`)."""
    sep = r"[-_.]*"
    alternatives = sorted(
        (sep.join(re.escape(char) for char in name) for name in names), key=len, reverse=True
    )
    return re.compile(
        rf"(?:^|[&;])\s*{sep}((?:{'|'.join(alternatives)}){sep})(?:\[\])*\s*(?:[=&;]|$)",
        re.IGNORECASE,
    )


def query_credential(query: str, names: frozenset[str], pattern: re.Pattern[str]) -> str | None:
    """What in ``query`` is a credential: the normalised parameter name, ``value:api_key`` or
    ``value:jwt``; ``None`` when nothing is. ``pattern`` is :func:`name_pattern` of ``names``."""
    found = pattern.search(query)
    if found is not None:
        return normalise(found.group(1))
    encoded = "%" in query or "+" in query
    if encoded:  # names may be percent-encoded (api%5Fkey): decode each one and compare
        for part in _SEPARATORS.split(query):
            normal = normalise(unquote_plus(part.partition("=")[0]))
            if normal in names:
                return normal
    if "bst_" in query or "eyJ" in query or encoded:
        text = unquote_plus(query) if encoded else query
        if "bst_" in text and looks_like_key(text):
            return "value:api_key"
        if "eyJ" in text and _JWT.search(text):
            return "value:jwt"
    return None


def _deny(status: int, code: str, detail: str, fields: dict[str, object]) -> Deny:
    return Deny(status, code, "Bad Request", detail, fields=fields)


class CredentialPlacement:
    """The ``credential_placement`` guard: first of the authenticate phase, on every request."""

    name: ClassVar[str] = "credential_placement"
    phase: ClassVar[Phase] = Phase.AUTHENTICATE
    requires_body: ClassVar[bool] = False

    def __init__(self, config: AuthConfig) -> None:
        self.fail_open = False
        self.key_header = config.api_keys.header if config.api_keys.enabled else None
        self._key_bytes = self.key_header.encode("ascii") if self.key_header else b"authorization"
        names: Iterable[str] = config.query_credential_names
        if self.key_header is not None:
            names = [*names, self.key_header]
        self.names = frozenset(normalise(n) for n in names)
        self.pattern = name_pattern(self.names)
        self._in_query: dict[str, Deny] = {}
        # For clean_query: the names no other name contains (``key`` covers ``apikey``).
        self._needles = tuple(
            sorted(n for n in self.names if not any(o != n and o in n for o in self.names))
        )
        self._plain_names = bool(self.names) and all(n.isascii() and n for n in self.names)
        self._clean: set[str] = set()
        """Short queries :meth:`clean_query` passed lately (``?page=2`` comes back often): a
        set lookup instead of the scan. Exact, since the answer depends on the query alone;
        bounded, and it holds only queries that carry no credential."""

    def clean_query(self, query: str) -> bool:
        """Whether ``query`` certainly holds no credential, decided without the regular
        expressions: an ASCII query without ``%``, ``+``, ``bst_`` or ``eyJ`` in which no
        configured name occurs, even with case and ``-``, ``_``, ``.`` ignored. Every match of
        :func:`query_credential` needs one of those, so a false answer only means "look
        closer", and a true one is exact. (Non-ASCII text goes the long way: case-insensitive
        matching knows folds, such as the Kelvin sign, that lower() does not.)"""
        if not self._plain_names or not query.isascii():
            return False
        if "%" in query or "+" in query or "bst_" in query or "eyJ" in query:
            return False
        folded = query.lower()
        if "-" in folded or "_" in folded or "." in folded:
            folded = folded.replace("-", "").replace("_", "").replace(".", "")
        return all(needle not in folded for needle in self._needles)

    def _remember(self, query: str) -> None:
        if len(query) <= _MEMO_LENGTH:
            clean = self._clean
            if len(clean) >= _MEMO_ENTRIES:
                clean.clear()
            clean.add(query)

    def in_query(self, what: str) -> Deny:
        deny = self._in_query.get(what)
        if deny is None:
            deny = self._in_query[what] = _deny(
                400, "auth.credentials_in_query", IN_QUERY_DETAIL, {"parameter": what}
            )
        return deny

    def check(self, request: Request) -> Decision:
        query = request.query
        if query and query not in self._clean:
            if self.clean_query(query):
                self._remember(query)
            else:
                found = query_credential(query, self.names, self.pattern)
                if found is not None:
                    return self.in_query(found)
        key_header = self._key_bytes
        count = 0
        for name, _ in request.headers.raw:  # raw bytes: no other field is decoded
            if name == b"authorization" or name == key_header:
                count += 1
        if count > 1:
            headers = request.headers
            present = ["authorization"] * headers.count("authorization")
            if self.key_header is not None:
                present += [self.key_header] * headers.count(self.key_header)
            return _deny(400, "auth.ambiguous_credentials", AMBIGUOUS_DETAIL, {"headers": present})
        return ALLOW
