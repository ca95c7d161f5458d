"""Replicas stepped by hand, one test per protocol rule, named after the sections of
Castro & Liskov, "Practical Byzantine Fault Tolerance" (OSDI'99; TOCS'02 numbering in
brackets where it differs). Real Ed25519 keys throughout."""

from __future__ import annotations

from dataclasses import replace

import pytest

from afterchain.consensus.messages import (
    CertifiedBlock,
    CheckpointProof,
    Commit,
    Prepare,
    PreparedProof,
    PrePrepare,
    PrePrepareMsg,
    SignedCheckpoint,
    SignedCommit,
    SignedNewView,
    SignedPrepare,
    SignedPrePrepare,
    SignedViewChange,
    ViewChangeBody,
)
from afterchain.consensus.params import ConsensusParams
from afterchain.consensus.replica import Replica, compute_new_view_o, prunable
from afterchain.consensus.signer import Ed25519Signer, Ed25519Verifier, verify_certificate
from afterchain.protocol.block import Block, CommitCertificate
from afterchain.protocol.codec import decode, sha256
from afterchain.protocol.crypto import Domain
from afterchain.protocol.errors import InvariantError, ProtocolError, ValidationError
from afterchain.protocol.types import Hash32, Seq, Signature, View

from .harness import CHAIN, GENESIS, PARAMS, Cluster


def is_(t: type) -> object:
    return lambda src, dst, m: not isinstance(m, t)


# ---------------------------------------------------------------- 4.2 normal-case operation


def test_4_2_normal_case_commits_with_a_light_client_certificate() -> None:
    """'A replica commits a request when it is committed-local' — and every commit comes
    with 2f+1 COMMIT signatures that `CommitCertificate.verify` accepts."""
    c = Cluster()
    assert c.r(0).propose(1_000)
    c.pump()
    assert c.heights() == [1, 1, 1, 1]
    for node in c.nodes:
        cb = node.store[0]
        cb.certificate.verify(CHAIN, c.validators, cb.block.header.hash())
        assert len(cb.certificate.signatures) >= c.validators.quorum
        assert cb.block.header.prev_hash == GENESIS
    assert len({n.store[0].block.header.hash() for n in c.nodes}) == 1


def test_4_2_several_blocks_in_flight_commit_strictly_in_order() -> None:
    c = Cluster()
    for t in range(3):
        assert c.r(0).propose(1_000 + t)
    c.drain_all()
    c.queue.reverse()  # deliver the last block's messages first
    c.pump()
    for node in c.nodes:
        assert [cb.block.header.height for cb in node.store] == [1, 2, 3]
        assert node.store[1].block.header.prev_hash == node.store[0].block.header.hash()


def test_4_2_backup_prepares_only_after_the_predecessor_is_prepared() -> None:
    """Chain rule: PREPARE for s needs s-1 prepared in this view (or committed)."""
    c = Cluster()
    c.r(0).propose(1_000)
    c.r(0).propose(1_001)
    c.drain(0)
    pps = [(s, d, m) for s, d, m in c.queue if isinstance(m, PrePrepareMsg)]
    c.queue = []
    second = next(p for p in pps if p[2].preprepare.body.seq == 2 and p[1] == 1)
    c.r(1).step(second[2], c.keys[0].public)
    c.drain(1)
    assert not [m for _, _, m in c.queue if isinstance(m, SignedPrepare)]
    first = next(p for p in pps if p[2].preprepare.body.seq == 1 and p[1] == 1)
    c.r(1).step(first[2], c.keys[0].public)
    c.drain(1)
    assert {m.body.seq for _, _, m in c.queue if isinstance(m, SignedPrepare)} == {1}


