"""`protocol.light` directly: any corruption of an honest answer is refused (never accepted,
never another exception), and the certificate checks give their distinct reasons."""

from __future__ import annotations

import dataclasses

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from afterchain.protocol.block import CommitSig
from afterchain.protocol.errors import ProtocolError
from afterchain.protocol.light import (
    REASON_MEANINGS,
    LightError,
    Reason,
    StateAnswer,
    decode_answer,
    decode_certified,
    verify_answer,
    verify_certificate,
)
from afterchain.protocol.types import Signature, ValidatorId
from tests.ledger.world import key

from .chain import BASE, NOW_MS, FakeChain

_CHAIN: list[tuple[FakeChain, StateAnswer, bytes]] = []


def honest() -> tuple[FakeChain, StateAnswer, bytes]:
    if not _CHAIN:
        c = FakeChain()
        tid = c.with_ticket()
        doc = c.http().get(f"{BASE}/v1/proofs/tickets/{tid.hex()}").json()
        ch = decode_certified(bytes.fromhex(doc["header"]), bytes.fromhex(doc["certificate"]))
        ans = decode_answer(bytes.fromhex(doc["key"]), bytes.fromhex(doc["value"]), bytes.fromhex(doc["state_root"]),
                            bytes.fromhex(doc["proof"]), ch)
        _CHAIN.append((c, ans, b"t/" + tid))
    return _CHAIN[0]


def test_every_reason_is_documented() -> None:
    assert set(REASON_MEANINGS) == set(Reason)
    assert len({r.value for r in Reason}) == len(Reason)


def test_honest_answer_verifies() -> None:
    c, ans, k = honest()
    value, trust = verify_answer(c.trust(), ans, k, now_ms=NOW_MS)
    assert value == ans.value and trust.height == ans.header.header.height


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.data())
def test_any_flipped_byte_is_refused(data: st.DataObject) -> None:
    c, ans, k = honest()
    enc = bytearray(ans.encode())
    i = data.draw(st.integers(0, len(enc) - 1))
    enc[i] ^= data.draw(st.integers(1, 255))
    try:
        forged = StateAnswer.decode(bytes(enc))
    except ProtocolError:
        return  # not even an answer (the client reports light.malformed)
    with pytest.raises(LightError):
        verify_answer(c.trust(), forged, k, now_ms=NOW_MS)


def test_certificate_reasons() -> None:
    c, ans, _ = honest()
    h, cert = ans.header.header, ans.header.certificate
    vs = c.trust().validators
    verify_certificate(c.genesis.chain_id, vs, h, cert)
    cases = {
        Reason.NO_QUORUM: dataclasses.replace(cert, signatures=cert.signatures[:2]),
        Reason.SIGNER_DUPLICATE: dataclasses.replace(cert, signatures=cert.signatures[:3] + cert.signatures[:1]),
        Reason.SIGNER_UNKNOWN: dataclasses.replace(cert, signatures=(
            CommitSig(replica=ValidatorId(key("mallory").public), signature=cert.signatures[0].signature), *cert.signatures[1:])),
        Reason.SIGNATURE_INVALID: dataclasses.replace(cert, signatures=(
            CommitSig(replica=cert.signatures[0].replica, signature=Signature(cert.signatures[1].signature)), *cert.signatures[1:])),
        Reason.CERTIFICATE_MISMATCH: dataclasses.replace(cert, height=cert.height + 1),
    }
    for reason, bad in cases.items():
        with pytest.raises(LightError) as ei:
            verify_certificate(c.genesis.chain_id, vs, h, bad)
        assert ei.value.reason == reason
    with pytest.raises(LightError) as ei:  # the signatures are bound to the chain id
        verify_certificate("other-chain", vs, h, cert)
    assert ei.value.reason == Reason.SIGNATURE_INVALID


def test_protocol_md_lists_every_reason_and_message() -> None:
    """docs/PROTOCOL.md section 8 cannot drift from the code: the reason table is REASON_MEANINGS
    and the message table has each light message's tag and fields in wire order."""
    import typing
    from dataclasses import fields
    from pathlib import Path

    from afterchain.protocol.doc_tables import type_name
    from afterchain.protocol.light import CertifiedHeader, TrustedState

    doc = (Path(__file__).resolve().parents[2] / "docs" / "PROTOCOL.md").read_text()
    section = doc[doc.index("## 8. Light client"):doc.index("## 9. Error codes")]
    for reason, meaning in REASON_MEANINGS.items():
        assert f"| `{reason.value}` | {meaning} |" in section, reason
    for cls in (TrustedState, CertifiedHeader, StateAnswer):
        row = next(line for line in section.splitlines() if line.startswith(f"| `{cls.TAG:#06x}` | {cls.__name__} v{cls.VERSION} |"))
        hints = typing.get_type_hints(cls)
        names = [f.name for f in fields(cls)]  # type: ignore[arg-type]
        assert [c.split(":")[0].strip() for c in row.split("|")[3].split(", ")] == names, cls
        for n in names:
            assert n in row and (type_name(hints[n]).split(" ")[0] in row), (cls, n)
