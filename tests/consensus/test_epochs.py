"""Validator-set changes (issue #12): the epoch rule of `consensus.epochs` and the
replica's switch, observer, defer and restart paths, on hand-driven clusters of real
Ed25519 replicas (`tests.consensus.harness`)."""

from __future__ import annotations

from dataclasses import replace

import pytest
from hypothesis import given
from hypothesis import strategies as st

from afterchain.consensus.epochs import boundaries_after, epoch_start, is_boundary, set_source_height
from afterchain.consensus.messages import PrePrepareMsg, SignedCommit, SignedPrepare
from afterchain.protocol.block import Block, ValidatorSet
from afterchain.protocol.codec import sha256
from afterchain.protocol.crypto import Domain, KeyPair
from afterchain.protocol.errors import InvariantError
from afterchain.protocol.types import Hash32, Seq, View

from .harness import PARAMS, App, Cluster

K = PARAMS.checkpoint_interval  # 4


# ---------------------------------------------------------------------------- the rule

def test_epoch_rule_examples() -> None:
    assert [epoch_start(h, 4) for h in (1, 4, 5, 8, 9)] == [0, 0, 4, 4, 8]
    assert [set_source_height(h, 4) for h in (1, 8, 9, 12, 13, 17)] == [0, 0, 4, 4, 8, 12]
    assert is_boundary(8, 4) and not is_boundary(9, 4) and not is_boundary(0, 4)
    assert list(boundaries_after(4, 4, 16)) == [8, 12, 16] and list(boundaries_after(5, 4, 7)) == []
    with pytest.raises(InvariantError):
        epoch_start(0, 4)


@given(h=st.integers(1, 10_000), k=st.integers(1, 64))
def test_change_first_votes_between_k_plus_1_and_2k_blocks_later(h: int, k: int) -> None:
    """A change adopted executing block h first votes on s = E + 1 for the first boundary
    with E - K >= h: K + 1 <= s - h <= 2K; every height of an epoch reads the same block."""
    s = next(s for s in range(h + 1, h + 3 * k + 2) if set_source_height(s, k) >= h)
    assert k + 1 <= s - h <= 2 * k and is_boundary(s - 1, k)
    e = epoch_start(h, k)
    assert {set_source_height(x, k) for x in range(e + 1, e + k + 1)} == {max(0, e - k)}
    assert set_source_height(h, k) <= max(0, h - k - 1)


# ---------------------------------------------------------------------------- a cluster with changes

class EpochApp(App):
    """Adopts `changes[h]` (member indices) while executing block h; V(s) by the rule."""

    def __init__(self, keys: list[bytes], genesis: tuple[int, ...], changes: dict[int, tuple[int, ...]]) -> None:
        super().__init__()
        self.keys = keys
        self.adopted = [(0, genesis)]
        self.changes = changes
        self.blind_from: int | None = None  # validators_for(h >= this) is unknown (lagging)
        self.lie = False  # always answers the genesis set (a wrong proposer)

    def execute(self, block: Block) -> None:
        super().execute(block)
        h = block.header.height
        if h in self.changes:
            self.adopted.append((h, self.changes[h]))

    def validators_for(self, height: int) -> ValidatorSet | None:
        if self.blind_from is not None and height >= self.blind_from:
            return None
        src = set_source_height(height, K)
        if src > self.executed:
            return None
        members = self.adopted[0][1]
        if not self.lie:
            for h, m in self.adopted:
                if h <= src:
                    members = m
        return ValidatorSet(validators=tuple(self.keys[i] for i in members))  # type: ignore[misc]


def _cluster(n: int, genesis: int, changes: dict[int, tuple[int, ...]]) -> Cluster:
    keys = [KeyPair.from_seed(sha256(b"key-%d" % i)).public for i in range(n)]  # the harness's keys
    return Cluster(n, genesis=genesis, app_factory=lambda i: EpochApp(keys, tuple(range(genesis)), changes))


def _serve_fetches(c: Cluster) -> None:
    for i, node in enumerate(c.nodes):
        reqs, node.fetches = node.fetches, []
        for fr in reqs:
            peer = c.nodes[c.index(fr.peer)]
            for cb in peer.store[fr.from_height - 1: fr.from_height - 1 + fr.count]:
                node.replica.deliver_block(cb)
            c.drain(i)


