"""A small consortium for ledger tests: genesis, keys, signed events and blocks."""

from __future__ import annotations

from typing import Any

from afterchain.node.app.hooks import customer_account
from afterchain.node.app.ledger import BlockResult, Ledger, Outcome
from afterchain.protocol import bodies as B
from afterchain.protocol.block import ValidatorSet
from afterchain.protocol.crypto import KeyPair
from afterchain.protocol.events import Event, EventBody, SignedEvent, sign_event
from afterchain.protocol.genesis import ConsensusParams, Genesis, LedgerParams, Member, VmAllowed, VmParams
from afterchain.protocol.types import Hash32, PublicKey

CHAIN = "test-chain"
T0 = 1_700_000_000_000
HOUR = 3_600_000
DAY = 24 * HOUR
ORGS = {
    "acme": ("manufacturer",),
    "audit": ("auditor",),
    "fixit": ("service_provider",),
    "ship": ("logistics",),
    "shop": ("retailer",),
}
GTIN = "00012345600012"  # check digit 2


def key(name: str) -> KeyPair:
    return KeyPair.from_seed(name.encode().ljust(32, b"\0")[:32])


def h(tag: str) -> Hash32:
    return Hash32(tag.encode().ljust(32, b"\0")[:32])


def make_genesis(*, balance: int = 1_000_000, auto_close_ms: int = 7 * DAY, return_window_ms: int = 30 * DAY) -> Genesis:
    members = tuple(
        Member(org_id=o, name=o.title(), roles=roles, keys=(PublicKey(key(o).public),), balance=balance)
        for o, roles in sorted(ORGS.items())
    )
    return Genesis(
        chain_id=CHAIN, genesis_time_ms=T0,
        validators=ValidatorSet(validators=tuple(key(f"val{i}").public for i in range(4))),  # type: ignore[misc]
        members=members,
        consensus=ConsensusParams(checkpoint_interval=10, watermark_window=40, view_timeout_ms=1000,
                                  view_timeout_max_ms=30_000, max_block_events=500, max_block_bytes=4 << 20,
                                  block_interval_ms=200),
        vm=VmParams(vms=(VmAllowed(vm_id="lua", version=1), VmAllowed(vm_id="wasm", version=1)),
                    max_gas_per_call=10_000_000, max_gas_per_block=100_000_000, hook_gas_limit=1_000_000),
        ledger=LedgerParams(auto_close_delay_ms=auto_close_ms, default_return_window_ms=return_window_ms,
                            max_deadlines_per_block=1000),
    )


NONCE_KEEPING_CODES = {"nonce.wrong", "permission.revoked", "event.too_large", "signature.invalid", "signature.wrong_domain",
                       "chain.wrong_id"}


class World:
    """Signs events with per-key nonces and applies them as blocks."""

    def __init__(self, ledger: Ledger, *, time_ms: int = T0) -> None:
        self.led = ledger
        self.nonces: dict[bytes, int] = {}
        self.time_ms = time_ms
        self.auto: set[bytes] = set()  # ids of events whose nonce this world assigned
        self.accepted: set[bytes] = set()

    def ev(self, who: str | KeyPair, body: EventBody, *, nonce: int | None = None, chain: str = CHAIN) -> SignedEvent:
        kp = key(who) if isinstance(who, str) else who
        n = self.nonces.get(kp.public, 0) + 1 if nonce is None else nonce
        if nonce is None:
            self.nonces[kp.public] = n
        signed = sign_event(kp, Event(chain_id=chain, type=body.EVENT_TYPE, sender=kp.public, nonce=n,
                                      time_ms=self.time_ms, body=body))
        if nonce is None:
            self.auto.add(signed.id)
        return signed

    def block(self, *events: SignedEvent | bytes, advance_ms: int = 1000) -> BlockResult:
        self.time_ms += advance_ms
        raws = [e if isinstance(e, bytes) else e.encode() for e in events]
        res = self.led.apply_block(self.led.height + 1, self.time_ms, raws)
        # an event refused before its handler ran (bad nonce, signature, size, revoked
        # key) does not use its nonce: let the next one reuse it. A refusal by the
        # handler does use it (see Ledger._apply_event).
        self.accepted.update(oc.event_id for oc in res.outcomes if oc.accepted)
        for e, oc in zip(events, res.outcomes, strict=True):
            if (isinstance(e, SignedEvent) and not oc.accepted and oc.code in NONCE_KEEPING_CODES and e.id in self.auto
                    and e.id not in self.accepted and self.nonces.get(e.event.sender) == e.event.nonce):
                self.nonces[e.event.sender] = e.event.nonce - 1
        return res

    def one(self, who: str | KeyPair, body: EventBody, **kw: Any) -> Outcome:
        return self.block(self.ev(who, body), **kw).outcomes[0]

    def ok(self, who: str | KeyPair, body: EventBody, **kw: Any) -> Outcome:
        oc = self.one(who, body, **kw)
        assert oc.accepted, (oc.code, oc.message)
        return oc

    # ---- common set-ups

    def product(self, serial: str = "S1", *, batch: str = "B1") -> None:
        self.ok("acme", B.ProductRegister(gtin=GTIN, serial=serial, model="Kettle 2000", batch=batch,
                                          production_time_ms=T0 - DAY))

    def sell(self, customer: KeyPair, serial: str = "S1") -> None:
        self.ok("acme", B.ProductTransfer(gtin=GTIN, serial=serial, kind="transfer", to_org="shop", to_customer=None,
                                          order_ref_hash=None))
        self.ok("shop", B.ProductTransfer(gtin=GTIN, serial=serial, kind="sale", to_org=None,
                                          to_customer=PublicKey(customer.public), order_ref_hash=h("order")))

    def policy(self, *, penalty: int = 500, faults: tuple[str, ...] = (), coverage_ms: int = 365 * DAY,
               fr_ms: int = 4 * HOUR, res_ms: int = 3 * DAY, return_ms: int = 0, contract: bytes | None = None) -> bytes:
        oc = self.ok("acme", B.PolicyRegister(name="Std", service_org="fixit", coverage_period_ms=coverage_ms,
                                              covered_faults=faults, first_response_ms=fr_ms, resolution_ms=res_ms,
                                              penalty_amount=penalty, return_window_ms=return_ms,
                                              contract_id=None if contract is None else Hash32(contract)))
        return oc.detail["policy_id"]  # type: ignore[no-any-return]

    def warranty(self, policy_id: bytes, serial: str = "S1") -> None:
        self.ok("shop", B.WarrantyActivate(gtin=GTIN, serial=serial, policy_id=Hash32(policy_id)))

    def sold_with_warranty(self, customer: KeyPair, serial: str = "S1", **policy_kw: Any) -> bytes:
        self.product(serial)
        self.sell(customer, serial)
        pid = self.policy(**policy_kw)
        self.warranty(pid, serial)
        return pid

    def open_ticket(self, customer: KeyPair, serial: str = "S1", kind: str = "repair", fault: str = "no_power") -> bytes:
        oc = self.ok(customer, B.TicketOpen(kind=kind, gtin=GTIN, serial=serial, fault_type=fault,
                                            description_hash=h("desc"), attachments=(h("photo"),)))
        return oc.detail["ticket_id"]  # type: ignore[no-any-return]


def cust(name: str = "alice") -> KeyPair:
    return key("customer-" + name)


def acct(kp: KeyPair) -> str:
    return customer_account(kp.public)
