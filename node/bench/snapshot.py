"""`./scripts/bench snapshot`: the cost of checking a snapshot a joining node fetched.

Builds, in one process, a certified chain of `--events` product registrations (blocks of
500, one validator, its COMMIT certificate on every block) over a RocksDB ledger, takes the
snapshot a serving node would offer (`snapshot.finish_snapshot` + `statesync.package_snapshot`)
and times what a joining node does with it once fetched: `snapshot.verify_snapshot` (the
certified header from genesis, the blocks linked to it, the state against the certified
root), split by step. No network, no other process: the state-sync figure that grows with
the state, measured apart from the cluster (`./scripts/bench catchup --state-sync` measures
the whole join).

    ./scripts/bench snapshot --events 100000 [--profile] [--keep DIR]
    ./scripts/bench snapshot --quick
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import resource
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

from afterchain.node.app.ledger import Ledger
from afterchain.node.bench.ledger import BLOCK_EVENTS, GTIN, _key, genesis
from afterchain.node.runtime.chain_store import ChainStore
from afterchain.protocol import bodies as B
from afterchain.protocol.block import Block, BlockHeader, Commit, CommitCertificate, CommitSig
from afterchain.protocol.crypto import Domain, KeyPair
from afterchain.protocol.events import Event, SignedEvent, sign_event
from afterchain.protocol.genesis import Genesis
from afterchain.protocol.merkle import merkle_root
from afterchain.protocol.types import Hash32, Height, Seq, Signature, ValidatorId, View

__all__ = ["build_chain", "build_snapshot", "link_data", "main"]


def _certify(header: BlockHeader, signers: list[KeyPair]) -> CommitCertificate:
    hh = Hash32(header.hash())
    sigs = []
    for v in signers:
        vote = Commit(view=View(0), seq=Seq(header.height), digest=hh, replica=ValidatorId(v.public))
        sigs.append(CommitSig(replica=ValidatorId(v.public), signature=Signature(v.sign(Domain.COMMIT, header.chain_id, vote))))
    return CommitCertificate(view=View(0), height=header.height, header_hash=hh, signatures=tuple(sigs))


def build_chain(path: Path, events: int, *, g: Genesis | None = None, sender: KeyPair | None = None,
                signers: list[KeyPair] | None = None, first: list[SignedEvent] | None = None,
                serial_prefix: str = "S", start_nonce: int = 1, say: Any = print) -> dict[str, Any]:
    """A data directory (``path/state``, ``path/chain``) holding `first` and then `events`
    product registrations by `sender` (nonces from `start_nonce`), in blocks of 500 each
    certified by `signers` (a quorum of `g`'s validators), executed by the ledger, plus one
    empty block whose header commits to the last state. Defaults: the `bench ledger`
    genesis (one validator)."""
    g = g or genesis()
    sender = sender or _key("acme")
    signers = signers or [_key("v")]
    vset_hash = g.validators.hash()
    proposer = g.validators.primary(0)
    pending: list[SignedEvent] = list(first or [])
    led = Ledger.open(str(path / "state"), g, sync=False, keep_blocks=False)
    store = ChainStore(path / "chain")
    prev: bytes = g.hash()  # block 1 links to the genesis
    t = time.perf_counter()
    nonce = start_nonce - 1
    made = 0
    height = 0
    gtin = GTIN
    try:
        while True:
            height += 1
            signed = pending[:BLOCK_EVENTS]
            pending = pending[BLOCK_EVENTS:]
            while len(signed) < BLOCK_EVENTS and made < events:
                nonce += 1
                made += 1
                signed.append(sign_event(sender, Event(
                    chain_id=g.chain_id, type="product.register", sender=sender.public, nonce=nonce, time_ms=1,
                    body=B.ProductRegister(gtin=gtin, serial=f"{serial_prefix}{made:09d}", model="M", batch="B",
                                           production_time_ms=1))))
            raws = tuple(e.encode() for e in signed)
            time_ms = g.genesis_time_ms + height
            header = BlockHeader(chain_id=g.chain_id, height=Height(height), view=View(0), time_ms=time_ms,
                                 prev_hash=Hash32(prev), events_root=merkle_root([hashlib.sha256(r).digest() for r in raws]),
                                 event_count=len(raws), state_height=Height(led.height),
                                 state_root=Hash32(led.state_root), validators_hash=Hash32(vset_hash),
                                 next_validators_hash=Hash32(vset_hash), proposer=proposer)
            store.commit_block(Block(header=header, events=raws), _certify(header, signers), [e.id for e in signed])
            prev = header.hash()
            if not raws:
                break  # the empty block on top: its header certifies the last state
            res = led.apply_block(height, time_ms, raws, preverified={e.id for e in signed}, decoded=signed)
            refused = [o for o in res.outcomes if not o.accepted]
            if refused:
                raise RuntimeError(f"block {height}: {len(refused)} events refused, first: {refused[0].code} "
                                   f"{refused[0].message}")
            if height % 200 == 0:
                say(f"  built {height} blocks, {made:,} events, {time.perf_counter() - t:.0f} s")
        return {"blocks": height, "events": made + len(first or []), "build_s": round(time.perf_counter() - t, 1),
                "state_height": led.height, "next_nonce": nonce + 1}
    finally:
        led.close()
        store.close()


def link_data(src: Path, data_dir: Path) -> None:
    """A node's data directory from a built one (``chain/``, ``state/``): the RocksDB table
    files hard-linked (they never change), every other file copied (a store appends to its
    log and manifest)."""
    for part in ("chain", "state"):
        dst = data_dir / part
        dst.mkdir(parents=True)
        for f in (src / part).iterdir():
            if f.name == "LOCK":
                continue
            if f.suffix == ".sst":
                os.link(f, dst / f.name)
            else:
                shutil.copy2(f, dst / f.name)


def build_snapshot(work: Path, events: int, *, say: Any = print) -> tuple[Path, dict[str, Any]]:
    """Build the chain under ``work/src`` and the snapshot of it under ``work/snap``."""
    from afterchain.node.runtime.snapshot import finish_snapshot

    src = work / "src"
    figures = build_chain(src, events, say=say)
    snap = work / "snap"
    snap.mkdir(parents=True)
    t = time.perf_counter()
    shutil.copytree(src / "state", snap / "state")
    shutil.copytree(src / "chain", snap / "chain")
    finish_snapshot(snap, genesis())
    figures["finish_s"] = round(time.perf_counter() - t, 2)
    return snap, figures


def _du(p: Path) -> int:
    return sum(f.stat().st_size for f in p.rglob("*") if f.is_file())


def main(argv: list[str]) -> int:
    from afterchain.node.runtime.snapshot import verify_snapshot
    from afterchain.node.runtime.statesync import package_snapshot

    ap = argparse.ArgumentParser(prog="./scripts/bench snapshot", description=__doc__.split("\n\n")[0])
    ap.add_argument("--events", type=int, default=100_000)
    ap.add_argument("--quick", action="store_true", help="smoke run: 3,000 events")
    ap.add_argument("--profile", action="store_true", help="cProfile the verification, print the top functions")
    ap.add_argument("--keep", default=None, metavar="DIR", help="build (or reuse) the snapshot in DIR and keep it")
    ap.add_argument("--json", dest="json_path", default=None)
    args = ap.parse_args(argv)
    n = 3_000 if args.quick else args.events
    work = Path(args.keep) if args.keep else Path(tempfile.mkdtemp(prefix="bench-snapshot-"))
    try:
        if (work / "snap" / "manifest.json").is_file():
            snap, figures = work / "snap", json.loads((work / "build.json").read_text())
            print(f"reusing the snapshot in {snap} ({figures['events']:,} events)")
        else:
            shutil.rmtree(work, ignore_errors=True)
            work.mkdir(parents=True)
            snap, figures = build_snapshot(work, n)
            (work / "build.json").write_text(json.dumps(figures))
        t = time.perf_counter()
        offer = package_snapshot(snap)
        figures["package_s"] = round(time.perf_counter() - t, 2)
        figures["snapshot_bytes"] = offer.total_bytes
        figures["chunks"] = len(offer.chunk_hashes)
        check = work / "check"
        shutil.rmtree(check, ignore_errors=True)
        shutil.copytree(snap, check)
        steps: list[tuple[str, float]] = []
        t = time.perf_counter()
        c = time.process_time()

        def say(msg: str) -> None:
            steps.append((msg, time.perf_counter() - t))

        prof = None
        if args.profile:
            import cProfile

            prof = cProfile.Profile()
            prof.enable()
        info = verify_snapshot(check, genesis(), now_ms=int(time.time() * 1000), progress=say)
        if prof is not None:
            prof.disable()
        figures["verify_s"] = round(time.perf_counter() - t, 2)
        figures["verify_cpu_s"] = round(time.process_time() - c, 2)
        figures["values"] = info.values
        last = 0.0
        for msg, at in steps:
            print(f"  {at - last:7.2f} s  {msg}")
            last = at
        shutil.rmtree(check, ignore_errors=True)
        print(f"{figures['events']:,} events in {figures['blocks']} blocks (built in {figures['build_s']} s); snapshot "
              f"{figures['snapshot_bytes'] / 1e6:.1f} MB in {figures['chunks']} chunks (finish {figures['finish_s']} s, "
              f"package {figures['package_s']} s)")
        print(f"verify: {figures['verify_s']} s wall, {figures['verify_cpu_s']} s CPU, {info.values:,} state values; "
              f"load {os.getloadavg()[0]:.1f}; peak RSS {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024} MiB")
        if prof is not None:
            import pstats

            pstats.Stats(prof).sort_stats("cumulative").print_stats(30)
        if args.json_path:
            Path(args.json_path).write_text(json.dumps(figures, indent=2) + "\n")
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(__import__("sys").argv[1:]))
