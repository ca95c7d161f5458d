"""Random sequences of valid and invalid events, driven by a seed (used across processes).

`run(seed, blocks, path)` builds a consortium, then for each block draws 1-12 events from
every event type (right and wrong senders, unknown and known ids, stale and future nonces,
garbage bytes, big time jumps that fire deadlines), applies them, and learns the ids the
ledger accepted so later events can refer to them. Prints nothing; returns the roots.

Run as ``python -m tests.ledger.randomrun SEED BLOCKS [PATH] [--kill-after N]`` to print the
roots as JSON lines (``{"height": h, "root": hex}``).
"""

from __future__ import annotations

import json
import random
import sys
from typing import Any

from afterchain.node.app.ledger import Ledger
from afterchain.protocol import bodies as B
from afterchain.protocol.block import ValidatorSet
from afterchain.protocol.codec import encode
from afterchain.protocol.crypto import KeyPair
from afterchain.protocol.events import Event, EventBody, SignedEvent, sign_event
from afterchain.protocol.genesis import LedgerParams
from afterchain.protocol.types import Hash32, PublicKey

from .world import CHAIN, DAY, GTIN, HOUR, NONCE_KEEPING_CODES, T0, make_genesis

ORG_NAMES = ["acme", "audit", "fixit", "ship", "shop"]
VALIDATOR_NAMES = ["val0", "val1", "val2", "val3", "val4"]  # val0..val3: the genesis set


def _key(name: str) -> KeyPair:
    return KeyPair.from_seed(name.encode().ljust(32, b"\0")[:32])


