"""State sync: a new node starts from a snapshot fetched from its peers (issue 25, point 4).

CometBFT's state sync is the model. docs/PROTOCOL.md, "State sync", has the bytes.

Serving (`SnapshotServer`, every node): a node with ``[statesync] snapshot_interval = N``
takes a snapshot (`node.runtime.snapshot`: RocksDB checkpoints between two blocks, brought
to the state a certified header commits to) each time its executed height reaches a
multiple of N, keeps the newest ``snapshot_keep`` under ``data_dir/snapshots/``, and
*packages* each: its files (``chain/*``, ``state/*``, in name order) are read as one byte
string cut into chunks of ``chunk_size`` bytes; the `SnapshotOffer` lists the files, the
chunks' SHA-256 and the manifest (the certified header, its certificate and the
validator-set change headers since genesis). A snapshot's hash is the SHA-256 of its
offer's encoding. Peers ask `SnapshotsRequest` (the offers, newest first) and
`ChunkRequest(hash, index)` (one chunk); both are requests on the node's transport, so only
admitted peers (the allowlist) are answered, and at most `MAX_CHUNKS_IN_FLIGHT_PER_PEER`
chunks are read for one peer at once (more are refused as busy).

Fetching (`state_sync`, a node started on an empty data directory with
``[statesync] enable = true``):

1. ask every connected peer for its offers; group equal offers (same hash), newest
   height first, then most peers;
2. check the offer's shape (file names, sizes, chunk count) and its manifest's certified
   header from the node's genesis through the change headers (`snapshot.verify_manifest`):
   an uncertified root is refused before a byte of state is fetched;
3. fetch the chunks from the peers that offered it, several at once and in turn; a chunk
   whose SHA-256 is not the offer's is refused (`statesync_chunk_refused`) and that peer is
   not asked again for this snapshot; the chunk is asked of another peer;
4. verify the assembled snapshot as `afterchain node restore` does (blocks linked to the
   header, the state tree rebuilt from the values against the certified root) and move it into the
   data directory (`snapshot.install_snapshot`). A snapshot that fails is refused
   (`statesync_snapshot_refused`, with the reason) and the next one is tried.

Then the node starts as usual on that data: it executes the blocks between the
certified state and the header and follows the chain by catch-up (validator) or the member
follower.
"""

from __future__ import annotations

import functools
import hashlib
import json
import math
import os
import re
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import trio

from afterchain.node.common.log import short_id
from afterchain.node.runtime.inputs import PEER_MESSAGE_MAX_BYTES
from afterchain.node.runtime.snapshot import (
    MANIFEST,
    SnapshotError,
    SnapshotInfo,
    finish_snapshot,
    install_snapshot,
    manifest_from_bytes,
    take_checkpoints,
    verify_manifest,
)
from afterchain.node.transport.base import Transport, TransportError
from afterchain.protocol.codec import Message, message
from afterchain.protocol.errors import Code, ProtocolError, ValidationError
from afterchain.protocol.genesis import Genesis
from afterchain.protocol.types import Hash32

__all__ = [
    "CHUNK_SIZE",
    "MAX_CHUNKS",
    "ChunkRequest",
    "ChunkResponse",
    "SnapshotFile",
    "SnapshotOffer",
    "SnapshotServer",
    "SnapshotsRequest",
    "SnapshotsResponse",
    "StateSyncError",
    "package_snapshot",
    "read_chunk",
    "state_sync",
]

CHUNK_SIZE = 1 << 20
"""Chunk size a server uses (1 MiB), larger only when a snapshot would have more than
`MAX_CHUNKS` chunks."""
MIN_CHUNK_SIZE = 1 << 12
MAX_CHUNK_SIZE = 16 << 20
MAX_CHUNKS = 65_536
MAX_FILES = 100_000
MAX_OFFERS = 4
MAX_MANIFEST_BYTES = 4 << 20
MAX_CHUNKS_IN_FLIGHT_PER_PEER = 4
JOINED = "statesync.json"
"""In a data directory filled by state sync: the figures of that sync (the metrics read them)."""
MAX_CHUNK_FAILURES = 5
"""Failed chunk requests (timeouts, lost connections) after which a peer is not asked again
for that snapshot (a chunk that does not match its hash: at once)."""
_NAME = re.compile(r"(chain|state)/[A-Za-z0-9._-]{1,128}")

