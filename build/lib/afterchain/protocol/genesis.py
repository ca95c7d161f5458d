"""The genesis document: the chain's identity, first validators, members and parameters.

`Genesis` is a message (tag 0x65); its hash (SHA-256 of the canonical encoding) names the
chain's starting point. `to_json()` / `Genesis.from_json()` give the human-edited form:
messages become JSON objects with their field names, tuples become arrays, bytes become
lower-case hex strings; `from_json` refuses unknown or missing fields and every error is a
`ValidationError` naming the dotted field path (e.g. ``members[2].keys[0]``). The JSON form
is parsed back through the canonical codec, so both forms validate identically.

Invariants (checked by `validate`): member ids distinct and sorted; no key belongs to two
members; every member has at least one role and one key; parameters positive and bounded
(``view_timeout_ms <= view_timeout_max_ms``, watermark window >= checkpoint interval).
"""

from __future__ import annotations

import json
from typing import Any, TypeVar

from .block import ValidatorSet
from .bodies import ROLES, validate_org_id
from .codec import Message, encode, message, sha256
from .crypto import validate_chain_id
from .errors import Code, ProtocolError, ValidationError
from .jsonform import from_json, to_json
from .types import Hash32, PublicKey

__all__ = [
    "FIXED_CONSENSUS_FIELDS",
    "MAX_MEMBERS",
    "ConsensusParams",
    "Genesis",
    "LedgerParams",
    "Member",
    "ParamChange",
    "VmAllowed",
    "VmParams",
    "from_json_value",
    "to_json_value",
]

MAX_MEMBERS = 1024
MAX_MEMBER_KEYS = 16
MAX_VMS = 8

M = TypeVar("M", bound=Message)


def _bad(field: str, text: str, code: Code = Code.FIELD_INVALID) -> ValidationError:
    return ValidationError(code, text, field=field)


def _pos(value: int, field: str) -> None:
    if value == 0:
        raise _bad(field, "must be positive", Code.FIELD_OUT_OF_RANGE)


@message(tag=0x60)
class Member(Message):
    """A consortium member: an organisation with roles, event-signing keys and a balance."""

    org_id: str
    name: str
    roles: tuple[str, ...]
    keys: tuple[PublicKey, ...]
    balance: int

    def validate(self) -> None:
        validate_org_id(self.org_id)
        if not 1 <= len(self.name) <= 128 or not self.name.isprintable():
            raise _bad("name", "a name is 1-128 printable characters")
        if not 1 <= len(self.roles) <= len(ROLES):
            raise _bad("roles", f"1..{len(ROLES)} roles", Code.FIELD_OUT_OF_RANGE)
        for i, r in enumerate(self.roles):
            if r not in ROLES:
                raise _bad(f"roles[{i}]", f"{r!r} is not one of {', '.join(ROLES)}")
        if list(self.roles) != sorted(set(self.roles)):
            raise _bad("roles", "roles must be sorted and distinct")
        if not 1 <= len(self.keys) <= MAX_MEMBER_KEYS:
            raise _bad("keys", f"1..{MAX_MEMBER_KEYS} keys", Code.FIELD_OUT_OF_RANGE)
        if len(set(self.keys)) != len(self.keys):
            raise _bad("keys", "a key is listed twice")


@message(tag=0x61)
class ConsensusParams(Message):
    """PBFT parameters (see consensus/): all counts are blocks, all times milliseconds."""

    checkpoint_interval: int
    watermark_window: int
    view_timeout_ms: int
    view_timeout_max_ms: int
    max_block_events: int
    max_block_bytes: int
    block_interval_ms: int

    def validate(self) -> None:
        for f in ("checkpoint_interval", "watermark_window", "view_timeout_ms", "view_timeout_max_ms",
                  "max_block_events", "max_block_bytes", "block_interval_ms"):
            _pos(getattr(self, f), f)
        if self.watermark_window < self.checkpoint_interval:
            raise _bad("watermark_window", "the watermark window must be at least one checkpoint interval", Code.FIELD_OUT_OF_RANGE)
        if self.view_timeout_max_ms < self.view_timeout_ms:
            raise _bad("view_timeout_max_ms", "must be >= view_timeout_ms", Code.FIELD_OUT_OF_RANGE)
        if self.max_block_events > 100_000:
            raise _bad("max_block_events", "at most 100000", Code.FIELD_OUT_OF_RANGE)


@message(tag=0x62)
class VmAllowed(Message):
    """A contract VM allowed on this chain, at exactly this ABI version."""

    vm_id: str
    version: int

    def validate(self) -> None:
        if not 1 <= len(self.vm_id) <= 16 or not self.vm_id.isascii() or not self.vm_id.isidentifier():
            raise _bad("vm_id", "a VM id is 1-16 ASCII identifier characters (e.g. 'wasm', 'lua')")


