"""Prometheus metrics of one node (a registry per node, so several nodes can share a
process in tests). Names are stable: dashboards (docs/grafana-dashboard.json) and alerts
depend on them.

Counters and histograms are updated where things happen. Gauges that describe the node's
state (height, view, peers, mempool, lag, disk) are *live*: `NodeMetrics.bind_live` gives
each a function read at every scrape, so they are current whoever asks and whenever (a
gauge set only on some event would stay stale, e.g. at 0 after a restart until the first
commit). The event feed's figures (``afterchain_stream_*``: open subscriptions, those cut
off as too slow) are read from the feed at each scrape too (`NodeMetrics.bind_feed`). The
registry also holds the process's own metrics (``process_*``: CPU, memory,
open files; ``python_*``: the interpreter and its garbage collector) and
``afterchain_build_info`` (the software and protocol versions, as labels).
"""

from __future__ import annotations

import functools
import os
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    GCCollector,
    Histogram,
    Info,
    PlatformCollector,
    ProcessCollector,
    generate_latest,
)
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from prometheus_client.registry import Collector

from afterchain.node.common.version import PROTOCOL_VERSION, package_version

__all__ = ["LiveReads", "NodeMetrics", "dir_bytes"]

_LATENCY_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 5.0, 10.0, 30.0)
_FSYNC_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0)


def dir_bytes(path: Path) -> int:
    """Bytes of the files under `path` (0 if it does not exist). Files RocksDB removes
    while we walk are skipped."""
    total = 0
    try:
        entries = list(os.scandir(path))
    except OSError:
        return 0
    for e in entries:
        try:
            if e.is_dir(follow_symlinks=False):
                total += dir_bytes(Path(e.path))
            elif e.is_file(follow_symlinks=False):
                total += e.stat(follow_symlinks=False).st_size
        except OSError:
            continue
    return total


class LiveReads:
    """What the live gauges read: one function per value (`NodeStatus` supplies them)."""

    def __init__(self, *, height: Callable[[], int], executed_height: Callable[[], int], view: Callable[[], int],
                 peer_height: Callable[[], int], peers_by_role: Callable[[], dict[str, int]],
                 mempool_events: Callable[[], int], mempool_bytes: Callable[[], int], data_dir: Path) -> None:
        self.height = height
        self.executed_height = executed_height
        self.view = view
        self.peer_height = peer_height
        self.peers_by_role = peers_by_role
        self.mempool_events = mempool_events
        self.mempool_bytes = mempool_bytes
        self.data_dir = data_dir


class _FeedCollector(Collector):
    """The event feed's figures (`EventFeed.stats`), read at each scrape."""

    def __init__(self, stats: Callable[[], dict[str, int]]) -> None:
        self._stats = stats

    def describe(self) -> Iterator[Metric]:
        return iter(())  # names known only at collect: no duplicate check needed for these

    def collect(self) -> Iterator[Metric]:
        s = self._stats()
        yield GaugeMetricFamily("afterchain_stream_subscribers", "Open event streams (GET /v1/stream)",
                                value=s["subscribers"])
        yield GaugeMetricFamily("afterchain_stream_live", "Open event streams that follow new blocks "
                                "(past their replay)", value=s["live"])
        yield CounterMetricFamily("afterchain_stream_cut_off", "Event streams cut off as too slow (stream.too_slow)",
                                  value=s["cut_off"])
        yield CounterMetricFamily("afterchain_stream_untagged_replays", "Stored blocks replayed to a stream without "
                                  "their stored tags (tagged again from the current state)", value=s["untagged_replays"])