# ---------------------------------------------------------------------------- messages


@message(tag=0x7A)
class SnapshotsRequest(Message):
    """Ask a peer for the snapshots it offers (its newest `limit`, 1..4)."""

    limit: int

    def validate(self) -> None:
        if not 1 <= self.limit <= MAX_OFFERS:
            raise ValidationError(Code.FIELD_OUT_OF_RANGE, f"limit is 1..{MAX_OFFERS}", field="limit")


@message(tag=0x7B)
class SnapshotFile(Message):
    """One file of a snapshot: its path (``chain/NAME`` or ``state/NAME``) and size."""

    name: str
    size: int

    def validate(self) -> None:
        if not _NAME.fullmatch(self.name):
            raise ValidationError(Code.FIELD_OUT_OF_RANGE, "a file name is chain/NAME or state/NAME "
                                  "(NAME: 1-128 of A-Z a-z 0-9 . _ -)", field="name")


@message(tag=0x7C)
class SnapshotOffer(Message):
    """A snapshot a peer serves. Its hash (what `ChunkRequest` names) is the SHA-256 of this
    message's encoding. The chunks cut the concatenation of `files` (in this order) into
    pieces of `chunk_size` bytes (the last one shorter); `chunk_hashes[i]` is the SHA-256 of
    chunk i. `manifest` is the snapshot's manifest.json (its certified header)."""

    height: int
    state_height: int
    format: int
    chunk_size: int
    files: tuple[SnapshotFile, ...]
    chunk_hashes: tuple[Hash32, ...]
    manifest: bytes

    def validate(self) -> None:
        if not MIN_CHUNK_SIZE <= self.chunk_size <= MAX_CHUNK_SIZE:
            raise ValidationError(Code.FIELD_OUT_OF_RANGE, f"chunk_size is {MIN_CHUNK_SIZE}..{MAX_CHUNK_SIZE}",
                                  field="chunk_size")
        if len(self.files) > MAX_FILES or len(self.chunk_hashes) > MAX_CHUNKS:
            raise ValidationError(Code.FIELD_OUT_OF_RANGE, f"at most {MAX_FILES} files and {MAX_CHUNKS} chunks",
                                  field="files")
        if len(self.manifest) > MAX_MANIFEST_BYTES:
            raise ValidationError(Code.FIELD_OUT_OF_RANGE, f"manifest of at most {MAX_MANIFEST_BYTES} bytes",
                                  field="manifest")
        names = [f.name for f in self.files]
        if len(set(names)) != len(names):
            raise ValidationError(Code.FIELD_OUT_OF_RANGE, "a file is listed twice", field="files")
        if len(self.chunk_hashes) != math.ceil(self.total_bytes / self.chunk_size):
            raise ValidationError(Code.FIELD_OUT_OF_RANGE, "chunk_hashes: one per chunk of the files", field="chunk_hashes")

    @property
    def total_bytes(self) -> int:
        return sum(f.size for f in self.files)

    def snapshot_hash(self) -> bytes:
        return hashlib.sha256(self.encode()).digest()


@message(tag=0x7D)
class SnapshotsResponse(Message):
    """The offers, newest first (at most the request's `limit`)."""

    snapshots: tuple[SnapshotOffer, ...]

    def validate(self) -> None:
        if len(self.snapshots) > MAX_OFFERS:
            raise ValidationError(Code.FIELD_OUT_OF_RANGE, f"at most {MAX_OFFERS} offers", field="snapshots")


