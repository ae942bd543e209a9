"""What a live check talks to the target through: a budgeted, paced HTTP client.

Every request a check makes goes through :meth:`LiveContext.request`, which counts it against the
``--budget``, waits ``pacing`` seconds between requests, and records a reproducible ``curl``
command with the operator's credentials masked, so a finding's evidence can be replayed.
"""

from __future__ import annotations

import asyncio
import shlex
import ssl
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import httpx

MASK = "****"


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
        return await self.client.request(
            method, self.url(path), headers=all_headers, params=params, content=content
        )

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
        for secret in secrets:
            text = text.replace(secret, MASK)
            # a header value "Bearer X" or "Basic X": the credential part alone may travel
            _, _, tail = secret.partition(" ")
            if tail:
                text = text.replace(tail, MASK)
        return text
