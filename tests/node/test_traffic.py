"""The upload's breakdown by peer role and message (`node/runtime/traffic.py`,
`/v1/status` transport.sent_by)."""

from __future__ import annotations

from pathlib import Path

from afterchain.consensus.relay import RelayStatus
from afterchain.node.runtime.catchup import FollowRequest
from afterchain.node.runtime.traffic import payload_tag, traffic_label
from afterchain.node.transport.base import TransportStats
from afterchain.node.transport.frames import Kind, encode_frame
from afterchain.protocol.types import Height
from tests.node.util import VALIDATORS, memory_cluster, product_event, wait_for


def test_payload_tag_reads_the_tag_of_any_encoding() -> None:
    assert payload_tag(bytes.fromhex("94cca00107" "02")) == 0xA0  # PROTOCOL.md section 11's vector
    assert payload_tag(RelayStatus(height=Height(300), hops=16).encode()) == 0xA0
    assert payload_tag(FollowRequest(from_height=Height(1), count=2).encode()) == FollowRequest.TAG
    assert payload_tag(bytes([0x93, 0xCD, 0x01, 0x05, 0x01])) == 0x105  # a two-byte tag
    assert payload_tag(bytes([0x93, 0x21, 0x01])) == 0x21  # a fixint tag
    assert payload_tag(b"") is None and payload_tag(b"\x93") is None and payload_tag(b"\xc4\x01a") is None


def test_label_names_the_role_and_the_message() -> None:
    v, m = VALIDATORS[0].public, b"\x09" * 32
    label = traffic_label(lambda: {v})
    status = RelayStatus(height=Height(7), hops=2).encode()
    assert label(m, encode_frame(Kind.DIRECT, status)) == "member:RelayStatus"
    assert label(v, encode_frame(Kind.GOSSIP, status, topic="afterchain/events/1")) == "validator:RelayStatus"
    assert label(v, encode_frame(Kind.ERROR, b"rate limited", request_id=3)) == "validator:ERROR"
    assert label(m, encode_frame(Kind.RESPONSE, b"\x00\x01", request_id=3)) == "member:RESPONSE"  # no known tag
    assert label(m, b"\x02") == "member:?"
    stats = TransportStats()
    stats.count_sent(m, b"x")  # no labeller: nothing counted
    assert stats.sent_by == {}
    stats.label = label
    frame = encode_frame(Kind.DIRECT, status)
    stats.count_sent(m, frame)
    stats.count_sent(m, frame)
    assert stats.sent_by == {"member:RelayStatus": [2, 2 * len(frame)]}


async def test_status_reports_what_went_to_validators(tmp_path: Path) -> None:
    async with memory_cluster(tmp_path) as (nodes, _net):
        ev = product_event(1)
        await nodes[0].submit([ev.encode()])
        await wait_for(lambda: all(n.ledger.event_outcome(ev.id) is not None for n in nodes))
        sent = nodes[0].status_json()["transport"]["sent_by"]
        assert sent.get("validator:SignedCommit", [0, 0])[0] > 0
        assert not [k for k in sent if k.startswith("member:")]  # no members here
        total = sum(b for _, b in sent.values())
        assert total == nodes[0].transport.stats.bytes_sent
