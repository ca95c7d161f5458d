"""`node.client` as a library: builders for every event type, nonces, batches, waiting,
retries with Retry-After and failover (fake transport), and against the real cluster.
Every test runs for each client (`make`): `Client`, and `AsyncClient` under trio and asyncio."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest

from afterchain.node.client import (
    BUILDERS,
    Client,
    EventBuilder,
    InvalidInput,
    Rejected,
    TimedOut,
    Unreachable,
    as_id,
    content_hash,
    customer_account,
)
from afterchain.protocol.crypto import KeyPair
from afterchain.protocol.events import EVENT_TYPES, verify_event

from .cluster import Cluster, seeded
from .flavours import Flavour

GTIN = "00012345600012"
ID = "ab" * 32
KEY = seeded("someone")
H = content_hash("x")

SAMPLES: dict[str, dict[str, Any]] = {
    "org.register": {"org_id": "neworg", "name": "New", "roles": ["retailer"], "keys": [KEY.public]},
    "org.update": {"org_id": "neworg", "roles": ["retailer", "logistics"], "keys": [KEY.public.hex()]},
    "node.register": {"keys": [KEY.public.hex(), seeded("node-2").public]},
    "node.remove": {"keys": [KEY.public]},
    "product.register": {"gtin": GTIN, "serial": "S1", "model": "M", "batch": "B1", "production_time_ms": 1},
    "product.transfer": {"gtin": GTIN, "serial": "S1", "to_org": "shop"},
    "trace.record": {
        "gtin": GTIN,
        "serial": "S1",
        "biz_step": "shipping",
        "disposition": "in_transit",
        "location_hash": H,
    },
    "product.recall": {"gtin": GTIN, "batch": "B1", "reason_hash": H.hex()},
    "policy.register": {
        "name": "P",
        "service_org": "fixit",
        "coverage_period_ms": 10,
        "covered_faults": ["b", "a"],
        "first_response_ms": 1,
        "resolution_ms": 2,
    },
    "warranty.activate": {"gtin": GTIN, "serial": "S1", "policy_id": ID},
    "contract.deploy": {"vm_id": "lua", "name": "c", "code": b"-- x"},
    "contract.call": {"contract_id": ID, "entry": "main", "gas_limit": 5},
    "ticket.open": {
        "kind": "repair",
        "gtin": GTIN,
        "serial": "S1",
        "fault_type": "no_power",
        "description_hash": H,
        "attachments": [content_hash("photo")],
    },
    "ticket.ack": {"ticket_id": ID},
    "ticket.update": {"ticket_id": ID, "status": "waiting_customer", "note_hash": H},
    "ticket.assign": {"ticket_id": ID, "org_id": "acme"},
    "ticket.escalate": {"ticket_id": ID, "reason_hash": H},
    "ticket.resolve": {"ticket_id": ID, "resolution": "repaired", "resolution_hash": H},
    "ticket.reject": {"ticket_id": ID, "reason_code": "void"},
    "ticket.confirm": {"ticket_id": ID},
    "ticket.reopen": {"ticket_id": ID, "reason_hash": H},
    "ticket.close": {"ticket_id": ID},
    "return.request": {"gtin": GTIN, "serial": "S1", "reason_code": "changed_mind", "reason_hash": H},
    "return.approve": {"ticket_id": ID},
    "return.reject": {"ticket_id": ID, "reason_code": "late"},
    "return.receive": {"ticket_id": ID, "condition": "used"},
    "shipment.checkpoint": {"ticket_id": ID, "checkpoint": "picked_up", "location_hash": H},
    "escrow.deposit": {"amount": 5, "payee_customer": KEY.public, "ticket_id": ID},
    "escrow.release": {"escrow_id": ID},
    "escrow.refund": {"escrow_id": ID},
    "rating.submit": {"ticket_id": ID, "score": 5},
    "governance.propose": {"kind": "remove_member", "payload": b"shop", "voting_period_ms": 1},
    "governance.vote": {"proposal_id": ID, "approve": True},
    "consensus.evidence": {"evidence": "9358"},
}


def offline(make: Flavour, key: KeyPair = KEY) -> Client:
    c = make("http://127.0.0.1:9", key=key, chain_id="offline-chain")
    c.set_next_nonce(1)
    return c


def test_a_builder_for_every_event_type(make: Flavour) -> None:
    assert set(BUILDERS) == set(EVENT_TYPES) == set(SAMPLES)
    c = offline(make)
    for n, (etype, kw) in enumerate(sorted(SAMPLES.items()), start=1):
        signed = getattr(c.build, BUILDERS[etype])(**kw)
        assert signed.event.type == etype and signed.event.nonce == n and signed.event.sender == KEY.public
        verify_event(signed, "offline-chain")
    extra = {m for m in vars(EventBuilder) if not m.startswith("_")} - set(BUILDERS.values())
    # conveniences on top of one method per type: a sale, and typed governance proposals
    assert extra == {"product_sell", "governance_validator_change", "governance_param_change", "governance_policy_standard"}


def test_builders_validate_and_convert_input(make: Flavour) -> None:
    c = offline(make)
    with pytest.raises(InvalidInput) as e:
        c.build.product_register(gtin="12345678901234", serial="S", model="m", batch="b", production_time_ms=0)
    assert e.value.code == "field.invalid" and "check digit" in e.value.message
    with pytest.raises(InvalidInput):
        c.build.ticket_ack(ticket_id="zz")
    with pytest.raises(InvalidInput):
        c.build.rating_submit(ticket_id=ID, score=6)
    assert c.next_nonce() == 1  # nothing was signed
    sale = c.build.product_sell(gtin=GTIN, serial="S1", to_customer=KEY.public.hex(), order_ref_hash=content_hash("o"))
    assert sale.event.body.kind == "sale" and sale.event.body.to_customer == KEY.public
    assert as_id(ID) == bytes.fromhex(ID) and customer_account(KEY.public) == "cust:" + KEY.public.hex()
    with pytest.raises(InvalidInput):
        make([], key=KEY)
    with pytest.raises(InvalidInput):
        make("127.0.0.1:8080")
    with pytest.raises(InvalidInput):
        make("http://x", chain_id="c").build.ticket_close(ticket_id=ID)  # no key


class Fake:
    """A scripted node (or nodes) behind httpx.MockTransport; records requests and sleeps."""

    def __init__(self, handler: Any, make: Flavour) -> None:
        self.handler = handler
        self.make = make
        self.seen: list[str] = []
        self.sleeps: list[float] = []

    def client(self, urls: list[str], **kw: Any) -> Client:
        def handle(request: httpx.Request) -> httpx.Response:
            self.seen.append(f"{request.method} {request.url.host}:{request.url.port}{request.url.path}")
            return self.handler(request)  # type: ignore[no-any-return]

        return self.make(
            urls, key=KEY, chain_id="c", transport=httpx.MockTransport(handle), sleep=self.sleeps.append, **kw
        )


def test_failover_and_retry_after(make: Flavour) -> None:
    calls = {"n": 0}

    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.port == 1:
            raise httpx.ConnectError("refused", request=request)
        if request.url.port == 2:
            return httpx.Response(500, json={"error": {"code": "internal", "message": "boom"}})
        calls["n"] += 1
        if calls["n"] == 1:
            return httpx.Response(
                429, headers={"Retry-After": "2"}, json={"error": {"code": "mempool.quota", "message": "slow"}}
            )
        if calls["n"] == 2:
            return httpx.Response(
                503, headers={"Retry-After": "60"}, json={"error": {"code": "mempool.full", "message": "x"}}
            )
        return httpx.Response(200, json={"chain_id": "c", "height": 5})

    f = Fake(handler, make)
    c = f.client(["http://a:1", "http://a:2", "http://a:3"], max_attempts=3)
    assert c.status()["height"] == 5
    assert f.sleeps[0] == 2.0 and f.sleeps[2] == 5.0  # Retry-After honoured, capped at 5 s
    assert c.nodes[0] == "http://a:3"  # the node that answered is asked first next time
    f.seen.clear()
    c.status()
    assert f.seen == ["GET a:3/v1/status"]


def test_unreachable_after_every_round(make: Flavour) -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectTimeout("slow", request=request)

    f = Fake(handler, make)
    c = f.client(["http://a:1", "http://a:2"], max_attempts=3)
    with pytest.raises(Unreachable) as e:
        c.ticket(ID)
    assert len(f.seen) == 6 and f.sleeps == [0.1, 0.2]  # exponential back-off between rounds
    assert "ConnectTimeout" in e.value.message


def test_nonce_is_asked_once_then_counted_and_resynced_after_a_rejection(make: Flavour) -> None:
    state = {"next": 7}

    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path.startswith("/v1/accounts/"):
            return httpx.Response(
                200, json={"key": KEY.public.hex(), "nonce": state["next"] - 1, "next_nonce": state["next"]}
            )
        if request.url.path == "/v1/events":
            return httpx.Response(
                422,
                json={
                    "error": {"code": "permission.role", "message": "no"},
                    "results": [{"id": None, "status": "rejected", "code": "permission.role", "message": "no"}],
                },
            )
        return httpx.Response(404, json={"error": {"code": "x", "message": "y"}})

    f = Fake(handler, make)
    c = f.client(["http://a:1"])
    e1 = c.build.ticket_close(ticket_id=ID)
    e2 = c.build.ticket_close(ticket_id=ID)
    assert (e1.event.nonce, e2.event.nonce) == (7, 8)
    assert sum("accounts" in s for s in f.seen) == 1
    with pytest.raises(Rejected) as e:
        c.send(e1)
    assert e.value.code == "permission.role" and e.value.event_id == e1.id
    state["next"] = 7
    assert c.build.ticket_close(ticket_id=ID).event.nonce == 7  # asked again
    assert sum("accounts" in s for s in f.seen) == 2


def test_wait_follows_an_event_until_final_or_timeout(make: Flavour) -> None:
    answers = iter(
        [
            httpx.Response(404, json={"error": {"code": "event.not_found", "message": "?"}}),
            httpx.Response(200, json={"id": ID, "status": "pending"}),
            httpx.Response(200, json={"id": ID, "status": "committed", "height": 9, "index": 2}),
        ]
    )
    f = Fake(lambda request: next(answers), make)
    o = f.client(["http://a:1"]).wait(ID, timeout_s=5)
    assert o.committed and o.height == 9 and o.index == 2 and len(f.sleeps) == 2
    f2 = Fake(lambda request: httpx.Response(200, json={"id": ID, "status": "pending"}), make)
    c = make("http://a:1", chain_id="c", transport=httpx.MockTransport(f2.handler))
    with pytest.raises(TimedOut):
        c.wait(ID, timeout_s=0.05)


def test_batch_submit_wait_and_a_rejection_at_commit(cluster: Cluster, make: Flavour) -> None:
    t = make.tag  # each flavour registers its own serials on the shared cluster
    with make(cluster.urls, key=cluster.key_file("acme")) as c:
        evs = [
            c.build.product_register(gtin=GTIN, serial=f"{t}B{i:03d}", model="M", batch="LOT1", production_time_ms=0)
            for i in range(20)
        ]
        assert [e.event.nonce for e in evs] == list(range(evs[0].event.nonce, evs[0].event.nonce + 20))
        subs = c.submit(evs)
        assert [s.status for s in subs] == ["accepted"] * 20
        outs = c.wait_all([e.id for e in evs], timeout_s=30)
        assert all(o.committed for o in outs)
        assert c.product(GTIN, f"{t}B019")["batch"] == "LOT1"
        # both pass intake (the product does not exist yet); the second is refused at commit
        a = c.build.product_register(gtin=GTIN, serial=f"{t}DUP", model="M", batch="LOT1", production_time_ms=0)
        b = c.build.product_register(gtin=GTIN, serial=f"{t}DUP", model="M", batch="LOT1", production_time_ms=1)
        assert [s.status for s in c.submit([a, b])] == ["accepted", "accepted"]
        assert c.wait(a.id).committed
        ob = c.wait(b.id)
        assert ob.status == "rejected" and ob.code == "product.exists"
        with pytest.raises(Rejected):
            ob.raise_if_rejected()
        # an event refused by the ledger's rules still uses its nonce (it cannot be replayed later):
        # the client asks the node again and goes on with the next one
        assert c.next_nonce() == b.event.nonce + 1
        assert c.send(
            c.build.product_register(gtin=GTIN, serial=f"{t}AFTER", model="M", batch="LOT1", production_time_ms=0)
        ).committed
        blk = c.block(ob.height or 1)
        assert b.id.hex() in blk["event_ids"]
        assert json.dumps(c.status())


def test_reads_of_missing_things_raise_not_found(cluster: Cluster, make: Flavour) -> None:
    from afterchain.node.client import NotFound

    with make(cluster.urls) as c:
        for read in (
            lambda: c.ticket(ID),
            lambda: c.escrow(ID),
            lambda: c.product(GTIN, "NOPE"),
            lambda: c.quality("nobody"),
            lambda: c.event(ID),
        ):
            with pytest.raises(NotFound):
                read()
        assert c.balance("nobody") == 0 and c.org_tickets("fixit", "opened") is not None
