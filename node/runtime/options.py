"""The node's local options and the replica's timers derived from the chain's parameters.

`NodeOptions` are this node's own knobs (never consensus-relevant: backups check no
timing but a block's time). `replica_params` turns the chain's consensus parameters (ms)
into the replica's (ticks); `consensus_params_at` is the chain's parameters for a height.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from afterchain.consensus.params import ConsensusParams as ReplicaParams
from afterchain.consensus.requests import RequestTimers
from afterchain.node.app.ledger import Ledger
from afterchain.protocol.genesis import ConsensusParams as GenesisConsensusParams
from afterchain.protocol.genesis import Genesis

__all__ = ["NodeOptions", "consensus_params_at", "replica_params", "request_timers"]


@dataclass(frozen=True, slots=True)
class NodeOptions:
    name: str = "node"
    tick_ms: int = 50
    heartbeat_ms: int = 1000
    """An idle primary proposes an (empty) block this often, so backups see progress
    and the latest state root gets into a header."""
    busy_block_events: int = 100
    busy_block_interval_ms: int = 300
    full_block_events: int = 500
    """Fewer, fuller blocks under load: a primary whose last block carried at least
    `busy_block_events` events waits `busy_block_interval_ms` since that proposal (not the
    genesis `block_interval_ms`), unless `full_block_events` are ready sooner. A block
    costs each node a fixed share of CPU besides its events' own (docs/OPERATIONS.md), so
    under load fewer, fuller blocks cost less; a lone event on a quiet network is still
    proposed after `block_interval_ms`. Local to the primary: backups check no timing but
    the block's time."""
    max_events: int = 200_000
    max_bytes: int = 256 * 1024 * 1024
    per_sender_quota: int = 20_000
    max_gapped_events: int = 20_000
    max_gapped_per_sender: int = 5_000
    """Events behind a nonce gap (they wait for a missing earlier nonce of their sender):
    at most this many in all and per sender; beyond, rejected with `nonce.gap`. When the
    mempool is full, ready events evict gapped ones (`mempool.evicted`)."""
    max_request_bytes: int = 8 * 1024 * 1024
    max_batch_events: int = 5000
    intake_limit_events: int = 4000
    """Backpressure: the API refuses new events (503 mempool.full, before any signature
    check) while this many are pending here (mempool + gossip backlog + being verified).
    Pending events wait ~ pending / throughput, so this bounds finality latency under
    overload; peers' gossip is still admitted up to `max_events`."""
    stream_max_subscribers: int = 256
    stream_max_per_client: int = 16
    stream_queue_events: int = 10_000
    """Event streams (`node.runtime.feed`): subscribers in total and per client address, and
    events queued per subscriber before it is cut off as too slow."""
    gossip_backlog_events: int = 20_000
    """Gossiped events from peers queued for verification; a batch beyond it is dropped
    (counted): its origin keeps the events and re-gossips them, and a block carrying them
    is verified on arrival. So a slow node never blocks its peers' streams (which also
    carry consensus messages)."""
    verify_event_signatures: bool = False
    """A member re-checks every event signature of a certified block (node.toml
    `[member]`; off: it relies on the certificate, docs/PROTOCOL.md "Member nodes")."""
    member_poll_ms: int = 100
    """How often a member asks a peer for new blocks when the last ask brought none."""
    relay: bool = True
    """The dissemination relay (docs/PROTOCOL.md section 11) carries certified blocks to
    members and members' events towards the validators (node.toml `[member] relay`); off:
    members follow by polling (`FollowRequest`) and gossip their events to validators."""
    snapshot_interval: int = 0
    """Take a snapshot for state sync each time the executed height reaches a multiple of
    this (0: none; node.toml `[statesync]`, node.runtime.statesync)."""
    snapshot_keep: int = 2
    """Snapshots kept and offered to peers (the newest)."""
    request_forward_ms: int = 2000
    request_timeout_ms: int = 8000
    slow_blocks: int = 3
    """Request timers (node.toml `[consensus]`; `consensus.requests`, docs/PROTOCOL.md
    "Censorship resistance"): a backup relays an event it has held (proposable, not
    committed) for `request_forward_ms` (T1) and votes for a view change when one is held
    for `request_timeout_ms` (T2), or after `slow_blocks` underfilled blocks in a row
    (0: that rule off). `request_timeout_ms` 0 switches the timers off."""


def replica_params(c: GenesisConsensusParams, tick_ms: int) -> ReplicaParams:
    timeout = max(2, math.ceil(c.view_timeout_ms / tick_ms))
    return ReplicaParams(
        checkpoint_interval=c.checkpoint_interval,
        watermark_window=c.watermark_window,
        view_timeout_ticks=timeout,
        view_timeout_max_ticks=max(timeout, math.ceil(c.view_timeout_max_ms / tick_ms)),
        max_block_events=c.max_block_events,
        max_block_bytes=c.max_block_bytes,
        retransmit_ticks=max(1, math.ceil(500 / tick_ms)),
    )


def request_timers(opts: NodeOptions) -> RequestTimers:
    """The replica's request timers in ticks (off when `request_timeout_ms` is 0)."""
    if opts.request_timeout_ms <= 0:
        return RequestTimers()
    t1 = max(1, math.ceil(opts.request_forward_ms / opts.tick_ms))
    t2 = max(t1 + 1, math.ceil(opts.request_timeout_ms / opts.tick_ms))
    return RequestTimers(forward_ticks=t1, timeout_ticks=t2, slow_blocks=max(0, opts.slow_blocks))


def consensus_params_at(ledger: Ledger, genesis: Genesis, height: int) -> GenesisConsensusParams:
    """The chain's consensus parameters for block `height` (governance may change the
    block limits and timers at an epoch boundary; the latest known ones while the
    schedule for `height` is not yet known here)."""
    cp = ledger.consensus_params_for(height) or ledger.consensus_params_for(ledger.height + 1)
    return cp if cp is not None else genesis.consensus
