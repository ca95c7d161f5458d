"""JSON Schemas of the API: the messages' JSON form, generated from the protocol's classes,
and the shapes of the answers, shared by the OpenAPI document (`node.http.openapi`).

`message_schemas()` walks the codec's field types (`protocol.codec`: u64, bool, str,
bytes and the fixed-length byte types, ``X | None``, ``tuple[X, ...]``, nested messages)
from every event body (`protocol.events.EVENT_TYPES`) and the messages answers embed
(block header, certificate, parameters), giving their JSON form (`protocol.jsonform`):
bytes are hex, every field is required, no other field is allowed (but ``_tag``). An
`Event`'s ``body`` follows its ``type``. `answer_schemas()` are the answers' objects;
values read from ledger records (tickets, products, escrows, evidence) name the fields
every record has and allow more.
"""

from __future__ import annotations

import types
import typing
from dataclasses import fields
from typing import Any

from afterchain.protocol.block import BlockHeader, CommitCertificate
from afterchain.protocol.codec import Message, registered
from afterchain.protocol.events import EVENT_TYPES, Event, EventBody, SignedEvent
from afterchain.protocol.genesis import ConsensusParams, LedgerParams, VmParams
from afterchain.protocol.types import FIXED_LENGTHS, MAX_UINT64

__all__ = ["ROOT_MESSAGES", "answer_schemas", "message_schemas", "ref"]

ROOT_MESSAGES: tuple[type[Message], ...] = (SignedEvent, BlockHeader, CommitCertificate, ConsensusParams, VmParams,
                                            LedgerParams)
"""Messages the answers and requests embed (with every message they contain)."""


def ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


U64: dict[str, Any] = {"type": "integer", "minimum": 0, "maximum": MAX_UINT64}
HEX: dict[str, Any] = {"type": "string", "pattern": "^(?:[0-9a-fA-F]{2})*$", "description": "bytes as hex"}
HEX32: dict[str, Any] = {"type": "string", "pattern": "^[0-9a-f]{64}$", "description": "32 bytes as lowercase hex"}


NEXT_CURSOR: dict[str, Any] = {"anyOf": [{"type": "string", "pattern": "^[A-Za-z0-9_-]+$"}, {"type": "null"}],
                                "description": "the cursor of the next page; null: this is the last page"}


def nullable(schema: dict[str, Any]) -> dict[str, Any]:
    return {"anyOf": [schema, {"type": "null"}]}


def obj(props: dict[str, Any], *, optional: tuple[str, ...] = (), more: bool = False,
        description: str = "") -> dict[str, Any]:
    """An object with `props`, all required but `optional`; `more`: other fields may follow."""
    out: dict[str, Any] = {"type": "object", "properties": props,
                           "required": [k for k in props if k not in optional], "additionalProperties": more}
    if description:
        out["description"] = description
    return out


def array(items: dict[str, Any]) -> dict[str, Any]:
    return {"type": "array", "items": items}


# ------------------------------------------------------------------ messages (generated)


def _field_schema(tp: Any, todo: list[type[Message]]) -> dict[str, Any]:
    sup = getattr(tp, "__supertype__", None)
    if sup is not None:
        length = FIXED_LENGTHS.get(tp)
        if length is not None:
            return {"type": "string", "pattern": f"^[0-9a-fA-F]{{{2 * length}}}$",
                    "description": f"{length} bytes as hex ({tp.__name__})"}
        return _field_schema(sup, todo)
    if tp is bool:
        return {"type": "boolean"}
    if tp is int:
        return dict(U64)
    if tp is str:
        return {"type": "string"}
    if tp is bytes:
        return dict(HEX)
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        (inner,) = [a for a in typing.get_args(tp) if a is not type(None)]
        return nullable(_field_schema(inner, todo))
    if origin is tuple:
        return array(_field_schema(typing.get_args(tp)[0], todo))
    if isinstance(tp, type) and issubclass(tp, Message):
        if "TAG" in tp.__dict__:
            todo.append(tp)
            return ref(tp.__name__)
        concrete = [c for c in registered().values() if issubclass(c, tp)]
        todo.extend(concrete)
        return {"anyOf": [ref(c.__name__) for c in concrete],
                "description": f"a {tp.__name__}; its ``_tag`` says which"}
    raise TypeError(f"no JSON Schema for field type {tp!r}")