def test_4_2_preprepare_outside_the_watermarks_is_rejected() -> None:
    c = Cluster()
    for t in range(PARAMS.watermark_window):
        assert c.r(0).propose(1_000 + t)
    assert not c.r(0).propose(2_000)  # the window is full
    signer = Ed25519Signer(c.keys[0])
    block = c.nodes[0].replica.slots[1].block
    body = PrePrepare(view=View(0), seq=Seq(PARAMS.watermark_window + 1), digest=Hash32(block.header.hash()), replica=c.keys[0].public)  # type: ignore[arg-type]
    bad = SignedPrePrepare(body=body, signature=signer.sign(Domain.PREPREPARE, CHAIN, body))
    hdr = replace(block.header, height=PARAMS.watermark_window + 1)
    body2 = replace(body, digest=Hash32(hdr.hash()))
    msg = PrePrepareMsg(preprepare=replace(bad, body=body2, signature=signer.sign(Domain.PREPREPARE, CHAIN, body2)),
                        block=Block(header=hdr, events=block.events))
    assert not c.r(1).step(msg, c.keys[0].public)
    assert c.r(1).rejected["outside_window"] == 1


def test_votes_outside_the_window_are_refused_before_their_signature_is_checked() -> None:
    """A replica far behind gets its peers' votes for heights it cannot use yet: they are
    refused by their sequence number, without the Ed25519 arithmetic (catch-up CPU)."""
    c = Cluster()
    r = c.r(1)
    checks_before = r.verifier.misses + r.verifier.hits
    far = Seq(PARAMS.watermark_window + 5)
    digest = Hash32(b"\x11" * 32)
    for cls, body in ((SignedCommit, Commit(view=View(0), seq=far, digest=digest, replica=c.keys[2].public)),  # type: ignore[arg-type]
                      (SignedPrepare, Prepare(view=View(0), seq=far, digest=digest, replica=c.keys[2].public))):  # type: ignore[arg-type]
        forged = cls(body=body, signature=Signature(b"\0" * 64))  # not even a valid signature
        assert not r.step(forged, c.keys[2].public)
    assert r.rejected["outside_window"] == 2
    assert r.rejected.get("bad_signature", 0) == 0
    assert r.verifier.misses + r.verifier.hits == checks_before
    # inside the window a forged vote is still refused by its signature
    body = Commit(view=View(0), seq=Seq(1), digest=digest, replica=c.keys[2].public)  # type: ignore[arg-type]
    assert not r.step(SignedCommit(body=body, signature=Signature(b"\0" * 64)), c.keys[2].public)
    assert r.rejected["bad_signature"] == 1


def test_votes_just_above_the_window_are_kept_until_it_moves() -> None:
    """A replica whose stable checkpoint lags (here: it gets no CHECKPOINT) refuses the
    votes above its window, but keeps those of the next window: once the checkpoints arrive
    and the window moves it takes them up and commits those heights without any re-send
    (the primary does not send a pre-prepare again once its height committed)."""
    c = Cluster()
    held: list[tuple[int, int, object]] = []

    def keep(src: int, dst: int, msg: object) -> bool:
        if dst == 3 and isinstance(msg, SignedCheckpoint):
            held.append((src, dst, msg))
            return False
        return True

    L = PARAMS.watermark_window
    for t in range(L + 3):
        assert c.r(0).propose(1_000 + t)
        c.pump(keep)
    r3 = c.r(3)
    assert c.r(0).committed_seq == L + 3
    assert r3.stable.seq == 0 and r3.committed_seq == L  # its window ends at L
    assert r3.rejected["outside_window"] > 0 and r3.ahead
    for src, dst, msg in held:
        r3.step(msg, c.keys[src].public)  # type: ignore[arg-type]
        c.drain(dst)
    c.pump()
    assert r3.stable.seq >= PARAMS.checkpoint_interval
    assert r3.committed_seq == L + 3, r3.committed_seq
    assert [cb.block.header.hash() for cb in c.nodes[3].store] == [cb.block.header.hash() for cb in c.nodes[0].store]
    assert not r3.ahead


