"""Stateless schemas of event bodies and the genesis JSON form: stable codes naming the field."""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings

from afterchain.protocol import bodies as B
from afterchain.protocol.codec import decode, encode
from afterchain.protocol.errors import Code, ValidationError
from afterchain.protocol.events import EVENT_TYPES
from afterchain.protocol.genesis import Genesis
from afterchain.protocol.types import Hash32, PublicKey

from ..strategies import geneses
from .world import GTIN, make_genesis

H = Hash32(b"\1" * 32)


def test_every_domain_event_type_has_a_schema() -> None:
    domain = {
        "org.register", "org.update", "node.register", "node.remove", "product.register", "product.transfer", "trace.record", "product.recall",
        "warranty.activate", "policy.register", "contract.deploy", "contract.call", "ticket.open", "ticket.ack",
        "ticket.update", "ticket.assign", "ticket.escalate", "ticket.resolve", "ticket.reject", "ticket.confirm",
        "ticket.reopen", "ticket.close", "return.request", "return.approve", "return.reject", "shipment.checkpoint",
        "return.receive", "escrow.deposit", "escrow.release", "escrow.refund", "rating.submit", "governance.propose",
        "governance.vote",
    }
    assert domain <= set(EVENT_TYPES)
    assert all(0x100 <= cls.TAG <= 0x1FF for cls in EVENT_TYPES.values())


def test_gtin_check_digit() -> None:
    assert B.gtin_check_digit("0001234560001") == 2
    assert B.gtin_check_digit("0400638133393") == 1  # EAN 4006381333931 as a GTIN-14
    B.validate_gtin(GTIN)


