"""The offered load of `./scripts/bench cluster`: the same-run verification ceiling (what
checking each event's signature costs per core, the bound the cluster is compared with)
and the presigned events the bench submits."""

from __future__ import annotations

import multiprocessing as mp
import os
import time
from typing import Any

import msgpack

from afterchain.protocol.crypto import KeyPair
from afterchain.protocol.types import Hash32

__all__ = ["TICKET_SHARE", "measure_ceiling", "presign"]

TICKET_SHARE = 0.3
"""The share of products that get a ticket (opened, acknowledged, resolved) in the load."""


def _verify_worker(raws: list[bytes], chain_id: str, seconds: float, out: Any) -> None:
    from afterchain.node.runtime.mempool import decode_and_verify

    n = 0
    t0 = time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        for raw in raws:
            decode_and_verify(raw, chain_id)
        n += len(raws)
    out.put(n / (time.perf_counter() - t0))


def measure_ceiling(seconds: float) -> dict[str, float]:
    """The per-event verification path on every core at once (one process per core)."""
    from afterchain.protocol import bodies as B
    from afterchain.protocol.events import Event, sign_event

    key = KeyPair.from_seed(b"\x07" * 32)
    raws = [
        sign_event(key, Event(chain_id="ceiling", type="ticket.open", sender=key.public, nonce=i, time_ms=1,
                              body=B.TicketOpen(kind="repair", gtin="09506000134352", serial=f"S{i}", fault_type="heating",
                                                description_hash=Hash32(b"\x01" * 32), attachments=()))).encode()
        for i in range(1, 501)
    ]
    cores = os.cpu_count() or 1
    q: Any = mp.get_context("spawn").Queue()
    procs = [mp.get_context("spawn").Process(target=_verify_worker, args=(raws, "ceiling", seconds, q)) for _ in range(cores)]
    for p in procs:
        p.start()
    rates = [q.get() for _ in procs]
    for p in procs:
        p.join()
    return {"cores": cores, "events_per_s": sum(rates)}


# --------------------------------------------------------------------------- the event mix
def presign(net_dir: str, products: int, start_nonces: dict[str, int], policy_id: Hash32, chain_id: str, seed: int,
            out_path: str) -> None:
    """Sign the whole mix (run in a separate process) and write it as msgpack records
    [stage, product index, raw event] to `out_path`."""
    import random

    from afterchain.node.client.sdk import content_hash
    from afterchain.node.tools.demo import gtin14
    from afterchain.node.tools.localnet import LocalNet
    from afterchain.protocol import bodies as B
    from afterchain.protocol.events import Event, sign_event

    net = LocalNet(net_dir)
    keys = {org: net.member_key(org) for org in ("acme", "shopmart", "fixit")}
    nonces = dict(start_nonces)
    rng = random.Random(seed)
    gtin = gtin14("0950600099999")

    def sign(who: KeyPair, name: str, body: Any) -> bytes:
        nonces[name] = nonces.get(name, 0) + 1
        return sign_event(who, Event(chain_id=chain_id, type=body.EVENT_TYPE, sender=who.public, nonce=nonces[name],
                                     time_ms=0, body=body)).encode()

    records: list[tuple[int, int, bytes]] = []
    acme, shop, fixit = keys["acme"], keys["shopmart"], keys["fixit"]
    for i in range(products):
        serial = f"B{seed}-{i:07d}"
        cust = KeyPair.from_seed(f"bench-customer-{seed}-{i}".encode().ljust(32, b"\0")[:32])
        cname = f"cust{i}"
        records.append((0, i, sign(acme, "acme", B.ProductRegister(gtin=gtin, serial=serial, model="KettlePro", batch="BENCH",
                                                                   production_time_ms=1))))
        records.append((0, i, sign(acme, "acme", B.TraceRecord(gtin=gtin, serial=serial, biz_step="commissioning",
                                                               disposition="active", location_hash=content_hash("plant"),
                                                               ref_hash=None))))
        records.append((0, i, sign(acme, "acme", B.ProductTransfer(gtin=gtin, serial=serial, kind="transfer", to_org="shopmart",
                                                                   to_customer=None, order_ref_hash=None))))
        records.append((1, i, sign(shop, "shopmart", B.ProductTransfer(gtin=gtin, serial=serial, kind="sale", to_org=None,
                                                                       to_customer=cust.public,
                                                                       order_ref_hash=content_hash(serial)))))
        records.append((1, i, sign(shop, "shopmart", B.WarrantyActivate(gtin=gtin, serial=serial, policy_id=policy_id))))
        if rng.random() < TICKET_SHARE:
            open_raw = sign(cust, cname, B.TicketOpen(kind="repair", gtin=gtin, serial=serial, fault_type="heating",
                                                      description_hash=content_hash(f"broken {i}"), attachments=()))
            from afterchain.protocol.events import SignedEvent

            tid = SignedEvent.decode(open_raw).id
            records.append((2, i, open_raw))
            records.append((3, i, sign(fixit, "fixit", B.TicketAck(ticket_id=tid, note_hash=None))))
            records.append((3, i, sign(fixit, "fixit", B.TicketUpdate(ticket_id=tid, status="in_progress", note_hash=None))))
            records.append((3, i, sign(fixit, "fixit", B.TicketResolve(ticket_id=tid, resolution="repaired",
                                                                       resolution_hash=content_hash("fixed")))))
            records.append((4, i, sign(cust, cname, B.TicketConfirm(ticket_id=tid))))
            records.append((4, i, sign(cust, cname, B.RatingSubmit(ticket_id=tid, score=rng.randint(3, 5), comment_hash=None))))
    with open(out_path, "wb") as fh:
        fh.write(msgpack.packb(records))


# --------------------------------------------------------------------------- node sampling