def _run(c: Cluster, rounds: int, *, until: int | None = None, skip: frozenset[int] = frozenset()) -> None:
    """Propose, deliver, serve catch-up, execute and tick, `rounds` times (or until every
    node not in `skip` has committed `until`)."""
    for t in range(rounds):
        for i, node in enumerate(c.nodes):
            if i not in skip and node.replica.can_propose():
                node.replica.propose(1000 + t)
                c.drain(i)
        c.pump(lambda src, dst, m: src not in skip and dst not in skip)
        _serve_fetches(c)
        for i, node in enumerate(c.nodes):
            if i not in skip:
                node.replica.executed(node.app.executed)
                c.drain(i)
        c.pump(lambda src, dst, m: src not in skip and dst not in skip)
        c.tick_all(1, only=[i for i in range(len(c.nodes)) if i not in skip])
        if until is not None and min(len(c.nodes[i].store) for i in range(len(c.nodes)) if i not in skip) >= until:
            return


def _vs(c: Cluster, members: tuple[int, ...]) -> ValidatorSet:
    return ValidatorSet(validators=tuple(c.keys[i].public for i in members))  # type: ignore[misc]


def _check_chain(c: Cluster, sets: dict[int, ValidatorSet]) -> None:
    """Same blocks everywhere; every certificate verifies under V(h); headers name V(h), V(h+1)."""
    def v(h: int) -> ValidatorSet:
        return max(((lo, vs) for lo, vs in sets.items() if lo <= h), key=lambda x: x[0])[1]

    longest = max(c.nodes, key=lambda n: len(n.store)).store
    for node in c.nodes:
        assert [cb.block.header.hash() for cb in node.store] == [cb.block.header.hash() for cb in longest[: len(node.store)]]
    for cb in longest:
        h = cb.block.header.height
        cb.certificate.verify("test-chain", v(h), cb.block.header.hash())
        assert cb.block.header.validators_hash == v(h).hash()
        assert cb.block.header.next_validators_hash == v(h + 1).hash()


def test_new_validator_catches_up_then_votes() -> None:
    """4 -> 5: node 4 is an observer (never signs), learns the chain through STATUS and
    catch-up, switches at the stable checkpoint 8 and then votes; its votes are in the
    certificates from height 9 on."""
    c = _cluster(5, 4, {2: (0, 1, 2, 3, 4)})
    new = c.r(4)
    assert not new.is_member and new.validators == _vs(c, (0, 1, 2, 3))
    _run(c, 20, until=16)
    assert new.is_member and new.validators == _vs(c, (0, 1, 2, 3, 4)) and new.epoch_switches == 1
    assert all(c.r(i).validators == _vs(c, (0, 1, 2, 3, 4)) for i in range(5))
    assert all(c.r(i).quorum == 4 for i in range(5))
    _check_chain(c, {1: _vs(c, (0, 1, 2, 3)), 9: _vs(c, (0, 1, 2, 3, 4))})
    store = c.nodes[0].store
    assert c.keys[4].public not in {s.replica for cb in store[:8] for s in cb.certificate.signatures}
    assert len(c.nodes[4].store) >= 16
    _run(c, 10, until=24)
    voted = {m.body.seq for m in c.nodes[4].wal if isinstance(m, SignedCommit)}
    assert voted and min(voted) > 8 and max(voted) >= 20
    # before the switch node 4 signed nothing but STATUS
    signed_early = [m for m in c.nodes[4].wal if isinstance(m, SignedPrepare | SignedCommit) and m.body.seq <= 8]
    assert signed_early == []


def test_removed_primary_becomes_an_observer_and_is_not_counted() -> None:
    """5 -> 4 removing node 0, the primary of view 0: from height 9 the primary of view 0 is
    node 1, node 0's votes are refused and it keeps following the chain as an observer."""
    c = _cluster(5, 5, {1: (1, 2, 3, 4)})
    _run(c, 20, until=14)
    old = c.r(0)
    assert not old.is_member and old.validators == _vs(c, (1, 2, 3, 4))
    assert c.r(1).view == 0 and c.r(1).is_primary
    _check_chain(c, {1: _vs(c, (0, 1, 2, 3, 4)), 9: _vs(c, (1, 2, 3, 4))})
    assert all(c.keys[0].public not in {s.replica for s in cb.certificate.signatures} for cb in c.nodes[1].store[8:])
    assert len(c.nodes[0].store) >= 12
    # a vote the removed validator signs now is not taken
    r1 = c.r(1)
    vote = _prepare(c, 0, r1.committed_seq + 1)
    before = r1.rejected.get("sender_not_validator", 0)
    assert not r1.step(vote, c.keys[0].public)
    assert r1.rejected["sender_not_validator"] == before + 1