@message(tag=0x7E)
class ChunkRequest(Message):
    """Ask for chunk `index` of the snapshot whose offer hashes to `snapshot`."""

    snapshot: Hash32
    index: int


@message(tag=0x7F)
class ChunkResponse(Message):
    """The chunk's bytes (a server that no longer has the snapshot answers with an error)."""

    snapshot: Hash32
    index: int
    data: bytes


class StateSyncError(Exception):
    """State sync found no snapshot it could use: the message says why."""


# ---------------------------------------------------------------------------- packaging


def _files(snap: Path) -> list[tuple[str, int]]:
    out: list[tuple[str, int]] = []
    for part in ("chain", "state"):
        for p in sorted((snap / part).iterdir()):
            if p.is_file() and p.name != "LOCK":
                out.append((f"{part}/{p.name}", p.stat().st_size))
    return out


def package_snapshot(snap: Path, *, chunk_size: int = CHUNK_SIZE) -> SnapshotOffer:
    """The offer of a finished snapshot directory (reads every file once, for the hashes)."""
    files = _files(snap)
    total = sum(s for _, s in files)
    while math.ceil(total / chunk_size) > MAX_CHUNKS:
        chunk_size *= 2
    if chunk_size > MAX_CHUNK_SIZE:
        raise SnapshotError(f"snapshot of {total} bytes is too large to offer")
    hashes: list[Hash32] = []
    cur = hashlib.sha256()
    filled = 0
    for name, size in files:
        with open(snap / name, "rb") as f:
            left = size
            while left:
                piece = f.read(min(chunk_size - filled, left))
                if not piece:
                    raise SnapshotError(f"{name} shrank while it was packaged")
                cur.update(piece)
                filled += len(piece)
                left -= len(piece)
                if filled == chunk_size:
                    hashes.append(Hash32(cur.digest()))
                    cur, filled = hashlib.sha256(), 0
    if filled:
        hashes.append(Hash32(cur.digest()))
    manifest = (snap / MANIFEST).read_bytes()
    doc = manifest_from_bytes(manifest)
    return SnapshotOffer(height=doc["chain_height"], state_height=doc["state_height"], format=doc["format"],
                         chunk_size=chunk_size, files=tuple(SnapshotFile(name=n, size=s) for n, s in files),
                         chunk_hashes=tuple(hashes), manifest=manifest)


def _spans(offer: SnapshotOffer, index: int) -> list[tuple[str, int, int]]:
    """(file, offset, length) pieces of chunk `index`."""
    start = index * offer.chunk_size
    end = min(start + offer.chunk_size, offer.total_bytes)
    out: list[tuple[str, int, int]] = []
    pos = 0
    for f in offer.files:
        lo, hi = max(start, pos), min(end, pos + f.size)
        if lo < hi:
            out.append((f.name, lo - pos, hi - lo))
        pos += f.size
        if pos >= end:
            break
    return out


def read_chunk(snap: Path, offer: SnapshotOffer, index: int) -> bytes:
    parts: list[bytes] = []
    for name, off, n in _spans(offer, index):
        with open(snap / name, "rb") as f:
            f.seek(off)
            parts.append(f.read(n))
    return b"".join(parts)


# ---------------------------------------------------------------------------- serving


@dataclass
class _Served:
    offer: SnapshotOffer
    path: Path
    hash: bytes


