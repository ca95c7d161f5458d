"""The ledger's key schema: every key the after-sales ledger writes, in one place.

Two families:

- State keys: the keys of the authenticated state (the sparse Merkle tree of
  `protocol.smt`; values are msgpack). The state root commits to them, so their bytes are
  part of the chain's rules: proofs (`node.http.proofs`) and light clients name them with
  these functions. ``<product>`` is `product_id`: ``gtin + len(serial) as 1 byte + serial``.
- Store keys: the ledger's own store layout around the tree (one-byte prefix, then the
  rest): the stored value of a state key (``v``), SMT nodes (``n``), secondary indexes
  (``i...``), per-event outcomes (``o``), raw blocks (``b``), roots (``r``), undo records
  (``u``) and store metadata (``m...``). Not in the state root.

Heights and times in keys are 8-byte big-endian (so keys sort by them). Pure functions.
"""

from __future__ import annotations

__all__ = [
    "ACCOUNT",
    "BLOCK_RAW",
    "CONTRACT_STATE",
    "DEADLINES",
    "EVIDENCE",
    "INDEX",
    "META_CONSENSUS",
    "META_GENESIS",
    "META_LEDGER",
    "META_MEMBERS",
    "META_VALIDATORS",
    "META_VM",
    "NODE_KEY",
    "ORG",
    "OUTCOME",
    "PROPOSALS_BY_DEADLINE",
    "PROPOSALS_BY_HEIGHT",
    "ROOT",
    "SCHEDULE",
    "SMT_NODE",
    "SMT_REVIVED",
    "SMT_STALE",
    "STORE_GENESIS",
    "STORE_HEIGHT",
    "STORE_PRUNED",
    "STORE_TIME",
    "TICKETS_BY_CUSTOMER",
    "TICKETS_BY_ORG",
    "TICKETS_BY_PRODUCT",
    "UNDO",
    "VALUE",
    "account",
    "balance",
    "block",
    "code",
    "contract",
    "contract_state",
    "deadline",
    "escrow",
    "evidence",
    "gtin_owner",
    "node_key",
    "org_nodes",
    "outcome",
    "policy",
    "product",
    "product_id",
    "product_page",
    "proposal",
    "proposal_by_deadline",
    "proposal_by_height",
    "quality",
    "raw_block",
    "recall",
    "root",
    "schedule",
    "smt_node",
    "smt_revived",
    "smt_stale",
    "stored_value",
    "ticket",
    "ticket_by_customer",
    "ticket_by_org",
    "ticket_by_product",
    "tickets_by_customer",
    "tickets_by_org",
    "tickets_by_product",
    "u64",
    "undo",
]


def u64(n: int) -> bytes:
    """8-byte big-endian (heights, times, views and sequence numbers in keys)."""
    return n.to_bytes(8, "big")


# --------------------------------------------------------------------------- state keys (in the SMT)

META_GENESIS = b"meta/genesis"
"""{hash, chain_id, time} of the genesis."""
META_MEMBERS = b"meta/members"
"""Number of current member organisations."""
META_VALIDATORS = b"meta/validators"
"""The adopted `ValidatorSet` (canonical encoding as a msgpack bin)."""
META_CONSENSUS = b"meta/consensus"
"""The adopted `ConsensusParams` (canonical encoding)."""
META_VM = b"meta/vm"
"""The adopted `VmParams` (canonical encoding)."""
META_LEDGER = b"meta/ledger"
"""The adopted `LedgerParams` (canonical encoding)."""
ORG = b"org/"
NODE_KEY = b"node/"
ACCOUNT = b"acct/"
SCHEDULE = b"sched/"
EVIDENCE = b"evidence/"
CONTRACT_STATE = b"cs/"


def org(org_id: str) -> bytes:
    """An organisation record (kept after removal, with ``removed``)."""
    return ORG + org_id.encode()


def node_key(key: bytes) -> bytes:
    """A registered member node key (32 bytes): ``{org, since, height}`` of its registration;
    deleted when removed (by its organisation, or with the organisation)."""
    return NODE_KEY + key


def org_nodes(org_id: str) -> bytes:
    """The node keys an organisation has registered: a sorted list (absent when none)."""
    return b"onodes/" + org_id.encode()


def account(key: bytes) -> bytes:
    """A signing key: its org (None for customers), nonce, ``revoked``."""
    return ACCOUNT + key


def balance(account_name: str) -> bytes:
    """The integer balance of an account (org id or ``cust:<hex>``)."""
    return b"bal/" + account_name.encode()


def gtin_owner(gtin: str) -> bytes:
    """The manufacturer owning a GTIN."""
    return b"gtin/" + gtin.encode()


def product_id(gtin: str, serial: str) -> bytes:
    """``<product>``: the GTIN, the serial's length as one byte, the serial."""
    s = serial.encode()
    return gtin.encode() + bytes([len(s)]) + s


def product(pid: bytes) -> bytes:
    """A product (`product_id`), with the newest, partial page of its history."""
    return b"prod/" + pid


def product_page(pid: bytes, page: int) -> bytes:
    """The `page`-th full page of a product's history."""
    return b"ph/" + pid + page.to_bytes(4, "big")


def recall(gtin: str, batch: str) -> bytes:
    return b"recall/" + gtin.encode() + b"/" + batch.encode()


def policy(policy_id: bytes) -> bytes:
    return b"pol/" + policy_id