def _prepare(c: Cluster, i: int, seq: int) -> SignedPrepare:
    from afterchain.consensus.messages import Prepare

    p = Prepare(view=View(0), seq=Seq(seq), digest=Hash32(sha256(b"x")), replica=c.keys[i].public)  # type: ignore[arg-type]
    return SignedPrepare(body=p, signature=c.keys[i].sign(Domain.PREPARE, "test-chain", p))


def test_window_is_capped_at_a_change_boundary_and_the_proposer_waits() -> None:
    """While V(9) is unknown the window ends at 8 and the primary cannot propose 8 (its
    header names V(9)); a backup that does not know V(9) defers block 8 instead of
    rejecting it and prepares it once it knows."""
    c = _cluster(4, 4, {})
    for i in (0, 1):
        c.nodes[i].app.blind_from = 9  # type: ignore[attr-defined]
    r0, r1 = c.r(0), c.r(1)
    assert r0.high_watermark == 8 and c.r(2).high_watermark == 8  # V(9) needs block 4 executed
    _run(c, 12)
    assert r0.committed_seq == 7 and r0.next_seq == 8
    assert not r0.propose(5000)
    assert r0.high_watermark == 8
    # node 0 learns V(9); block 8 goes to node 1 which still does not know it: deferred
    c.nodes[0].app.blind_from = None  # type: ignore[attr-defined]
    r0.executed(c.nodes[0].app.executed)
    assert r0.propose(5001)
    c.drain(0)
    c.pump(lambda src, dst, m: dst == 1 and isinstance(m, PrePrepareMsg))
    assert r1.slots[8].rejected is False and r1.slots[8].verified is False
    assert not any(isinstance(m, SignedPrepare) and m.body.seq == 8 for m in c.nodes[1].wal)
    c.nodes[1].app.blind_from = None  # type: ignore[attr-defined]
    r1.executed(c.nodes[1].app.executed)
    c.drain(1)
    assert any(isinstance(m, SignedPrepare) and m.body.seq == 8 for m in c.nodes[1].wal)
    _run(c, 10, until=12)
    assert min(c.heights()) >= 12 and c.r(2).high_watermark == c.r(2).stable_seq + PARAMS.watermark_window


def test_header_naming_the_wrong_next_set_is_rejected() -> None:
    """A primary whose application ignores a change names the old set as next at the
    boundary: the backups reject that block (and a view change replaces the primary)."""
    c = _cluster(5, 4, {2: (0, 1, 2, 3, 4)})
    c.nodes[0].app.lie = True  # type: ignore[attr-defined]
    _run(c, 8)
    assert c.r(0).committed_seq == 7 and c.r(0).view == 0
    for i in (1, 2, 3):
        assert c.r(i).slots[8].rejected and c.r(i).rejected.get("block_rejected", 0) >= 1
        assert c.r(i).committed_seq == 7
    _run(c, 30, until=12, skip=frozenset({0}))
    assert c.r(1).view >= 1
    c.nodes[0].store = c.nodes[0].store[:7]  # (node 0's own view of the chain is not checked)
    _check_chain(c, {1: _vs(c, (0, 1, 2, 3)), 9: _vs(c, (0, 1, 2, 3, 4))})


def test_restart_comes_back_in_the_new_epoch() -> None:
    """A replica restarted from its WAL and block store after the switch is in the new set,
    in the same view, active, and keeps voting."""
    c = _cluster(5, 4, {2: (0, 1, 2, 3, 4)})
    _run(c, 20, until=14)
    for i in (1, 4):
        view = c.r(i).view
        c.restart(i)
        r = c.r(i)
        assert r.validators == _vs(c, (0, 1, 2, 3, 4)) and r.is_member and r.view == view and r.active
    _run(c, 10, until=20)
    assert min(c.heights()) >= 20
    _check_chain(c, {1: _vs(c, (0, 1, 2, 3)), 9: _vs(c, (0, 1, 2, 3, 4))})


