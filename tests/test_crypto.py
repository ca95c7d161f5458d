"""Domain-separated signing bound to the chain id; key file text format."""

from __future__ import annotations

import pytest

from afterchain.protocol.bodies import RatingSubmit
from afterchain.protocol.crypto import Domain, KeyPair, sign_bytes, validate_chain_id, verify
from afterchain.protocol.errors import Code, SignatureError, ValidationError
from afterchain.protocol.events import Event, SignedEvent, sign_event, verify_event

SEED = bytes(range(32))


def event(chain_id: str = "test-chain", score: int = 4) -> tuple[KeyPair, Event]:
    key = KeyPair.from_seed(SEED)
    ev = Event(chain_id=chain_id, type="rating.submit", sender=key.public, nonce=1, time_ms=1_700_000_000_000,
               body=RatingSubmit(ticket_id=b"\x01" * 32, score=score, comment_hash=None))
    return key, ev


def test_sign_bytes_layout() -> None:
    _, ev = event()
    sb = sign_bytes(Domain.EVENT, "test-chain", ev)
    assert sb.startswith(b"afterchain/v1/EVENT\0test-chain")
    assert sb[len(b"afterchain/v1/EVENT\0test-chain")] >= 0x90


def test_signed_event_verifies_and_round_trips() -> None:
    key, ev = event()
    signed = sign_event(key, ev)
    verify_event(signed, "test-chain")
    assert SignedEvent.decode(signed.encode()) == signed


def test_wrong_chain_id_is_its_own_code() -> None:
    key, ev = event()
    with pytest.raises(ValidationError) as info:
        verify_event(sign_event(key, ev), "other-chain")
    assert info.value.code is Code.WRONG_CHAIN_ID


def test_tampered_event_fails_signature() -> None:
    key, ev = event()
    signed = sign_event(key, ev)
    _, ev5 = event(score=5)
    with pytest.raises(SignatureError) as info:
        verify_event(SignedEvent(event=ev5, signature=signed.signature), "test-chain")
    assert info.value.code is Code.BAD_SIGNATURE


def test_signature_for_another_domain_is_wrong_domain() -> None:
    key, ev = event()
    sig = key.sign(Domain.COMMIT, "test-chain", ev)
    with pytest.raises(SignatureError) as info:
        verify(key.public, sig, Domain.EVENT, "test-chain", ev)
    assert info.value.code is Code.WRONG_DOMAIN


def test_signature_by_another_key_fails() -> None:
    _, ev = event()
    other = KeyPair.generate()
    with pytest.raises(SignatureError):
        verify(KeyPair.from_seed(SEED).public, other.sign(Domain.EVENT, "test-chain", ev), Domain.EVENT, "test-chain", ev)


@pytest.mark.parametrize("bad", ["", "UPPER", "-lead", "a" * 65, "spa ce", "ünï"])
def test_bad_chain_ids(bad: str) -> None:
    with pytest.raises(ValidationError):
        validate_chain_id(bad)


def test_key_file_text_round_trip_and_errors() -> None:
    key = KeyPair.from_seed(SEED)
    assert KeyPair.from_key_file_text(key.to_key_file_text()).public == key.public
    assert SEED.hex() not in repr(key)
    for text in ("", "garbage", "afterchain-ed25519-seed zz", "afterchain-ed25519-seed 00"):
        with pytest.raises(ValidationError) as info:
            KeyPair.from_key_file_text(text)
        assert info.value.code is Code.KEY_FILE
    mismatched = f"afterchain-ed25519-seed {SEED.hex()}\npublic {'00' * 32}\n"
    with pytest.raises(ValidationError, match="does not match"):
        KeyPair.from_key_file_text(mismatched)
