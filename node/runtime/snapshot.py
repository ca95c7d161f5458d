"""Snapshots of a node's data, and restoring one into an empty data directory.

A snapshot is a directory::

    DIR/chain/          RocksDB checkpoint of the chain store (blocks, certificates)
    DIR/state/          RocksDB checkpoint of the ledger's state store
    DIR/manifest.json   what it holds and the certified header that commits to its state

Taking one (`take_checkpoints`, on a running node's own trio loop, then `finish_snapshot`
on the copy, offline):

1. The state store is checkpointed between two blocks (the ledger applies a block on the
   loop's thread, so no block is half applied; RocksDB checkpoints are consistent at one
   instant). Its height is ``h_L``.
2. The node waits (at most `timeout_s`) until its chain store holds a block whose header
   commits to a state at or after ``h_L`` (``state_height >= h_L``: every header commits to
   an executed height, and a primary proposes at least every half view timeout, empty
   blocks too, so this comes within a few blocks), then checkpoints the chain store.
3. `finish_snapshot` opens the copies, takes the lowest such header ``H`` (state height
   ``S``), executes the copied ledger from ``h_L`` to ``S`` with the copied blocks, drops
   the copied state's SMT nodes and older roots (`strip_state`), cuts the copied chain at
   ``H`` and writes the manifest: ``S``, ``H.state_root``, ``H`` with its certificate, and
   the validator-set change headers from genesis to ``H``.

So the snapshot's state is exactly the state ``H`` certifies, and its chain ends at ``H``.

Restoring (`restore_snapshot`) refuses, writing nothing into the data directory, unless:

- the manifest is for this genesis (chain id and genesis hash);
- ``H`` verifies from genesis through the change headers (`protocol.light.verify_header`:
  a quorum of the right validator set signed it). The genesis file is the anchor and does
  not expire (as for a node replaying from genesis); `max_age_ms` optionally refuses a
  header older than that;
- the copied chain's block at ``H.height`` is ``H`` with the same certificate, and every
  block below links to it by ``prev_hash`` down to height 1 (events match
  ``events_root``);
- the state store's height is ``S``, its stored root at ``S`` is ``H.state_root``, and
  the sparse Merkle tree rebuilt from the stored state values (`rebuild_tree`: one pass
  over the values sorted by tree path, bottom-up) has the root ``H.state_root``.

Format 2: a snapshot's state store holds no SMT node and no root below ``S`` (`strip_state`
drops them when the snapshot is finished; far smaller: the store keeps every historical
node). The restoring node drops whatever nodes a store came with anyway and writes the
nodes of the rebuilt tree, in large write batches, as it hashes them.

Not covered by the state root, copied as they are: the ledger's per-event outcomes and
query indexes. The consensus log, the mempool journal and the feed tags of the source
node are dropped (another node's votes must never become this node's).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import trio

from afterchain.node.app.ledger import Ledger
from afterchain.node.app.store import RocksKV
from afterchain.node.runtime.chain_store import ChainStore
from afterchain.node.runtime.intake import KnownEvents
from afterchain.protocol import state_keys as K
from afterchain.protocol.block import Block, ValidatorSet
from afterchain.protocol.errors import ProtocolError
from afterchain.protocol.genesis import Genesis
from afterchain.protocol.light import (
    DEFAULT_TRUSTING_PERIOD_MS,
    CertifiedHeader,
    LightError,
    genesis_trust,
    verify_header,
)

__all__ = [
    "MANIFEST",
    "SNAPSHOT_FORMAT",
    "SnapshotError",
    "SnapshotInfo",
    "finish_snapshot",
    "install_snapshot",
    "manifest_from_bytes",
    "rebuild_tree",
    "restore_snapshot",
    "strip_state",
    "take_checkpoints",
    "verify_manifest",
    "verify_snapshot",
]

MANIFEST = "manifest.json"
SNAPSHOT_FORMAT = 2


class SnapshotError(Exception):
    """A snapshot cannot be taken, or is refused: the message says what is wrong."""


@dataclass(frozen=True)
class SnapshotInfo:
    state_height: int
    state_root: bytes
    chain_height: int
    values: int


def _hex(b: bytes | None) -> str | None:
    return None if b is None else b.hex()


# ---------------------------------------------------------------------------- taking


async def take_checkpoints(*, ledger: Ledger, store: ChainStore, out: Path, timeout_s: float = 60.0,
                           poll_s: float = 0.05) -> dict[str, int]:
    """Steps 1 and 2 of the module docstring, on the node's loop: ``out/state`` then
    ``out/chain``. `out` must not exist or be empty. Returns the heights taken."""
    kv = ledger.kv
    if not isinstance(kv, RocksKV):
        raise SnapshotError("this node's ledger is in memory: nothing to snapshot")
    out = Path(out)
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise SnapshotError(f"{out} exists and is not an empty directory")
    out.mkdir(parents=True, exist_ok=True)
    try:
        h_l = ledger.height
        kv.checkpoint(str(out / "state"))  # no await before: between two blocks
        with trio.move_on_after(timeout_s) as scope:
            while not _certified_at_or_after(store, h_l):
                await trio.sleep(poll_s)
        if scope.cancelled_caught:
            raise SnapshotError(f"no block committed to the state at height {h_l} within {timeout_s:g} s "
                                "(is the network making blocks?)")
        store.checkpoint(out / "chain")
    except BaseException:
        for part in ("state", "chain"):
            shutil.rmtree(out / part, ignore_errors=True)
        raise
    return {"state_height": h_l, "chain_height": store.head}


def _certified_at_or_after(store: ChainStore, h_l: int) -> bool:
    block = store.block(store.head) if store.head > h_l else None
    return block is not None and block.header.state_height >= h_l


def finish_snapshot(out: Path, genesis: Genesis, *, hooks: Any = None, contracts: Any = None) -> dict[str, Any]:
    """Step 3: bring the copied ledger to the certified state, cut the chain there, write the
    manifest (returned)."""
    out = Path(out)
    store = ChainStore(out / "chain")
    try:
        ledger = Ledger.open(str(out / "state"), genesis, hooks, contracts, keep_blocks=False)
        try:
            h_l = ledger.height
            target: Block | None = None
            for h in range(h_l + 1, store.head + 1):
                b = store.block(h)
                if b is not None and b.header.state_height >= h_l:
                    target = b
                    break
            if target is None:
                raise SnapshotError(f"the copied chain (head {store.head}) has no block committing to the state at {h_l}")
            s = target.header.state_height
            _execute(store, ledger, s, KnownEvents(genesis.chain_id, {}))
            cert = store.certificate(target.header.height)
            if cert is None:
                raise SnapshotError(f"block {target.header.height} has no certificate in the copied chain")
            sets = ledger.validator_sets_by_hash()
        finally:
            ledger.close()
        strip_state(out / "state", s)
        store.truncate_for_restore(target.header.height)
        changes = _change_headers(store, target.header.height, sets)
    finally:
        store.close()
    manifest = {
        "format": SNAPSHOT_FORMAT,
        "chain_id": genesis.chain_id,
        "genesis_hash": genesis.hash().hex(),
        "state_height": s,
        "state_root": target.header.state_root.hex(),
        "chain_height": target.header.height,
        "header": target.header.encode().hex(),
        "certificate": cert.encode().hex() if cert is not None else None,
        "next_validators": _hex(_next_set(target, sets)),
        "changes": changes,
        "created_ms": int(time.time() * 1000),
    }
    (out / MANIFEST).write_text(json.dumps(manifest, indent=1) + "\n")
    return manifest


def _execute(store: ChainStore, ledger: Ledger, to: int, known: KnownEvents) -> None:
    """Apply the copied blocks ledger.height+1 .. `to` to the copied ledger."""
    while ledger.height < to:
        h = ledger.height + 1
        block = store.block(h)
        if block is None:
            raise SnapshotError(f"the copied chain lacks block {h}")
        _, decoded = known.decode_committed(block)
        ledger.apply_block(h, block.header.time_ms, block.events, preverified={d.id for d in decoded if d is not None},
                           decoded=decoded)


def _next_set(block: Block, sets: dict[bytes, ValidatorSet]) -> bytes | None:
    hdr = block.header
    if hdr.next_validators_hash == hdr.validators_hash:
        return None
    vs = sets.get(hdr.next_validators_hash)
    if vs is None:
        raise SnapshotError(f"header {hdr.height} announces a validator set the ledger does not know")
    return vs.encode()


def _change_headers(store: ChainStore, below: int, sets: dict[bytes, ValidatorSet]) -> list[dict[str, str | None]]:
    out: list[dict[str, str | None]] = []
    for h in range(1, below):
        b = store.block(h)
        if b is None:
            raise SnapshotError(f"the copied chain lacks block {h}")
        if b.header.next_validators_hash != b.header.validators_hash:
            c = store.certificate_bytes(h)
            out.append({"header": b.header.encode().hex(), "certificate": _hex(c), "next_validators": _hex(_next_set(b, sets))})
    return out


# ---------------------------------------------------------------------------- checking


def _load_manifest(src: Path) -> dict[str, Any]:
    try:
        doc = json.loads((src / MANIFEST).read_text())
    except FileNotFoundError:
        raise SnapshotError(f"{src} holds no {MANIFEST}: not a snapshot") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise SnapshotError(f"{src / MANIFEST} is unreadable: {exc}") from None
    if not isinstance(doc, dict) or doc.get("format") != SNAPSHOT_FORMAT:
        raise SnapshotError(f"{src / MANIFEST}: not a snapshot manifest of format {SNAPSHOT_FORMAT}")
    for name in ("state_height", "chain_height"):
        if not isinstance(doc.get(name), int) or doc[name] < 0:
            raise SnapshotError(f"{src / MANIFEST}: '{name}' is not a height")
    return doc


def _bytes(doc: dict[str, Any], name: str, *, optional: bool = False) -> bytes | None:
    v = doc.get(name)
    if v is None and optional:
        return None
    try:
        return bytes.fromhex(v)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        raise SnapshotError(f"manifest: '{name}' is not hex") from None


def _certified(doc: dict[str, Any], what: str) -> CertifiedHeader:
    from afterchain.protocol.light import decode_certified

    try:
        return decode_certified(_bytes(doc, "header") or b"", _bytes(doc, "certificate") or b"",
                                _bytes(doc, "next_validators", optional=True))
    except LightError as exc:
        raise SnapshotError(f"manifest: {what}: {exc}") from None


def manifest_from_bytes(raw: bytes, what: str = "the manifest") -> dict[str, Any]:
    """A manifest's JSON document from its bytes (as a peer sends them, node.runtime.statesync),
    with the shape checks of a manifest file."""
    try:
        doc = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise SnapshotError(f"{what} is unreadable: {exc}") from None
    if not isinstance(doc, dict) or doc.get("format") != SNAPSHOT_FORMAT:
        raise SnapshotError(f"{what}: not a snapshot manifest of format {SNAPSHOT_FORMAT}")
    for name in ("state_height", "chain_height"):
        if not isinstance(doc.get(name), int) or doc[name] < 0:
            raise SnapshotError(f"{what}: '{name}' is not a height")
    return doc


def verify_manifest(doc: dict[str, Any], genesis: Genesis, *, now_ms: int,
                    max_age_ms: int | None = None) -> CertifiedHeader:
    """The manifest's checks of `verify_snapshot` (genesis, the certified header from genesis
    through the change headers, its age, the heights and root named): the header it returns
    certifies the state the snapshot claims. Raises `SnapshotError`."""
    if doc.get("chain_id") != genesis.chain_id or doc.get("genesis_hash") != genesis.hash().hex():
        raise SnapshotError(f"the snapshot is of chain {doc.get('chain_id')!r} (genesis {str(doc.get('genesis_hash'))[:16]}...), "
                            f"this node's genesis is {genesis.chain_id!r} ({genesis.hash().hex()[:16]}...)")
    target = _certified(doc, "header")
    changes = doc.get("changes")
    if not isinstance(changes, list) or not all(isinstance(c, dict) for c in changes):
        raise SnapshotError("manifest: 'changes' is not a list of certified headers")
    chs = [_certified(c, f"change header {i}") for i, c in enumerate(changes)]
    trust = genesis_trust(genesis.chain_id, genesis.hash(), genesis.genesis_time_ms, genesis.validators)
    # The anchor is the genesis file this node runs with, trusted as a node replaying from
    # genesis trusts it: it does not expire, nor do the change headers since. (A light
    # client's trusting period guards a client that holds only a recent header.)
    since_genesis = max(0, now_ms - genesis.genesis_time_ms) + DEFAULT_TRUSTING_PERIOD_MS
    try:
        verify_header(trust, target, chs, now_ms=now_ms, trusting_period_ms=since_genesis)
    except LightError as exc:
        raise SnapshotError(f"the snapshot's header {target.header.height} is not certified by the chain's "
                            f"validators: {exc}") from None
    hdr = target.header
    if max_age_ms is not None and hdr.time_ms + max_age_ms < now_ms:
        raise SnapshotError(f"the snapshot's header {hdr.height} is {(now_ms - hdr.time_ms) / 86_400_000:.1f} days old, "
                            f"more than the {max_age_ms / 86_400_000:g} allowed")
    if doc["chain_height"] != hdr.height or doc["state_height"] != hdr.state_height \
            or doc.get("state_root") != hdr.state_root.hex():
        raise SnapshotError("manifest: chain_height, state_height or state_root differ from its certified header's")
    return target


PARALLEL_CHAIN_BLOCKS = 1000
"""From this many blocks on (and with more than one core), `verify_snapshot` checks the
chain in a process of its own while it checks the state: the two take about as long as the
longer one instead of their sum."""


def verify_snapshot(src: Path, genesis: Genesis, *, now_ms: int, max_age_ms: int | None = None,
                    progress: Callable[[str], None] | None = None, parallel: bool | None = None) -> SnapshotInfo:
    """Every check of the module docstring over the snapshot at `src` (which it opens and may
    write to: pass a copy). Raises `SnapshotError` naming the first failure (the chain's
    before the state's). `parallel`: check the chain in another process (None: from
    `PARALLEL_CHAIN_BLOCKS` blocks on, when the machine has more than one core)."""
    say = progress or (lambda _m: None)
    target = verify_manifest(_load_manifest(src), genesis, now_ms=now_ms, max_age_ms=max_age_ms)
    hdr = target.header
    say(f"header {hdr.height} certified (state {hdr.state_height}, root {hdr.state_root.hex()[:16]}...)")
    chain_args = (str(src / "chain"), hdr.height, target.certificate.encode(), hdr.hash(), genesis.hash())
    if parallel is None:
        parallel = hdr.height >= PARALLEL_CHAIN_BLOCKS and (os.cpu_count() or 1) > 1
    if not parallel:
        _verify_chain(*chain_args)
        say(f"blocks 1..{hdr.height} link to it")
        values = _verify_state(src / "state", genesis, hdr.state_height, hdr.state_root)
    else:
        import subprocess
        import sys

        path_s, top, cert, want, gh = chain_args
        chain = subprocess.Popen([sys.executable, "-m", "afterchain.node.runtime.snapshot", "check-chain", path_s,
                                  str(top), cert.hex(), want.hex(), gh.hex()], stdout=subprocess.PIPE,
                                 stderr=subprocess.PIPE)
        state_error: SnapshotError | None = None
        values = 0
        try:
            values = _verify_state(src / "state", genesis, hdr.state_height, hdr.state_root)
        except SnapshotError as exc:
            state_error = exc
        finally:
            out, err = chain.communicate()
        if chain.returncode == 1:  # the chain's refusal first, as when checked in turn
            raise SnapshotError(out.decode(errors="replace").strip())
        if chain.returncode != 0:
            raise SnapshotError(f"the chain check failed (exit {chain.returncode}): "
                                f"{err.decode(errors='replace').strip()[-500:]}")
        say(f"blocks 1..{hdr.height} link to it (checked in a process of its own)")
        if state_error is not None:
            raise state_error
    say(f"state at {hdr.state_height}: {values} values match the certified root")
    return SnapshotInfo(state_height=hdr.state_height, state_root=bytes(hdr.state_root), chain_height=hdr.height,
                        values=values)


def _verify_chain(path_s: str, top: int, cert: bytes, want: bytes, genesis_hash: bytes) -> None:
    """Blocks `top` .. 1 of the chain store at `path_s`: block `top` and its certificate are
    the manifest's (header hash `want`), each block decodes (events match its events_root)
    and is the one its successor links to, and block 1 links to the genesis. Arguments are
    plain values: it may run in another process."""
    path = Path(path_s)
    if not (path / "CURRENT").is_file():
        raise SnapshotError(f"{path} is not a RocksDB store")
    store = ChainStore(path)
    try:
        if store.head != top:
            raise SnapshotError(f"the snapshot's chain ends at {store.head}, its manifest at {top}")
        if store.block_bytes(top) is None or store.certificate_bytes(top) != cert:
            raise SnapshotError(f"the snapshot's block {top} or its certificate is not the manifest's")
        for h in range(top, 0, -1):
            try:
                block = store.block(h)
            except ProtocolError as exc:
                raise SnapshotError(f"the snapshot's block {h} does not decode (or its events do not match its "
                                    f"events_root): {exc}") from None
            if block is None:
                raise SnapshotError(f"the snapshot's chain lacks block {h}")
            if block.header.hash() != want:
                raise SnapshotError(f"the snapshot's block {h} is not the one the certified header {top} links to")
            want = block.header.prev_hash
        if want != genesis_hash:
            raise SnapshotError("the snapshot's block 1 does not link to this chain's genesis")
    finally:
        store.close()


_EMPTY = b"\0" * 32
_NODE_WRITE_BATCH = 65_536


def _next_prefix(prefix: bytes) -> bytes:
    return prefix[:-1] + bytes([prefix[-1] + 1])


def strip_state(path: Path, state_height: int) -> None:
    """What a format-2 snapshot's state store leaves out (`finish_snapshot`, on the copy):
    every SMT node (the joining node rebuilds the tree from the values, `_verify_state`)
    and the roots below `state_height` (their trees are not in the snapshot); then
    compacted, so the table files a peer fetches hold none of it."""
    kv = RocksKV(str(path), sync=False)
    try:
        kv.delete_range(K.SMT_NODE, _next_prefix(K.SMT_NODE), sync=False)
        kv.delete_range(K.root(0), K.root(state_height), sync=True)
        kv.compact()
    finally:
        kv.close()


def rebuild_tree(records: list[bytes], emit: Callable[[dict[bytes, bytes]], None] | None = None,
                 batch: int = _NODE_WRITE_BATCH) -> bytes:
    """The root of the compact sparse Merkle tree (`protocol.smt`) holding `records`, each
    ``path || value_hash`` (64 bytes), sorted, with distinct paths; in one bottom-up pass
    over them. Every node of the tree is handed to `emit` as ``{store key: encoding}``, in
    dicts of about `batch` nodes (None: the root only).

    The tree's inner nodes are the branch points of adjacent paths (the length of their
    common prefix), plus a chain of inner nodes with one empty child above a branch point
    that sits deeper than its parent's child depth; a leaf always hangs right under its
    branch point (or is the root). A stack of pending branch points is closed as each new
    path's branch point comes in higher."""
    sha = hashlib.sha256
    empty = _EMPTY
    out: dict[bytes, bytes] = {}
    prefix = K.SMT_NODE

    def lift(top: int, h: bytes, rep: int, to: int) -> bytes:
        """The subtree rooted at depth `top` (a branch point) seen from depth `to` < `top`:
        the chain of one-child inner nodes in between."""
        for d in range(top - 1, to - 1, -1):
            enc = b"\x01" + (empty + h if (rep >> (255 - d)) & 1 else h + empty)
            h = sha(enc).digest()
            out[prefix + h] = enc
        return h

    n = len(records)
    if n == 0:
        return empty
    # a subtree: (depth of its root, or -1 for a leaf; its hash; one of its paths as an int)
    stack: list[tuple[int, tuple[int, bytes, int]]] = []  # (branch depth, its left subtree)
    rec = records[0]
    enc = b"\x00" + rec
    cur_h = sha(enc).digest()
    out[prefix + cur_h] = enc
    cur: tuple[int, bytes, int] = (-1, cur_h, int.from_bytes(rec[:32], "big"))
    prev_int = cur[2]
    i = 1
    while True:
        if i < n:
            rec = records[i]
            p_int = int.from_bytes(rec[:32], "big")
            x = prev_int ^ p_int
            if x == 0 or p_int < prev_int:
                raise SnapshotError("the snapshot's state values are not sorted by distinct tree paths")
            depth = 256 - x.bit_length()  # the branch point of paths i-1 and i
        else:
            depth = -1  # the end: close every pending branch point
        while stack and stack[-1][0] > depth:
            d, (lt, lh, lrep) = stack.pop()
            ct, ch, crep = cur
            if lt > d + 1:
                lh = lift(lt, lh, lrep, d + 1)
            if ct > d + 1:
                ch = lift(ct, ch, crep, d + 1)
            enc = b"\x01" + lh + ch
            h = sha(enc).digest()
            out[prefix + h] = enc
            cur = (d, h, lrep)
        if i >= n:
            break
        stack.append((depth, cur))
        enc = b"\x00" + rec
        cur_h = sha(enc).digest()
        out[prefix + cur_h] = enc
        cur = (-1, cur_h, p_int)
        prev_int = p_int
        i += 1
        if len(out) >= batch:
            if emit is not None:
                emit(out)
            out = {}
    top, h, rep = cur
    root = h if top <= 0 else lift(top, h, rep, 0)
    if out and emit is not None:
        emit(out)
    return root