def test_4_2_peer_messages_are_checked_and_rejected_without_effect() -> None:
    c = Cluster()
    c.r(0).propose(1_000)
    c.drain(0)
    pp = next(m for _, d, m in c.queue if d == 1 and isinstance(m, PrePrepareMsg))
    forged = PrePrepareMsg(preprepare=replace(pp.preprepare, signature=bytes(64)), block=pp.block)  # type: ignore[arg-type]
    r = c.r(1)
    assert not r.step(forged, c.keys[0].public)  # bad signature
    assert not r.step(pp, c.keys[2].public)  # sender is not the signer
    assert not r.step(pp, b"\x07" * 32)  # not a validator
    assert not r.step(b"\x93\x01\x02", c.keys[0].public)  # garbage bytes
    assert not r.slots and not r.has_ready()
    assert r.step(pp.encode(), c.keys[0].public)  # the real thing, as bytes
    # a backup may not pre-prepare
    signer = Ed25519Signer(c.keys[2])
    body = replace(pp.preprepare.body, replica=c.keys[2].public)
    fake = PrePrepareMsg(preprepare=SignedPrePrepare(body=body, signature=signer.sign(Domain.PREPREPARE, CHAIN, body)), block=pp.block)
    assert not Cluster().r(1).step(fake, c.keys[2].public)


def test_4_2_equivocating_primary_yields_evidence() -> None:
    c = Cluster()
    c.r(0).propose(1_000)
    c.drain(0)
    pp = next(m for _, d, m in c.queue if d == 1 and isinstance(m, PrePrepareMsg))
    signer = Ed25519Signer(c.keys[0])
    hdr = replace(pp.block.header, time_ms=pp.block.header.time_ms + 5)
    body = replace(pp.preprepare.body, digest=Hash32(hdr.hash()))
    other = PrePrepareMsg(preprepare=SignedPrePrepare(body=body, signature=signer.sign(Domain.PREPREPARE, CHAIN, body)),
                          block=Block(header=hdr, events=pp.block.events))
    r = c.r(1)
    assert r.step(pp, c.keys[0].public)
    assert not r.step(other, c.keys[0].public)
    c.drain(1)
    (ev,) = c.nodes[1].evidence
    assert {ev.first, ev.second} == {pp.preprepare, other.preprepare}
    assert decode(ev.encode()) == ev
    v = Ed25519Verifier()
    assert all(v.verify(c.keys[0].public, m.signature, Domain.PREPREPARE, CHAIN, m.body) for m in (ev.first, ev.second))  # type: ignore[attr-defined]


def test_4_2_state_root_check_defers_until_the_height_is_executed() -> None:
    """'verify later': a pre-prepare naming a state the backup has not executed waits."""
    c = Cluster()
    c.nodes[1].execute = False
    c.r(0).propose(1_000)
    c.pump()
    assert c.heights()[1] == 1 and c.nodes[1].app.executed == 0
    c.r(0).propose(1_001)  # state_height 1 (the primary executed block 1)
    assert c.r(0).slots[2].block.header.state_height == 1
    c.pump(lambda s, d, m: d == 1)
    assert not any(isinstance(m, SignedPrepare) for s, _, m in c.queue if s == 1)
    c.queue = []
    c.nodes[1].app.execute(c.nodes[1].store[0].block)
    c.r(1).executed(1)
    c.drain(1)
    assert any(isinstance(m, SignedPrepare) and m.body.seq == 2 for s, _, m in c.queue if s == 1)


def test_4_2_wrong_state_root_or_time_is_rejected() -> None:
    c = Cluster()
    c.r(0).propose(1_000)
    c.pump()
    c.nodes[1].app.roots[1] = b"\x01" * 32  # the backup computed another state
    c.r(0).propose(1_001)
    c.pump()
    assert c.r(1).rejected.get("block_rejected") == 1
    assert c.heights() == [2, 1, 2, 2]  # 2f+1 others still commit


# ---------------------------------------------------------------- 4.3 garbage collection


