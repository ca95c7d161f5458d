"""The light client against an honest node and a malicious one (every forgery of issue 9).

The node is the real `node.proofs_api` routes over a real ledger (`tests.light.chain`);
the malicious node rewrites the JSON of each answer (`forge`) before the client sees it.
Every forgery must be refused with its own reason; honest answers must verify.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from pathlib import Path
from typing import Any

import msgpack
import pytest

from afterchain.node.client.light.client import LightClient, load_trust, save_trust
from afterchain.protocol.block import BlockHeader, CommitCertificate
from afterchain.protocol.crypto import KeyPair
from afterchain.protocol.light import LightError, Reason
from afterchain.protocol.types import Hash32, Signature
from tests.ledger.world import key

from .chain import BASE, HOUR_MS, NOW_MS, FakeChain, certify, vset

Doc = dict[str, Any]


@pytest.fixture(scope="module")
def chain() -> FakeChain:
    c = FakeChain()
    c.tid = c.with_ticket()  # type: ignore[attr-defined]
    c.step()
    return c


def tid(c: FakeChain) -> bytes:
    return c.tid  # type: ignore[attr-defined, no-any-return]


def client(c: FakeChain, forge: Callable[[str, Doc], Doc] | None = None, **kw: Any) -> LightClient:
    kw.setdefault("now_ms", lambda: NOW_MS)
    return LightClient(BASE, kw.pop("trust", c.trust()), http=c.http(forge), **kw)


def refused(c: FakeChain, forge: Callable[[str, Doc], Doc], reason: Reason, what: bytes | None = None, **kw: Any) -> LightError:
    with client(c, forge, **kw) as lc, pytest.raises(LightError) as ei:
        lc.ticket(tid(c) if what is None else what)
    assert ei.value.reason == reason, ei.value
    return ei.value


def honest_doc(c: FakeChain, path: str) -> Doc:
    r = c.http().get(BASE + path)
    assert r.status_code == 200, r.text
    return r.json()  # type: ignore[no-any-return]


def resign(c: FakeChain, doc: Doc, *, signers: list[KeyPair] | None = None, **fields: Any) -> Doc:
    """`doc` with its header fields replaced and a valid certificate (for the header's chain
    id) by `signers` (default: the chain's current set)."""
    h = dataclasses.replace(BlockHeader.decode(bytes.fromhex(doc["header"])), **fields)
    cert = certify(h, c.validators if signers is None else signers)
    return {**doc, "header": h.encode().hex(), "certificate": cert.encode().hex()}


def with_cert(doc: Doc, change: Callable[[CommitCertificate], CommitCertificate]) -> Doc:
    cert = CommitCertificate.decode(bytes.fromhex(doc["certificate"]))
    return {**doc, "certificate": change(cert).encode().hex()}


# --------------------------------------------------------------------------- honest


def test_honest_ticket_verifies_with_one_download_and_moves_trust(chain: FakeChain, tmp_path: Path) -> None:
    state = tmp_path / "light.json"
    with client(chain, state_path=state) as lc:
        view, v = lc.ticket(tid(chain))
        assert view.exists and view.status == "acknowledged" and view.kind == "repair" and view.org == "fixit"
        assert [e["status"] for e in view.timeline] == ["opened", "acknowledged"]
        assert v.downloads == 1 and v.height == chain.store.head and v.state_height == chain.ledger.height
        assert v.value == chain.ledger.state_value(b"t/" + tid(chain))
        assert lc.trust.height == chain.store.head and lc.trust.header_hash == chain.headers[chain.store.head].hash()
    on_disk = load_trust(state, chain.genesis)
    assert on_disk is not None and on_disk.height == chain.store.head
    # a second client from the saved state verifies again (same header: no rollback, no fork)
    with client(chain, trust=on_disk) as lc2:
        assert lc2.ticket(tid(chain))[0].status == "acknowledged"


def test_absent_ticket_is_proven_absent(chain: FakeChain) -> None:
    with client(chain) as lc:
        view, v = lc.ticket(b"\x07" * 32)
    assert not view.exists and v.value is None


def test_product_quality_and_any_key(chain: FakeChain) -> None:
    with client(chain) as lc:
        p = lc.product("00012345600012", "S1").decoded()
        assert p["owner"].startswith("cust:")
        assert lc.quality("fixit").decoded()["handled"] == 1
        assert lc.state(b"meta/members").decoded() == 5
        assert lc.quality("nobody").value is None


def test_trust_file_of_another_chain_is_refused(chain: FakeChain, tmp_path: Path) -> None:
    other = dataclasses.replace(chain.trust(), genesis_hash=Hash32(b"\1" * 32))
    save_trust(tmp_path / "t.json", other)
    with pytest.raises(ValueError, match="another chain"):
        load_trust(tmp_path / "t.json", chain.genesis)


# --------------------------------------------------------------------------- the malicious node


def test_tampered_value(chain: FakeChain) -> None:
    def forge(path: str, doc: Doc) -> Doc:
        t = msgpack.unpackb(bytes.fromhex(doc["value"]), raw=False)
        t["status"] = "closed"
        return {**doc, "value": msgpack.packb(t, use_bin_type=True).hex()}

    refused(chain, forge, Reason.VALUE_TAMPERED)


def test_proof_for_another_key(chain: FakeChain) -> None:
    other = honest_doc(chain, "/v1/proofs/quality/fixit")
    refused(chain, lambda p, d: other, Reason.WRONG_KEY)
    # the same answer relabelled with the asked key: the proof does not verify for it
    refused(chain, lambda p, d: {**other, "key": d["key"]}, Reason.VALUE_TAMPERED)


def test_proof_for_another_root(chain: FakeChain) -> None:
    key_ = b"t/" + tid(chain)

    def forge(path: str, doc: Doc) -> Doc:
        old = doc["state_height"] - 2
        value, proof = chain.ledger.prove_at(key_, old)
        return {**doc, "value": None if value is None else value.hex(), "proof": proof.encode().hex(),
                "state_root": chain.ledger.root_at(old).hex()}  # type: ignore[union-attr]

    refused(chain, forge, Reason.WRONG_ROOT)


def test_forged_absence(chain: FakeChain) -> None:
    refused(chain, lambda p, d: {**d, "value": None}, Reason.ABSENCE_FORGED)
    # a genuine absence proof from before the ticket existed, against the current header
    key_ = b"t/" + tid(chain)

    def older(path: str, doc: Doc) -> Doc:
        _, proof = chain.ledger.prove_at(key_, 1)
        return {**doc, "value": None, "proof": proof.encode().hex()}

    refused(chain, older, Reason.ABSENCE_FORGED)


def test_fewer_than_a_quorum(chain: FakeChain) -> None:
    forge = lambda p, d: with_cert(d, lambda c: dataclasses.replace(c, signatures=c.signatures[:2]))  # noqa: E731
    refused(chain, forge, Reason.NO_QUORUM)


def test_signature_by_a_non_validator(chain: FakeChain) -> None:
    outsider = key("mallory")
    forge = lambda p, d: resign(chain, d, signers=[*chain.validators[:2], outsider])  # noqa: E731
    refused(chain, forge, Reason.SIGNER_UNKNOWN)


def test_same_validator_twice(chain: FakeChain) -> None:
    forge = lambda p, d: with_cert(d, lambda c: dataclasses.replace(c, signatures=c.signatures[:2] + c.signatures[:1]))  # noqa: E731
    refused(chain, forge, Reason.SIGNER_DUPLICATE)


def test_bad_signature_and_certificate_for_another_header(chain: FakeChain) -> None:
    def flip(c: CommitCertificate) -> CommitCertificate:
        s0 = c.signatures[0]
        bad = dataclasses.replace(s0, signature=Signature(bytes([s0.signature[0] ^ 1]) + s0.signature[1:]))
        return dataclasses.replace(c, signatures=(bad, *c.signatures[1:]))

    refused(chain, lambda p, d: with_cert(d, flip), Reason.SIGNATURE_INVALID)
    prev_cert = chain.store.certs[chain.store.head - 1].encode().hex()
    refused(chain, lambda p, d: {**d, "certificate": prev_cert}, Reason.CERTIFICATE_MISMATCH)


def test_wrong_chain_id(chain: FakeChain) -> None:
    refused(chain, lambda p, d: resign(chain, d, chain_id="other-chain"), Reason.WRONG_CHAIN)


def test_header_older_than_the_trusting_period(chain: FakeChain) -> None:
    # the node's newest header is old by the client's clock (a stale or replayed answer)
    period = 24 * HOUR_MS
    refused(chain, lambda p, d: d, Reason.HEADER_EXPIRED, trusting_period_ms=period, now_ms=lambda: NOW_MS + period)
    refused(chain, lambda p, d: resign(chain, d, time_ms=NOW_MS + HOUR_MS), Reason.HEADER_FUTURE)


def test_trusted_state_older_than_the_trusting_period(chain: FakeChain) -> None:
    period = 24 * HOUR_MS
    late = NOW_MS + period
    fresh = lambda p, d: resign(chain, d, time_ms=late)  # noqa: E731
    refused(chain, fresh, Reason.TRUST_EXPIRED, trusting_period_ms=period, now_ms=lambda: late)


def test_rollback_and_fork() -> None:
    c = FakeChain()
    t = c.with_ticket()
    old = honest_doc(c, f"/v1/proofs/tickets/{t.hex()}")
    c.step()
    c.step()
    with client(c) as lc:
        lc.ticket(t)
        trusted = lc.trust
    with client(c, lambda p, d: old, trust=trusted) as lc, pytest.raises(LightError) as ei:
        lc.ticket(t)
    assert ei.value.reason == Reason.ROLLBACK
    # another certified header at the trusted height (equivocation by the validators)
    fork = lambda p, d: resign(c, d, prev_hash=Hash32(b"\x09" * 32))  # noqa: E731
    with client(c, fork, trust=trusted) as lc, pytest.raises(LightError) as ei:
        lc.ticket(t)
    assert ei.value.reason == Reason.FORK


def test_witness_with_another_header_is_refused() -> None:
    c = FakeChain()
    t = c.with_ticket()
    fake = lambda p, d: {**d, "hash": "00" * 32} if p.startswith("/v1/headers/") else d  # noqa: E731
    with LightClient(BASE, c.trust(), http=c.http(), witness_url=BASE, witness_http=c.http(fake), now_ms=lambda: NOW_MS) as lc:
        with pytest.raises(LightError) as ei:
            lc.ticket(t)
        assert ei.value.reason == Reason.WITNESS_MISMATCH
    with LightClient(BASE, c.trust(), http=c.http(), witness_url=BASE, witness_http=c.http(), now_ms=lambda: NOW_MS) as lc:
        assert lc.ticket(t)[0].exists


def test_garbage_is_malformed(chain: FakeChain) -> None:
    refused(chain, lambda p, d: {**d, "proof": "zz"}, Reason.MALFORMED)
    refused(chain, lambda p, d: {**d, "header": d["header"][:-2]}, Reason.MALFORMED)


# --------------------------------------------------------------------------- validator-set changes


def changed_chain() -> tuple[FakeChain, bytes, list[KeyPair]]:
    """A chain whose set changes twice: val0-3 -> new0-3 (at a change header) -> new0-6."""
    c = FakeChain()
    t = c.with_ticket()
    second = [key(f"new{i}") for i in range(4)]
    c.step(next_keys=second)
    c.step()
    third = [key(f"new{i}") for i in range(7)]
    c.step(next_keys=third)
    c.step()
    c.step()
    return c, t, second


def test_validator_changes_are_followed_through_change_headers() -> None:
    c, t, _ = changed_chain()
    with client(c) as lc:
        view, v = lc.ticket(t)
        assert view.exists
        assert v.downloads == 2  # the answer, and one page of change headers
        assert lc.trust.validators == vset(c.validators) and lc.trust.validators.n == 7
        # now that the set is known, the next answer is one download again
        c.step()
        assert lc.ticket(t)[1].downloads == 1


def test_validator_change_without_a_valid_certificate() -> None:
    c, t, second = changed_chain()

    def forge(path: str, doc: Doc) -> Doc:
        if "changes=1" not in path:
            return doc
        first = with_cert(doc["headers"][0], lambda cert: dataclasses.replace(cert, signatures=cert.signatures[:2]))
        return {**doc, "headers": [first, *doc["headers"][1:]]}

    refused(c, forge, Reason.VALIDATOR_CHANGE_UNCERTIFIED, what=t)

    def signed_by_new_set(path: str, doc: Doc) -> Doc:  # the change header signed by the set it announces
        if "changes=1" not in path:
            return doc
        return {**doc, "headers": [resign(c, doc["headers"][0], signers=second), *doc["headers"][1:]]}

    refused(c, signed_by_new_set, Reason.VALIDATOR_CHANGE_UNCERTIFIED, what=t)

    def no_new_set(path: str, doc: Doc) -> Doc:
        if "changes=1" not in path:
            return doc
        return {**doc, "headers": [{**doc["headers"][0], "next_validators": None}, *doc["headers"][1:]]}

    refused(c, no_new_set, Reason.VALIDATOR_CHANGE_UNCERTIFIED, what=t)


def test_validator_change_hidden_or_invented() -> None:
    c, t, _ = changed_chain()
    hide = lambda p, d: {**d, "headers": []} if "changes=1" in p else d  # noqa: E731
    refused(c, hide, Reason.VALIDATORS_UNPROVEN, what=t)
    # a header signed by a set nobody announced (the node invents validators)
    invented = [key(f"evil{i}") for i in range(4)]
    forge = lambda p, d: resign(c, d, signers=invented, validators_hash=Hash32(vset(invented).hash())) if "proofs" in p else d  # noqa: E731
    refused(c, forge, Reason.VALIDATORS_UNPROVEN, what=t)


def test_header_routes(chain: FakeChain) -> None:
    http = chain.http()
    head = chain.store.head
    one = http.get(f"{BASE}/v1/headers/{head}").json()
    assert one["hash"] == chain.headers[head].hash().hex() and one["next_validators"] is None
    assert http.get(f"{BASE}/v1/headers/{head + 1}").status_code == 404
    assert http.get(f"{BASE}/v1/headers/x").status_code == 400
    rng = http.get(f"{BASE}/v1/headers?from=1&to={head + 5}").json()
    assert [d["height"] for d in rng["headers"]] == sorted(chain.headers) and rng["head"] == head
    assert http.get(f"{BASE}/v1/headers?from=1&changes=1").json()["headers"] == []
    assert http.get(f"{BASE}/v1/proofs/tickets/zz").status_code == 400
    assert http.get(f"{BASE}/v1/proofs/state/").status_code == 404


def test_no_provable_header_is_unavailable() -> None:
    c = FakeChain()
    with client(c) as lc, pytest.raises(LightError) as ei:  # no header committed yet
        lc.ticket(b"\x01" * 32)
    assert ei.value.reason == Reason.NODE_UNAVAILABLE and "503" in ei.value.message