@dataclass
class SnapshotServer:
    """Takes the periodic snapshots and answers peers' state-sync requests (module docstring).

    `finish_args`: a function giving `finish_snapshot`'s ``hooks`` and ``contracts`` (a fresh
    VM host per snapshot: it runs on a worker thread)."""

    ledger: Any
    store: Any
    genesis: Genesis
    data_dir: Path
    log: Any
    interval: int = 0
    keep: int = 2
    chunk_size: int = CHUNK_SIZE
    finish_args: Callable[[], dict[str, Any]] = field(default=lambda: {})
    served: list[_Served] = field(default_factory=list)
    _busy: dict[bytes, int] = field(default_factory=dict)
    _joined: dict[str, Any] | None = None
    stats: dict[str, int] = field(default_factory=lambda: {"chunks_served": 0, "chunks_refused_busy": 0,
                                                           "snapshots_taken": 0, "snapshot_failures": 0})

    @property
    def root(self) -> Path:
        return self.data_dir / "snapshots"

    def metrics(self) -> dict[str, float]:
        """The serving figures, and those of the state sync that filled this data directory
        (`JOINED`, written by `state_sync`; zeros when there was none)."""
        if self._joined is None:
            try:
                doc = json.loads((self.data_dir / JOINED).read_text())
                self._joined = doc if isinstance(doc, dict) else {}
            except (OSError, ValueError):
                self._joined = {}
        j = self._joined

        def num(name: str) -> float:
            v = j.get(name, 0)
            return float(v) if isinstance(v, int | float) else 0.0

        return {**{k: float(v) for k, v in self.stats.items()}, "snapshots_offered": float(len(self.served)),
                "joined": 1.0 if j else 0.0, "duration_s": num("total_s"), "chunks_fetched": num("chunks"),
                "chunks_refused": num("chunks_refused"), "snapshots_refused": num("snapshots_refused")}

    async def load(self) -> None:
        """Offer the snapshots a previous run left (packaged again: the hashes are not stored)."""
        if not self.root.is_dir():
            return
        for p in sorted(self.root.iterdir()):
            if p.name.startswith(".") or not p.is_dir():
                shutil.rmtree(p, ignore_errors=True)
                continue
            try:
                offer = await trio.to_thread.run_sync(functools.partial(package_snapshot, p, chunk_size=self.chunk_size))
            except (OSError, SnapshotError, ProtocolError) as exc:
                self.log.warning("statesync_snapshot_dropped", dir=str(p), error=str(exc))
                shutil.rmtree(p, ignore_errors=True)
                continue
            self._add(offer, p)

    def _add(self, offer: SnapshotOffer, path: Path) -> None:
        self.served.append(_Served(offer, path, offer.snapshot_hash()))
        self.served.sort(key=lambda s: s.offer.height)
        while len(self.served) > max(1, self.keep):
            old = self.served.pop(0)
            shutil.rmtree(old.path, ignore_errors=True)

    async def run(self, poll_s: float = 0.5) -> None:
        """Take a snapshot at each multiple of `interval` (off at 0)."""
        await self.load()
        if self.interval <= 0:
            return
        last = self.served[-1].offer.state_height if self.served else 0
        while True:
            await trio.sleep(poll_s)
            h = self.ledger.height
            if h // self.interval > last // self.interval:
                try:
                    await self.take()
                except (SnapshotError, OSError) as exc:
                    self.stats["snapshot_failures"] += 1
                    self.log.warning("statesync_snapshot_failed", height=h, error=str(exc))
                last = h

    async def take(self) -> SnapshotOffer:
        """One snapshot now: checkpoints on the loop, then finished and packaged on a thread."""
        self.root.mkdir(parents=True, exist_ok=True)
        tmp = self.root / f".taking-{self.ledger.height}-{time.monotonic_ns()}"
        t0 = time.monotonic()
        try:
            await take_checkpoints(ledger=self.ledger, store=self.store, out=tmp)

            def finish() -> SnapshotOffer:
                finish_snapshot(tmp, self.genesis, **self.finish_args())
                return package_snapshot(tmp, chunk_size=self.chunk_size)

            offer = await trio.to_thread.run_sync(finish)
            final = self.root / f"snap-{offer.height:012d}"
            shutil.rmtree(final, ignore_errors=True)
            tmp.rename(final)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        self._add(offer, final)
        self.stats["snapshots_taken"] += 1
        self.log.info("statesync_snapshot_taken", height=offer.height, state_height=offer.state_height,
                      bytes=offer.total_bytes, chunks=len(offer.chunk_hashes), seconds=round(time.monotonic() - t0, 3))
        return offer

    def handles(self, req: Message) -> bool:
        return isinstance(req, SnapshotsRequest | ChunkRequest)

    async def on_request(self, sender: bytes, req: Message) -> bytes:
        if isinstance(req, SnapshotsRequest):
            offers = [s.offer for s in reversed(self.served)][: req.limit]
            return SnapshotsResponse(snapshots=tuple(offers)).encode()
        if not isinstance(req, ChunkRequest):  # pragma: no cover - `handles` routes only these
            raise ProtocolError(Code.DECODE_UNKNOWN_TAG, f"{type(req).__name__} is not a state-sync request")
        s = next((s for s in self.served if s.hash == req.snapshot), None)
        if s is None:
            raise StateSyncError(f"no snapshot {req.snapshot.hex()[:16]} here (any more)")
        if not 0 <= req.index < len(s.offer.chunk_hashes):
            raise StateSyncError(f"snapshot {req.snapshot.hex()[:16]} has no chunk {req.index}")
        if self._busy.get(sender, 0) >= MAX_CHUNKS_IN_FLIGHT_PER_PEER:
            self.stats["chunks_refused_busy"] += 1
            raise StateSyncError(f"busy: {MAX_CHUNKS_IN_FLIGHT_PER_PEER} chunks in flight for this peer")
        self._busy[sender] = self._busy.get(sender, 0) + 1
        try:
            data = await trio.to_thread.run_sync(read_chunk, s.path, s.offer, req.index)
        finally:
            self._busy[sender] -= 1
            if not self._busy[sender]:
                del self._busy[sender]
        self.stats["chunks_served"] += 1
        return ChunkResponse(snapshot=req.snapshot, index=req.index, data=data).encode()