def test_4_3_checkpoint_becomes_stable_and_collects_the_log() -> None:
    c = Cluster()
    k = PARAMS.checkpoint_interval
    for t in range(k + 1):
        c.r(0).propose(1_000 + t)
        c.pump()
    for node in c.nodes:
        r = node.replica
        assert r.stable_seq == k and r.high_watermark == k + PARAMS.watermark_window
        assert all(s > k for s in r.prepared_certs) and all(key[1] > k for key in r.prepares)
        proof = r.stable
        assert len(proof.checkpoints) >= c.validators.quorum
        assert proof.digest == node.store[k - 1].block.header.hash()
        assert any(isinstance(rec, CheckpointProof) and rec.seq == k for rec in node.wal)
        assert prunable(next(rec for rec in node.wal if isinstance(rec, PreparedProof)), k)
    assert c.r(0).propose(5_000)


def test_4_3_checkpoint_with_a_bad_signature_does_not_count() -> None:
    c = Cluster()
    for t in range(PARAMS.checkpoint_interval):
        c.r(0).propose(1_000 + t)
        c.pump(is_(SignedCheckpoint))  # type: ignore[arg-type]
    signer = Ed25519Signer(c.keys[2])
    cp = c.r(2).signed[(Domain.CHECKPOINT.value, 0, PARAMS.checkpoint_interval)]
    assert isinstance(cp, SignedCheckpoint)
    assert not c.r(1).step(replace(cp, signature=bytes(64)), c.keys[2].public)  # type: ignore[arg-type]
    assert c.r(1).stable_seq == 0
    assert c.r(1).step(cp, c.keys[2].public) and signer.public == c.keys[2].public


# ---------------------------------------------------------------- 4.4 view changes


def _silence_primary_and_time_out(c: Cluster, backups: list[int]) -> None:
    c.tick_all(PARAMS.view_timeout_ticks, only=backups)


def test_4_4_silent_primary_is_replaced_by_view_change_and_new_view() -> None:
    c = Cluster()
    c.r(0).propose(1_000)
    c.pump()
    _silence_primary_and_time_out(c, [1, 2, 3])
    assert all(not c.r(i).active and c.r(i).view == 1 for i in (1, 2, 3))
    c.pump(lambda s, d, m: d != 0)
    assert all(c.r(i).active and c.r(i).view == 1 for i in (1, 2, 3))
    assert c.r(1).is_primary
    assert c.r(1).propose(2_000)
    c.pump(lambda s, d, m: d != 0 and s != 0)
    assert c.heights()[1:] == [2, 2, 2]
    assert c.nodes[2].store[1].certificate.view == 1


def test_4_4_view_change_keeps_a_prepared_but_uncommitted_block() -> None:
    """A block prepared at some replicas (its COMMITs lost) is re-issued in the new view's
    O set with the same digest, and commits there."""
    c = Cluster()
    c.r(0).propose(1_000)
    c.pump(is_(SignedCommit))  # type: ignore[arg-type]
    assert c.heights() == [0, 0, 0, 0]
    assert all(1 in c.r(i).prepared_certs for i in range(4))
    digest = c.r(1).prepared_certs[1].preprepare.body.digest
    _silence_primary_and_time_out(c, [1, 2, 3])
    vcs = [m for _, _, m in c.queue if isinstance(m, SignedViewChange)]
    assert vcs and all(len(m.body.prepared) == 1 for m in vcs)
    c.pump(lambda s, d, m: d != 0)
    nv = c.r(2).new_view_msg
    assert isinstance(nv, SignedNewView) and [p.preprepare.body.digest for p in nv.body.preprepares] == [digest]
    c.pump(lambda s, d, m: d != 0 and s != 0)
    for i in (1, 2, 3):
        assert c.nodes[i].store[0].block.header.hash() == digest
        assert c.nodes[i].store[0].certificate.view == 1


