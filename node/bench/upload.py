"""What validators upload, by peer role and message, without and with member nodes, in one
process (issue 23's accounting; the cluster bench is the end-to-end measure).

    ./scripts/bench upload [--members 8] [--rate 300] [--duration 10] [--quick] [--json FILE]

4 validators (and then also `--members` member nodes with the relay on) run over the
in-memory transport; `--rate` product registrations per second go to the validators in
turn for `--duration` seconds. Every frame a node writes is labelled by the receiver's
role and the message (`node/runtime/traffic.py`, the same breakdown as `/v1/status`
`transport.sent_by`). Printed: the validators' upload per committed block and per event,
split into what goes to validators and what goes to members, and, for the run with
members, each message kind validators send to members (frames and bytes per block).
The memory network connects every node to every other (the relay still picks its
bounded set of peers among them); all nodes share one process and its CPU, so compare
bytes, not times.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import trio

from afterchain.node.bench import emit_json

__all__ = ["main"]


async def _run(members: int, rate: float, duration: float, root: Path) -> dict[str, Any]:
    from afterchain.node.runtime.runner import Node, NodeOptions
    from afterchain.node.tools.genesis import MemberSpec, build_genesis
    from afterchain.node.transport.memory import MemoryNetwork
    from afterchain.protocol import bodies as B
    from afterchain.protocol.crypto import KeyPair
    from afterchain.protocol.events import Event, sign_event

    def key(name: str) -> KeyPair:
        return KeyPair.from_seed(name.encode().ljust(32, b"\0")[:32])

    vals = [key(f"bench-val{i}") for i in range(4)]
    mems = [key(f"bench-mem{i}") for i in range(members)]
    acme = key("bench-acme")
    g = build_genesis(chain_id="bench-upload", genesis_time_ms=1_700_000_000_000, validators=[v.public for v in vals],
                      members=[MemberSpec("acme", "Acme", ("manufacturer",), (acme.public,), 1000)])
    total = max(1, int(rate * duration))
    evs = [sign_event(acme, Event(chain_id=g.chain_id, type="product.register", sender=acme.public, nonce=i + 1,
                                  time_ms=1, body=B.ProductRegister(gtin="00012345600012", serial=f"S{i:08d}", model="M",
                                                                    batch="B", production_time_ms=1))).encode()
           for i in range(total)]
    net = MemoryNetwork()
    opts: dict[str, Any] = {"tick_ms": 20}
    vnodes = [Node(key=v, genesis=g, data_dir=root / f"v{i}", transport=net.add(v.public),
                   options=NodeOptions(name=f"v{i}", **opts)) for i, v in enumerate(vals)]
    mnodes = [Node(key=m, genesis=g, data_dir=root / f"m{i}", transport=net.add(m.public),
                   options=NodeOptions(name=f"m{i}", **opts)) for i, m in enumerate(mems)]
    out: dict[str, Any] = {"members": members, "events": total}
    async with trio.open_nursery() as nursery:
        for n in [*vnodes, *mnodes]:
            await nursery.start(n.run)
        base = {n.options.name: {k: list(v) for k, v in n.transport.stats.sent_by.items()} for n in vnodes}
        h0 = max(n.store.head for n in vnodes)
        t0 = time.perf_counter()
        step = max(1, int(rate / 10))  # a batch every 0.1 s
        start = trio.current_time()
        for j, i in enumerate(range(0, total, step)):
            await trio.sleep_until(start + j * step / rate)
            await vnodes[0].submit(evs[i : i + step])
        from afterchain.protocol.codec import decode

        last = decode(evs[-1]).id  # type: ignore[attr-defined]
        with trio.move_on_after(max(30.0, 3 * duration)):
            while not all(n.ledger.event_outcome(last) is not None for n in [*vnodes, *mnodes]):
                await trio.sleep(0.05)
        out["wall_s"] = round(time.perf_counter() - t0, 2)
        ids = [decode(e).id for e in evs]  # type: ignore[attr-defined]
        committed = len([i for i in ids if vnodes[0].ledger.event_outcome(i) is not None])
        h1 = max(n.store.head for n in vnodes)
        await trio.sleep(1.0)  # the last blocks' relay traffic
        sent: dict[str, list[int]] = {}
        for n in vnodes:
            b = base[n.options.name]
            for k, (f, by) in n.transport.stats.sent_by.items():
                f0, b0 = b.get(k, [0, 0])
                e = sent.setdefault(k, [0, 0])
                e[0] += f - f0
                e[1] += by - b0
        with trio.move_on_after(10.0):
            while not all(m.ledger.height >= h1 for m in mnodes):
                await trio.sleep(0.05)
        out["members_caught_up"] = all(m.ledger.height >= h1 for m in mnodes)
        for who, group in (("validators", vnodes), ("members", mnodes)):
            st = [n.relay.machine.stats for n in group]
            out[f"{who}_relay"] = {"blocks_pushed": sum(s.blocks_pushed for s in st),
                                   "blocks_served": sum(s.blocks_served for s in st),
                                   "requests_sent": sum(s.requests_sent for s in st)}
        out["member_polls"] = sum(m.follower.polls for m in mnodes)
        nursery.cancel_scope.cancel()
    blocks = max(1, h1 - h0)
    nv = len(vnodes)
    out["blocks"] = blocks
    out["committed"] = committed
    per_val_block = {k: (round(f / nv / blocks, 2), round(b / nv / blocks, 1)) for k, (f, b) in sorted(sent.items())}
    to_v = sum(b for k, (_, b) in sent.items() if k.startswith("validator:"))
    to_m = sum(b for k, (_, b) in sent.items() if k.startswith("member:"))
    n_ev = max(1, committed)
    out["validator_upload_bytes_per_event"] = {"to_validators": round(to_v / nv / n_ev, 1),
                                               "to_members": round(to_m / nv / n_ev, 1)}
    out["validator_upload_bytes_per_block"] = {"to_validators": round(to_v / nv / blocks, 1),
                                               "to_members": round(to_m / nv / blocks, 1)}
    out["by_message_per_validator_per_block"] = {k: {"frames": f, "bytes": b} for k, (f, b) in per_val_block.items()}
    return out


def main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(prog="./scripts/bench upload", description=__doc__.split("\n\n")[0])
    ap.add_argument("--members", type=int, default=8)
    ap.add_argument("--rate", type=float, default=300.0, help="events per second offered")
    ap.add_argument("--duration", type=float, default=10.0, help="seconds of load")
    ap.add_argument("--quick", action="store_true", help="A smoke run (2 members, 2 s).")
    ap.add_argument("--json", type=Path, default=None, help="Save the figures here.")
    args = ap.parse_args(argv)
    if args.quick:
        args.members, args.duration, args.rate = 2, 2.0, 100.0
    res: dict[str, Any] = {}
    for m in (0, args.members):
        root = Path(tempfile.mkdtemp(prefix="afterchain-bench-upload-"))
        try:
            res[f"members_{m}"] = trio.run(_run, m, args.rate, args.duration, root)
        finally:
            shutil.rmtree(root, ignore_errors=True)
    a, b = res["members_0"], res[f"members_{args.members}"]
    va = a["validator_upload_bytes_per_event"]
    vb = b["validator_upload_bytes_per_event"]
    tot_a, tot_b = va["to_validators"] + va["to_members"], vb["to_validators"] + vb["to_members"]
    res["validator_upload_per_event_ratio"] = round(tot_b / tot_a, 3) if tot_a else None
    emit_json(res, args.json)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
