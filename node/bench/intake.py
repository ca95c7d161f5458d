"""Benchmark of a node's per-event intake path, without the network or the ledger's work.

    ./scripts/bench intake                 # 12,000 events (~20 s)
    ./scripts/bench intake --quick         # smoke run (used by the tests)
    ./scripts/bench intake --json out.json

One process, real `Node` objects on the in-memory transport (their tasks are not
started: each stage calls the node's own code directly), events from one member in nonce
order. CPU time of the process (`time.process_time`, worker threads included) per event,
for each stage an event goes through on a node:

- ``gossip``: `Node.submit(batch, from_peer=True)` in batches of 200 (decode + signature
  on worker threads, mempool admission with the ledger's pre-check, journal);
- ``api``: the HTTP handler's work for a msgpack batch of 500 (`parse_submission`,
  `Node.submit`, the JSON answer), on a second node;
- ``preprepare``: a backup receiving a 500-event block whose events it has from gossip, as
  the primary sends it (a `CompactPrePrepareMsg`): decoding it (the Merkle root of the
  hashes), rebuilding the block from the node's events (`PeerInbox.expand`), `KnownEvents.preverify`,
  `ConsensusApp.verify_payload`;
- ``commit``: `BlockExecutor.execute` minus the chain store's `commit_block` and the ledger's
  `apply_block` (measured apart: other benches own them).

Also counted, in a separate pass: SHA-256 calls and `SignedEvent` decodes per event
across all stages (the node's share; the ledger's own are included in `ledger`).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import msgpack
import trio

__all__ = ["main", "run"]

GOSSIP_BATCH = 200
API_BATCH = 500
BLOCK_EVENTS = 500

_clock = time.process_time


def _events(n: int) -> list[bytes]:
    from afterchain.node.tools.genesis import MemberSpec  # noqa: F401  (keeps the import order of the tests)
    from afterchain.protocol import bodies as B
    from afterchain.protocol.events import Event, sign_event

    key = _acme()
    out = []
    for i in range(1, n + 1):
        body = B.ProductRegister(gtin="00012345600012", serial=f"SN{i:07d}", model="M1", batch="B1", production_time_ms=_T0)
        out.append(sign_event(key, Event(chain_id=_CHAIN, type=body.EVENT_TYPE, sender=key.public, nonce=i, time_ms=_T0,
                                         body=body)).encode())
    return out


_CHAIN = "bench-intake"
_T0 = 1_700_000_000_000


def _key(name: str) -> Any:
    from afterchain.protocol.crypto import KeyPair

    return KeyPair.from_seed(name.encode().ljust(32, b"\0")[:32])


def _acme() -> Any:
    return _key("acme")


def _validators() -> list[Any]:
    return [_key(f"val{i}") for i in range(4)]


def _genesis() -> Any:
    from afterchain.node.tools.genesis import MemberSpec, build_genesis

    return build_genesis(chain_id=_CHAIN, genesis_time_ms=_T0, validators=[v.public for v in _validators()],
                         members=[MemberSpec("acme", "Acme", ("manufacturer",), (_acme().public,), 1000)])


def _node(tmp: Path, i: int) -> Any:
    from afterchain.node.runtime.runner import Node, NodeOptions
    from afterchain.node.transport.memory import MemoryNetwork

    v = _validators()[i]
    opts = NodeOptions(name=f"n{i}", intake_limit_events=10**9, max_events=10**7, per_sender_quota=10**7)
    return Node(key=v, genesis=_genesis(), data_dir=tmp / f"n{i}", transport=MemoryNetwork().add(v.public), options=opts)


def _preprepare(node: Any, raws: list[bytes], height: int, time_ms: int, *, compact: bool = False) -> tuple[bytes, Any]:
    """A primary's pre-prepare of `raws` at `height`, encoded (as it sends it to backups if
    `compact`), and its header."""
    from afterchain.consensus.messages import CompactPrePrepareMsg, PrePrepare, PrePrepareMsg, SignedPrePrepare
    from afterchain.protocol.block import Block, BlockHeader
    from afterchain.protocol.codec import sha256
    from afterchain.protocol.crypto import Domain
    from afterchain.protocol.merkle import merkle_root
    from afterchain.protocol.types import Hash32, Height, Seq, View

    primary = _validators()[0]
    vh = node.genesis.validators.hash()
    # the certified header names the state root after `state_height` (genesis here): every
    # node checks it against its own before executing
    header = BlockHeader(chain_id=_CHAIN, height=Height(height), view=View(0), time_ms=time_ms, prev_hash=Hash32(b"\0" * 32),
                         events_root=merkle_root([sha256(r) for r in raws]), event_count=len(raws), state_height=Height(0),
                         state_root=Hash32(node.ledger.root_at(0)), validators_hash=vh, next_validators_hash=vh,
                         proposer=primary.public)
    body = PrePrepare(view=View(0), seq=Seq(height), digest=Hash32(header.hash()), replica=primary.public)
    sig = primary.sign(Domain.PREPREPARE, _CHAIN, body)
    msg = PrePrepareMsg(preprepare=SignedPrePrepare(body=body, signature=sig), block=Block(header=header, events=tuple(raws)))
    return (CompactPrePrepareMsg.of(msg) if compact else msg).encode(), header


async def _stages(tmp: Path, raws: list[bytes], timings: dict[str, float],
                  mark: Callable[[str], None] = lambda _stage: None) -> None:
    from afterchain.consensus.app import Verdict
    from afterchain.consensus.messages import ConsensusMessage
    from afterchain.node.http.writes import parse_submission, results_json
    from afterchain.protocol.block import CommitCertificate
    from afterchain.protocol.codec import decode_as
    from afterchain.protocol.types import View

    backup, front = _node(tmp, 1), _node(tmp, 2)
    mark("setup")  # building the nodes (genesis, validator-set and key hashes) is no stage's cost
    t = _clock()
    for i in range(0, len(raws), GOSSIP_BATCH):
        out = await backup.submit(raws[i : i + GOSSIP_BATCH], from_peer=True)
        if any(o.status != "accepted" for o in out):
            raise RuntimeError(f"gossip intake refused an event: {out[0]}")
    timings["gossip"] += _clock() - t
    mark("gossip")

    t = _clock()
    for i in range(0, len(raws), API_BATCH):
        body = msgpack.packb(raws[i : i + API_BATCH])
        got, pre = parse_submission(body, "application/msgpack", 5000)
        outcomes = await front.submit(got, pre)
        f'{{"results":{results_json(outcomes)}}}'.encode()
    timings["api"] += _clock() - t
    front.close()
    now_ms = int(time.time() * 1000)  # proposed now: a backup refuses a block time far from its clock
    blocks = [_preprepare(backup, raws[i : i + BLOCK_EVENTS], 1 + i // BLOCK_EVENTS, now_ms + i, compact=True)
              for i in range(0, len(raws), BLOCK_EVENTS)]
    mark("api")

    app = backup.app
    decoded = []
    primary = _validators()[0].public
    t = _clock()
    for data, _ in blocks:
        msg = backup.inbox.expand(decode_as(ConsensusMessage, data, max_bytes=64 << 20), primary)
        if msg is None:
            raise RuntimeError("the backup lacked events of a block it had every event of")
        await backup.known.preverify(msg.block)
        res = app.verify_payload(msg.block)
        if res.verdict is not Verdict.ACCEPT:
            raise RuntimeError(f"verify_payload: {res.verdict} {res.reason}")
        decoded.append(msg)
    timings["preprepare"] += _clock() - t
    mark("preprepare")

    inner = {"ledger": 0.0, "store": 0.0}

    def timed(name: str, fn: Callable[..., Any]) -> Callable[..., Any]:
        def wrapper(*args: Any, **kw: Any) -> Any:
            s = _clock()
            try:
                return fn(*args, **kw)
            finally:
                inner[name] += _clock() - s
        return wrapper

    backup.ledger.apply_block = timed("ledger", backup.ledger.apply_block)
    backup.store.commit_block = timed("store", backup.store.commit_block)
    backup.replica.executed = lambda h: None
    t = _clock()
    for msg in decoded:
        h = msg.block.header
        await backup.executor.execute(msg.block, CommitCertificate(view=View(0), height=h.height, header_hash=h.hash(), signatures=()))
    total = _clock() - t
    if len(backup.mempool):
        raise RuntimeError(f"{len(backup.mempool)} events still pending after their blocks committed")
    timings["commit"] += total - inner["ledger"] - inner["store"]
    timings["ledger"] += inner["ledger"]
    timings["store"] += inner["store"]
    mark("commit")
    backup.close()


def _count(raws: list[bytes]) -> dict[str, dict[str, float]]:
    """SHA-256 calls and SignedEvent decodes per event and stage (one pass, counted; the
    commit stage includes the ledger's own)."""
    from afterchain.protocol import codec

    counts = {"sha256": 0, "decode": 0}
    per_stage: dict[str, dict[str, float]] = {}

    def mark(stage: str) -> None:
        per_stage[stage] = {k: round(v / len(raws), 2) for k, v in counts.items()}
        counts.update(sha256=0, decode=0)

    real_sha, real_unpack = hashlib.sha256, codec._unpack

    def sha(*a: Any, **kw: Any) -> Any:
        counts["sha256"] += 1
        return real_sha(*a, **kw)

    def unpack(data: bytes, max_bytes: int) -> Any:
        if data[:3] == b"\x94\x21\x01":
            counts["decode"] += 1
        return real_unpack(data, max_bytes)

    hashlib.sha256 = sha
    codec._unpack = unpack
    try:
        with tempfile.TemporaryDirectory() as tmp:
            trio.run(_stages, Path(tmp), raws, dict.fromkeys(("gossip", "api", "preprepare", "commit", "ledger", "store"), 0.0),
                     mark)
    finally:
        hashlib.sha256 = real_sha
        codec._unpack = real_unpack
    return per_stage


def run(n: int, rounds: int) -> dict[str, Any]:
    raws = _events(n)
    best: dict[str, float] = {}
    for _ in range(rounds):
        timings = dict.fromkeys(("gossip", "api", "preprepare", "commit", "ledger", "store"), 0.0)
        with tempfile.TemporaryDirectory() as tmp:
            trio.run(_stages, Path(tmp), raws, timings)
        for k, v in timings.items():
            best[k] = min(best.get(k, float("inf")), v)
    us = {k: round(v / n * 1e6, 2) for k, v in best.items()}
    node_path = us["gossip"] + us["preprepare"] + us["commit"]
    return {"events": n, "rounds": rounds, "us_per_event": us,
            "backup_path_us_per_event": round(node_path, 2),
            "note": "backup path = gossip + preprepare + commit (ledger and store excluded); best of rounds",
            "per_event_counts": _count(raws[: min(n, 2000)])}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="./scripts/bench intake", description=__doc__.split("\n")[0])
    ap.add_argument("--events", type=int, default=12_000)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--quick", action="store_true", help="smoke run: 1,000 events, one round")
    ap.add_argument("--json", dest="json_path")
    args = ap.parse_args(argv)
    from afterchain.node.common.log import configure
    n, rounds = (1000, 1) if args.quick else (args.events, args.rounds)
    configure(json=False, level="warning")
    res = run(n, rounds)
    us = res["us_per_event"]
    print(f"intake path, {n:,} events, best of {rounds} (CPU us per event, worker threads included):")
    for k in ("gossip", "api", "preprepare", "commit"):
        print(f"  {k:<11} {us[k]:7.2f}")
    print(f"  backup path (gossip + preprepare + commit): {res['backup_path_us_per_event']:.2f}")
    print(f"  (measured apart: ledger.apply_block {us['ledger']:.2f}, store.commit_block {us['store']:.2f})")
    print("per event and stage: SHA-256 calls / SignedEvent decodes")
    for stage, c in res["per_event_counts"].items():
        print(f"  {stage:<11} {c['sha256']:5.2f} / {c['decode']:.2f}")
    if args.json_path:
        Path(args.json_path).write_text(json.dumps(res, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