def test_4_4_new_view_that_drops_a_prepared_block_is_rejected() -> None:
    c = Cluster()
    c.r(0).propose(1_000)
    c.pump(is_(SignedCommit))  # type: ignore[arg-type]
    _silence_primary_and_time_out(c, [1, 2, 3])
    vcs = {c.index(m.body.replica): m for _, _, m in c.queue if isinstance(m, SignedViewChange)}
    c.queue = []
    from afterchain.consensus.messages import NewViewBody

    body = NewViewBody(view=View(1), view_changes=tuple(vcs[i] for i in (1, 2, 3)), preprepares=(), replica=c.keys[1].public)  # type: ignore[arg-type]
    bad = SignedNewView(body=body, signature=Ed25519Signer(c.keys[1]).sign(Domain.NEW_VIEW, CHAIN, body))
    assert not c.r(2).step(bad, c.keys[1].public)
    assert c.r(2).rejected["new_view_o_mismatch"] == 1
    assert not c.r(2).active


def test_4_4_new_view_o_is_cut_at_a_gap_or_a_broken_chain() -> None:
    c = Cluster()
    for t in range(3):
        c.r(0).propose(1_000 + t)
    c.pump(is_(SignedCommit))  # type: ignore[arg-type]
    proofs = [c.r(1).prepared_certs[s] for s in (1, 2, 3)]
    signer = Ed25519Signer(c.keys[1])
    stable = c.r(1).stable

    def vc(prepared: tuple[PreparedProof, ...]) -> SignedViewChange:
        b = ViewChangeBody(new_view=View(1), stable=stable, prepared=prepared, replica=c.keys[1].public)  # type: ignore[arg-type]
        return SignedViewChange(body=b, signature=signer.sign(Domain.VIEW_CHANGE, CHAIN, b))

    assert [p[0].body.seq for p in compute_new_view_o([vc(tuple(proofs))], GENESIS, 8)[2]] == [1, 2, 3]
    assert [p[0].body.seq for p in compute_new_view_o([vc((proofs[0], proofs[2]))], GENESIS, 8)[2]] == [1]
    assert compute_new_view_o([vc((proofs[1], proofs[2]))], GENESIS, 8)[2] == []


def test_4_4_timeout_backs_off_exponentially_capped_and_resets_after_a_commit() -> None:
    c = Cluster()
    r = c.r(1)
    timeouts = []
    for _ in range(5):
        before = r.ticks
        view = r.view
        while r.view == view:
            r.tick()
            # pretend 2f+1 view changes arrived so the timer for the next view runs
            r.view_changes.setdefault(r.view, {}).update({bytes([i]) * 32: None for i in range(3)})  # type: ignore[misc]
        c.drain(1)
        timeouts.append(r.ticks - before)
    assert timeouts[0] == PARAMS.view_timeout_ticks
    assert timeouts[1:4] == [20, 40, 40]
    assert max(timeouts) == PARAMS.view_timeout_max_ticks
    c2 = Cluster()
    c2.r(0).propose(1_000)
    c2.pump()
    assert c2.r(1).vc_attempt == 0 and c2.r(1).deadline == c2.r(1).ticks + PARAMS.view_timeout_ticks


def test_4_4_a_replica_waits_for_2f_plus_1_view_changes_before_moving_on() -> None:
    c = Cluster()
    c.tick(1, PARAMS.view_timeout_ticks)
    assert c.r(1).view == 1 and not c.r(1).active
    c.tick(1, 10 * PARAMS.view_timeout_max_ticks)
    assert c.r(1).view == 1  # alone it does not run ahead


def test_4_4_f_plus_1_view_changes_for_higher_views_make_a_replica_join() -> None:
    c = Cluster()
    c.tick(1, PARAMS.view_timeout_ticks)
    c.pump(lambda s, d, m: d == 3)
    assert c.r(3).view == 0 and c.r(3).active
    c.tick(2, PARAMS.view_timeout_ticks)
    c.pump(lambda s, d, m: d == 3)
    assert c.r(3).view == 1