def _reg(**kw: object) -> B.ProductRegister:
    base: dict[str, object] = dict(gtin=GTIN, serial="S1", model="m", batch="B1", production_time_ms=0)
    base.update(kw)
    return B.ProductRegister(**base)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("body", "field", "code"),
    [
        (lambda: _reg(gtin="00012345600013"), "gtin", Code.FIELD_INVALID),
        (lambda: _reg(gtin="123"), "gtin", Code.FIELD_INVALID),
        (lambda: _reg(gtin="0001234560001x"), "gtin", Code.FIELD_INVALID),
        (lambda: _reg(serial=""), "serial", Code.FIELD_INVALID),
        (lambda: _reg(serial="x" * 21), "serial", Code.FIELD_INVALID),
        (lambda: _reg(serial="a b"), "serial", Code.FIELD_INVALID),
        (lambda: _reg(model=" "), "model", Code.FIELD_INVALID),
        (lambda: _reg(model="a\nb"), "model", Code.FIELD_INVALID),
        (lambda: B.ProductTransfer(gtin=GTIN, serial="S", kind="gift", to_org="x", to_customer=None, order_ref_hash=None),
         "kind", Code.FIELD_INVALID),
        (lambda: B.ProductTransfer(gtin=GTIN, serial="S", kind="transfer", to_org="x", to_customer=PublicKey(H),
                                   order_ref_hash=None), "to_org", Code.FIELD_INVALID),
        (lambda: B.ProductTransfer(gtin=GTIN, serial="S", kind="sale", to_org=None, to_customer=PublicKey(H),
                                   order_ref_hash=None), "order_ref_hash", Code.FIELD_INVALID),
        (lambda: B.ProductTransfer(gtin=GTIN, serial="S", kind="transfer", to_org="Bad Org", to_customer=None,
                                   order_ref_hash=None), "to_org", Code.FIELD_INVALID),
        (lambda: B.TraceRecord(gtin=GTIN, serial="S", biz_step="dancing", disposition="active", location_hash=H, ref_hash=None),
         "biz_step", Code.FIELD_INVALID),
        (lambda: B.TraceRecord(gtin=GTIN, serial="S", biz_step="shipping", disposition="lost", location_hash=H, ref_hash=None),
         "disposition", Code.FIELD_INVALID),
        (lambda: B.PolicyRegister(name="p", service_org="s", coverage_period_ms=1, covered_faults=("b", "a"), first_response_ms=1,
                                  resolution_ms=1, penalty_amount=0, return_window_ms=0, contract_id=None),
         "covered_faults", Code.FIELD_INVALID),
        (lambda: B.PolicyRegister(name="p", service_org="s", coverage_period_ms=1, covered_faults=(), first_response_ms=5,
                                  resolution_ms=1, penalty_amount=0, return_window_ms=0, contract_id=None),
         "resolution_ms", Code.FIELD_OUT_OF_RANGE),
        (lambda: B.PolicyRegister(name="p", service_org="s", coverage_period_ms=0, covered_faults=(), first_response_ms=1,
                                  resolution_ms=1, penalty_amount=0, return_window_ms=0, contract_id=None),
         "coverage_period_ms", Code.FIELD_OUT_OF_RANGE),
        (lambda: B.ContractDeploy(vm_id="lua", vm_version=1, name="c", code=b""), "code", Code.FIELD_OUT_OF_RANGE),
        (lambda: B.ContractDeploy(vm_id="LUA!", vm_version=1, name="c", code=b"x"), "vm_id", Code.FIELD_INVALID),
        (lambda: B.ContractCall(contract_id=H, entry="9x", args=b"", gas_limit=1), "entry", Code.FIELD_INVALID),
        (lambda: B.ContractCall(contract_id=H, entry="main", args=b"x" * 20_000, gas_limit=1), "args", Code.FIELD_OUT_OF_RANGE),
        (lambda: B.ContractCall(contract_id=H, entry="main", args=b"", gas_limit=0), "gas_limit", Code.FIELD_OUT_OF_RANGE),
        (lambda: B.TicketOpen(kind="return", gtin=GTIN, serial="S", fault_type="x", description_hash=H, attachments=()),
         "kind", Code.FIELD_INVALID),
        (lambda: B.TicketOpen(kind="repair", gtin=GTIN, serial="S", fault_type="X Y", description_hash=H, attachments=()),
         "fault_type", Code.FIELD_INVALID),
        (lambda: B.TicketOpen(kind="repair", gtin=GTIN, serial="S", fault_type="x", description_hash=H, attachments=(H, H)),
         "attachments", Code.FIELD_INVALID),
        (lambda: B.TicketOpen(kind="repair", gtin=GTIN, serial="S", fault_type="x", description_hash=H,
                              attachments=tuple(Hash32(bytes([i]) * 32) for i in range(17))), "attachments", Code.FIELD_OUT_OF_RANGE),
        (lambda: B.TicketUpdate(ticket_id=H, status="resolved", note_hash=None), "status", Code.FIELD_INVALID),
        (lambda: B.TicketAssign(ticket_id=H, org_id=""), "org_id", Code.FIELD_INVALID),
        (lambda: B.TicketResolve(ticket_id=H, resolution="magic", resolution_hash=H), "resolution", Code.FIELD_INVALID),
        (lambda: B.TicketReject(ticket_id=H, reason_code="", reason_hash=None), "reason_code", Code.FIELD_INVALID),
        (lambda: B.ReturnReceive(ticket_id=H, condition="wet", inspection_hash=None), "condition", Code.FIELD_INVALID),
        (lambda: B.ShipmentCheckpoint(ticket_id=H, checkpoint="lost", location_hash=H, tracking_hash=None), "checkpoint",
         Code.FIELD_INVALID),
        (lambda: B.EscrowDeposit(amount=0, payee_org="a", payee_customer=None, ticket_id=None, ref_hash=None), "amount",
         Code.FIELD_OUT_OF_RANGE),
        (lambda: B.EscrowDeposit(amount=1, payee_org=None, payee_customer=None, ticket_id=None, ref_hash=None), "payee_org",
         Code.FIELD_INVALID),
        (lambda: B.RatingSubmit(ticket_id=H, score=6, comment_hash=None), "score", Code.FIELD_OUT_OF_RANGE),
        (lambda: B.RatingSubmit(ticket_id=H, score=0, comment_hash=None), "score", Code.FIELD_OUT_OF_RANGE),
        (lambda: B.GovernancePropose(kind="coup", payload=b"", voting_period_ms=1), "kind", Code.FIELD_INVALID),
        (lambda: B.OrgRegister(org_id="x", name="X", roles=("retailer", "auditor"), keys=(PublicKey(H),)), "roles",
         Code.FIELD_INVALID),
        (lambda: B.OrgRegister(org_id="x", name="X", roles=("king",), keys=(PublicKey(H),)), "roles[0]", Code.FIELD_INVALID),
        (lambda: B.OrgUpdate(org_id="x", roles=("retailer",), keys=()), "keys", Code.FIELD_OUT_OF_RANGE),
        (lambda: B.ProductRecall(gtin=GTIN, batch="", reason_hash=H), "batch", Code.FIELD_INVALID),
    ],
)
def test_bad_bodies_name_the_field(body, field: str, code: Code) -> None:  # type: ignore[no-untyped-def]
    value = body()
    with pytest.raises(ValidationError) as info:
        value.validate()
    assert info.value.field == field and info.value.code is code
    # the same through the codec, nested in an event: the path names the body field
    from afterchain.protocol.events import Event

    raw = encode(Event(chain_id="c", type=value.EVENT_TYPE, sender=PublicKey(H), nonce=1, time_ms=0, body=value))
    with pytest.raises(ValidationError) as info2:
        decode(raw)
    assert info2.value.field == f"body.{field}" and info2.value.code is code


