"""The ``security_headers`` guard: what every response carries, whatever the upstream sent."""

from __future__ import annotations

from typing import ClassVar

from bastion.pipeline.decisions import ALLOW, Decision
from bastion.pipeline.guard import Phase
from bastion.pipeline.request import Request


class SecurityHeaders:
    """Adds ``X-Content-Type-Options: nosniff`` and replaces any ``Server`` header.

    A ``Server`` header naming software and version helps an attacker pick an exploit, so the
    upstream's is removed and, only when configured, a fixed one is sent instead.
    """

    name: ClassVar[str] = "security_headers"
    phase: ClassVar[Phase] = Phase.RESPOND
    requires_body: ClassVar[bool] = False

    def __init__(self, server_header: str | None = None) -> None:
        self.fail_open = False
        self.server_header = server_header

    def check(self, request: Request) -> Decision:
        return ALLOW

    def on_response(self, request: Request, status: int, headers: list[tuple[str, str]]) -> None:
        headers[:] = [(n, v) for n, v in headers if n not in ("server", "x-powered-by")]
        if not any(n == "x-content-type-options" for n, _ in headers):
            headers.append(("x-content-type-options", "nosniff"))
        if self.server_header:
            headers.append(("server", self.server_header))