# ---------------------------------------------------------------- catch-up (4.5 state transfer)


def test_4_5_lagging_replica_catches_up_from_peers_and_checks_certificates() -> None:
    c = Cluster()
    for t in range(6):
        c.r(0).propose(1_000 + t)
        c.pump(lambda s, d, m: d != 3)
    assert c.heights() == [6, 6, 6, 0]
    c.queue = []
    c.tick_all(PARAMS.retransmit_ticks, only=[0, 1, 2])
    c.pump(lambda s, d, m: d == 3)
    c.tick(3, PARAMS.retransmit_ticks)
    assert c.nodes[3].fetches
    fr = c.nodes[3].fetches[-1]
    peer = c.nodes[c.index(fr.peer)]
    blocks = peer.store[fr.from_height - 1: fr.from_height - 1 + fr.count]
    r3 = c.r(3)
    forged_cert = replace(blocks[0].certificate, signatures=blocks[0].certificate.signatures[:1])
    assert not r3.deliver_block(CertifiedBlock(block=blocks[0].block, certificate=forged_cert))
    assert r3.rejected["fetched_bad_certificate"] == 1
    for cb in reversed(blocks):  # out of order is fine: it applies them in order
        r3.deliver_block(cb)
    c.drain(3)
    assert c.heights()[3] == 6
    assert [cb.block.header.hash() for cb in c.nodes[3].store] == [cb.block.header.hash() for cb in c.nodes[0].store]
    c.r(0).propose(2_000)
    c.pump()
    assert c.heights() == [7, 7, 7, 7]


def test_a_greeted_replica_fetches_without_waiting_for_a_retransmission() -> None:
    """`greet(peer)` (the shell: the link to `peer` just opened) sends the replica's STATUS
    to that peer at once. A replica more than a window behind, greeted by its peers,
    fetches on that STATUS with no tick: before, it waited for their periodic STATUS (up to
    `retransmit_ticks`)."""
    c = Cluster()
    n = PARAMS.watermark_window + 2
    for t in range(n):
        c.r(0).propose(1_000 + t)
        c.pump(lambda s, d, m: d != 3)
    assert c.heights() == [n, n, n, 0]
    c.queue = []
    for i in (0, 1, 2):
        c.r(i).greet(c.keys[3].public)
        c.r(i).greet(c.keys[i].public)  # itself: nothing
        c.r(i).greet(b"\x07" * 32)  # not a known node (a member node, say): nothing
        c.drain(i)
    assert sorted((src, dst, type(m).__name__, m.body.committed_seq) for src, dst, m in c.queue) == [  # type: ignore[attr-defined]
        (0, 3, "SignedStatus", n), (1, 3, "SignedStatus", n), (2, 3, "SignedStatus", n)]
    c.pump()
    assert [(f.from_height, f.count) for f in c.nodes[3].fetches] == [(1, n)]


# ---------------------------------------------------------------- signer guard, restore


def test_signer_guard_restored_primary_resends_and_never_re_signs_a_sequence() -> None:
    c = Cluster()
    c.r(0).propose(1_000)
    c.drain(0)
    first = next(m for _, _, m in c.queue if isinstance(m, PrePrepareMsg))
    c.queue = []
    c.restart(0)
    r = c.r(0)
    assert r.view == 0 and r.next_seq == 2
    assert r.propose(1_001)
    c.drain(0)
    assert [m.preprepare.body.seq for _, _, m in c.queue if isinstance(m, PrePrepareMsg)] == [2, 2, 2]
    c.queue = []
    c.tick(0, PARAMS.retransmit_ticks)
    resent = [m for _, _, m in c.queue if isinstance(m, PrePrepareMsg) and m.preprepare.body.seq == 1]
    assert resent and all(m == first for m in resent)
    c.pump()
    assert c.heights() == [2, 2, 2, 2]