# ---------------------------------------------------------------------------- fetching


@dataclass
class _Candidate:
    offer: SnapshotOffer
    hash: bytes
    peers: list[bytes]


async def _discover(transport: Transport, log: Any, *, wait_s: float, timeout_s: float,
                    grace_s: float = 1.0) -> list[_Candidate]:
    """Ask each connected peer for its offers, again on a timeout (a peer answers on its own
    stream to us, which may not be up yet right after we dialed), for at most `wait_s`;
    once one peer answered, the others get `grace_s` more."""
    by_hash: dict[bytes, _Candidate] = {}
    answered: set[bytes] = set()
    asking: set[bytes] = set()
    first: list[float] = []

    async def ask(peer: bytes) -> None:
        try:
            raw = await transport.request(peer, SnapshotsRequest(limit=MAX_OFFERS).encode(), timeout_s=timeout_s)
            resp = SnapshotsResponse.decode(raw, max_bytes=PEER_MESSAGE_MAX_BYTES)
        except (TransportError, ProtocolError) as exc:
            log.debug("statesync_peer_no_offers", peer=short_id(peer), error=str(exc))
            return
        finally:
            asking.discard(peer)
        answered.add(peer)
        first.append(time.monotonic())
        for offer in resp.snapshots:
            h = offer.snapshot_hash()
            by_hash.setdefault(h, _Candidate(offer, h, [])).peers.append(peer)

    deadline = time.monotonic() + wait_s
    async with trio.open_nursery() as nursery:
        while time.monotonic() < deadline and not (first and time.monotonic() > first[0] + grace_s):
            for peer in sorted(transport.connected_peers() - answered - asking):
                asking.add(peer)
                nursery.start_soon(ask, peer)
            await trio.sleep(0.05)
        nursery.cancel_scope.cancel()
    return sorted(by_hash.values(), key=lambda c: (c.offer.height, len(c.peers)), reverse=True)


