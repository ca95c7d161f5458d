"""docs/PROTOCOL.md cannot drift: its test vectors and generated tables are checked here.

The document holds vector blocks (a fenced block with info string ``vector NAME`` and
``key: value`` lines) and generated tables (between ``<!-- BEGIN GENERATED: name -->``
markers). Each test parses the blocks FROM THE MARKDOWN FILE and checks them against the
code: values recomputed from the block's inputs must be equal, and the verifiers must
accept what the document says is valid.

After an intended protocol change, rewrite the blocks with
``.venv/bin/python -m tests.test_vectors --update`` and review the diff.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

import msgpack
import pytest

from afterchain.protocol import state_keys
from afterchain.protocol.block import BlockHeader, Commit, CommitCertificate, CommitSig, ValidatorSet
from afterchain.protocol.bodies import NodeRegister, RatingSubmit
from afterchain.protocol.codec import decode, decode_as, encode, sha256
from afterchain.protocol.crypto import Domain, KeyPair, sign_bytes, verify_raw
from afterchain.protocol.doc_tables import generated_blocks, render_block
from afterchain.protocol.errors import ProtocolError
from afterchain.protocol.events import Event, SignedEvent, sign_event, verify_event
from afterchain.protocol.merkle import EMPTY_ROOT as MERKLE_EMPTY_ROOT
from afterchain.protocol.merkle import EventProof, inclusion_path, merkle_root, verify_inclusion
from afterchain.protocol.passport import HISTORY_ZERO, history_head, history_link
from afterchain.protocol.smt import EMPTY_ROOT, MemoryNodeStore, SmtProof, SparseMerkleTree, key_path, verify_smt_proof
from afterchain.protocol.types import Hash32, Height, PublicKey, Seq, Signature, ValidatorId, View

DOC = Path(__file__).resolve().parents[1] / "docs" / "PROTOCOL.md"
_VECTOR = re.compile(r"^```vector ([a-z0-9_.-]+)\n(.*?)^```$", re.M | re.S)
_GENERATED = re.compile(r"<!-- BEGIN GENERATED: ([a-z0-9-]+) -->\n.*?<!-- END GENERATED: \1 -->", re.S)

Vector = dict[str, str]

CHAIN_ID = "afterchain-test"


def h(b: bytes) -> str:
    return b.hex()


# --------------------------------------------------------------------------- generation


def gen_keys(v: Vector | None = None) -> Vector:
    kp = KeyPair.from_seed(bytes(range(32)))
    return {"seed": h(bytes(range(32))), "public_key": h(kp.public)}


def _event_inputs(v: Vector | None = None) -> tuple[KeyPair, Event]:
    """The vector's event, from the document's inputs if given (else the defaults)."""
    v = v or {}
    kp = KeyPair.from_seed(bytes.fromhex(v.get("seed", h(bytes(range(32))))))
    body = RatingSubmit(
        ticket_id=Hash32(bytes.fromhex(v.get("body.ticket_id", h(sha256(b"ticket-1"))))),
        score=int(v.get("body.score", "4")),
        comment_hash=None,
    )
    event = Event(
        chain_id=v.get("chain_id", CHAIN_ID), type=v.get("type", "rating.submit"), sender=kp.public,
        nonce=int(v.get("nonce", "7")), time_ms=int(v.get("time_ms", "1760000000000")), body=body,
    )
    return kp, event


def gen_event(v: Vector | None = None) -> Vector:
    kp, event = _event_inputs(v)
    signed = sign_event(kp, event)
    return {
        "seed": h(kp.seed),
        "chain_id": event.chain_id,
        "type": event.type,
        "sender": h(event.sender),
        "nonce": str(event.nonce),
        "time_ms": str(event.time_ms),
        "body.ticket_id": h(event.body.ticket_id),  # type: ignore[attr-defined]
        "body.score": str(event.body.score),  # type: ignore[attr-defined]
        "body.comment_hash": "nil",
        "body_encoding": h(encode(event.body)),
        "event_encoding": h(encode(event)),
        "event_id": h(event.id),
        "sign_bytes": h(sign_bytes(Domain.EVENT, event.chain_id, event)),
        "signature": h(signed.signature),
        "signed_event_encoding": h(encode(signed)),
        "signed_event_hash": h(sha256(encode(signed))),
    }


def gen_node_register(v: Vector | None = None) -> Vector:
    """A member organisation's key (the seed of the keys vector) registers two node keys,
    those of the seeds 05..05 and 06..06 (32 times the byte)."""
    v = v or {}
    kp = KeyPair.from_seed(bytes.fromhex(v.get("seed", h(bytes(range(32))))))
    keys = [PublicKey(bytes.fromhex(v[f"body.keys[{i}]"])) if f"body.keys[{i}]" in v
            else PublicKey(KeyPair.from_seed(bytes([5 + i]) * 32).public) for i in range(2)]
    body = NodeRegister(keys=tuple(keys))
    body.validate()
    event = Event(chain_id=v.get("chain_id", CHAIN_ID), type="node.register", sender=kp.public,
                  nonce=int(v.get("nonce", "1")), time_ms=int(v.get("time_ms", "1760000000000")), body=body)
    signed = sign_event(kp, event)
    org = v.get("org", "acme")
    return {
        "seed": h(kp.seed),
        "chain_id": event.chain_id,
        "type": event.type,
        "sender": h(event.sender),
        "nonce": str(event.nonce),
        "time_ms": str(event.time_ms),
        "body.keys[0]": h(keys[0]),
        "body.keys[1]": h(keys[1]),
        "body_encoding": h(encode(body)),
        "event_id": h(event.id),
        "signed_event_encoding": h(encode(signed)),
        "org": org,
        "state_key(node, keys[0])": h(state_keys.node_key(keys[0])),
        "state_key(org_nodes, org)": h(state_keys.org_nodes(org)),
    }


def _merkle_leaves(v: Vector | None = None) -> list[bytes]:
    v = v or {}
    return [bytes.fromhex(v.get(f"event_hash[{i}]", h(sha256(b"event-%d" % i)))) for i in range(3)]


def gen_merkle(v: Vector | None = None) -> Vector:
    leaves = _merkle_leaves(v)
    root = merkle_root(leaves)
    path = inclusion_path(leaves, 2)
    out = {f"event_hash[{i}]": h(x) for i, x in enumerate(leaves)}
    out |= {
        "empty_root": h(MERKLE_EMPTY_ROOT),
        "leaf_hash[0]": h(sha256(b"\x00" + leaves[0])),
        "root": h(root),
        "proof[2].path": ",".join(h(p) for p in path),
        "proof[2].encoding": h(encode(EventProof(index=2, size=3, path=path))),
    }
    return out


def _validator_keys() -> list[KeyPair]:
    return [KeyPair.from_seed(bytes([i]) * 32) for i in range(1, 5)]


def _smt_items() -> dict[bytes, bytes]:
    return {b"alice": b"1", b"bob": b"2", b"carol": b"3"}


def gen_smt(v: Vector | None = None) -> Vector:
    tree = SparseMerkleTree(MemoryNodeStore())
    items = _smt_items()
    tree.update(items)
    out: Vector = {"empty_root": h(EMPTY_ROOT)}
    for k, val in items.items():
        name = k.decode()
        out[f"{name}.path"] = h(key_path(k))
        out[f"{name}.value_hash"] = h(sha256(val))
        out[f"{name}.leaf_hash"] = h(sha256(b"\x00" + key_path(k) + sha256(val)))
    out["root"] = h(tree.root)
    out["proof(bob).encoding"] = h(encode(tree.prove(b"bob")))
    out["proof(dave).encoding"] = h(encode(tree.prove(b"dave")))
    return out


def _header(v: Vector | None = None) -> BlockHeader:
    v = v or {}
    signed = SignedEvent.decode(bytes.fromhex(gen_event()["signed_event_encoding"]))
    vals = ValidatorSet(validators=tuple(ValidatorId(k.public) for k in _validator_keys()))
    return BlockHeader(
        chain_id=CHAIN_ID, height=Height(1), view=View(0), time_ms=1760000000500, prev_hash=Hash32(b"\0" * 32),
        events_root=merkle_root([sha256(encode(signed))]), event_count=1, state_height=Height(0),
        state_root=Hash32(bytes.fromhex(gen_smt()["root"])), validators_hash=Hash32(vals.hash()),
        next_validators_hash=Hash32(vals.hash()), proposer=vals.validators[0],
    )


def gen_header(v: Vector | None = None) -> Vector:
    hd = _header(v)
    return {
        "chain_id": hd.chain_id, "height": str(hd.height), "view": str(hd.view), "time_ms": str(hd.time_ms),
        "prev_hash": h(hd.prev_hash), "events_root": h(hd.events_root), "event_count": str(hd.event_count),
        "state_height": str(hd.state_height), "state_root": h(hd.state_root), "validators_hash": h(hd.validators_hash),
        "next_validators_hash": h(hd.next_validators_hash), "proposer": h(hd.proposer),
        "header_encoding": h(encode(hd)), "header_hash": h(hd.hash()),
    }


def gen_certificate(v: Vector | None = None) -> Vector:
    keys = _validator_keys()
    vals = ValidatorSet(validators=tuple(ValidatorId(k.public) for k in keys))
    hd = _header()
    votes = []
    out: Vector = {f"validator_seed[{i}]": h(k.seed) for i, k in enumerate(keys)}
    out |= {f"validator[{i}]": h(k.public) for i, k in enumerate(keys)}
    out |= {
        "validator_set_encoding": h(encode(vals)), "validators_hash": h(vals.hash()),
        "n": str(vals.n), "f": str(vals.f), "quorum": str(vals.quorum), "header_hash": h(hd.hash()),
    }
    for i, k in enumerate(keys[: vals.quorum]):
        vote = Commit(view=View(0), seq=Seq(hd.height), digest=Hash32(hd.hash()), replica=ValidatorId(k.public))
        sig = k.sign(Domain.COMMIT, CHAIN_ID, vote)
        votes.append(CommitSig(replica=ValidatorId(k.public), signature=sig))
        if i == 0:
            out["commit[0].encoding"] = h(encode(vote))
            out["commit[0].sign_bytes"] = h(sign_bytes(Domain.COMMIT, CHAIN_ID, vote))
            out["commit[0].signature"] = h(sig)
    cert = CommitCertificate(view=View(0), height=hd.height, header_hash=Hash32(hd.hash()), signatures=tuple(votes))
    out["certificate_encoding"] = h(encode(cert))
    return out


BAD_ENCODINGS: list[tuple[str, bytes]] = [
    ("decode.trailing_bytes", bytes.fromhex("931001" + "91" + "c420" + "11" * 32 + "00")),
    ("decode.not_canonical", bytes.fromhex("93cc1001" + "91" + "c420" + "11" * 32)),  # tag 0x10 as a uint8
    ("decode.not_canonical", bytes.fromhex("9310d001" + "91" + "c420" + "11" * 32)),  # version 1 as a signed int8
    ("decode.malformed", bytes.fromhex("c1")),
    ("decode.unknown_tag", bytes.fromhex("92cdfffe01")),
    ("decode.unsupported_version", bytes.fromhex("931002" + "90")),
    ("decode.wrong_arity", bytes.fromhex("9410019000")),
    ("field.wrong_length", bytes.fromhex("931001" + "91" + "c41f" + "00" * 31)),
]


def _history_entries() -> list[list[object]]:
    """A product's first history entries (the shapes of `protocol.passport`): register, a
    sale to a customer, a trace record with a nil ref hash."""
    return [
        ["register", 1760000000000, sha256(b"event-register"), "acme"],
        ["sale", 1760000060000, sha256(b"event-sale"), "cust:" + "ab" * 32],
        ["trace", 1760000120000, sha256(b"event-trace"), "fixit", "repairing", "in_progress", sha256(b"loc"), None],
    ]


def gen_history(v: Vector | None = None) -> Vector:
    out: Vector = {"hh_0": h(HISTORY_ZERO)}
    head = HISTORY_ZERO
    for i, e in enumerate(_history_entries()):
        enc = msgpack.packb(e, use_bin_type=True)
        out[f"entry[{i}].msgpack"] = h(enc)
        head = history_link(head, e)
        out[f"hh_{i + 1}"] = h(head)
    return out


def gen_bad(v: Vector | None = None) -> Vector:
    out: Vector = {}
    for i, (code, raw) in enumerate(BAD_ENCODINGS):
        out[f"bytes[{i}]"] = h(raw)
        out[f"error[{i}]"] = code
    return out


GENERATORS = {
    "keys": gen_keys,
    "event": gen_event,
    "node-register": gen_node_register,
    "merkle": gen_merkle,
    "smt": gen_smt,
    "certificate": gen_certificate,
    "header": gen_header,
    "bad-encodings": gen_bad,
    "history": gen_history,
}


def render_vector(name: str, v: Vector) -> str:
    return f"```vector {name}\n" + "".join(f"{k}: {val}\n" for k, val in v.items()) + "```"


# --------------------------------------------------------------------------- parsing


def doc_text() -> str:
    return DOC.read_text(encoding="utf-8")


def doc_vectors() -> dict[str, Vector]:
    out: dict[str, Vector] = {}
    for m in _VECTOR.finditer(doc_text()):
        fields: Vector = {}
        for line in m.group(2).splitlines():
            key, sep, value = line.partition(": ")
            if not sep:
                raise AssertionError(f"vector {m.group(1)}: malformed line {line!r}")
            fields[key] = value
        out[m.group(1)] = fields
    return out


def b(v: Vector, key: str) -> bytes:
    return bytes.fromhex(v[key])


# --------------------------------------------------------------------------- tests


def test_document_holds_every_vector() -> None:
    assert sorted(doc_vectors()) == sorted(GENERATORS)


@pytest.mark.parametrize("name", sorted(GENERATORS))
def test_vector_matches_the_code(name: str) -> None:
    v = doc_vectors()[name]
    assert v == GENERATORS[name](v), f"vector {name} drifted; run: .venv/bin/python -m tests.test_vectors --update"


def test_event_vector_verifies() -> None:
    v = doc_vectors()["event"]
    assert KeyPair.from_seed(b(v, "seed")).public.hex() == v["sender"] == doc_vectors()["keys"]["public_key"]
    signed = SignedEvent.decode(b(v, "signed_event_encoding"))
    assert encode(signed.event) == b(v, "event_encoding")
    assert sha256(b(v, "event_encoding")) == b(v, "event_id") == signed.id
    assert b(v, "sign_bytes") == b"afterchain/v1/EVENT\x00" + v["chain_id"].encode() + b(v, "event_encoding")
    assert verify_raw(b(v, "sender"), b(v, "signature"), b(v, "sign_bytes"))
    verify_event(signed, v["chain_id"])
    assert b(v, "signed_event_encoding") == b"\x94\x21\x01" + b(v, "event_encoding") + b"\xc4\x40" + b(v, "signature")


def test_node_register_vector_verifies() -> None:
    v = doc_vectors()["node-register"]
    signed = SignedEvent.decode(b(v, "signed_event_encoding"))
    verify_event(signed, v["chain_id"])
    assert signed.event.type == "node.register" and signed.event.sender.hex() == v["sender"]
    assert encode(signed.event.body) == b(v, "body_encoding") and signed.event.id.hex() == v["event_id"]
    assert b(v, "state_key(node, keys[0])") == b"node/" + b(v, "body.keys[0]")
    assert b(v, "state_key(org_nodes, org)") == b"onodes/" + v["org"].encode()


def test_merkle_vector_verifies() -> None:
    v = doc_vectors()["merkle"]
    leaves = [b(v, f"event_hash[{i}]") for i in range(3)]
    path = [bytes.fromhex(p) for p in v["proof[2].path"].split(",")]
    assert verify_inclusion(b(v, "root"), leaves[2], 2, 3, path)
    assert not verify_inclusion(b(v, "root"), leaves[1], 2, 3, path)
    assert decode_as(EventProof, b(v, "proof[2].encoding")).path == tuple(path)
    assert b(v, "empty_root") == sha256(b"")


def test_smt_vector_verifies() -> None:
    v = doc_vectors()["smt"]
    root = b(v, "root")
    member = decode_as(SmtProof, b(v, "proof(bob).encoding"))
    absent = decode_as(SmtProof, b(v, "proof(dave).encoding"))
    assert verify_smt_proof(root, b"bob", b"2", member)
    assert not verify_smt_proof(root, b"bob", b"3", member)
    assert verify_smt_proof(root, b"dave", None, absent)
    assert not verify_smt_proof(root, b"dave", b"", absent)
    assert b(v, "empty_root") == b"\0" * 32


def test_certificate_vector_verifies() -> None:
    v = doc_vectors()["certificate"]
    vals = decode_as(ValidatorSet, b(v, "validator_set_encoding"))
    assert vals.hash() == b(v, "validators_hash")
    assert (vals.n, vals.f, vals.quorum) == (int(v["n"]), int(v["f"]), int(v["quorum"]))
    cert = decode_as(CommitCertificate, b(v, "certificate_encoding"))
    cert.verify(CHAIN_ID, vals, b(v, "header_hash"))
    assert b(v, "commit[0].sign_bytes") == b"afterchain/v1/COMMIT\x00" + CHAIN_ID.encode() + b(v, "commit[0].encoding")
    assert verify_raw(b(v, "validator[0]"), Signature(b(v, "commit[0].signature")), b(v, "commit[0].sign_bytes"))
    short = CommitCertificate(view=cert.view, height=cert.height, header_hash=cert.header_hash, signatures=cert.signatures[:-1])
    with pytest.raises(ProtocolError):
        short.verify(CHAIN_ID, vals, b(v, "header_hash"))


def test_header_vector_links_the_others() -> None:
    v = doc_vectors()
    hd = decode_as(BlockHeader, b(v["header"], "header_encoding"))
    assert hd.hash() == b(v["header"], "header_hash") == b(v["certificate"], "header_hash")
    assert hd.events_root == merkle_root([b(v["event"], "signed_event_hash")])
    assert hd.state_root == b(v["smt"], "root")
    assert hd.validators_hash == b(v["certificate"], "validators_hash")


def test_history_vector_is_sha256_over_the_entry_encodings() -> None:
    v = doc_vectors()["history"]
    head = b(v, "hh_0")
    assert head == bytes(32)
    for i in range(3):
        head = sha256(head + b(v, f"entry[{i}].msgpack"))
        assert head == b(v, f"hh_{i + 1}")
    assert history_head(msgpack.unpackb(b(v, f"entry[{i}].msgpack")) for i in range(3)) == b(v, "hh_3")


def test_bad_encodings_give_their_codes() -> None:
    v = doc_vectors()["bad-encodings"]
    i = 0
    while f"bytes[{i}]" in v:
        with pytest.raises(ProtocolError) as info:
            decode(b(v, f"bytes[{i}]"))
        assert info.value.code == v[f"error[{i}]"], (i, info.value)
        i += 1
    assert i == len(BAD_ENCODINGS)


def test_generated_tables_match_the_code() -> None:
    text = doc_text()
    found = {m.group(1): m.group(0) for m in _GENERATED.finditer(text)}
    for name, table in generated_blocks().items():
        assert found.get(name) == render_block(name, table), (
            f"table {name} in docs/PROTOCOL.md is stale; run: .venv/bin/python -m tests.test_vectors --update"
        )


def test_every_error_code_is_documented() -> None:
    assert "(undocumented)" not in generated_blocks()["error-codes"]


# --------------------------------------------------------------------------- update


def update_document() -> None:
    text = doc_text()
    existing = doc_vectors()
    for name, gen in GENERATORS.items():
        block = render_vector(name, gen(existing.get(name)))
        pattern = re.compile(rf"^```vector {re.escape(name)}\n.*?^```$", re.M | re.S)
        if not pattern.search(text):
            raise SystemExit(f"docs/PROTOCOL.md has no ```vector {name} block to update")
        text = pattern.sub(lambda _m, blk=block: blk, text)  # type: ignore[misc]
    for name, table in generated_blocks().items():
        pattern = re.compile(rf"<!-- BEGIN GENERATED: {name} -->\n.*?<!-- END GENERATED: {name} -->", re.S)
        if not pattern.search(text):
            raise SystemExit(f"docs/PROTOCOL.md has no generated block {name} to update")
        text = pattern.sub(lambda _m, n=name, t=table: render_block(n, t), text)  # type: ignore[misc]
    DOC.write_text(text, encoding="utf-8")


if __name__ == "__main__":
    if sys.argv[1:] == ["--update"]:
        update_document()
    elif sys.argv[1:] == ["--print"]:
        for vname, vgen in GENERATORS.items():
            print(render_vector(vname, vgen()))
            print()
    else:
        raise SystemExit("usage: python -m tests.test_vectors --update | --print")