def _verify_state(path: Path, genesis: Genesis, height: int, root: bytes) -> int:
    """The state store against the certified root, in one pass over its values: each
    value's (tree path, SHA-256) sorted by path, the tree rebuilt bottom-up from them and
    its nodes written in large batches (whatever SMT nodes and older roots the store came
    with are dropped first: only what the values give is kept), the root compared."""
    if not (path / "CURRENT").is_file():
        raise SnapshotError(f"{path} is not a RocksDB store")
    kv = RocksKV(str(path), sync=False)
    try:
        if kv.get(K.STORE_GENESIS) != genesis.hash():
            raise SnapshotError("the snapshot's state store was created from another genesis")
        raw_h = kv.get(K.STORE_HEIGHT)
        if raw_h is None or int.from_bytes(raw_h, "big") != height:
            got = None if raw_h is None else int.from_bytes(raw_h, "big")
            raise SnapshotError(f"the snapshot's state is at height {got}, its certified header's at {height}")
        stored_root = kv.get(K.root(height))
        if stored_root != root:
            raise SnapshotError(f"the snapshot's state root at {height} is {_hex(stored_root)}, the certified root is "
                                f"{root.hex()}")
        kv.delete_range(K.SMT_NODE, _next_prefix(K.SMT_NODE), sync=False)
        kv.delete_range(K.root(0), K.root(height), sync=False)
        sha = hashlib.sha256
        skip = len(K.VALUE)
        records = [sha(k[skip:]).digest() + sha(v).digest() for k, v in kv.scan(K.VALUE, _next_prefix(K.VALUE))]
        records.sort()
        got_root = rebuild_tree(records, lambda nodes: kv.write(nodes, sync=False))
        if got_root != root:
            raise SnapshotError(f"the snapshot's {len(records)} state values do not hash to the certified root "
                                f"{root.hex()[:16]}... (they give {got_root.hex()[:16]}...): a value was changed, added "
                                "or removed (tampered)")
        kv.write({K.STORE_HEIGHT: K.u64(height)}, sync=True)  # the WAL, node writes included, on disk
        return len(records)
    finally:
        kv.close()