async def _fetch(transport: Transport, cand: _Candidate, staging: Path, log: Any, *, parallel: int,
                 timeout_s: float, stats: dict[str, int]) -> None:
    """All chunks of `cand` into `staging`, each checked against its hash; raises
    `StateSyncError` when no peer is left to ask."""
    offer = cand.offer
    for part in ("chain", "state"):
        (staging / part).mkdir(parents=True, exist_ok=True)
    for f in offer.files:
        with open(staging / f.name, "wb") as fh:
            fh.truncate(f.size)
    (staging / MANIFEST).write_bytes(offer.manifest)
    good = list(cand.peers)
    todo = list(range(len(offer.chunk_hashes)))
    todo.reverse()
    turn = 0
    failures: dict[bytes, int] = {}

    def write(index: int, data: bytes) -> None:
        pos = 0
        for name, off, n in _spans(offer, index):
            with open(staging / name, "r+b") as fh:
                fh.seek(off)
                fh.write(data[pos: pos + n])
            pos += n

    async def worker() -> None:
        nonlocal turn
        while todo and good:
            index = todo.pop()
            peer = good[turn % len(good)]
            turn += 1
            try:
                raw = await transport.request(peer, ChunkRequest(snapshot=Hash32(cand.hash), index=index).encode(),
                                              timeout_s=timeout_s)
                resp = ChunkResponse.decode(raw, max_bytes=PEER_MESSAGE_MAX_BYTES)
            except (TransportError, ProtocolError) as exc:
                todo.append(index)
                stats["chunk_retries"] += 1
                if "busy" in str(exc):
                    await trio.sleep(0.05)
                    continue
                log.info("statesync_chunk_failed", peer=short_id(peer), index=index, error=str(exc))
                failures[peer] = failures.get(peer, 0) + 1
                if peer in good and failures[peer] >= MAX_CHUNK_FAILURES:
                    good.remove(peer)  # unreachable, or it lost the snapshot: ask the others
                await trio.sleep(0.1)
                continue
            if (resp.snapshot, resp.index) != (cand.hash, index) or \
                    hashlib.sha256(resp.data).digest() != offer.chunk_hashes[index]:
                stats["chunks_refused"] += 1
                log.warning("statesync_chunk_refused", peer=short_id(peer), index=index,
                            reason="the chunk does not match the offer's hash (tampered or wrong): "
                                   "this peer is not asked again for this snapshot")
                if peer in good:
                    good.remove(peer)
                todo.append(index)
                continue
            await trio.to_thread.run_sync(write, index, resp.data)
            stats["chunks"] += 1
            stats["bytes"] += len(resp.data)

    async with trio.open_nursery() as nursery:
        for _ in range(max(1, parallel)):
            nursery.start_soon(worker)
    if todo:
        raise StateSyncError("every peer offering this snapshot failed or served a chunk that did not match its hash")


async def state_sync(transport: Transport, genesis: Genesis, data_dir: Path, log: Any, *,
                     discovery_s: float = 10.0, request_timeout_s: float = 10.0, parallel: int = 4,
                     attempts: int = 3, now_ms: Callable[[], int] = lambda: int(time.time() * 1000),
                     max_age_ms: int | None = None) -> tuple[SnapshotInfo, dict[str, Any]]:
    """Fill the empty `data_dir` from a snapshot fetched from peers, verified (module
    docstring). `transport` must be running. Returns what was installed and figures.
    Raises `StateSyncError` when no offered snapshot could be used after `attempts` rounds."""
    data_dir = Path(data_dir)
    if data_dir.exists() and any(data_dir.iterdir()):
        raise StateSyncError(f"the data directory {data_dir} is not empty: state sync fills only an empty one")
    # Peers send a validator consensus messages as soon as it is connected; nobody reads
    # them yet, and a full inbox would stall each peer's stream to us, answers included.
    result: tuple[SnapshotInfo, dict[str, Any]] | StateSyncError | None = None
    async with trio.open_nursery() as nursery:
        nursery.start_soon(_drain, transport)
        try:
            result = await _state_sync(transport, genesis, data_dir, log, discovery_s=discovery_s,
                                       request_timeout_s=request_timeout_s, parallel=parallel, attempts=attempts,
                                       now_ms=now_ms, max_age_ms=max_age_ms)
        except StateSyncError as exc:
            result = exc
        finally:
            nursery.cancel_scope.cancel()
    if isinstance(result, StateSyncError):
        raise result
    assert result is not None
    return result


