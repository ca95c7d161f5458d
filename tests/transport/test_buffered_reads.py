"""`_BufferedReads` (the TCP stream under Noise): `read(n)` returns at most n bytes, in
order, across chunk boundaries, and b"" at the end of the stream."""

from __future__ import annotations

from afterchain.node.transport.libp2p_parts import _BufferedReads


class _Chunks:
    """A stream that answers each read with the next scripted chunk (at most n bytes of it)."""

    def __init__(self, chunks: list[bytes]) -> None:
        self.chunks = list(chunks)
        self.reads = 0
        self.written: list[bytes] = []

    async def read(self, n: int | None = None) -> bytes:
        self.reads += 1
        if not self.chunks:
            return b""
        c = self.chunks.pop(0)
        if n is not None and len(c) > n:
            self.chunks.insert(0, c[n:])
            c = c[:n]
        return c

    async def write(self, data: bytes) -> None:
        self.written.append(data)


async def test_small_reads_come_from_one_recv_in_order() -> None:
    data = bytes(range(256)) * 40
    inner = _Chunks([data[:7000], data[7000:]])
    s = _BufferedReads(inner)
    got = b""
    sizes = [2, 300, 2, 5000, 1, 10_000, 3]
    for n in sizes:
        part = await s.read(n)
        assert 0 < len(part) <= n
        got += part
    while len(got) < len(data):
        part = await s.read(4096)
        assert part
        got += part
    assert got == data
    assert inner.reads == 2  # two chunks arrived, two recvs
    assert await s.read(10) == b""  # end of stream


async def test_read_without_n_and_passthrough() -> None:
    inner = _Chunks([b"abcdef"])
    s = _BufferedReads(inner)
    assert await s.read(2) == b"ab"
    assert await s.read() == b"cdef"
    assert await s.read() == b""
    await s.write(b"xy")  # other calls go to the stream
    assert inner.written == [b"xy"]