def test_signer_guard_refuses_a_second_prepare_after_restart() -> None:
    c = Cluster()
    c.r(0).propose(1_000)
    c.pump(lambda s, d, m: d == 1 and isinstance(m, PrePrepareMsg))
    mine = c.r(1).signed[(Domain.PREPARE.value, 0, 1)]
    assert any(rec == mine for rec in c.nodes[1].wal)  # persisted before it was sent
    c.queue = []
    c.restart(1)
    r = c.r(1)
    # the restored replica is offered another block for (view 0, seq 1)
    block = c.r(0).slots[1].block
    signer = Ed25519Signer(c.keys[0])
    hdr = replace(block.header, time_ms=block.header.time_ms + 1)
    body = PrePrepare(view=View(0), seq=Seq(1), digest=Hash32(hdr.hash()), replica=c.keys[0].public)  # type: ignore[arg-type]
    other = PrePrepareMsg(preprepare=SignedPrePrepare(body=body, signature=signer.sign(Domain.PREPREPARE, CHAIN, body)),
                          block=Block(header=hdr, events=block.events))
    assert r.step(other, c.keys[0].public)
    c.drain(1)
    assert r.rejected.get("guard_refused", 0) >= 1
    assert not [m for _, _, m in c.queue if isinstance(m, SignedPrepare)]


def test_restored_backup_rejoins_the_view_it_was_in() -> None:
    c = Cluster()
    c.r(0).propose(1_000)
    c.pump()
    _silence_primary_and_time_out(c, [1, 2, 3])
    c.pump(lambda s, d, m: d != 0)
    view = c.r(3).view
    wal = c.nodes[3].wal
    wal[:] = [rec for rec in wal if not prunable(rec, c.r(3).stable_seq, view)]
    assert not any(isinstance(rec, SignedPrepare) and rec.body.view < view for rec in wal)
    c.restart(3)
    assert c.r(3).view == 1 and c.r(3).active
    assert c.r(1).propose(2_000)
    c.pump(lambda s, d, m: d != 0 and s != 0)
    assert c.heights()[1:] == [2, 2, 2]


# ---------------------------------------------------------------- messages and parameters


def test_messages_round_trip_and_parameters_validate() -> None:
    c = Cluster()
    c.r(0).propose(1_000)
    c.pump(is_(SignedCommit))  # type: ignore[arg-type]
    for rec in c.nodes[1].wal:
        assert decode(rec.encode()) == rec
    assert decode(PARAMS.encode()) == PARAMS
    with pytest.raises(ValidationError):
        ConsensusParams.decode(replace(PARAMS, watermark_window=2, checkpoint_interval=4).encode())
    with pytest.raises(ProtocolError):
        decode(replace(c.r(1).prepared_certs[1], prepares=()).encode()[:-1])


def test_replica_requires_advance_between_readies() -> None:
    c = Cluster()
    r: Replica = c.r(0)
    r.propose(1_000)
    r.ready()
    with pytest.raises(InvariantError):
        r.ready()


def test_certificate_check_through_the_verifier_matches_protocol() -> None:
    c = Cluster()
    c.r(0).propose(1_000)
    c.pump()
    cb = c.nodes[0].store[0]
    verify_certificate(cb.certificate, CHAIN, c.validators, cb.block.header.hash(), Ed25519Verifier())
    short = CommitCertificate(view=cb.certificate.view, height=cb.certificate.height,
                              header_hash=cb.certificate.header_hash, signatures=cb.certificate.signatures[:2])
    with pytest.raises(ProtocolError):
        short.verify(CHAIN, c.validators, cb.block.header.hash())
    assert sha256(b"") != cb.certificate.header_hash