class _StateSyncCollector(Collector):
    """State sync's figures (`statesync.SnapshotServer.metrics`), read at each scrape: the
    snapshots this node takes and serves, and how its data directory was filled when it
    joined by state sync (absent: it did not)."""

    def __init__(self, figures: Callable[[], dict[str, float]]) -> None:
        self._figures = figures

    def describe(self) -> Iterator[Metric]:
        return iter(())

    def collect(self) -> Iterator[Metric]:
        f = self._figures()
        yield CounterMetricFamily("afterchain_statesync_snapshots_taken", "Snapshots this node took to offer to peers",
                                  value=f["snapshots_taken"])
        yield CounterMetricFamily("afterchain_statesync_snapshot_failures", "Snapshots this node failed to take",
                                  value=f["snapshot_failures"])
        yield GaugeMetricFamily("afterchain_statesync_snapshots_offered", "Snapshots this node offers to peers now",
                                value=f["snapshots_offered"])
        yield CounterMetricFamily("afterchain_statesync_chunks_served", "Snapshot chunks served to peers",
                                  value=f["chunks_served"])
        yield CounterMetricFamily("afterchain_statesync_chunks_refused_busy", "Chunk requests refused: too many in "
                                  "flight for that peer", value=f["chunks_refused_busy"])
        yield GaugeMetricFamily("afterchain_statesync_joined", "1 if this node's data was filled by state sync from "
                                "peers, else 0", value=f["joined"])
        yield GaugeMetricFamily("afterchain_statesync_duration_seconds", "That state sync: from its start to the "
                                "snapshot installed (discovery, fetch, verification)", value=f["duration_s"])
        yield GaugeMetricFamily("afterchain_statesync_chunks_fetched", "That state sync: chunks fetched and kept",
                                value=f["chunks_fetched"])
        yield GaugeMetricFamily("afterchain_statesync_chunks_refused", "That state sync: chunks refused (not the "
                                "offer's SHA-256)", value=f["chunks_refused"])
        yield GaugeMetricFamily("afterchain_statesync_snapshots_refused", "That state sync: snapshots refused "
                                "(uncertified, a bad chunk, or state not matching the certified root)",
                                value=f["snapshots_refused"])


def _role_count(live: LiveReads, role: str) -> int:
    return live.peers_by_role().get(role, 0)


class NodeMetrics:
    def __init__(self) -> None:
        r = self.registry = CollectorRegistry(auto_describe=True)
        self.height = Gauge("afterchain_height", "Height of the last committed block", registry=r)
        self.executed_height = Gauge("afterchain_executed_height", "Height of the last block the ledger executed",
                                     registry=r)
        self.peer_height = Gauge("afterchain_peer_height", "Highest committed height a peer reported", registry=r)
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
        self.peers = Gauge("afterchain_peers", "Connected peers (validators and other nodes)", registry=r)
        self.peers_by_role = Gauge("afterchain_peers_connected", "Connected peers by their role in the current "
                                   "validator set (validator, member)", ["role"], registry=r)
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
        self.request_timer_expiries = Counter(
            "afterchain_request_timer_expiries", "View changes this backup voted for because of its request timers, "
            "by reason (request_timeout: an event held T2; slow_primary: underfilled blocks)", ["reason"], registry=r)
        self.request_forwards = Counter(
            "afterchain_request_forwards", "Held events relayed to the other validators at T1 (request timers)",
            registry=r)
        for why in ("request_timeout", "slow_primary"):
            self.request_timer_expiries.labels(why)
        for reason in ("decode", "gossip_decode", "consensus"):  # present (at 0) before the first one
            self.peer_messages_rejected.labels(reason)
        self.data_bytes = Gauge("afterchain_data_bytes", "Bytes on disk of the node's stores (chain, state)", ["store"],
                                registry=r)
        self.disk_free = Gauge("afterchain_disk_free_bytes", "Free bytes on the file system of the data directory",
                               registry=r)
        Info("afterchain_build", "The node's software and node-to-node protocol versions", registry=r).info(
            {"version": package_version(), "protocol_version": str(PROTOCOL_VERSION)})
        ProcessCollector(registry=r)
        PlatformCollector(registry=r)
        GCCollector(registry=r)

    def bind_live(self, live: LiveReads) -> None:
        """Read the state gauges from `live` at each scrape (see the module docstring)."""
        self.height.set_function(live.height)
        self.executed_height.set_function(live.executed_height)
        self.view.set_function(live.view)
        self.peer_height.set_function(live.peer_height)
        self.mempool_size.set_function(live.mempool_events)
        self.mempool_bytes.set_function(live.mempool_bytes)
        self.peers.set_function(lambda: sum(live.peers_by_role().values()))
        for role in ("validator", "member"):
            self.peers_by_role.labels(role).set_function(functools.partial(_role_count, live, role))
        for store in ("chain", "state"):
            self.data_bytes.labels(store).set_function(functools.partial(dir_bytes, live.data_dir / store))

        def free() -> int:
            try:
                return shutil.disk_usage(live.data_dir).free
            except OSError:
                return 0

        self.disk_free.set_function(free)

    def bind_feed(self, stats: Callable[[], dict[str, int]]) -> None:
        """Report the event feed's `stats` (subscribers, live, cut_off, untagged_replays)
        at each scrape, as ``afterchain_stream_*``."""
        self.registry.register(_FeedCollector(stats))

    def bind_statesync(self, figures: Callable[[], dict[str, float]]) -> None:
        """Report state sync's `figures` at each scrape, as ``afterchain_statesync_*``."""
        self.registry.register(_StateSyncCollector(figures))

    def render(self) -> tuple[bytes, str]:
        return generate_latest(self.registry), CONTENT_TYPE_LATEST