class Driver:
    def __init__(self, seed: int, ledger: Ledger) -> None:
        self.rng = random.Random(seed)
        self.led = ledger
        self.time_ms = T0
        self.custs = [_key(f"customer-{i}") for i in range(4)]
        self.orgs = {o: _key(o) for o in ORG_NAMES}
        self.orgs.update({v: _key(v) for v in VALIDATOR_NAMES})  # node keys: propose and vote
        self.nonce: dict[bytes, int] = {}
        self.serials = [f"S{i}" for i in range(6)]
        self.ids: dict[str, list[bytes]] = {"ticket": [], "return": [], "policy": [], "escrow": [], "proposal": []}

    def pick(self, seq: list[Any]) -> Any:
        return seq[self.rng.randrange(len(seq))]

    def hash(self, kind: str) -> Hash32:
        pool = self.ids[kind]
        if pool and self.rng.random() < 0.85:
            return Hash32(self.pick(pool))
        return Hash32(self.rng.randbytes(32))

    def sender(self, likely: str | None, body: EventBody) -> KeyPair:
        r = self.rng.random()
        if likely == "cust" and r < 0.8:
            owner = self.owner_of(body)
            return owner if owner is not None and r < 0.7 else self.pick(self.custs)
        if likely is not None and likely in self.orgs and r < 0.8:
            return self.orgs[likely]
        return self.pick([*self.orgs.values(), *self.custs])  # type: ignore[no-any-return]

    def owner_of(self, body: EventBody) -> KeyPair | None:
        serial = getattr(body, "serial", None)
        tid = getattr(body, "ticket_id", None)
        if serial is not None:
            p = self.led.product(GTIN, serial)
            who = p["owner"] if p is not None else None
        elif tid is not None:
            t = self.led.ticket(tid)
            who = "cust:" + t["cust"].hex() if t is not None else None
        else:
            return None
        for c in self.custs:
            if who == "cust:" + c.public.hex():
                return c
        return None

    def setup(self) -> None:
        """Products made, moved to the shop, sold, two policies, warranties on half of them."""
        evs: list[tuple[str | KeyPair, EventBody]] = []
        for i, s in enumerate(self.serials):
            evs.append(("acme", B.ProductRegister(gtin=GTIN, serial=s, model="M", batch="B1" if i % 2 else "B2", production_time_ms=T0)))
            evs.append(("acme", B.ProductTransfer(gtin=GTIN, serial=s, kind="transfer", to_org="shop", to_customer=None,
                                                  order_ref_hash=None)))
            evs.append(("shop", B.ProductTransfer(gtin=GTIN, serial=s, kind="sale", to_org=None,
                                                  to_customer=PublicKey(self.custs[i % len(self.custs)].public),
                                                  order_ref_hash=Hash32(bytes(32)))))
        evs.append(("acme", B.PolicyRegister(name="P", service_org="fixit", coverage_period_ms=20 * DAY, covered_faults=("a", "b"),
                                             first_response_ms=2 * HOUR, resolution_ms=2 * DAY, penalty_amount=100,
                                             return_window_ms=10 * DAY, contract_id=None)))
        raws = []
        for who, body in evs:
            kp = self.orgs[who] if isinstance(who, str) else who
            n = self.nonce[kp.public] = self.nonce.get(kp.public, 0) + 1
            raws.append(sign_event(kp, Event(chain_id=CHAIN, type=body.EVENT_TYPE, sender=kp.public, nonce=n,
                                             time_ms=self.time_ms, body=body)).encode())
        self.time_ms += 1000
        res = self.led.apply_block(self.led.height + 1, self.time_ms, raws)
        pid = res.outcomes[-1].detail["policy_id"]
        self.ids["policy"].append(pid)
        raws = []
        for s in self.serials[::2]:
            kp = self.orgs["shop"]
            n = self.nonce[kp.public] = self.nonce.get(kp.public, 0) + 1
            raws.append(sign_event(kp, Event(chain_id=CHAIN, type="warranty.activate", sender=kp.public, nonce=n, time_ms=self.time_ms,
                                             body=B.WarrantyActivate(gtin=GTIN, serial=s, policy_id=Hash32(pid)))).encode())
        self.time_ms += 1000
        res = self.led.apply_block(self.led.height + 1, self.time_ms, raws)
        if not all(o.accepted for o in res.outcomes):
            raise AssertionError("random run set-up failed")

    def body(self) -> tuple[str | None, EventBody]:
        r, h = self.rng, self.rng.randbytes
        serial = self.pick(self.serials)
        k = r.randrange(22)
        if k == 0 and r.random() < 0.3:
            return "acme", B.ProductRegister(gtin=GTIN, serial=serial, model="M", batch=self.pick(["B1", "B2"]),
                                             production_time_ms=T0)
        if k in (0, 1):
            if r.random() < 0.5:
                return self.pick(["acme", "shop"]), B.ProductTransfer(gtin=GTIN, serial=serial, kind="transfer", to_org="shop",
                                                                      to_customer=None, order_ref_hash=None)
            return "shop", B.ProductTransfer(gtin=GTIN, serial=serial, kind="sale", to_org=None,
                                             to_customer=PublicKey(self.pick(self.custs).public), order_ref_hash=Hash32(h(32)))
        if k == 2:
            return self.pick(["acme", "ship"]), B.TraceRecord(gtin=GTIN, serial=serial, biz_step=self.pick(list(B.BIZ_STEPS)),
                                                              disposition=self.pick(["active", "in_transit", "destroyed"]),
                                                              location_hash=Hash32(h(32)), ref_hash=None)
        if k == 3:
            return "acme", B.PolicyRegister(name="P", service_org=self.pick(["fixit", "ship"]), coverage_period_ms=r.randrange(1, 30) * DAY,
                                            covered_faults=tuple(sorted(r.sample(["a", "b", "c"], r.randrange(3)))),
                                            first_response_ms=r.randrange(1, 5) * HOUR, resolution_ms=5 * HOUR + r.randrange(5) * DAY,
                                            penalty_amount=r.randrange(0, 1000), return_window_ms=r.randrange(0, 3) * DAY, contract_id=None)
        if k == 4:
            return self.pick(["shop", "acme"]), B.WarrantyActivate(gtin=GTIN, serial=serial, policy_id=self.hash("policy"))
        if k in (5, 6):
            return "cust", B.TicketOpen(kind=self.pick(["repair", "refund", "complaint", "inquiry"]), gtin=GTIN, serial=serial,
                                        fault_type=self.pick(["a", "b", "c"]), description_hash=Hash32(h(32)), attachments=())
        tid = self.hash("ticket")
        if k == 7:
            return "fixit", B.TicketAck(ticket_id=tid, note_hash=None)
        if k == 8:
            return self.pick(["fixit", "cust"]), B.TicketUpdate(ticket_id=tid, status=self.pick(["in_progress", "waiting_customer"]),
                                                                note_hash=None)
        if k == 9:
            return self.pick(["fixit", "acme"]), B.TicketAssign(ticket_id=tid, org_id=self.pick(["fixit", "shop", "ship"]))
        if k == 10:
            return "cust", self.pick([B.TicketEscalate(ticket_id=tid, reason_hash=Hash32(h(32))), B.TicketConfirm(ticket_id=tid),
                                      B.TicketReopen(ticket_id=tid, reason_hash=Hash32(h(32))), B.TicketClose(ticket_id=tid)])
        if k == 11:
            return "fixit", B.TicketResolve(ticket_id=tid, resolution="repaired", resolution_hash=Hash32(h(32)))
        if k == 12:
            return "fixit", B.TicketReject(ticket_id=tid, reason_code="void", reason_hash=None)
        if k == 13:
            return "cust", B.RatingSubmit(ticket_id=self.pick([tid, self.hash("return")]), score=r.randrange(1, 6), comment_hash=None)
        if k == 14:
            return "cust", B.ReturnRequest(gtin=GTIN, serial=serial, reason_code="x", reason_hash=Hash32(h(32)))
        rid = self.hash("return")
        if k == 15:
            return self.pick(["fixit", "shop"]), self.pick([B.ReturnApprove(ticket_id=rid),
                                                            B.ReturnReject(ticket_id=rid, reason_code="no", reason_hash=None)])
        if k == 16:
            return "ship", B.ShipmentCheckpoint(ticket_id=rid, checkpoint="in_transit", location_hash=Hash32(h(32)), tracking_hash=None)
        if k == 17:
            return "fixit", B.ReturnReceive(ticket_id=rid, condition=self.pick(list(B.RETURN_CONDITIONS)), inspection_hash=None)
        if k == 18:
            payee = self.pick(self.custs)
            return self.pick(["shop", "acme", "cust"]), B.EscrowDeposit(
                amount=r.randrange(1, 200_000), payee_org=None, payee_customer=PublicKey(payee.public),
                ticket_id=rid if r.random() < 0.5 else None, ref_hash=None)
        if k == 19:
            eid = self.hash("escrow")
            return None, self.pick([B.EscrowRelease(escrow_id=eid), B.EscrowRefund(escrow_id=eid)])
        if k == 20:
            if r.random() < 0.8:
                return "cust", B.TicketOpen(kind="repair", gtin=GTIN, serial=serial, fault_type="a",
                                            description_hash=Hash32(h(32)), attachments=())
            return "acme", B.ProductRecall(gtin=GTIN, batch=self.pick(["B1", "B2"]), reason_hash=Hash32(h(32)))
        if r.random() < 0.4:
            period = r.randrange(1, 10) * DAY
            if r.random() < 0.5:
                std = LedgerParams(auto_close_delay_ms=7 * DAY, default_return_window_ms=r.randrange(1, 60) * DAY,
                                   max_deadlines_per_block=1000)
                return self.pick(ORG_NAMES), B.GovernancePropose(kind="policy_standard", payload=encode(std), voting_period_ms=period)
            vals = [_key(v).public for v in VALIDATOR_NAMES if r.random() < 0.8] or [_key("val0").public]
            return self.pick(ORG_NAMES + VALIDATOR_NAMES), B.GovernancePropose(
                kind="validator_change", payload=encode(ValidatorSet(validators=tuple(vals))), voting_period_ms=period)  # type: ignore[arg-type]
        latest = self.ids["proposal"][-1:] if r.random() < 0.7 else []
        pid = Hash32(latest[0]) if latest else self.hash("proposal")
        return self.pick(VALIDATOR_NAMES), B.GovernanceVote(proposal_id=pid, approve=r.random() < 0.8)

    def event(self) -> SignedEvent | bytes:
        r = self.rng.random()
        if r < 0.02:
            return self.rng.randbytes(self.rng.randrange(1, 40))
        likely, body = self.body()
        kp = self.sender(likely, body)
        n = self.nonce.get(kp.public, 0) + 1
        if self.rng.random() < 0.05:
            n = self.pick([max(1, n - 1), n + 1])
        ev = Event(chain_id=CHAIN, type=body.EVENT_TYPE, sender=kp.public, nonce=n, time_ms=self.time_ms, body=body)
        signed = sign_event(kp, ev)
        if self.rng.random() < 0.02:
            signed = SignedEvent(event=ev, signature=signed.signature[:-1] + bytes([signed.signature[-1] ^ 1]))  # type: ignore[arg-type]
        return signed

    def step(self) -> bytes:
        self.time_ms += self.pick([1000, 1000, 60_000, 60_000, HOUR, 6 * HOUR, 3 * DAY])
        evs = [self.event() for _ in range(self.rng.randrange(1, 13))]
        raws = [e if isinstance(e, bytes) else e.encode() for e in evs]
        res = self.led.apply_block(self.led.height + 1, self.time_ms, raws)
        for e, oc in zip(evs, res.outcomes, strict=True):
            if not isinstance(e, SignedEvent):
                continue
            if oc.code not in NONCE_KEEPING_CODES:  # accepted, or refused by its handler: the nonce is used
                self.nonce[e.event.sender] = e.event.nonce
            if not oc.accepted:
                continue
            d = oc.detail or {}
            if "ticket_id" in d:
                self.ids["return" if e.event.type == "return.request" else "ticket"].append(d["ticket_id"])
            for name in ("policy", "escrow", "proposal"):
                if f"{name}_id" in d:
                    self.ids[name].append(d[f"{name}_id"])
        return res.state_root


def run(seed: int, blocks: int, path: str | None = None, *, on_block: Any = None, tiny_caches: bool = False) -> list[bytes]:
    led = Ledger.open(path, make_genesis(balance=300_000), node_cache_nodes=64 if tiny_caches else 131_072,
                      state_cache_entries=8 if tiny_caches else 32_768)
    d = Driver(seed, led)
    d.setup()
    roots = [led.state_root]
    for _ in range(blocks):
        roots.append(d.step())
        if on_block is not None:
            on_block(led.height, roots[-1])
    led.close()
    return roots


def main(argv: list[str]) -> None:
    seed, blocks = int(argv[0]), int(argv[1])
    path = argv[2] if len(argv) > 2 and not argv[2].startswith("--") else None

    def emit(height: int, root: bytes) -> None:
        print(json.dumps({"height": height, "root": root.hex()}), flush=True)

    roots = run(seed, blocks, path, on_block=emit)
    print(json.dumps({"final": roots[-1].hex()}), flush=True)


if __name__ == "__main__":
    main(sys.argv[1:])