# ---------------------------------------------------------------------------- restoring


def install_snapshot(staging: Path, data_dir: Path, genesis: Genesis, *, now_ms: int, max_age_ms: int | None = None,
                     progress: Callable[[str], None] | None = None) -> SnapshotInfo:
    """`restore_snapshot` without the copy, for a snapshot directory this node owns (one it
    fetched from peers, node.runtime.statesync): verify `staging` in place, drop the source
    node's own records, then move its parts into `data_dir` (absent or empty). On a refusal
    `data_dir` is left as it was (the caller removes `staging`)."""
    staging, data_dir = Path(staging), Path(data_dir)
    if data_dir.exists() and (not data_dir.is_dir() or any(data_dir.iterdir())):
        raise SnapshotError(f"the data directory {data_dir} is not empty: restore only into an empty one")
    info = verify_snapshot(staging, genesis, now_ms=now_ms, max_age_ms=max_age_ms, progress=progress)
    _move_in(staging, data_dir, info)
    return info


def _move_in(staging: Path, data_dir: Path, info: SnapshotInfo) -> None:
    store = ChainStore(staging / "chain")
    try:
        store.truncate_for_restore(info.chain_height)
    finally:
        store.close()
    (staging / MANIFEST).rename(staging / "restored-from.json")
    data_dir.mkdir(parents=True, exist_ok=True)
    for part in ("chain", "state", "restored-from.json"):
        (staging / part).rename(data_dir / part)