async def _drain(transport: Transport) -> None:
    async for _ in transport.inbox():
        pass


async def _state_sync(transport: Transport, genesis: Genesis, data_dir: Path, log: Any, *, discovery_s: float,
                      request_timeout_s: float, parallel: int, attempts: int, now_ms: Callable[[], int],
                      max_age_ms: int | None) -> tuple[SnapshotInfo, dict[str, Any]]:
    refused: set[bytes] = set()
    reasons: list[str] = []
    stats = {"chunks": 0, "bytes": 0, "chunks_refused": 0, "chunk_retries": 0, "snapshots_refused": 0}
    t0 = time.monotonic()
    for attempt in range(attempts):
        cands = [c for c in await _discover(transport, log, wait_s=discovery_s, timeout_s=min(2.0, request_timeout_s))
                 if c.hash not in refused]
        log.info("statesync_offers", attempt=attempt, offers=[{"height": c.offer.height, "peers": len(c.peers),
                                                               "bytes": c.offer.total_bytes} for c in cands])
        for cand in cands:
            offer = cand.offer
            what = f"snapshot at height {offer.height} ({cand.hash.hex()[:16]}, from {len(cand.peers)} peer(s))"
            staging = data_dir.parent / f".{data_dir.name}.statesync-{os.getpid()}"
            shutil.rmtree(staging, ignore_errors=True)
            try:
                doc = manifest_from_bytes(offer.manifest, "the offer's manifest")
                target = verify_manifest(doc, genesis, now_ms=now_ms(), max_age_ms=max_age_ms)
                if (target.header.height, target.header.state_height, doc["format"]) != \
                        (offer.height, offer.state_height, offer.format):
                    raise SnapshotError("the offer's heights or format are not its manifest's")
                t1 = time.monotonic()
                await _fetch(transport, cand, staging, log, parallel=parallel, timeout_s=request_timeout_s, stats=stats)
                t2 = time.monotonic()
                info = await trio.to_thread.run_sync(functools.partial(
                    install_snapshot, staging, data_dir, genesis, now_ms=now_ms(), max_age_ms=max_age_ms))
                t3 = time.monotonic()
            except (SnapshotError, StateSyncError, OSError) as exc:
                refused.add(cand.hash)
                stats["snapshots_refused"] += 1
                reasons.append(f"{what}: {exc}")
                log.warning("statesync_snapshot_refused", height=offer.height, snapshot=cand.hash.hex()[:16],
                            peers=[short_id(p) for p in cand.peers], reason=str(exc))
                continue
            finally:
                shutil.rmtree(staging, ignore_errors=True)
            figures = {**stats, "height": info.chain_height, "state_height": info.state_height, "values": info.values,
                       "fetch_s": round(t2 - t1, 3), "verify_install_s": round(t3 - t2, 3),
                       "total_s": round(t3 - t0, 3), "peers": len(cand.peers)}
            log.info("statesync_installed", **figures)
            try:
                (data_dir / JOINED).write_text(json.dumps(figures) + "\n")
            except OSError as exc:  # a figure for the metrics only: the node starts without it
                log.warning("statesync_figures_not_written", error=str(exc))
            return info, figures
        await trio.sleep(min(5.0, 0.5 * 2 ** attempt))
    why = "; ".join(reasons[-4:]) if reasons else "no connected peer offered a snapshot"
    raise StateSyncError(f"state sync found no usable snapshot after {attempts} rounds: {why}")

