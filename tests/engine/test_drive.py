"""The sync-first coroutine driver: no Task unless the coroutine waits; same semantics if so."""

from __future__ import annotations

import asyncio

import pytest

from bastion.engine import drive


async def _sync_value() -> int:
    return 7


async def _waits(delay: float) -> int:
    await asyncio.sleep(delay)
    await asyncio.sleep(0)
    return 8


async def _fails_after_wait() -> int:
    await asyncio.sleep(0)
    raise ValueError("boom")


async def test_completes_synchronously_without_a_task() -> None:
    results: list[asyncio.Task[int]] = []
    assert drive.start(_sync_value(), results.append) == 7
    assert results == []


async def test_waiting_coroutine_finishes_in_a_task() -> None:
    done: asyncio.Future[int] = asyncio.get_running_loop().create_future()
    pending = drive.start(_waits(0.01), lambda task: done.set_result(task.result()))
    assert isinstance(pending, drive.Pending)
    assert await done == 8


async def test_exception_after_a_wait_reaches_the_task() -> None:
    pending = drive.start(_fails_after_wait(), lambda task: None)
    assert isinstance(pending, drive.Pending)
    with pytest.raises(ValueError, match="boom"):
        await pending.task


async def test_cancellation_reaches_the_coroutine() -> None:
    cleaned: list[bool] = []

    async def guarded() -> int:
        try:
            await asyncio.sleep(10)
        finally:
            cleaned.append(True)
        return 1

    pending = drive.start(guarded(), lambda task: None)
    assert isinstance(pending, drive.Pending)
    await asyncio.sleep(0)
    pending.task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await pending.task
    assert cleaned == [True]