def ticket(ticket_id: bytes) -> bytes:
    """A ticket, with its status history."""
    return b"t/" + ticket_id


def escrow(escrow_id: bytes) -> bytes:
    return b"esc/" + escrow_id


def quality(org_id: str) -> bytes:
    """The service-quality counters of an organisation."""
    return b"q/" + org_id.encode()


def contract(contract_id: bytes) -> bytes:
    return b"con/" + contract_id


def code(code_hash: bytes) -> bytes:
    """Contract code by its SHA-256."""
    return b"code/" + code_hash


def contract_state(contract_id: bytes, key: bytes) -> bytes:
    """A key of a contract's own namespace."""
    return CONTRACT_STATE + contract_id + b"/" + key


def block(height: int) -> bytes:
    """The block record (time, counts, outcomes root)."""
    return b"blk/" + u64(height)


def proposal(proposal_id: bytes) -> bytes:
    """A governance proposal."""
    return b"gov/" + proposal_id


def schedule(first_height: int) -> bytes:
    """The validator schedule entry effective from `first_height`."""
    return SCHEDULE + u64(first_height)


def evidence(validator: bytes, phase: str, view: int, seq: int) -> bytes:
    """Recorded equivocation evidence, once per (validator, phase, view, seq)."""
    return EVIDENCE + validator + b"/" + phase.encode() + b"/" + u64(view) + u64(seq)


# --------------------------------------------------------------------------- store keys (not in the SMT)

VALUE = b"v"
"""Prefix: the stored msgpack value of a state key (``v`` + state key)."""
SMT_NODE = b"n"
INDEX = b"i"
OUTCOME = b"o"
BLOCK_RAW = b"b"
ROOT = b"r"
UNDO = b"u"
SMT_STALE = b"s"
"""Prefix: the SMT nodes block h's update left behind (``s`` + u64 h: their 32-byte hashes,
concatenated), deleted with the root of the same height (`node.app.state`)."""
SMT_REVIVED = b"w"
"""Prefix: an SMT node that a block wrote again while a stale list still named it
(``w`` + node hash: u64 height of that block): its stale lists must not delete it."""
STORE_HEIGHT = b"mheight"
STORE_TIME = b"mtime"
STORE_GENESIS = b"mgenesis"
STORE_PRUNED = b"mpruned"
"""Meta: the last height committed with the SMT pruning records (u64): a store whose height
is past it was also written by code that does not keep them (`node.app.state`)."""

TICKETS_BY_ORG = b"ito"
TICKETS_BY_PRODUCT = b"itp"
TICKETS_BY_CUSTOMER = b"itc"
DEADLINES = b"idl"
"""Index prefix of pending ticket deadlines: ``idl<due:8><kind:1><ticket id>``."""
PROPOSALS_BY_DEADLINE = b"igd"
"""Index prefix of open proposals: ``igd<deadline:8><proposal id>``."""
PROPOSALS_BY_HEIGHT = b"igp"
"""Index prefix of every proposal: ``igp<height:8><proposal id>``."""


def stored_value(state_key: bytes) -> bytes:
    return VALUE + state_key


def smt_node(node_hash: bytes) -> bytes:
    return SMT_NODE + node_hash


def outcome(event_id: bytes) -> bytes:
    """msgpack ``[height, index, code, message, detail]`` of an executed event."""
    return OUTCOME + event_id


def raw_block(height: int) -> bytes:
    """msgpack ``[time_ms, raw events]`` of an applied block."""
    return BLOCK_RAW + u64(height)


def root(height: int) -> bytes:
    return ROOT + u64(height)


def smt_stale(height: int) -> bytes:
    return SMT_STALE + u64(height)


def smt_revived(node_hash: bytes) -> bytes:
    return SMT_REVIVED + node_hash


def undo(height: int) -> bytes:
    """msgpack list of [state key, value before block `height` or nil]."""
    return UNDO + u64(height)


def tickets_by_org(org_id: str, status: str | None = None) -> bytes:
    """Index prefix of an organisation's tickets (of one status)."""
    return TICKETS_BY_ORG + org_id.encode() + b"\0" + (status.encode() + b"\0" if status is not None else b"")


def ticket_by_org(org_id: str, status: str, ticket_id: bytes) -> bytes:
    return tickets_by_org(org_id, status) + ticket_id


def tickets_by_product(pid: bytes) -> bytes:
    return TICKETS_BY_PRODUCT + pid


def ticket_by_product(pid: bytes, ticket_id: bytes) -> bytes:
    return TICKETS_BY_PRODUCT + pid + ticket_id


def tickets_by_customer(customer: bytes) -> bytes:
    return TICKETS_BY_CUSTOMER + customer


def ticket_by_customer(customer: bytes, ticket_id: bytes) -> bytes:
    return TICKETS_BY_CUSTOMER + customer + ticket_id


def deadline(due_ms: int, kind: int, ticket_id: bytes) -> bytes:
    return DEADLINES + u64(due_ms) + bytes([kind]) + ticket_id


def proposal_by_deadline(deadline_ms: int, proposal_id: bytes) -> bytes:
    return PROPOSALS_BY_DEADLINE + u64(deadline_ms) + proposal_id


def proposal_by_height(height: int, proposal_id: bytes) -> bytes:
    return PROPOSALS_BY_HEIGHT + u64(height) + proposal_id