def test_4_2_conflicting_prepares_yield_evidence_and_only_the_first_counts() -> None:
    c = Cluster()
    c.r(0).propose(1_000)
    c.pump(lambda s, d, m: isinstance(m, PrePrepareMsg))
    c.queue = []
    signer = Ed25519Signer(c.keys[2])
    digest = c.r(1).slots[1].digest
    good = Prepare(view=View(0), seq=Seq(1), digest=Hash32(digest), replica=c.keys[2].public)  # type: ignore[arg-type]
    bad = replace(good, digest=Hash32(sha256(b"other")))
    r = c.r(1)
    assert r.step(SignedPrepare(body=good, signature=signer.sign(Domain.PREPARE, CHAIN, good)), c.keys[2].public)
    assert not r.step(SignedPrepare(body=bad, signature=signer.sign(Domain.PREPARE, CHAIN, bad)), c.keys[2].public)
    c.drain(1)
    assert r.rejected["conflicting_vote"] == 1
    (ev,) = c.nodes[1].evidence
    assert {ev.first.body.digest, ev.second.body.digest} == {digest, bad.digest}  # type: ignore[attr-defined]


def test_4_4_replayed_messages_from_an_old_view_are_ignored() -> None:
    c = Cluster()
    c.r(0).propose(1_000)
    c.drain_all()
    old = list(c.queue)
    c.queue = []
    _silence_primary_and_time_out(c, [1, 2, 3])
    c.pump(lambda s, d, m: d != 0)
    assert c.r(2).view == 1 and c.r(2).active
    before = (dict(c.r(2).slots), c.r(2).committed_seq)
    for src, dst, m in old:
        if dst == 2:
            assert not c.r(2).step(m, c.keys[src].public)
    assert c.r(2).rejected["wrong_view"] >= 1
    assert (dict(c.r(2).slots), c.r(2).committed_seq) == before


def test_4_2_quorums_for_n_7() -> None:
    c = Cluster(7)
    assert c.validators.f == 2 and c.validators.quorum == 5
    c.r(0).propose(1_000)
    c.pump(lambda s, d, m: d not in (5, 6) and s not in (5, 6))  # f = 2 replicas silent
    assert c.heights()[:5] == [1] * 5
    cert = c.nodes[0].store[0].certificate
    assert len(cert.signatures) == 5
    cert.verify(CHAIN, c.validators, c.nodes[0].store[0].block.header.hash())
    c2 = Cluster(7)
    c2.r(0).propose(1_000)
    c2.pump(lambda s, d, m: d not in (4, 5, 6) and s not in (4, 5, 6))  # f + 1 silent: no commit
    assert c2.heights() == [0] * 7


def test_4_3_a_primary_behind_the_stable_checkpoint_never_proposes_at_or_below_it() -> None:
    """Regression (sim seed 2177): keys at or below the stable checkpoint are forgotten by
    the signer guard (and pruned from the WAL), so nothing may be signed there again."""
    c = Cluster()
    k = PARAMS.checkpoint_interval
    for t in range(k):
        c.r(0).propose(1_000 + t)
    c.pump(lambda s, d, m: d != 0 or isinstance(m, SignedPrepare | SignedCheckpoint))
    r0 = c.r(0)
    assert r0.committed_seq == 0 and r0.stable_seq == k
    c.nodes[0].wal[:] = [rec for rec in c.nodes[0].wal if not prunable(rec, k, 0)]
    c.restart(0)
    r0 = c.r(0)
    assert r0.next_seq == k + 1 and not r0.can_propose() and not r0.propose(9_000)
    assert all(key[2] > k for key in r0.signed if key[0] != Domain.VIEW_CHANGE.value)


@pytest.mark.parametrize(("n", "quorum"), [(4, 3), (5, 4), (6, 5), (7, 5), (10, 7)])
def test_quorum_is_n_minus_f_so_two_quorums_share_a_correct_replica(n: int, quorum: int) -> None:
    c = Cluster(n)
    assert c.r(0).quorum == quorum == n - c.validators.f
    assert 2 * quorum - n >= c.validators.f + 1
