"""What a live check talks to the target through: a budgeted, paced HTTP client.

Every request a check makes goes through :meth:`LiveContext.request`, which counts it against the
``--budget``, waits ``pacing`` seconds between requests, and records a reproducible ``curl``
command with the operator's credentials masked, so a finding's evidence can be replayed.

The target may be hostile: every answer is read through :meth:`LiveContext.fetch`, which keeps
at most ``max_body`` bytes of a body (an endless or enormous body costs the scanner nothing more)
and gives the whole exchange ``deadline`` seconds (a body trickled one byte per read timeout
would otherwise hold the audit forever).
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import json
import shlex
import ssl
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote, quote_plus

import httpx

MASK = "****"
MAX_BODY = 1 << 20
"""Bytes of a response body a check keeps: evidence shows 400 characters, and no check needs
more than a JSON document's worth."""


class BudgetExhausted(Exception):
    """The run's request budget is spent; the check reports ``error`` with what it saw so far."""


@dataclass
class LiveContext:
    """The target and the run's limits. ``auth`` holds the operator's ``--auth`` headers (name,
    value); their values are secrets: never put them in a message, only in requests."""

    base_url: str
    client: httpx.AsyncClient
    auth: Sequence[tuple[str, str]] = ()
    document: Mapping[str, Any] | None = None
    profile: str = "api"  # "api" | "browser"
    aggressive: bool = False
    budget: int = 500
    pacing: float = 0.0
    used: int = 0
    # A second identity's ``--auth`` headers, for the per-credential rate-limit isolation check
    # (skipped without it). Secrets, like ``auth``.
    other_auth: Sequence[tuple[str, str]] = ()
    # How the target's certificate is verified, as for the HTTP client (``--ca``): True for the
    # system store, or a context trusting a private CA.
    verify: bool | ssl.SSLContext = True
    # Where plain HTTP is tried; None: the target's host on port 80.
    plain_http_url: str | None = None
    # What one check learned that a sibling check reuses (one burst serves several rate-limit
    # checks), keyed by the family's own names.
    memo: dict[str, Any] = field(default_factory=dict, repr=False)
    max_body: int = MAX_BODY
    # Seconds one exchange (connect, head and the kept body) may take in all; None: three times
    # the client's read timeout.
    deadline: float | None = None
    _last: float = field(default=0.0, repr=False)

    @property
    def remaining(self) -> int:
        return self.budget - self.used

    def url(self, path: str) -> str:
        return self.base_url.rstrip("/") + "/" + path.lstrip("/")

    async def request(
        self,
        method: str,
        path: str,
        *,
        headers: Mapping[str, str] | Sequence[tuple[str, str]] | None = None,
        params: Mapping[str, str] | None = None,
        content: bytes | None = None,
        with_auth: bool = False,
        paced: bool = True,
    ) -> httpx.Response:
        """One request to ``path`` (relative to the base URL), counted against the budget.
        ``paced=False`` is for a rate-limit burst, which pacing would turn into a trickle."""
        await self.spend(paced=paced)
        all_headers = list(self.auth) if with_auth else []
        if headers is not None:
            all_headers.extend(headers.items() if isinstance(headers, Mapping) else headers)
        return await self.fetch(
            method, self.url(path), headers=all_headers, params=params, content=content
        )

    async def fetch(
        self,
        method: str,
        url: str,
        *,
        headers: Sequence[tuple[str, str]] = (),
        params: Mapping[str, str] | None = None,
        content: bytes | None = None,
    ) -> httpx.Response:
        """One exchange with ``url`` (not counted: :meth:`request` and the bare probes count),
        reading at most :attr:`max_body` bytes of the body within :attr:`deadline` seconds.
        The response's ``content`` is what was kept; the rest of the body is never read."""
        request = self.client.build_request(
            method, url, headers=list(headers), params=params, content=content
        )
        limit = self.max_body
        deadline = self.deadline
        if deadline is None:
            deadline = 3 * (self.client.timeout.read or 10.0)
        kept = bytearray()
        try:
            async with asyncio.timeout(deadline):
                response = await self.client.send(request, stream=True)
                try:
                    async for chunk in response.aiter_bytes():
                        kept += chunk[: limit - len(kept)]
                        if len(kept) >= limit:
                            break
                finally:
                    await response.aclose()
        except TimeoutError:
            raise httpx.ReadTimeout(
                f"the answer did not complete within {deadline:g} s", request=request
            ) from None
        response._content = bytes(kept)
        return response

    async def spend(self, *, paced: bool = True) -> None:
        """Count one exchange with the target (a request, or a bare TLS handshake or plain-HTTP
        probe that does not go through :meth:`request`) and wait out the pacing."""
        if self.used >= self.budget:
            raise BudgetExhausted(f"the request budget ({self.budget}) is spent")
        self.used += 1
        if self.pacing and paced:
            wait = self._last + self.pacing - time.monotonic()
            if wait > 0:
                await asyncio.sleep(wait)
            self._last = time.monotonic()

    @property
    def secrets(self) -> list[str]:
        """Every credential value the operator gave, for masking anything shown to a person."""
        return [value for _, value in (*self.auth, *self.other_auth) if value]

    def curl(
        self,
        method: str,
        path: str,
        *,
        headers: Sequence[tuple[str, str]] = (),
        query: str = "",
        body: bytes | None = None,
        with_auth: bool = False,
    ) -> str:
        """A copy-paste ``curl`` for a request, with every operator credential masked (in
        headers and in the query alike, since a check may move one there on purpose)."""
        secrets = self.secrets
        parts = ["curl", "-i", "-X", method]
        sent = [*(self.auth if with_auth else ()), *headers]
        for name, value in sent:
            parts += ["-H", f"{name}: {self.mask(value, secrets)}"]
        if body is not None:
            parts += ["--data-binary", self.mask(body.decode("utf-8", "replace"), secrets)]
        url = self.url(path) + (f"?{self.mask(query, secrets)}" if query else "")
        parts.append(url)
        return " ".join(shlex.quote(p) for p in parts)

    @staticmethod
    def mask(text: str, secrets: Sequence[str]) -> str:
        """``text`` with every form of every secret replaced by :data:`MASK`: as given, its
        credential part alone (``Bearer X`` / ``Basic X``: ``X``), a Basic credential's decoded
        ``user:password`` and password, and each of these percent-encoded (a query string, an
        echoed URL) or JSON-escaped (an echoed body), as a target may send them back."""
        for secret in secrets:
            for form in _forms(secret):
                text = text.replace(form, MASK)
        return text


def _forms(secret: str) -> list[str]:
    """The forms of ``secret`` to mask, longest first (a shorter one may sit inside)."""
    bare = [secret]
    scheme, _, tail = secret.partition(" ")
    tail = tail.strip()
    if tail:
        bare.append(tail)
        if scheme.lower() == "basic":
            try:
                decoded = base64.b64decode(tail, validate=True).decode("utf-8")
            except (binascii.Error, UnicodeDecodeError):
                decoded = ""
            _, colon, password = decoded.partition(":")
            if colon:
                bare += [decoded, password]
    forms: set[str] = set()
    for value in bare:
        forms |= {value, quote(value, safe=""), quote_plus(value), json.dumps(value)[1:-1]}
        forms.add(json.dumps(value, ensure_ascii=False)[1:-1].replace("/", "\\/"))
    return sorted((f for f in forms if f), key=len, reverse=True)
