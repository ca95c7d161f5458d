"""Member node keys on the ledger: node.register / node.remove (node/app/nodes.py)."""

from __future__ import annotations

import pytest

from afterchain.node.app.codes import Reason
from afterchain.node.app.ledger import Ledger
from afterchain.protocol import bodies as B
from afterchain.protocol import state_keys as K
from afterchain.protocol.codec import decode_as, encode
from afterchain.protocol.errors import Code, ValidationError
from afterchain.protocol.smt import verify_smt_proof
from afterchain.protocol.types import PublicKey

from .test_governance import propose, val, vote
from .world import World, cust, key, make_genesis


@pytest.fixture
def w() -> World:
    return World(Ledger.open(None, make_genesis()))


def nk(name: str) -> PublicKey:
    return PublicKey(key(f"node-{name}").public)


def reg(*names: str) -> B.NodeRegister:
    return B.NodeRegister(keys=tuple(nk(n) for n in names))


def rm(*names: str) -> B.NodeRemove:
    return B.NodeRemove(keys=tuple(nk(n) for n in names))


def keys_of(w: World, org: str | None = None) -> list[bytes]:
    return [k for k, _ in w.led.node_keys(org=org)]


def test_register_list_and_remove(w: World) -> None:
    oc = w.ok("acme", reg("a1", "a2"))
    assert oc.detail == {"registered": 2, "node_keys": 2}
    res = w.block(w.ev("shop", reg("s1")))
    assert res.node_keys_changed and res.outcomes[0].accepted
    assert not w.block().node_keys_changed  # an empty block changes nothing
    assert keys_of(w, "acme") == sorted([nk("a1"), nk("a2")])
    assert keys_of(w) == sorted([nk("a1"), nk("a2"), nk("s1")])
    rec = dict(w.led.node_keys(org="shop"))[nk("s1")]
    assert rec["org"] == "shop" and rec["height"] == w.led.height - 1 and rec["since"] > 0
    # the registration is in the state root: provable like any state key
    value, proof = w.led.prove(K.node_key(nk("s1")))
    assert value is not None and verify_smt_proof(w.led.state_root, K.node_key(nk("s1")), value, proof)
    assert w.ok("acme", rm("a1")).detail == {"removed": 1, "node_keys": 1}
    assert keys_of(w, "acme") == [nk("a2")]
    w.ok("acme", rm("a2"))
    assert keys_of(w, "acme") == [] and w.led.state_value(K.org_nodes("acme")) is None
    assert keys_of(w) == [nk("s1")]
    # a removed key may be registered again, by any organisation
    w.ok("shop", reg("a1"))
    assert dict(w.led.node_keys())[nk("a1")]["org"] == "shop"


def test_refusals_change_nothing_but_the_nonce(w: World) -> None:
    w.ok("acme", reg("a1"))
    root = w.led.state_root
    cases = [
        ("acme", reg("a1"), Reason.NODE_REGISTERED),  # a duplicate
        ("acme", reg("a3", "a1"), Reason.NODE_REGISTERED),  # one bad key refuses the whole event
        ("shop", reg("a1"), Reason.NODE_KEY_IN_USE),  # another org's key
        ("shop", B.NodeRegister(keys=(PublicKey(key("val0").public),)), Reason.NODE_KEY_IN_USE),  # a validator's
        ("shop", rm("a1"), Reason.NODE_UNKNOWN),  # removing another org's key
        ("acme", rm("zz"), Reason.NODE_UNKNOWN),  # removing an unknown key
        (cust(), reg("c1"), Reason.NOT_MEMBER),  # a customer is not a member
        (cust(), rm("a1"), Reason.NOT_MEMBER),
    ]
    for who, body, code in cases:
        oc = w.one(who, body)
        assert oc.code == code, (body, oc)
        assert oc.message  # says what is wrong
    assert keys_of(w) == [nk("a1")]
    assert dict(w.led.node_keys())[nk("a1")]["org"] == "acme"
    # only nonces and outcomes changed: the node key records are as before
    assert w.led.state_value(K.org_nodes("acme")) is not None and w.led.state_root != root


def test_bound_per_organisation(w: World) -> None:
    names = [f"k{i}" for i in range(B.MAX_NODE_KEYS_PER_ORG)]
    w.ok("acme", reg(*names[:5]))
    oc = w.one("acme", reg(*names[5:], "extra"))
    assert oc.code == Reason.NODE_LIMIT and f"at most {B.MAX_NODE_KEYS_PER_ORG}" in oc.message
    w.ok("acme", reg(*names[5:]))
    assert len(keys_of(w, "acme")) == B.MAX_NODE_KEYS_PER_ORG
    assert w.one("acme", reg("extra")).code == Reason.NODE_LIMIT
    w.ok("acme", rm("k0"))
    w.ok("acme", reg("extra"))  # room again after a removal
    assert w.one("shop", reg("s1")).accepted  # the bound is per organisation


def test_schema_bounds() -> None:
    too_many = tuple(nk(f"x{i}") for i in range(B.MAX_NODE_KEYS_PER_ORG + 1))
    for body in (B.NodeRegister(keys=()), B.NodeRegister(keys=too_many), B.NodeRemove(keys=())):
        with pytest.raises(ValidationError) as e:
            body.validate()
        assert e.value.code == Code.FIELD_OUT_OF_RANGE and e.value.field == "keys"
    with pytest.raises(ValidationError) as e:
        B.NodeRemove(keys=(nk("a"), nk("a"))).validate()
    assert e.value.field == "keys"
    body = reg("a", "b")
    assert decode_as(B.NodeRegister, encode(body)) == body


def test_mempool_precheck_refuses_non_members(w: World) -> None:
    assert w.led.check(w.ev(cust(), reg("c1"))).code == Reason.NOT_MEMBER  # type: ignore[union-attr]
    assert w.led.check(w.ev("acme", reg("a1"))) is None


def test_removing_an_organisation_drops_its_node_keys(w: World) -> None:
    w.ok("shop", reg("s1", "s2"))
    w.ok("acme", reg("a1"))
    pid = propose(w, "acme", "remove_member", b"shop")
    assert vote(w, 0, pid) == "open" and vote(w, 1, pid) == "open"
    res = w.block(w.ev(val(2), B.GovernanceVote(proposal_id=pid, approve=True)))
    assert res.outcomes[0].detail == {"status": "adopted"} and res.node_keys_changed
    assert keys_of(w) == [nk("a1")] and keys_of(w, "shop") == []
    assert w.led.state_value(K.node_key(nk("s1"))) is None
