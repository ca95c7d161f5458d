"""`run_sync`: run a blocking call on one of trio's cached worker threads, for the hot paths.

The same as ``trio.to_thread.run_sync(fn, *args)`` (not cancellable while the call runs;
a cancellation is delivered at the caller's next checkpoint after it; at most the default
thread limiter's number of calls at once), minus what trio adds to every call: it names
the OS thread before and after each job (two ctypes ``pthread_setname_np`` calls, each
dropping and re-taking the GIL) and formats that name from the current task. A node makes
a hop for every signature batch, consensus-log write and block commit, so this costs each
hop noticeably less CPU (docs/ARCHITECTURE.md, "Measurements behind the code"). Every hop of the node goes through here.
"""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar

import trio

if TYPE_CHECKING:
    import outcome

__all__ = ["run_sync"]

T = TypeVar("T")


async def run_sync(fn: Callable[..., T], *args: Any) -> T:
    job: Callable[[], T] = functools.partial(fn, *args) if args else fn
    limiter = trio.to_thread.current_default_thread_limiter()
    async with limiter:
        token = trio.lowlevel.current_trio_token()
        task = trio.lowlevel.current_task()

        def deliver(result: outcome.Outcome[Any]) -> None:
            with contextlib.suppress(trio.RunFinishedError):  # the node stopped meanwhile
                token.run_sync_soon(functools.partial(trio.lowlevel.reschedule, task, result))

        trio.lowlevel.start_thread_soon(job, deliver)

        def abort(_: Any) -> trio.lowlevel.Abort:
            return trio.lowlevel.Abort.FAILED  # the call runs to its end; the cancel comes after

        result: T = await trio.lowlevel.wait_task_rescheduled(abort)
    return result
