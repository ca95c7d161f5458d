"""The SDK's two clients behind one synchronous face, so one test body checks both.

`Flavour("sync")` makes a `Client`; `Flavour("trio")` / `Flavour("asyncio")` make an
`AsyncClient` whose every call (methods and builders) is awaited on an event loop of that
backend, run by an anyio blocking portal in its own thread. The test reads the same
methods and results either way; only the ``await`` is done for it (`stream`'s events too:
`BlockingEvents` is a plain iterator with ``close``, as `Client.stream`'s generator).
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from typing import Any, cast

import anyio.from_thread

from afterchain.node.client import AsyncClient, Client

NAMES = ("sync", "trio", "asyncio")


async def _awaited(fn: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    result = fn(*args, **kwargs)
    return await result if inspect.isawaitable(result) else result


class _Awaiting:
    """Calls the callables of `target` on the portal's loop, awaiting what they return."""

    def __init__(self, portal: anyio.from_thread.BlockingPortal, target: Any) -> None:
        self._portal = portal
        self._target = target

    def __getattr__(self, name: str) -> Any:
        value = getattr(self._target, name)
        if not callable(value):
            return value
        return lambda *a, **kw: self._portal.call(_awaited, value, a, kw)


class BlockingEvents:
    """`AsyncClient.stream`'s `EventStream` as a synchronous iterator: each ``next`` awaits
    the next event on the portal's loop; ``close`` closes the connection."""

    def __init__(self, portal: anyio.from_thread.BlockingPortal, events: Any) -> None:
        self._portal = portal
        self._events = events

    def __iter__(self) -> BlockingEvents:
        return self

    def __next__(self) -> dict[str, Any]:
        try:
            return self._portal.call(self._events.__anext__)  # type: ignore[no-any-return]
        except StopAsyncIteration:
            raise StopIteration from None

    def close(self) -> None:
        self._portal.call(self._events.aclose)


class Blocking(_Awaiting):
    """An `AsyncClient` with `Client`'s synchronous face (context manager, `chain_id` property)."""

    def __init__(self, portal: anyio.from_thread.BlockingPortal, client: AsyncClient) -> None:
        super().__init__(portal, client)
        self.build = _Awaiting(portal, client.build)

    def stream(self, **kw: Any) -> BlockingEvents:
        return BlockingEvents(self._portal, self._target.stream(**kw))

    @property
    def chain_id(self) -> str:
        return self._portal.call(self._target.chain_id)  # type: ignore[no-any-return]

    def close(self) -> None:
        self._portal.call(self._target.aclose)

    def __enter__(self) -> Blocking:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class Flavour:
    """Makes clients of one flavour: ``make(nodes, key=..., **Client's keyword arguments)``.

    `tag` tells the flavours apart in names the tests create on the shared cluster (serials).
    """

    def __init__(self, name: str, stack: ExitStack) -> None:
        self.name = name
        self.tag = {"sync": "", "trio": "T", "asyncio": "A"}[name]
        self._stack = stack
        self._portal: anyio.from_thread.BlockingPortal | None = None

    def __call__(self, nodes: Any, key: Any = None, **kw: Any) -> Client:
        """A `Client`, or a `Blocking` async one: typed as `Client`, whose face it has."""
        if self.name == "sync":
            return Client(nodes, key, **kw)
        if self._portal is None:
            self._portal = self._stack.enter_context(anyio.from_thread.start_blocking_portal(backend=self.name))
        sleep = kw.pop("sleep", None)
        if sleep is not None:  # a recording sleep of the test: the same, awaitable

            async def asleep(seconds: float) -> None:
                sleep(seconds)

            kw["sleep"] = asleep
        return cast(Client, Blocking(self._portal, AsyncClient(nodes, key, **kw)))

    def __repr__(self) -> str:
        return self.name


def flavours(name: str) -> Iterator[Flavour]:
    """A `Flavour` whose event loop (if any) stops when the test is done."""
    with ExitStack() as stack:
        yield Flavour(name, stack)
