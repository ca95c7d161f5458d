"""Prometheus metrics of one node (a registry per node, so several nodes can share a
process in tests). Names are stable: dashboards and alerts depend on them."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

__all__ = ["NodeMetrics"]

_LATENCY_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 5.0, 10.0, 30.0)
_FSYNC_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0)


class NodeMetrics:
    def __init__(self) -> None:
        r = self.registry = CollectorRegistry(auto_describe=True)
        self.height = Gauge("afterchain_height", "Height of the last committed block", registry=r)
        self.view = Gauge("afterchain_view", "Current PBFT view", registry=r)
        self.view_changes = Counter("afterchain_view_changes", "View changes this node entered", registry=r)
        self.commit_latency = Histogram(
            "afterchain_commit_latency_seconds", "From an event's arrival at this node to its block's commit",
            buckets=_LATENCY_BUCKETS, registry=r)
        self.block_interval = Histogram(
            "afterchain_block_interval_seconds", "Time between consecutive commits", buckets=_LATENCY_BUCKETS, registry=r)
        self.events_committed = Counter("afterchain_events_committed", "Events committed and accepted by the ledger", registry=r)
        self.events_rejected = Counter("afterchain_events_rejected", "Events rejected, by reason", ["code"], registry=r)
        self.mempool_size = Gauge("afterchain_mempool_events", "Events waiting in the mempool", registry=r)
        self.mempool_bytes = Gauge("afterchain_mempool_bytes", "Bytes waiting in the mempool", registry=r)
        self.peers = Gauge("afterchain_peers", "Connected validator peers", registry=r)
        self.fsync_latency = Histogram(
            "afterchain_fsync_seconds", "Synced writes of blocks and consensus records", buckets=_FSYNC_BUCKETS, registry=r)
        self.sla_breaches = Counter("afterchain_sla_breaches", "SLA deadlines passed (ledger)", registry=r)
        self.evidence = Counter("afterchain_evidence", "Equivocation evidence records seen", registry=r)
        self.peer_messages_rejected = Counter(
            "afterchain_peer_messages_rejected", "Peer messages rejected (bad signature, malformed, ...)", ["reason"], registry=r)
        self.member_blocks_refused = Counter(
            "afterchain_member_blocks_refused", "Certified blocks a member refused, by reason", ["reason"], registry=r)
        self.member_peers_banned = Counter(
            "afterchain_member_peers_banned", "Peers a member disconnected for refused blocks", registry=r)
        self.member_lag = Gauge(
            "afterchain_member_lag_blocks", "Blocks this node is behind the highest certified height it knows", registry=r)
        self.replica_sends_withheld = Counter(
            "afterchain_replica_sends_withheld", "Replica messages a member did not send (it signs no consensus message)",
            registry=r)

    def render(self) -> tuple[bytes, str]:
        return generate_latest(self.registry), CONTENT_TYPE_LATEST