@message(tag=0x63)
class VmParams(Message):
    """Contract execution limits: gas per call (contract.call and each hook call) and per block."""

    vms: tuple[VmAllowed, ...]
    max_gas_per_call: int
    max_gas_per_block: int
    hook_gas_limit: int

    def validate(self) -> None:
        if len(self.vms) > MAX_VMS:
            raise _bad("vms", f"at most {MAX_VMS} VMs", Code.FIELD_OUT_OF_RANGE)
        ids = [v.vm_id for v in self.vms]
        if len(set(ids)) != len(ids):
            raise _bad("vms", "a VM id is listed twice")
        _pos(self.max_gas_per_call, "max_gas_per_call")
        _pos(self.hook_gas_limit, "hook_gas_limit")
        if self.max_gas_per_block < self.max_gas_per_call:
            raise _bad("max_gas_per_block", "must be >= max_gas_per_call", Code.FIELD_OUT_OF_RANGE)


@message(tag=0x64)
class LedgerParams(Message):
    """After-sales rules that are chain-wide rather than per policy (times in ms of block time).

    - `auto_close_delay_ms`: a resolved ticket the customer neither confirms nor reopens
      closes itself this long after resolution.
    - `default_return_window_ms`: the return window when a product has no policy or its
      policy says 0.
    - `max_deadlines_per_block`: at most this many SLA deadlines / auto-closes are processed
      at the start of one block (the rest wait for the next block, in the same order).
    """

    auto_close_delay_ms: int
    default_return_window_ms: int
    max_deadlines_per_block: int

    def validate(self) -> None:
        _pos(self.auto_close_delay_ms, "auto_close_delay_ms")
        _pos(self.max_deadlines_per_block, "max_deadlines_per_block")


FIXED_CONSENSUS_FIELDS = ("checkpoint_interval", "watermark_window")
"""Consensus parameters fixed at genesis: a `ParamChange` that changes them is refused."""


@message(tag=0x66)
class ParamChange(Message):
    """The payload of a ``param_change`` governance proposal: new consensus parameters,
    new VM parameters, or both (each complete; at least one set). Whether it changes
    anything, and that `FIXED_CONSENSUS_FIELDS` stay as they are, is checked against the
    ledger's current values when it is proposed (stateful: `node.ledger`)."""

    consensus: ConsensusParams | None
    vm: VmParams | None

    def validate(self) -> None:
        if self.consensus is None and self.vm is None:
            raise _bad("consensus", "a parameter change sets consensus, vm or both")


@message(tag=0x65)
class Genesis(Message):
    chain_id: str
    genesis_time_ms: int
    validators: ValidatorSet
    members: tuple[Member, ...]
    consensus: ConsensusParams
    vm: VmParams
    ledger: LedgerParams

    def validate(self) -> None:
        validate_chain_id(self.chain_id)
        if not 1 <= len(self.members) <= MAX_MEMBERS:
            raise _bad("members", f"1..{MAX_MEMBERS} members", Code.FIELD_OUT_OF_RANGE)
        ids = [m.org_id for m in self.members]
        if ids != sorted(set(ids)):
            raise _bad("members", "member org ids must be sorted and distinct")
        seen: set[bytes] = set()
        for i, m in enumerate(self.members):
            for j, k in enumerate(m.keys):
                if k in seen:
                    raise _bad(f"members[{i}].keys[{j}]", "this key already belongs to another member")
                seen.add(k)

    def genesis_hash(self) -> Hash32:
        """SHA-256 of the canonical encoding (same as `hash()`)."""
        return Hash32(sha256(encode(self)))

    def member(self, org_id: str) -> Member | None:
        for m in self.members:
            if m.org_id == org_id:
                return m
        return None

    def to_json(self, *, indent: int | None = 2) -> str:
        return json.dumps(to_json_value(self), indent=indent, sort_keys=False)

    @classmethod
    def from_json(cls, text: str) -> Genesis:
        try:
            obj = json.loads(text)
        except (ValueError, RecursionError) as exc:
            raise ValidationError(Code.FIELD_INVALID, f"genesis is not valid JSON: {exc}") from None
        return from_json_value(cls, obj)


# --------------------------------------------------------------------------- JSON form


def to_json_value(value: Any) -> Any:
    """A message as plain JSON data: objects by field name, arrays, hex strings for bytes
    (the one JSON form of every message, `protocol.jsonform`)."""
    return to_json(value)


def from_json_value(cls: type[M], obj: Any) -> M:
    """Build and fully validate a message from its JSON data; every error is a
    `ValidationError` naming the dotted field path."""
    try:
        return from_json(cls, obj)
    except ProtocolError as exc:
        raise ValidationError(exc.code, exc.message, field=exc.field) from None