def restore_snapshot(src: Path, data_dir: Path, genesis: Genesis, *, now_ms: int, max_age_ms: int | None = None,
                     progress: Callable[[str], None] | None = None) -> SnapshotInfo:
    """Copy the snapshot at `src` next to `data_dir`, verify the copy (`verify_snapshot`),
    drop the source node's own records, and only then move it into `data_dir` (absent or
    empty). On any refusal the copy is removed and `data_dir` is left as it was."""
    src, data_dir = Path(src), Path(data_dir)
    if data_dir.exists() and (not data_dir.is_dir() or any(data_dir.iterdir())):
        raise SnapshotError(f"the data directory {data_dir} is not empty: restore only into an empty one")
    if not (src / MANIFEST).is_file():
        raise SnapshotError(f"{src} holds no {MANIFEST}: not a snapshot")
    staging = data_dir.parent / f".{data_dir.name}.restoring-{os.getpid()}"
    shutil.rmtree(staging, ignore_errors=True)
    try:
        staging.mkdir(parents=True)
        for part in ("chain", "state"):
            if not (src / part).is_dir():
                raise SnapshotError(f"{src} lacks {part}/: not a snapshot")
            shutil.copytree(src / part, staging / part)
        shutil.copy2(src / MANIFEST, staging / MANIFEST)
        info = verify_snapshot(staging, genesis, now_ms=now_ms, max_age_ms=max_age_ms, progress=progress)
        _move_in(staging, data_dir, info)
        return info
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _check_chain_main(argv: list[str]) -> int:
    """``python -m afterchain.node.runtime.snapshot check-chain PATH TOP CERT HASH GENESIS`` (hex):
    `_verify_chain` in a process of its own (`verify_snapshot`); exit 0, or 1 with the
    refusal on stdout."""
    if len(argv) != 6 or argv[0] != "check-chain":
        print("usage: python -m afterchain.node.runtime.snapshot check-chain PATH TOP CERT_HEX HASH_HEX GENESIS_HEX")
        return 2
    try:
        _verify_chain(argv[1], int(argv[2]), bytes.fromhex(argv[3]), bytes.fromhex(argv[4]), bytes.fromhex(argv[5]))
    except SnapshotError as exc:
        print(exc)
        return 1
    return 0


if __name__ == "__main__":
    import sys

    sys.exit(_check_chain_main(sys.argv[1:]))
