"""Historical reads of the ledger (`value_at`, `prove_at`): the undo log gives back each key's
value as of any height in the window, and the proof verifies against that height's root."""

from __future__ import annotations

import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from afterchain.node.app import state as state_mod
from afterchain.node.app.ledger import Ledger
from afterchain.protocol.smt import verify_smt_proof
from tests.ledger.world import World, cust, make_genesis


def keys_of(led: Ledger) -> list[bytes]:
    return sorted(k[1:] for k in led.kv.data if k[:1] == b"v")  # type: ignore[attr-defined]


def test_value_at_and_prove_at_replay_every_height() -> None:
    led = Ledger.open(None, make_genesis())
    w = World(led)
    snapshots = {0: {k: led.state_value(k) for k in keys_of(led)}}
    w.sold_with_warranty(cust())
    snapshots[led.height] = {k: led.state_value(k) for k in keys_of(led)}
    t = w.open_ticket(cust())
    snapshots[led.height] = {k: led.state_value(k) for k in keys_of(led)}
    w.block()
    snapshots[led.height] = {k: led.state_value(k) for k in keys_of(led)}
    every = set(keys_of(led)) | {b"t/" + bytes(32)}
    for height, snap in snapshots.items():
        root = led.root_at(height)
        assert root is not None
        for k in every:
            value, proof = led.prove_at(k, height)
            assert value == snap.get(k), (height, k)
            assert verify_smt_proof(root, k, value, proof)
    assert led.value_at(b"t/" + t, 0) is None and led.value_at(b"t/" + t, led.height) is not None


def test_outside_the_window_is_a_lookup_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(state_mod, "KEEP_ROOTS", 4)
    led = Ledger.open(None, make_genesis())
    w = World(led)
    for _ in range(6):
        w.block()
    assert led.history_window() == (3, 6)
    assert led.kv.get(b"u" + (2).to_bytes(8, "big")) is None  # pruned with its root
    with pytest.raises(LookupError):
        led.value_at(b"meta/members", 2)
    with pytest.raises(LookupError):
        led.prove_at(b"meta/members", 7)
    assert led.value_at(b"meta/members", 3) == led.state_value(b"meta/members")


@settings(max_examples=15, deadline=None)
@given(st.integers(0, 2**32))
def test_random_balance_moves_read_back_at_every_height(seed: int) -> None:
    """Escrow deposits move balances between a few accounts; every height reads back."""
    from afterchain.protocol import bodies as B

    rng = random.Random(seed)
    led = Ledger.open(None, make_genesis())
    w = World(led)
    orgs = ["acme", "fixit", "ship", "shop"]
    history: dict[int, dict[str, bytes | None]] = {}
    for _ in range(rng.randint(1, 6)):
        evs = [w.ev(o, B.EscrowDeposit(amount=rng.randint(1, 100), payee_org=rng.choice(orgs), payee_customer=None,
                                       ticket_id=None, ref_hash=None))
               for o in rng.sample(orgs, rng.randint(0, 3))]
        w.block(*evs)
        history[led.height] = {o: led.state_value(b"bal/" + o.encode()) for o in orgs}
    for height, bals in history.items():
        for o, v in bals.items():
            assert led.value_at(b"bal/" + o.encode(), height) == v
