"""Exchange observers: guards that take each completed exchange as plain values.

A completion hook (``on_complete``) reads what it needs from the request once the response is
sent. A host that already holds those values when an exchange completes (the engine, which
writes them to the access event) hands them to the chain's observer instead
(:attr:`~bastion.pipeline.chain.GuardChain.observer`) and asks the chain for the other hooks
only (``on_complete(..., observed=True)``), so the observer sees each exchange once. A host that
does not (the ASGI middleware) calls every hook, the observer's ``on_complete`` included.

A base class rather than a protocol: compiled (setup.py), the engine's call is then a direct one.
"""

from __future__ import annotations

from bastion.pipeline.request import Request


class ExchangeObserver:
    def exchange(
        self,
        request: Request,
        consumer: str | None,
        route: str,
        ip: str,
        status: int,
        request_bytes: int,
        bytes_sent: int,
        wall: float | None,
    ) -> None:
        """One completed exchange: its consumer, route name and client address as the chain
        found them, its bodies' sizes, and the wall clock's time if the host read it."""
        raise NotImplementedError
