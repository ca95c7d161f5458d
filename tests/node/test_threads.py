"""`node.threads.run_sync` behaves as `trio.to_thread.run_sync` for the node's uses: the
value or the exception comes back, the call runs on another thread, and a cancellation
waits for the call to finish and is raised after it."""

from __future__ import annotations

import threading
import time

import pytest
import trio

from afterchain.node.runtime.threads import run_sync


async def test_value_exception_and_thread() -> None:
    assert await run_sync(lambda a, b: a + b, 2, 3) == 5
    assert await run_sync(threading.get_ident) != threading.get_ident()
    with pytest.raises(ZeroDivisionError):
        await run_sync(lambda: 1 / 0)


async def test_cancel_waits_for_the_call() -> None:
    done: list[bool] = []

    def slow() -> str:
        time.sleep(0.2)
        done.append(True)
        return "finished"

    with trio.move_on_after(0.05) as scope:
        await run_sync(slow)
        await trio.sleep(0)  # the pending cancellation is raised at this checkpoint
        pytest.fail("not cancelled")
    assert scope.cancelled_caught and done == [True]


async def test_many_at_once() -> None:
    results: list[int] = []

    async def one(i: int) -> None:
        results.append(await run_sync(lambda: i * i))

    async with trio.open_nursery() as n:
        for i in range(100):
            n.start_soon(one, i)
    assert sorted(results) == [i * i for i in range(100)]
