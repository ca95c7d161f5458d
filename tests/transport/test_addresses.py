"""Peers by name and over IPv6: names resolved by the system resolver at each dial (a peer
that comes back at another address is found again), IPv6 listen and dial, clear errors
for names that do not resolve. Every address used is loopback (127.0.0.0/8, ::1)."""

from __future__ import annotations

import socket
from typing import Any

import multiaddr
import pytest
import trio

from afterchain.node.transport.p2p import AddressError, P2PTransport, resolve_addr
from tests.transport.test_p2p import KEYS, SEEDS, free_ports, until


def has_ipv6_loopback() -> bool:
    try:
        with socket.socket(socket.AF_INET6) as s:
            s.bind(("::1", 0))
        return True
    except OSError:
        return False


async def test_resolve_addr_uses_the_system_resolver() -> None:
    ip4 = multiaddr.Multiaddr("/ip4/127.0.0.1/tcp/7001")
    assert await resolve_addr(ip4) == [ip4]
    assert multiaddr.Multiaddr("/ip4/127.0.0.1/tcp/7001") in await resolve_addr(multiaddr.Multiaddr("/dns4/localhost/tcp/7001"))
    both = await resolve_addr(multiaddr.Multiaddr("/dns/localhost/tcp/7001"))
    assert multiaddr.Multiaddr("/ip4/127.0.0.1/tcp/7001") in both


async def test_unresolvable_names_raise_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    async def no_such_name(host: str, *a: Any, **kw: Any) -> Any:  # no query leaves this machine
        raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")

    monkeypatch.setattr(trio.socket, "getaddrinfo", no_such_name)
    with pytest.raises(AddressError, match=r"cannot resolve 'validator-9' to an IPv4 address \(/dns4/validator-9/tcp/7001\): "
                                           r"Name or service not known"):
        await resolve_addr(multiaddr.Multiaddr("/dns4/validator-9/tcp/7001"))


async def test_a_name_is_resolved_at_each_dial(monkeypatch: pytest.MonkeyPatch) -> None:
    """`b.test` first does not resolve (logged, retried), then points at 127.0.0.2; B
    restarts on 127.0.0.3 and the name moves there: A finds it again. B never dials."""
    real = trio.socket.getaddrinfo
    where: dict[str, str | None] = {"b.test": None}
    asked: list[str] = []

    async def resolver(host: str, port: Any, *a: Any, **kw: Any) -> Any:
        if host in where:
            asked.append(host)
            if where[host] is None:
                raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
            host = where[host]  # type: ignore[assignment]
        return await real(host, port, *a, **kw)

    monkeypatch.setattr(trio.socket, "getaddrinfo", resolver)
    pa, pb = free_ports(2)
    a = P2PTransport(seed=SEEDS[0], listen_addr=f"/ip4/127.0.0.1/tcp/{pa}",
                     peers={KEYS[1]: f"/dns4/b.test/tcp/{pb}"}, redial_max_s=0.2)
    async with trio.open_nursery() as nursery:
        await nursery.start(a.run)
        await until(lambda: len(asked) >= 2)  # retried while it does not resolve
        assert a.connected_peers() == set()
        for ip in ("127.0.0.2", "127.0.0.3"):
            where["b.test"] = ip
            # B does not dial A (no address for it): the connection is A's dial to where the name points now
            b = P2PTransport(seed=SEEDS[1], listen_addr=f"/ip4/{ip}/tcp/{pb}", peers={})
            b.add_peers({KEYS[0]: None})
            b_scope = trio.CancelScope()

            async def run_b(b: P2PTransport = b, scope: trio.CancelScope = b_scope,
                            *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
                with scope:
                    await b.run(task_status=task_status)

            await nursery.start(run_b)
            inbox = b.inbox()
            assert str(b.host.get_addrs()[0]).startswith(f"/ip4/{ip}/tcp/{pb}")
            # sends are best effort: A's first session after B went away may ride the old,
            # not yet noticed dead connection; what must happen is that a frame reaches the new B
            got = None
            with trio.fail_after(20):
                while got is None:
                    await until(lambda: KEYS[1] in a.connected_peers())
                    await a.send(KEYS[1], ip.encode())
                    with trio.move_on_after(0.5):
                        got = await inbox.receive()
            assert got == (KEYS[0], ip.encode())
            b_scope.cancel()
            await until(lambda: KEYS[1] not in a.connected_peers())
        nursery.cancel_scope.cancel()


@pytest.mark.skipif(not has_ipv6_loopback(), reason="this machine has no IPv6 loopback (::1)")
async def test_ipv6_listen_and_dial_by_address_and_by_name(monkeypatch: pytest.MonkeyPatch) -> None:
    real = trio.socket.getaddrinfo

    async def resolver(host: str, port: Any, *a: Any, **kw: Any) -> Any:
        return await real("::1" if host == "v6.test" else host, port, *a, **kw)

    monkeypatch.setattr(trio.socket, "getaddrinfo", resolver)
    ports = free_ports(3)
    addrs = [f"/ip6/::1/tcp/{ports[0]}", f"/dns6/v6.test/tcp/{ports[1]}", f"/dns/v6.test/tcp/{ports[2]}"]
    listen = [f"/ip6/::1/tcp/{ports[0]}", f"/ip6/::1/tcp/{ports[1]}", f"/ip6/::/tcp/{ports[2]}"]
    ts = [P2PTransport(seed=SEEDS[i], listen_addr=listen[i], peers={KEYS[j]: addrs[j] for j in range(3)}) for i in range(3)]
    async with trio.open_nursery() as nursery:
        for t in ts:
            await nursery.start(t.run)
        assert ts[0].listen_addrs() == [f"/ip6/::1/tcp/{ports[0]}"]
        await until(lambda: all(len(t.connected_peers()) == 2 for t in ts))
        sub = ts[2].subscribe("x")
        await ts[0].broadcast("x", b"over ipv6")
        with trio.fail_after(10):
            assert await sub.receive() == (KEYS[0], b"over ipv6")
        nursery.cancel_scope.cancel()


async def test_an_unresolvable_listen_name_fails_the_start(monkeypatch: pytest.MonkeyPatch) -> None:
    async def no_such_name(host: str, *a: Any, **kw: Any) -> Any:
        raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")

    monkeypatch.setattr(trio.socket, "getaddrinfo", no_such_name)
    t = P2PTransport(seed=SEEDS[0], listen_addr="/dns4/me.test/tcp/0", peers={})
    with pytest.raises(BaseException) as info:  # a group from the nursery, checked below
        async with trio.open_nursery() as nursery:
            await nursery.start(t.run)
    group = info.value
    assert isinstance(group, BaseExceptionGroup)
    assert group.subgroup(lambda e: isinstance(e, AddressError) and "cannot resolve 'me.test'" in str(e)) is not None
