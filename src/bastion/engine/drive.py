"""Run a coroutine synchronously when it never waits, so a request costs no Task in that case.

A chain of synchronous guards still goes through ``async def GuardChain.run``; creating a Task for
each request would cost more than the guards. :func:`start` steps the coroutine once: if it
finishes, the result is returned at once; if it waits, a Task takes over from where it stopped.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine, Generator
from typing import Any, TypeVar

T = TypeVar("T")


class Pending:
    """Marks a coroutine that did not finish in its first step; its Task calls back later."""

    __slots__ = ("task",)

    def __init__(self, task: asyncio.Task[Any]) -> None:
        self.task = task


class _Resume:
    """An awaitable that hands a half-run coroutine's waits to the running Task."""

    __slots__ = ("coro", "first")

    def __init__(self, coro: Coroutine[Any, Any, Any], first: Any) -> None:
        self.coro = coro
        self.first = first

    def __await__(self) -> Generator[Any, Any, Any]:
        yielded = self.first
        while True:
            try:
                sent = yield yielded
            except BaseException as exc:  # cancellation or throw: pass it to the coroutine
                try:
                    yielded = self.coro.throw(exc)
                except StopIteration as stop:
                    return stop.value
                continue
            try:
                yielded = self.coro.send(sent)
            except StopIteration as stop:
                return stop.value


async def _finish(coro: Coroutine[Any, Any, T], first: Any) -> T:
    result: T = await _Resume(coro, first)
    return result


def start(coro: Coroutine[Any, Any, T], done: Callable[[asyncio.Task[T]], None]) -> T | Pending:
    """The coroutine's result if it completes without waiting, else a :class:`Pending` whose Task
    calls ``done`` when it completes. Exceptions of the first step propagate to the caller."""
    try:
        first = coro.send(None)
    except StopIteration as stop:
        value: T = stop.value
        return value
    task = asyncio.get_running_loop().create_task(_finish(coro, first))
    task.add_done_callback(done)
    return Pending(task)