def _message_schema(cls: type[Message], todo: list[type[Message]]) -> dict[str, Any]:
    hints = typing.get_type_hints(cls)
    props: dict[str, Any] = {}
    for f in fields(cls):  # type: ignore[arg-type]
        if cls is Event and f.name == "body":
            props[f.name] = {"type": "object", "description": "the body of the event type named by `type`"}
        elif cls is Event and f.name == "type":
            props[f.name] = {"type": "string", "enum": sorted(EVENT_TYPES)}
        else:
            props[f.name] = _field_schema(hints[f.name], todo)
    props["_tag"] = {"type": "integer", "const": cls.TAG, "description": "the message's tag (optional)"}
    doc = (cls.__doc__ or "").strip().split("\n\n")[0].replace("\n", " ")
    schema = obj(props, optional=("_tag",), description=doc)
    if cls is Event:
        schema["allOf"] = [
            {"if": {"properties": {"type": {"const": name}}, "required": ["type"]},
             "then": {"properties": {"body": ref(body.__name__)}}}
            for name, body in sorted(EVENT_TYPES.items())
        ]
    return schema


def message_schemas() -> dict[str, dict[str, Any]]:
    """The JSON Schema of every message reachable from `ROOT_MESSAGES` and every event body,
    by class name."""
    todo: list[type[Message]] = [*ROOT_MESSAGES, *EVENT_TYPES.values()]
    out: dict[str, dict[str, Any]] = {}
    seen: dict[str, type[Message]] = {}
    while todo:
        cls = todo.pop()
        if cls.__name__ in seen:
            if seen[cls.__name__] is not cls:
                raise TypeError(f"two messages named {cls.__name__}")
            continue
        seen[cls.__name__] = cls
        if issubclass(cls, EventBody):
            (name,) = [n for n, c in EVENT_TYPES.items() if c is cls]
            schema = _message_schema(cls, todo)
            schema["description"] = f"body of `{name}`. " + schema.get("description", "")
            out[cls.__name__] = schema
        else:
            out[cls.__name__] = _message_schema(cls, todo)
    return dict(sorted(out.items()))


# ------------------------------------------------------------------ answers (written here)


def _validator_set(*, more: dict[str, Any] | None = None) -> dict[str, Any]:
    return obj({"validators": array(HEX32), "hash": HEX32, **(more or {})})