def test_genesis_json_round_trip_and_hash() -> None:
    g = make_genesis()
    text = g.to_json()
    assert Genesis.from_json(text) == g
    assert json.loads(text)["members"][0]["keys"][0] == g.members[0].keys[0].hex()
    assert g.genesis_hash() == g.hash() and len(g.hash()) == 32


@settings(max_examples=30)
@given(geneses())
def test_genesis_json_round_trip_any(g: Genesis) -> None:
    assert Genesis.from_json(g.to_json()) == g


@pytest.mark.parametrize(
    ("mutate", "field"),
    [
        (lambda d: d["members"][0].update(keys=["abcd"]), "members[0].keys[0]"),
        (lambda d: d["members"][1].update(roles=["pirate"]), "members[1].roles[0]"),
        (lambda d: d["members"].reverse(), "members"),
        (lambda d: d["members"][1].update(keys=d["members"][0]["keys"]), "members[1].keys[0]"),
        (lambda d: d["consensus"].update(view_timeout_max_ms=1), "consensus.view_timeout_max_ms"),
        (lambda d: d["consensus"].pop("checkpoint_interval"), "consensus.checkpoint_interval"),
        (lambda d: d["ledger"].update(extra=1), "ledger.extra"),
        (lambda d: d["ledger"].update(auto_close_delay_ms=-1), "ledger.auto_close_delay_ms"),
        (lambda d: d["vm"]["vms"][0].update(vm_id="no such vm!"), "vm.vms[0].vm_id"),
        (lambda d: d.update(chain_id="Bad Chain"), "chain_id"),
        (lambda d: d["validators"].update(validators=["zz"]), "validators.validators[0]"),
        (lambda d: d.update(genesis_time_ms="soon"), "genesis_time_ms"),
    ],
)
def test_genesis_json_errors_name_the_field(mutate, field: str) -> None:  # type: ignore[no-untyped-def]
    d = json.loads(make_genesis().to_json())
    mutate(d)
    with pytest.raises(ValidationError) as info:
        Genesis.from_json(json.dumps(d))
    assert info.value.field == field, info.value


def test_genesis_json_not_json() -> None:
    with pytest.raises(ValidationError):
        Genesis.from_json("{nope")
    with pytest.raises(ValidationError):
        Genesis.from_json("[]")


def test_every_reason_code_is_documented() -> None:
    import afterchain.node.app.codes as codes

    assert codes.__doc__ is not None
    missing = [r.value for r in codes.Reason if f"``{r.value}``" not in codes.__doc__]
    assert missing == []
