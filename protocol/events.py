"""The signed event envelope and the registry of event types.

An `Event` is ``[tag, version, chain_id, type, sender, nonce, time_ms, body]``; its id is
SHA-256 of its canonical encoding (the unsigned event), computed once per value and
cached on it (values are immutable; a node asks for an event's id several times). A `SignedEvent` adds the sender's
Ed25519 signature over the EVENT sign bytes of the encoded event. `body` is an
`EventBody` subclass whose `EVENT_TYPE` must equal `type`; every event type in the domain
has exactly one body class (see `protocol.bodies`).

Stateless checks here: chain id format, known type, body schema, and (in
`verify_event`) the chain id we expect and the signature. Nonces, permissions and
transitions are the ledger's (stateful) business.
"""

from __future__ import annotations

from typing import ClassVar

from .codec import Message, decode_as, encode, message, sha256
from .crypto import Domain, KeyPair, validate_chain_id, verify
from .errors import Code, ProtocolError, ValidationError
from .types import Hash32, PublicKey, Signature

__all__ = [
    "EVENT_TYPES",
    "MAX_EVENT_BYTES",
    "Event",
    "EventBody",
    "SignedEvent",
    "event_id_of_signed",
    "event_type",
    "sign_event",
    "verify_event",
]

MAX_EVENT_BYTES = 64 * 1024
"""Largest encoded signed event accepted (contracts' code rides in `contract.deploy`)."""
MAX_CONTRACT_EVENT_BYTES = 512 * 1024

EVENT_TYPES: dict[str, type[EventBody]] = {}


class EventBody(Message):
    """Base of every event body; subclasses declare `EVENT_TYPE` and register with `event_type`."""

    __slots__ = ()
    EVENT_TYPE: ClassVar[str]
    UNKNOWN_CODE: ClassVar[Code] = Code.UNKNOWN_EVENT_TYPE


def event_type(name: str, *, tag: int, version: int = 1):  # type: ignore[no-untyped-def]
    """Declare an event body class for event type `name` (e.g. ``"ticket.open"``)."""
    from .codec import message as _message

    def wrap(cls):  # type: ignore[no-untyped-def]
        dc = _message(tag=tag, version=version)(cls)
        if name in EVENT_TYPES:
            raise ValueError(f"event type {name} declared twice")
        dc.EVENT_TYPE = name
        EVENT_TYPES[name] = dc
        return dc

    return wrap


class _CachedId(Message):
    """Holds the cached id of an `Event` (not a field: equality, hashing and `replace` ignore it)."""

    __slots__ = ("_id",)
    _id: Hash32


_SET = object.__setattr__


@message(tag=0x20)
class Event(_CachedId):
    chain_id: str
    type: str
    sender: PublicKey
    nonce: int
    time_ms: int
    body: EventBody

    def validate(self) -> None:
        validate_chain_id(self.chain_id)
        body_cls = EVENT_TYPES.get(self.type)
        if body_cls is None:
            raise ValidationError(Code.UNKNOWN_EVENT_TYPE, f"unknown event type {self.type!r}", field="type")
        if type(self.body) is not body_cls:
            raise ValidationError(Code.FIELD_INVALID, f"body is a {type(self.body).EVENT_TYPE} body, type says {self.type}", field="body")

    @property
    def id(self) -> Hash32:
        eid = self.cached_id()  # (no exception on the first call)
        if eid is not None:
            return eid
        eid = Hash32(sha256(encode(self)))
        _SET(self, "_id", eid)
        return eid

    def cached_id(self) -> Hash32 | None:
        """The id if it was computed already (`id`), else None (computes nothing)."""
        return getattr(self, "_id", None)


@message(tag=0x21)
class SignedEvent(Message):
    event: Event
    signature: Signature

    @property
    def id(self) -> Hash32:
        return self.event.id

    @classmethod
    def decode(cls, data: bytes, *, max_bytes: int = MAX_CONTRACT_EVENT_BYTES) -> SignedEvent:
        return decode_as(cls, data, max_bytes=max_bytes)


_SIGNED_HEAD = b"\x94\x21\x01"  # array of 4, SignedEvent's tag 0x21, version 1
_SIGNATURE_HEAD = b"\xc4\x40"  # bin 8 of 64 bytes


def event_id_of_signed(raw: bytes) -> Hash32:
    """The id of the event whose `SignedEvent` encoding is `raw`, the one rule every room uses.

    A canonical encoding is ``[0x21, 1, event, signature]`` with a 64-byte signature, so the
    encoded `Event` is ``raw[3:-66]`` and is hashed without a decode. Other bytes are
    decoded; bytes that do not decode are named by the SHA-256 of the bytes themselves.
    """
    if raw[:3] == _SIGNED_HEAD and raw[-66:-64] == _SIGNATURE_HEAD:
        return Hash32(sha256(raw[3:-66]))
    try:
        return SignedEvent.decode(raw).id
    except ProtocolError:
        return Hash32(sha256(raw))


def sign_event(key: KeyPair, event: Event) -> SignedEvent:
    return SignedEvent(event=event, signature=key.sign(Domain.EVENT, event.chain_id, event))


def verify_event(signed: SignedEvent, chain_id: str) -> None:
    """Raise unless the event is for `chain_id` and signed by its sender."""
    if signed.event.chain_id != chain_id:
        raise ValidationError(
            Code.WRONG_CHAIN_ID, f"event is for chain {signed.event.chain_id!r}, this is {chain_id!r}", field="event.chain_id"
        )
    verify(signed.event.sender, signed.signature, Domain.EVENT, chain_id, signed.event)


from . import bodies as _bodies  # noqa: E402, F401  (registers every event type)
