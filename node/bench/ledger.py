"""`./scripts/bench ledger`: ledger execution throughput and state-root cost.

Prints, from one run:
1. apply throughput (events/s, one core) for a realistic mix - product registrations,
   supply-chain transfers, sales, warranty activations, trace records, ticket flows
   (open, ack, progress, resolve, confirm), ratings - in 500-event blocks on RocksDB with
   an fsync per block, state root included. Signatures are checked before (the ids are
   passed as `preverified`), as the node does. Two figures: raw events (the ledger
   decodes each) and pre-decoded events (the node hands over what the mempool decoded);
2. the state-root cost of one such 500-event block's writes against a tree of 1M keys
   (`--smt-keys`), in ms per block (SMT over an in-memory node store).

    ./scripts/bench ledger                 # 100k events, 1M-key SMT
    ./scripts/bench ledger --quick         # a few seconds
    ./scripts/bench ledger --events 50000 --profile
    ./scripts/bench ledger --prune-compare     # only: State.commit with and without SMT pruning

`--prune-compare` (issue 27): two state stores on RocksDB (200k keys, `--prune-keep`
roots kept, 16 by default, so pruning runs from the 17th block on), the same kind of
500-key blocks (250 updates, 250 new keys) committed to each in turn, one with SMT
pruning and one without (`prune_nodes=False`): CPU ms per commit (RocksDB's threads
included) and the SMT nodes each store holds at the end.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import resource
import shutil
import tempfile
import time
from typing import Any

from afterchain.node.app.ledger import Ledger
from afterchain.protocol import bodies as B
from afterchain.protocol.block import ValidatorSet
from afterchain.protocol.crypto import KeyPair
from afterchain.protocol.events import Event, EventBody, SignedEvent, sign_event
from afterchain.protocol.genesis import ConsensusParams, Genesis, LedgerParams, Member, VmAllowed, VmParams
from afterchain.protocol.smt import MemoryNodeStore, SparseMerkleTree
from afterchain.protocol.types import Hash32, PublicKey

CHAIN = "bench"
T0 = 1_700_000_000_000
GTIN = "00012345600012"
BLOCK_EVENTS = 500
ORGS = {"acme": ("manufacturer",), "fixit": ("service_provider",), "ship": ("logistics",), "shop": ("retailer",)}


def _key(name: str) -> KeyPair:
    return KeyPair.from_seed(name.encode().ljust(32, b"\0")[:32])


def genesis() -> Genesis:
    members = tuple(Member(org_id=o, name=o, roles=r, keys=(PublicKey(_key(o).public),), balance=10**12)
                    for o, r in sorted(ORGS.items()))
    return Genesis(
        chain_id=CHAIN, genesis_time_ms=T0, validators=ValidatorSet(validators=(_key("v").public,)),  # type: ignore[arg-type]
        members=members,
        consensus=ConsensusParams(checkpoint_interval=10, watermark_window=40, view_timeout_ms=1000, view_timeout_max_ms=30_000,
                                  max_block_events=BLOCK_EVENTS, max_block_bytes=4 << 20, block_interval_ms=200),
        vm=VmParams(vms=(VmAllowed(vm_id="lua", version=1),), max_gas_per_call=10**7, max_gas_per_block=10**9, hook_gas_limit=10**6),
        ledger=LedgerParams(auto_close_delay_ms=7 * 86_400_000, default_return_window_ms=30 * 86_400_000, max_deadlines_per_block=1000),
    )


class Mix:
    """Signed events of whole product lives, interleaved (each product's events stay in order)."""

    def __init__(self, seed: int = 1) -> None:
        self.rng = random.Random(seed)
        self.orgs = {o: _key(o) for o in ORGS}
        self.nonces: dict[bytes, int] = {}
        self.policy_id: bytes | None = None

    def sign(self, kp: KeyPair, body: EventBody) -> SignedEvent:
        n = self.nonces[kp.public] = self.nonces.get(kp.public, 0) + 1
        return sign_event(kp, Event(chain_id=CHAIN, type=body.EVENT_TYPE, sender=kp.public, nonce=n, time_ms=T0, body=body))

    def life(self, i: int) -> list[tuple[KeyPair, Any]]:
        """One product: register, trace, to the shop, sale, warranty, a ticket flow, a rating
        (12 events; about 1 in 4 products gets no ticket: 6 events)."""
        s = f"P{i}"
        cust = KeyPair.from_seed(i.to_bytes(32, "big"))
        acme, shop, fixit = self.orgs["acme"], self.orgs["shop"], self.orgs["fixit"]
        h = Hash32(self.rng.randbytes(32))
        steps: list[tuple[KeyPair, Any]] = [
            (acme, B.ProductRegister(gtin=GTIN, serial=s, model="Kettle", batch="B1", production_time_ms=T0)),
            (acme, B.TraceRecord(gtin=GTIN, serial=s, biz_step="shipping", disposition="in_transit", location_hash=h, ref_hash=None)),
            (acme, B.ProductTransfer(gtin=GTIN, serial=s, kind="transfer", to_org="shop", to_customer=None, order_ref_hash=None)),
            (shop, B.ProductTransfer(gtin=GTIN, serial=s, kind="sale", to_org=None, to_customer=PublicKey(cust.public), order_ref_hash=h)),
            (shop, B.WarrantyActivate(gtin=GTIN, serial=s, policy_id=Hash32(self.policy_id or b""))),
        ]
        if self.rng.random() < 0.75:
            steps.append((cust, "open"))
            steps += [(fixit, "ack"), (fixit, "progress"), (fixit, "resolve"), (cust, "confirm"), (cust, "rate")]
        else:
            steps.append((acme, B.TraceRecord(gtin=GTIN, serial=s, biz_step="retail_selling", disposition="retail_sold",
                                              location_hash=h, ref_hash=None)))
        return steps

    def events(self, n: int) -> list[SignedEvent]:
        out = [self.sign(self.orgs["acme"], B.PolicyRegister(
            name="Std", service_org="fixit", coverage_period_ms=365 * 86_400_000, covered_faults=(), first_response_ms=4 * 3_600_000,
            resolution_ms=3 * 86_400_000, penalty_amount=100, return_window_ms=0, contract_id=None))]
        self.policy_id = out[0].id
        active: list[tuple[str, list[tuple[KeyPair, Any]], list[bytes]]] = []
        i = 0
        while len(out) < n:
            while len(active) < 64:
                active.append((f"P{i}", self.life(i), []))
                i += 1
            j = self.rng.randrange(len(active))
            serial, steps, ticket = active[j]
            kp, body = steps.pop(0)
            if isinstance(body, str):
                tid = Hash32(ticket[0]) if ticket else Hash32(b"\0" * 32)
                body = _ticket_body(body, tid, serial, self.rng.randrange(1, 6))
            ev = self.sign(kp, body)
            if isinstance(body, B.TicketOpen):
                ticket.append(ev.id)
            out.append(ev)
            if not steps:
                active.pop(j)
        return out[:n]


def _ticket_body(step: str, tid: Hash32, serial: str, score: int) -> EventBody:
    if step == "open":
        return B.TicketOpen(kind="repair", gtin=GTIN, serial=serial, fault_type="no_power", description_hash=tid, attachments=())
    if step == "ack":
        return B.TicketAck(ticket_id=tid, note_hash=None)
    if step == "progress":
        return B.TicketUpdate(ticket_id=tid, status="in_progress", note_hash=None)
    if step == "resolve":
        return B.TicketResolve(ticket_id=tid, resolution="repaired", resolution_hash=tid)
    if step == "confirm":
        return B.TicketConfirm(ticket_id=tid)
    return B.RatingSubmit(ticket_id=tid, score=score, comment_hash=None)


def apply_run(events: list[SignedEvent], path: str | None, *, decoded: bool, sync: bool = True,
              keep_blocks: bool = False) -> dict[str, Any]:
    raws = [e.encode() for e in events]
    ids = {e.id for e in events}
    led = Ledger.open(path, genesis(), sync=sync, keep_blocks=keep_blocks)
    rejected: dict[str, int] = {}
    t_start = time.perf_counter()
    c_start = time.process_time()
    t_ms = T0
    for b in range(0, len(raws), BLOCK_EVENTS):
        t_ms += 1000
        chunk = raws[b:b + BLOCK_EVENTS]
        res = led.apply_block(led.height + 1, t_ms, chunk, preverified=ids,
                              decoded=events[b:b + BLOCK_EVENTS] if decoded else None)
        for oc in res.outcomes:
            if not oc.accepted:
                rejected[oc.code] = rejected.get(oc.code, 0) + 1
    elapsed = time.perf_counter() - t_start
    cpu = time.process_time() - c_start
    root = led.state_root
    led.close()
    return {"events": len(raws), "seconds": elapsed, "events_per_s": len(raws) / elapsed, "cpu_seconds": cpu,
            "events_per_cpu_s": len(raws) / cpu, "rejected": rejected, "root": root.hex()}


def smt_block_cost(tree_keys: int, block_keys: list[bytes], rounds: int = 5) -> tuple[float, float]:
    """Median (wall ms, CPU ms) of one block's SMT batch update on a `tree_keys`-key tree."""
    store = MemoryNodeStore()
    tree = SparseMerkleTree(store)
    rng = random.Random(2)
    batch = 200_000
    for start in range(0, tree_keys, batch):
        tree.update({rng.randbytes(24): b"v" * 40 for _ in range(min(batch, tree_keys - start))})
    times, cpu = [], []
    for r in range(rounds):
        items = {k + bytes([r]): os.urandom(120) for k in block_keys}
        t, c = time.perf_counter(), time.process_time()
        tree.update(items)
        times.append(time.perf_counter() - t)
        cpu.append(time.process_time() - c)
    times.sort()
    cpu.sort()
    return times[len(times) // 2] * 1000, cpu[len(cpu) // 2] * 1000


def prune_cost(keys: int, blocks: int, keep: int) -> dict[str, Any]:
    """Median CPU ms of `State.commit` with and without SMT pruning (see the docstring)."""
    import statistics

    from afterchain.node.app.state import State
    from afterchain.node.app.store import RocksKV

    def key(i: int) -> bytes:
        return b"bench/" + i.to_bytes(8, "big")

    tmp = tempfile.mkdtemp(prefix="bench-prune-")
    runs: dict[str, dict[str, Any]] = {}
    try:
        for name, prune in (("pruned", True), ("unpruned", False)):
            st = State(RocksKV(os.path.join(tmp, name), sync=False), keep_roots=keep, prune_nodes=prune)
            st.commit(0, 0, sync=False)
            for lo in range(0, keys, 50_000):
                for i in range(lo, min(keys, lo + 50_000)):
                    st.put(key(i), i)
                st.commit(st.height + 1, 0, sync=False)
            runs[name] = {"state": st, "rng": random.Random(1), "next": keys, "times": []}
        for b in range(blocks):
            for name in ("pruned", "unpruned") if b % 2 else ("unpruned", "pruned"):
                r = runs[name]
                st, rng = r["state"], r["rng"]
                for _ in range(250):
                    st.put(key(rng.randrange(r["next"])), rng.randrange(10**9))
                for _ in range(250):
                    st.put(key(r["next"]), 1)
                    r["next"] += 1
                c = time.process_time()
                st.commit(st.height + 1, 0, sync=False)
                if b >= 2 * keep:
                    r["times"].append(time.process_time() - c)
        out: dict[str, Any] = {"keys": keys, "blocks": blocks, "keep_roots": keep}
        for name, r in runs.items():
            st = r["state"]
            out[name] = {"commit_cpu_ms": statistics.median(r["times"]) * 1e3,
                         "smt_nodes": sum(1 for _ in st.kv.scan(b"n", b"o")),
                         "last_block_pruned_nodes": st.last_block_pruned_nodes}
            st.kv.close()
        return out
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(prog="bench ledger", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="small run (a few seconds)")
    ap.add_argument("--events", type=int, default=100_000)
    ap.add_argument("--smt-keys", type=int, default=1_000_000)
    ap.add_argument("--profile", action="store_true", help="cProfile the decoded run, print the top functions")
    ap.add_argument("--json", help="write the figures to this file")
    ap.add_argument("--prune-compare", action="store_true", help="only: State.commit with and without SMT pruning")
    ap.add_argument("--prune-keep", type=int, default=16, help="roots kept in --prune-compare (default 16)")
    args = ap.parse_args(argv)
    if args.prune_compare:
        keys, blocks = (5_000, 4 * args.prune_keep) if args.quick else (200_000, 2 * args.prune_keep + 80)
        pc = prune_cost(keys, blocks, args.prune_keep)
        for name in ("unpruned", "pruned"):
            f = pc[name]
            print(f"State.commit, 500-key blocks, {keys:,} keys, {name:>8}: {f['commit_cpu_ms']:.2f} CPU ms per block "
                  f"(median of the last {blocks - 2 * args.prune_keep}); {f['smt_nodes']:,} SMT nodes stored")
        print(f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")
        if args.json:
            with open(args.json, "w") as fh:
                json.dump(pc, fh, indent=2)
        return 0
    n = 3_000 if args.quick else args.events
    smt_keys = 20_000 if args.quick else args.smt_keys
    t = time.perf_counter()
    events = Mix().events(n)
    print(f"generated and signed {len(events)} events in {time.perf_counter() - t:.1f} s (mix: {_mix(events)})")
    tmp = tempfile.mkdtemp(prefix="bench-ledger-")
    try:
        raw = apply_run(events, os.path.join(tmp, "a"), decoded=False)
        dec = apply_run(events, os.path.join(tmp, "b"), decoded=True)
        if args.profile:
            import cProfile
            import pstats

            prof = cProfile.Profile()
            prof.enable()
            apply_run(events, os.path.join(tmp, "c"), decoded=True)
            prof.disable()
            pstats.Stats(prof).sort_stats("tottime").print_stats(25)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    if raw["root"] != dec["root"]:
        raise SystemExit("decoded and raw runs disagree on the state root")
    led_keys = _block_keys(events)
    smt_ms, smt_cpu_ms = smt_block_cost(smt_keys, led_keys)
    print(f"apply, raw events (decode in the ledger):  {raw['events_per_s']:,.0f} events/s wall, "
          f"{raw['events_per_cpu_s']:,.0f} per CPU-second  ({raw['events']} events, {raw['seconds']:.2f} s, RocksDB + fsync "
          f"per {BLOCK_EVENTS}-event block)")
    print(f"apply, pre-decoded events (node path):     {dec['events_per_s']:,.0f} events/s wall, "
          f"{dec['events_per_cpu_s']:,.0f} per CPU-second  (target >= 20,000; CPU-seconds include RocksDB's threads)")
    print(f"load average while running: {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores (wall figures shrink with it); "
          f"peak RSS {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024} MiB")
    print(f"rejected in the mix: {raw['rejected'] or 'none'}")
    print(f"state-root cost of one {BLOCK_EVENTS}-event block ({len(led_keys)} state keys) at {smt_keys:,} keys: {smt_ms:.1f} ms wall, "
          f"{smt_cpu_ms:.1f} ms CPU")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"raw": raw, "decoded": dec, "smt_block_ms": smt_ms, "smt_block_cpu_ms": smt_cpu_ms, "smt_keys": smt_keys, "block_state_keys": len(led_keys)}, f,
                      indent=2)
    return 0


def _mix(events: list[SignedEvent]) -> str:
    counts: dict[str, int] = {}
    for e in events:
        counts[e.event.type] = counts.get(e.event.type, 0) + 1
    return ", ".join(f"{k} {v}" for k, v in sorted(counts.items(), key=lambda kv: -kv[1]))


def _block_keys(events: list[SignedEvent]) -> list[bytes]:
    """As many fresh keys as one typical block of the mix writes (its 10th block, once
    products, tickets and customers are in flight), to size the SMT figure realistically."""
    led = Ledger.open(None, genesis())
    counts = []
    for b in range(0, min(len(events), 10 * BLOCK_EVENTS), BLOCK_EVENTS):
        chunk = events[b:b + BLOCK_EVENTS]
        led.apply_block(led.height + 1, T0 + 1000 * (led.height + 1), [e.encode() for e in chunk], decoded=chunk,
                        preverified={e.id for e in chunk})
        counts.append(led.last_block_state_keys)
    rng = random.Random(9)
    return [rng.randbytes(40) for _ in range(counts[-1])]


if __name__ == "__main__":
    raise SystemExit(main(__import__("sys").argv[1:]))