def answer_schemas() -> dict[str, dict[str, Any]]:
    int_or_null = nullable(U64)
    header = obj({"height": U64, "hash": HEX32, "header": HEX, "certificate": HEX, "next_validators": nullable(HEX)},
                 description="a certified header: canonical encodings (hex) of the header and its commit certificate, "
                             "and the next validator set when the header changes it")
    proposal = obj({
        "id": HEX32, "kind": {"type": "string"}, "payload": {"description": "the change in JSON form"},
        "payload_hex": HEX, "by": nullable({"type": "string"}), "by_key": nullable(HEX32),
        "created_ms": U64, "height": int_or_null, "deadline_ms": U64, "yes": array(HEX32), "no": array(HEX32),
        "status": {"type": "string", "enum": ["open", "adopted", "rejected", "expired", "failed"]},
        "result": {"description": "what the proposal did, once decided"}, "decided_ms": int_or_null,
        "decided_height": int_or_null, "effective_height": int_or_null,
        "tally": nullable(obj({"yes": U64, "no": U64, "validators": U64})),
        "current": obj({"yes": U64, "no": U64, "validators": U64, "yes_needed": U64, "no_needed": U64},
                       description="an open proposal's live tally against the current validator set"),
    }, optional=("current",))
    return {
        "Error": obj({
            "error": obj({"code": {"type": "string", "description": "stable; clients branch on it"},
                          "message": {"type": "string", "description": "for people; may change"},
                          "request_id": nullable({"type": "string"})}, optional=("request_id",)),
            "results": array(ref("SubmitResult")),
        }, optional=("results",), description="every error answer; `results` only on a refused submission"),
        "SubmitResult": obj({"id": nullable(HEX32), "status": {"type": "string",
                                                               "enum": ["accepted", "duplicate", "rejected"]},
                             "code": {"type": "string"}, "message": {"type": "string"}}, optional=("code", "message")),
        "SubmitResults": obj({"results": array(ref("SubmitResult"))}),
        "EventStatus": obj({"id": HEX32, "status": {"type": "string", "enum": ["committed", "rejected", "pending"]},
                            "height": U64, "index": U64, "code": {"type": "string"}, "message": {"type": "string"}},
                           optional=("height", "index", "code", "message")),
        "Block": obj({"height": U64, "hash": HEX32, "header": ref("BlockHeader"),
                      "certificate": ref("CommitCertificate"), "event_ids": array(HEX32),
                      "outcomes": array({"type": "string", "description": '"ok", the refusal code, or "?"'})},
                     optional=("outcomes",)),
        "Ticket": obj({"id": HEX32}, more=True, description="a ticket as the ledger stores it (bytes as hex)"),
        "Product": obj({"gtin": {"type": "string"}, "serial": {"type": "string"}}, more=True),
        "ProductHistory": obj({"gtin": {"type": "string"}, "serial": {"type": "string"}, "history": array({}),
                                "next_cursor": NEXT_CURSOR}),
        "Quality": obj({"org": {"type": "string"}, "since_ms": U64, "tickets": U64, "resolved": U64,
                        "resolution_rate_permille": U64, "median_first_response_ms": int_or_null,
                        "median_first_response_bounds_ms": nullable(array(U64)),
                        "median_resolution_ms": int_or_null, "median_resolution_bounds_ms": nullable(array(U64)),
                        "first_responses": U64, "breaches": U64, "ratings": U64, "mean_rating_centi": U64,
                        "exact_samples_max": U64},
                       description="medians are exact (`median_*_ms`) while the ledger keeps every sample "
                                   "(up to `exact_samples_max`); otherwise null, and `median_*_bounds_ms` = [lo, hi] "
                                   "holds the median (lo = hi when exact)"),
        "OrgTickets": obj({"org": {"type": "string"}, "status": nullable({"type": "string"}),
                           "tickets": array(HEX32), "next_cursor": NEXT_CURSOR}),
        "CustomerTickets": obj({"customer": HEX32, "tickets": array(HEX32), "next_cursor": NEXT_CURSOR}),
        "StreamEvent": obj({
            "cursor": {"type": "string", "pattern": "^[0-9]+-[0-9]+$", "description": "<height>-<index>: resume after it"},
            "height": U64, "index": U64, "time_ms": U64, "id": HEX32, "type": {"type": "string"}, "sender": HEX32,
            "nonce": U64, "code": {"type": "string", "description": '"ok", or the ledger\'s refusal code'},
            "orgs": array({"type": "string"}), "ticket": nullable(HEX32), "gtin": nullable({"type": "string"}),
            "serial": nullable({"type": "string"}), "body": {"type": "object", "description": "the event's body "
                                                                                            "(JSON form, by type)"},
        }, description="one committed event of GET /v1/stream (the data of an `event: committed` frame)"),
        "Account": obj({"key": HEX32, "nonce": U64, "next_nonce": U64}),
        "Escrow": obj({"id": HEX32}, more=True),
        "Balance": obj({"account": {"type": "string"}, "balance": U64}),
        "Orgs": obj({"orgs": array(obj({"org_id": {"type": "string"}, "name": {"type": "string"},
                                        "roles": array({"type": "string"}), "keys": array(HEX32)})),
                     "next_cursor": NEXT_CURSOR}),
        "NodeKeys": obj({"nodes": array(ref("NodeKey")), "truncated": {"type": "boolean"}}),
        "OrgNodeKeys": obj({"org": {"type": "string"}, "nodes": array(ref("NodeKey"))}),
        "NodeKey": obj({"key": HEX32, "org": {"type": "string"}, "since_ms": U64, "height": U64}),
        "Org": obj({"org_id": {"type": "string"}, "name": {"type": "string"}, "roles": array({"type": "string"}),
                    "keys": array(HEX32), "since_ms": int_or_null, "removed_ms": int_or_null}),
        "Evidence": obj({"evidence": array({"type": "object"}), "next_cursor": NEXT_CURSOR,
                         "observed": {"type": "object", "additionalProperties": U64,
                                      "description": "equivocations this node saw, by validator key (hex)"},
                         "reported": U64}),
        "Status": obj({
            "chain_id": {"type": "string"}, "node": {"type": "string"},
            "version": {"type": "string", "description": "the node software's version"},
            "protocol_version": {"type": "integer", "minimum": 1, "description": "the node-to-node protocol version"},
            "node_id": HEX32, "height": U64,
            "executed_height": U64, "state_root": HEX32, "view": U64, "primary": HEX32, "is_primary": {"type": "boolean"},
            "peers": array(HEX32), "last_block_hash": nullable(HEX32), "last_commit_ms": int_or_null,
            "mempool": obj({"events": U64, "bytes": U64}),
            "intake": obj({"pending": U64, "gossip_backlog": U64}, more=True),
            "stable_checkpoint": U64, "consensus_rejected": {"type": "object", "additionalProperties": U64},
            "consensus_signatures": obj({"checked": U64, "repeats_skipped": U64}),
            "validators": array(HEX32), "role": {"type": "string", "enum": ["validator", "member"]},
            "certified_height_known": U64, "lag": U64, "state_verified_height": U64,
            "p2p": nullable(obj({"peer_id": {"type": "string"}, "multiaddrs": array({"type": "string"})})),
            "transport": obj({"frames_sent": U64, "bytes_sent": U64,
                              "sent_by": {"type": "object", "additionalProperties": {**array(U64), "minItems": 2, "maxItems": 2},
                                          "description": "[frames, bytes] written, by peer role and message "
                                                         "(\"member:RelayStatus\")"}}, optional=("sent_by",)),
            "relay": obj({
                "enabled": {"type": "boolean"}, "height": U64, "hops": U64,
                "peers": array({"type": "string", "description": "relay peers' short ids"}),
                "blocks_received": U64, "duplicate_blocks": U64, "invalid_blocks": U64, "requests_sent": U64,
                "requests_served": U64, "blocks_pushed": U64, "blocks_served": U64, "events_forwarded": U64, "pending_events": U64,
                "rejected": {"type": "object", "additionalProperties": U64, "description": "refused relay messages by reason"},
                "limited": {"type": "object", "additionalProperties": U64,
                            "description": "messages refused over the per-peer rate limits, by kind"},
            }, description="the dissemination relay (docs/PROTOCOL.md section 11)"),
        }, optional=("relay",)),
        "Health": obj({"ok": {"type": "boolean"}, "reason": {"type": "string"}}),
        "Liveness": obj({"live": {"type": "boolean", "const": True}}),
        "Readiness": obj({
            "ready": {"type": "boolean"}, "reasons": array({"type": "string"}),
            "role": {"type": "string", "enum": ["validator", "member"]},
            "height": U64, "executed_height": U64,
            "peer_height": {**U64, "description": "the highest committed height a peer reported"},
            "lag": {**U64, "description": "peer_height - height, at least 0"},
            "max_lag": {**U64, "description": "the most blocks behind a ready node may be"},
            "peers": {**U64, "description": "connected peers that count (a validator: validators)"},
            "peers_needed": U64,
        }),
        "LogLevels": obj({"level": {"type": "string", "enum": ["debug", "info", "warning", "error", "critical"]},
                          "loggers": {"type": "object", "additionalProperties": {"type": "string"},
                                      "description": "standard (library) loggers with a level of their own"}}),
        "LogLevelChange": obj({"level": {"type": "string", "enum": ["debug", "info", "warning", "error", "critical"]},
                               "logger": {"type": "string", "minLength": 1, "maxLength": 200,
                                          "description": "a library's standard logger (default: the node's level)"}},
                              optional=("logger",)),
        "Proposal": proposal,
        "Proposals": obj({"status": nullable({"type": "string"}), "proposals": array(ref("Proposal")),
                           "next_cursor": NEXT_CURSOR}),
        "Validators": obj({
            "height": U64, "adopted": _validator_set(), "voting_next": nullable(_validator_set()),
            "schedule": array(_validator_set(more={"first_height": U64, "consensus": ref("ConsensusParams")})),
            "pending": nullable(_validator_set(more={"first_height": U64, "consensus": ref("ConsensusParams")})),
        }),
        "Params": obj({"height": U64, "consensus": ref("ConsensusParams"), "vm": ref("VmParams"),
                       "ledger": ref("LedgerParams")}),
        "StateProof": obj({"key": HEX, "value": nullable(HEX), "state_height": U64, "state_root": HEX32,
                           "proof": HEX, "height": U64, "header": HEX, "certificate": HEX,
                           "next_validators": nullable(HEX)},
                          description="a state value (null: absent) with its SMT proof against a certified header"),
        "PassportProof": obj({"state_height": U64, "state_root": HEX32, "height": U64, "header": HEX, "certificate": HEX,
                              "next_validators": nullable(HEX),
                              "entries": array(obj({"key": HEX, "value": nullable(HEX), "proof": HEX}))},
                             description="every state key of a product passport (protocol.passport.passport_keys) "
                                         "with its value (null: absent) and SMT proof against one certified header"),
        "Genesis": {"type": "object", "description": "the genesis document (the JSON of the genesis file) and its hash",
                    "required": ["hash", "chain_id", "encoded", "genesis"],
                    "properties": {"hash": HEX32, "chain_id": {"type": "string"}, "encoded": HEX,
                                   "genesis": {"type": "object"}}},
        "Header": header,
        "HeaderRange": {"anyOf": [
            obj({"from": U64, "to": U64, "head": U64, "headers": array(ref("Header"))}),
            obj({"from": U64, "scanned_to": U64, "head": U64, "headers": array(ref("Header"))},
                description="with changes=1: the change headers among those scanned"),
        ]},
        "Faults": obj({"block": array(HEX32), "drop_rate": {"type": "number", "minimum": 0, "maximum": 1}}),
        "FaultsChange": {**obj({"block": array(HEX32), "drop_rate": {"type": "number", "minimum": 0, "maximum": 1}},
                               optional=("block", "drop_rate")), "minProperties": 1},
        "Submission": {"anyOf": [
            ref("SignedEvent"),
            obj({"events": array(ref("SignedEvent"))}),
            obj({"raw": array({**HEX, "description": "an encoded SignedEvent as hex"})}),
        ]},
    }
