"""Member node benchmark: CPU per event of a member following certified blocks, relying
on the certificates and re-checking every event signature (`[member]
verify_event_signatures`).

    ./scripts/bench member [--events 4000] [--quick] [--json FILE]

In one process: 4 validators over the in-memory transport commit `--events` pre-signed
product registrations (their process CPU per event, divided by 4, is given as a rough
reference for one validator). Then, for each setting, a fresh member node follows that
chain from height 0: a stand-in peer holding validator 0's key serves `FollowRequest`s
from validator 0's chain store (spliced bytes, as a validator does), and the process CPU
from the member's start until it has executed the head, divided by the events, is the
member's CPU per event (serving included: a small share). Measured one after the other
in one run: compare the two settings' ratio, not absolute figures across machines.
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


async def _run(events: int) -> dict[str, Any]:
    from afterchain.node.runtime.catchup import FollowRequest, follow_response_bytes
    from afterchain.node.runtime.chain_store import ChainStore
    from afterchain.node.runtime.runner import Node, NodeOptions
    from afterchain.node.tools.genesis import MemberSpec, build_genesis
    from afterchain.node.transport.memory import MemoryNetwork
    from afterchain.protocol import bodies as B
    from afterchain.protocol.codec import decode
    from afterchain.protocol.crypto import KeyPair
    from afterchain.protocol.events import Event, sign_event

    def key(name: str) -> KeyPair:
        return KeyPair.from_seed(name.encode().ljust(32, b"\0")[:32])

    vals = [key(f"bench-val{i}") for i in range(4)]
    acme = key("bench-acme")
    g = build_genesis(chain_id="bench-member", genesis_time_ms=1_700_000_000_000, validators=[v.public for v in vals],
                      members=[MemberSpec("acme", "Acme", ("manufacturer",), (acme.public,), 1000)])
    evs = [sign_event(acme, Event(chain_id=g.chain_id, type="product.register", sender=acme.public, nonce=i + 1,
                                  time_ms=1, body=B.ProductRegister(gtin="00012345600012", serial=f"S{i:08d}", model="M",
                                                                    batch="B", production_time_ms=1))).encode()
           for i in range(events)]
    root = Path(tempfile.mkdtemp(prefix="afterchain-bench-member-"))
    out: dict[str, Any] = {"events": events}
    try:
        net = MemoryNetwork()
        nodes = [Node(key=v, genesis=g, data_dir=root / f"v{i}", transport=net.add(v.public),
                      options=NodeOptions(name=f"v{i}", tick_ms=20)) for i, v in enumerate(vals)]
        async with trio.open_nursery() as nursery:
            for n in nodes:
                await nursery.start(n.run)
            c0, t0 = time.process_time(), time.perf_counter()
            for i in range(0, events, 500):
                await nodes[i // 500 % 4].submit(evs[i : i + 500])
            last = decode(evs[-1]).id  # type: ignore[attr-defined]
            while not all(n.ledger.event_outcome(last) is not None for n in nodes):
                await trio.sleep(0.05)
            out["validators_cpu_us_per_event_each"] = round((time.process_time() - c0) / events / 4 * 1e6, 1)
            out["validators_wall_s"] = round(time.perf_counter() - t0, 2)
            head = max(n.store.head for n in nodes)
            while min(n.store.head for n in nodes) < head:
                await trio.sleep(0.05)
            nursery.cancel_scope.cancel()
        out["blocks"] = head
        served = ChainStore(root / "v0" / "chain")
        try:
            for verify in (False, True):
                mnet = MemoryNetwork()
                server = mnet.add(vals[0].public)

                async def serve(sender: bytes, data: bytes) -> bytes:
                    req = decode(data)
                    assert isinstance(req, FollowRequest)
                    return follow_response_bytes(served, req)

                server.on_request(serve)
                member = Node(key=key(f"bench-member-{verify}"), genesis=g, data_dir=root / f"m{verify}",
                              transport=mnet.add(key(f"bench-member-{verify}").public),
                              options=NodeOptions(name="member", tick_ms=20, member_poll_ms=20,
                                                  verify_event_signatures=verify))
                async with trio.open_nursery() as nursery:
                    await nursery.start(server.run)
                    c0, t0 = time.process_time(), time.perf_counter()
                    await nursery.start(member.run)
                    while member.ledger.height < head:
                        await trio.sleep(0.005)
                    cpu, wall = time.process_time() - c0, time.perf_counter() - t0
                    nursery.cancel_scope.cancel()
                name = "verify_event_signatures" if verify else "rely_on_certificate"
                out[name] = {"cpu_us_per_event": round(cpu / events * 1e6, 1), "wall_s": round(wall, 2),
                             "events_verified": member.counters.get("verified_member", 0)}
        finally:
            served.close()
    finally:
        shutil.rmtree(root, ignore_errors=True)
    rely, ver = out["rely_on_certificate"]["cpu_us_per_event"], out["verify_event_signatures"]["cpu_us_per_event"]
    out["verify_cost_ratio"] = round(ver / rely, 2) if rely else None
    return out


def main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(prog="./scripts/bench member", description=__doc__.split("\n\n")[0])
    ap.add_argument("--events", type=int, default=4000)
    ap.add_argument("--quick", action="store_true", help="A smoke run (500 events).")
    ap.add_argument("--json", type=Path, default=None, help="Save the figures here.")
    args = ap.parse_args(argv)
    res = trio.run(_run, 500 if args.quick else args.events)
    emit_json(res, args.json)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