def test_without_validators_for_the_genesis_set_stays() -> None:
    """An application without `validators_for` (older shells) keeps the genesis set."""
    c = Cluster(4)
    _run(c, 10, until=10)
    assert all(c.r(i).validators == c.validators and c.r(i).epoch_switches == 0 for i in range(4))
    assert c.r(0).known_nodes() == frozenset(k.public for k in c.keys[1:])


def test_known_nodes_include_the_next_set() -> None:
    c = _cluster(5, 4, {2: (0, 1, 2, 3, 4)})
    r = c.r(0)
    assert c.keys[4].public not in r.known_nodes()
    _run(c, 8)
    assert r.app.executed_height() >= 4
    assert c.keys[4].public in r.known_nodes()  # V(9) is known once block 4 is executed
    assert c.keys[0].public not in r.known_nodes()


def test_unknown_node_is_not_answered_and_signs_nothing() -> None:
    """A node in no previous, current or next set: its STATUS is refused and it signs nothing."""
    c = _cluster(5, 4, {})
    _run(c, 10)
    assert not c.r(4).is_member and c.nodes[4].wal == [] and c.nodes[4].store == []
    assert c.r(0).rejected.get("sender_not_validator", 0) >= 1


def test_fetched_block_certified_by_the_wrong_set_is_refused() -> None:
    """A fetched block whose certificate is signed by the old set where the new one votes
    is refused (V(h) from the chain, not the genesis set)."""
    c = _cluster(5, 4, {2: (0, 1, 2, 3, 4)})
    _run(c, 20, until=12)
    store = c.nodes[1].store
    fresh = _cluster(5, 4, {2: (0, 1, 2, 3, 4)})
    r = fresh.r(2)
    for cb in store[:8]:
        assert r.deliver_block(cb)
        fresh.drain(2)
        fresh.nodes[2].app.execute(cb.block) if fresh.nodes[2].app.executed < cb.block.header.height else None
    cb9 = store[8]
    sigs = tuple(s for s in cb9.certificate.signatures if s.replica != c.keys[4].public)
    old_only = replace(cb9, certificate=replace(cb9.certificate, signatures=sigs[:3]))
    assert not r.deliver_block(old_only)
    assert r.rejected.get("fetched_bad_certificate", 0) == 1
    assert r.deliver_block(cb9)



def test_late_new_validators_join_through_relayed_checkpoints() -> None:
    """4 -> 7 while nodes 4-6 are cut off: the old members reach checkpoint 8, switch, and
    stall (4 of 7 is no quorum). Nothing new is signed, so the cut-off nodes can only get
    checkpoint 8 relayed: the members answer their STATUS with its signatures; they catch
    up, switch and the 7 commit again."""
    c = _cluster(7, 4, {2: tuple(range(7))})
    cut = frozenset({4, 5, 6})
    _run(c, 20, skip=cut)
    assert [c.r(i).committed_seq for i in range(4)] == [8] * 4 and c.r(0).stable_seq == 8
    assert c.r(0).validators == _vs(c, tuple(range(7))) and all(not c.r(i).is_member for i in cut)
    _run(c, 60, until=16)
    assert all(c.r(i).is_member for i in range(7)) and min(c.heights()) >= 16
    assert all(any(isinstance(m, SignedCommit) for m in c.nodes[i].wal) for i in cut)
    _check_chain(c, {1: _vs(c, (0, 1, 2, 3)), 9: _vs(c, tuple(range(7)))})


def test_restarted_replica_counts_its_own_checkpoint() -> None:
    """A replica that signed checkpoint 4 and restarted before it became stable still counts
    its own signature: two more make the quorum (a new member stuck at the boundary in the
    simulator, seed 1167, waited for a third that never came)."""
    from afterchain.consensus.messages import SignedCheckpoint

    c = Cluster(4)

    def no_checkpoints_to_0(src: int, dst: int, m: object) -> bool:
        return not (dst == 0 and isinstance(m, SignedCheckpoint))

    for t in range(8):
        if c.r(0).can_propose():
            c.r(0).propose(1000 + t)
        c.pump(no_checkpoints_to_0)
    assert c.r(0).committed_seq >= 4 and c.r(0).stable_seq == 0 and c.r(1).stable_seq >= 4
    c.restart(0)
    r0 = c.r(0)
    for i in (1, 2):
        cp = next(m for m in c.nodes[i].wal if isinstance(m, SignedCheckpoint) and m.body.seq == 4)
        r0.step(cp, c.keys[i].public)
    assert r0.stable_seq == 4
