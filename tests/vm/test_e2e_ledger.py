"""End to end through the ledger: a policy governed by the shipped service agreement, in
each backend. An SLA breach credits the penalty the contract computed (not the policy's
own figure); a return releases the escrow only when the contract says so."""

from __future__ import annotations

import pytest

from afterchain.node.app.ledger import Ledger
from afterchain.node.app.vm.agreements import VmAgreementHooks, VmContractHost
from afterchain.node.app.vm.contracts import SERVICE, source
from afterchain.protocol import bodies as B
from afterchain.protocol.types import Hash32, PublicKey
from tests.ledger.world import DAY, GTIN, HOUR, World, acct, cust, h, make_genesis

BACKENDS = ("wasm", "lua")


def world_with_agreement(vm_id: str) -> tuple[World, bytes]:
    host = VmContractHost()
    w = World(Ledger.open(None, make_genesis(), hooks=VmAgreementHooks(host), contracts=host))
    dep = w.ok("acme", B.ContractDeploy(vm_id=vm_id, vm_version=1, name="service", code=source(SERVICE, vm_id)))
    return w, dep.detail["contract_id"]


@pytest.mark.parametrize("vm_id", BACKENDS)
def test_deploy_rejects_bad_code_with_a_reason(vm_id: str) -> None:
    w, _ = world_with_agreement(vm_id)
    oc = w.one("acme", B.ContractDeploy(vm_id=vm_id, vm_version=1, name="bad", code=b"\x1bLua garbage"))
    assert not oc.accepted and oc.code == "contract.invalid_code" and oc.message


@pytest.mark.parametrize("vm_id", BACKENDS)
def test_sla_breach_credits_the_contract_penalty(vm_id: str) -> None:
    w, cid = world_with_agreement(vm_id)
    alice = cust()
    w.sold_with_warranty(alice, penalty=700, contract=cid, faults=("no_power",))
    tid = Hash32(w.open_ticket(alice, fault="no_power"))
    t = w.led.ticket(tid)
    assert t is not None and t["status"] == "opened", t  # covered: the contract said "covered"
    assert w.led.state_value(b"cs/" + cid + b"/claims/" + GTIN.encode() + b"/S1") is not None
    fixit_before = w.led.balance("fixit")
    w.block(advance_ms=4 * HOUR)  # the first-response deadline passes
    t = w.led.ticket(tid)
    # the contract halves the penalty for a missed first response: 350, not the policy's 700
    assert t is not None and t["breaches"] == 1 and t["penalties"] == 350, t
    assert w.led.balance("fixit") == fixit_before - 350 and w.led.balance(acct(alice)) == 350
    w.block(advance_ms=3 * DAY)  # resolution deadline: second breach, 2x, plus lateness
    t = w.led.ticket(tid)
    assert t is not None and t["breaches"] == 2 and t["penalties"] == 350 + 1400, t
    assert w.led.balance(acct(alice)) == 1750


@pytest.mark.parametrize("vm_id", BACKENDS)
def test_uncovered_fault_is_rejected_by_the_contract(vm_id: str) -> None:
    w, cid = world_with_agreement(vm_id)
    alice = cust()
    w.sold_with_warranty(alice, contract=cid, faults=("no_power",))
    tid = Hash32(w.open_ticket(alice, fault="cracked"))
    t = w.led.ticket(tid)
    assert t is not None and t["status"] == "rejected" and t["reason"] == "fault_not_covered", t


def _return_flow(w: World, alice: object, amount: int, condition: str, serial: str) -> tuple[Hash32, Hash32]:
    tid = Hash32(w.ok(alice, B.ReturnRequest(gtin=GTIN, serial=serial, reason_code="changed_mind",  # type: ignore[arg-type]
                                              reason_hash=h("r"))).detail["ticket_id"])
    dep = B.EscrowDeposit(amount=amount, payee_org=None, payee_customer=PublicKey(alice.public), ticket_id=tid,  # type: ignore[attr-defined]
                          ref_hash=None)
    eid = Hash32(w.ok("shop", dep).detail["escrow_id"])
    w.ok("fixit", B.ReturnApprove(ticket_id=tid))
    w.ok("ship", B.ShipmentCheckpoint(ticket_id=tid, checkpoint="picked_up", location_hash=h("l1"), tracking_hash=None))
    w.ok("ship", B.ShipmentCheckpoint(ticket_id=tid, checkpoint="delivered", location_hash=h("l2"), tracking_hash=None))
    w.ok("fixit", B.ReturnReceive(ticket_id=tid, condition=condition, inspection_hash=h("i")))
    return tid, eid


@pytest.mark.parametrize("vm_id", BACKENDS)
def test_return_releases_escrow_only_when_the_contract_says_so(vm_id: str) -> None:
    w, cid = world_with_agreement(vm_id)
    alice = cust()
    pid = w.sold_with_warranty(alice, return_ms=10 * DAY, contract=cid)
    shop_before = w.led.balance("shop")
    # "used" with a high-value escrow: the policy's own terms would refund; the contract says no
    tid, eid = _return_flow(w, alice, 60_000, "used", "S1")
    t = w.led.ticket(tid)
    assert t is not None and t["status"] == "return_rejected", t
    assert (w.led.escrow(eid) or {})["state"] == "refunded"  # back to the depositor
    assert w.led.balance(acct(alice)) == 0 and w.led.balance("shop") == shop_before
    # a low-value "used" return: the contract refunds, the escrow goes to the customer
    w.product("S2")
    w.sell(alice, "S2")
    w.warranty(pid, "S2")
    tid2, eid2 = _return_flow(w, alice, 30_000, "used", "S2")
    t2 = w.led.ticket(tid2)
    assert t2 is not None and t2["status"] == "refunded", t2
    assert (w.led.escrow(eid2) or {})["state"] == "released" and w.led.balance(acct(alice)) == 30_000
    assert w.led.state_value(b"cs/" + cid + b"/returns/" + acct(alice).encode()) is not None
