"""Protocol versions over libp2p: the stream's protocol id carries the node-to-node version;
a peer that speaks none of ours is refused on both sides with a log line that names both
sides' versions; a node that speaks two versions talks to one that speaks the older."""

from __future__ import annotations

from typing import Any

import pytest
import trio
from structlog.testing import capture_logs

from afterchain.node.common.version import PROTOCOL_VERSION, SUPPORTED_PROTOCOL_VERSIONS
from afterchain.node.transport.p2p import PROTOCOL_ID, P2PTransport, protocol_id

from .test_p2p import KEYS, free_ports, make, until


def test_the_protocol_id_carries_the_version() -> None:
    assert protocol_id(1) == "/afterchain/transport/1.0.0"  # what released nodes speak: never changes
    assert protocol_id(PROTOCOL_VERSION) == PROTOCOL_ID and SUPPORTED_PROTOCOL_VERSIONS[0] == PROTOCOL_VERSION


async def test_a_peer_speaking_no_common_version_is_refused_on_both_sides() -> None:
    ports = free_ports(2)
    with capture_logs() as logs:
        old = make(0, ports, 2)  # this software: version 1
        new = make(1, ports, 2, protocol_versions=(2,))  # a future release that dropped version 1
        async with trio.open_nursery() as nursery:
            await nursery.start(old.run)
            await nursery.start(new.run)
            await until(lambda: old.stats.refused_version >= 1 and new.stats.refused_version >= 1, timeout_s=20)
            assert old.connected_peers() == set() and new.connected_peers() == set()
            sub = old.subscribe("t")
            await new.broadcast("t", b"hello")  # nothing crosses
            assert sub.statistics().current_buffer_used == 0
            nursery.cancel_scope.cancel()
    refusals = [e for e in logs if e["event"] == "transport_peer_version_unsupported"]
    by_side: dict[str, dict[str, Any]] = {}
    for e in refusals:
        by_side.setdefault(e["node_key"], e)
    mine, theirs = by_side[KEYS[0].hex()[:16]], by_side[KEYS[1].hex()[:16]]
    assert mine["log_level"] == "warning" and mine["peer"] == KEYS[1].hex()[:16]
    assert mine["ours"] == ["/afterchain/transport/1.0.0"] and mine["theirs"] == ["/afterchain/transport/2.0.0"]
    assert theirs["ours"] == ["/afterchain/transport/2.0.0"] and theirs["theirs"] == ["/afterchain/transport/1.0.0"]
    # a warning once per peer (then at debug level at each redial), not a flood
    assert sum(1 for e in refusals if e["log_level"] == "warning" and e["node_key"] == KEYS[0].hex()[:16]) == 1


async def test_a_node_speaking_two_versions_talks_to_an_older_one() -> None:
    ports = free_ports(2)
    with capture_logs() as logs:
        old = make(0, ports, 2)
        upgraded = make(1, ports, 2, protocol_versions=(2, 1))
        async with trio.open_nursery() as nursery:
            await nursery.start(old.run)
            await nursery.start(upgraded.run)
            await until(lambda: old.connected_peers() == {KEYS[1]} and upgraded.connected_peers() == {KEYS[0]},
                        timeout_s=20)
            sub = old.subscribe("t")
            await upgraded.broadcast("t", b"hello")
            with trio.fail_after(10):
                assert await sub.receive() == (KEYS[1], b"hello")
            nursery.cancel_scope.cancel()
    assert not [e for e in logs if e["event"] == "transport_peer_version_unsupported"]
    connected = {e["node_key"]: e["protocol"] for e in logs if e["event"] == "transport_peer_connected"}
    assert connected[KEYS[1].hex()[:16]] == "/afterchain/transport/1.0.0"  # it fell back to the version both speak


def test_a_transport_needs_a_version() -> None:
    with pytest.raises(ValueError, match="at least one version"):
        P2PTransport(seed=bytes(32), listen_addr="/ip4/127.0.0.1/tcp/0", peers={}, protocol_versions=())
