"""Responses bastion produces itself: denials, errors, and local endpoints (admin, health)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Protocol

from bastion.pipeline.request import Request


@dataclass(frozen=True, slots=True)
class Response:
    """A complete response held in memory. Header names are lower-case ``str``."""

    status: int
    headers: tuple[tuple[str, str], ...] = ()
    body: bytes = b""


class Endpoint(Protocol):
    """A route answered by bastion itself instead of an upstream (health, metrics, tokens)."""

    requires_body: bool

    async def __call__(self, request: Request) -> Response: ...


EndpointFunc = Callable[[Request], Awaitable[Response]]


class FunctionEndpoint:
    """Wraps a plain ``async def handler(request) -> Response`` as an :class:`Endpoint`."""

    __slots__ = ("func", "requires_body")

    def __init__(self, func: EndpointFunc, *, requires_body: bool = False) -> None:
        self.func = func
        self.requires_body = requires_body

    async def __call__(self, request: Request) -> Response:
        return await self.func(request)
