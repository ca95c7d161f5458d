"""HTTP routes for light clients: state proofs and certified headers (`proof_routes(source)`).

Routes (all GET, JSON; binary parts are hex of their canonical encodings):

- ``/v1/proofs/tickets/{id}``, ``/v1/proofs/products/{gtin}/{serial}``,
  ``/v1/proofs/quality/{org}``, ``/v1/proofs/state/{key hex}``: the state key, its value
  (hex of the stored msgpack bytes, or null: absent), ``state_height``, ``state_root``,
  the `SmtProof`, and the certified header (``header``, ``certificate``,
  ``next_validators`` or null) of the NEWEST committed block whose ``state_height`` is
  still readable by the ledger (`Ledger.history_window`).
- ``/v1/proofs/passports/{gtin}/{serial}``: the same certified header fields and
  ``entries``: ``[{key, value, proof}]`` for every key of the product's passport
  (`protocol.passport.passport_keys`, computed from the values at ``state_height``), in
  that order, all against the one header.
- ``/v1/genesis``: the genesis (hash, chain id, canonical encoding as hex, JSON form).
  Not trusted by itself: a client compares its hash with the hash it trusts.
- ``/v1/headers/{height}``: one certified header.
- ``/v1/headers?from=A&to=B``: the certified headers A..B (at most `MAX_HEADERS`);
  with ``&changes=1`` only the validator-set change headers among them
  (``next_validators_hash != validators_hash``), scanning at most `MAX_CHANGE_SCAN`
  heights; ``scanned_to`` says where the scan stopped.

Parameters are parsed by `node.http.params` before use (400 ``request.invalid``): ids are
64 hex characters, products a GTIN-14 and a GS1 serial, organisations an org id, state keys
1-1024 bytes of hex, heights decimal u64.

Invariants: an answer is assembled without awaiting, so it reads one committed state; a
header is served only with its certificate; the proof's root is checked against the
header before answering (a mismatch is our bug: 500).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from typing import Any

import msgpack
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from afterchain.node.http.errors import error
from afterchain.node.http.params import BOOL_FLAG, GTIN, HEIGHT, HEX32, ORG_ID, SERIAL, STATE_KEY, Param
from afterchain.node.http.ports import HeaderStore, ProofLedger, ProofSource
from afterchain.node.http.spec import ApiRoute, Err, Op, Resp
from afterchain.protocol import state_keys
from afterchain.protocol.block import BlockHeader, CommitCertificate, ValidatorSet
from afterchain.protocol.genesis import to_json_value
from afterchain.protocol.passport import passport_keys

__all__ = ["MAX_CHANGE_SCAN", "MAX_HEADERS", "proof_routes"]

MAX_HEADERS = 100
"""Headers per range request."""
MAX_CHANGE_SCAN = 10_000
"""Heights scanned per ``changes=1`` request."""
MAX_BACK_SEARCH = 64
"""How far below the head we look for a header whose state the ledger can still read."""
HEADER_CACHE = 256

TICKET_P = Param("id", "path", HEX32, "the ticket's id", "a ticket id")
GTIN_P = Param("gtin", "path", GTIN, "the product's GTIN-14")
SERIAL_P = Param("serial", "path", SERIAL, "the product's serial")
ORG_P = Param("org", "path", ORG_ID, "an organisation id", "an organisation id")
KEY_P = Param("key", "path", STATE_KEY, "a state key (bytes as hex)", "a state key")
HEIGHT_P = Param("height", "path", HEIGHT, "a block height", "a height")
FROM_P = Param("from", "query", HEIGHT, "the first height (default 1)")
TO_P = Param("to", "query", HEIGHT, "the last height (default: the head)")
CHANGES_P = Param("changes", "query", BOOL_FLAG, f"1 or true: only validator-set change headers, scanning at most "
                  f"{MAX_CHANGE_SCAN} heights")


class _LedgerSets(Mapping[bytes, ValidatorSet]):
    """The validator sets the ledger has scheduled, by hash (live view)."""

    def __init__(self, ledger: ProofLedger) -> None:
        self.ledger = ledger

    def _sets(self) -> dict[bytes, ValidatorSet]:
        return self.ledger.validator_sets_by_hash()

    def __getitem__(self, key: bytes) -> ValidatorSet:
        return self._sets()[key]

    def __iter__(self) -> Iterator[bytes]:
        return iter(self._sets())

    def __len__(self) -> int:
        return len(self._sets())


class _Headers:
    """Headers by height, decoded from the stored blocks (without decoding their events)."""

    def __init__(self, store: HeaderStore, known_sets: Mapping[bytes, ValidatorSet]) -> None:
        self.store = store
        self.known_sets = known_sets
        self._cache: dict[int, BlockHeader] = {}

    def header(self, height: int) -> BlockHeader | None:
        h = self._cache.get(height)
        if h is not None:
            return h
        raw = self.store.block_bytes(height)
        if raw is None:
            return None
        arr = msgpack.unpackb(raw, raw=False, use_list=False)
        h = BlockHeader.decode(msgpack.packb(arr[2], use_bin_type=True))
        if len(self._cache) >= HEADER_CACHE:
            self._cache.pop(next(iter(self._cache)))
        self._cache[height] = h
        return h

    def certified(self, height: int) -> tuple[BlockHeader, CommitCertificate] | None:
        h = self.header(height)
        cert = self.store.certificate(height) if h is not None else None
        if h is None or cert is None:
            return None
        return h, cert

    def next_set(self, header: BlockHeader) -> ValidatorSet | None:
        if header.next_validators_hash == header.validators_hash:
            return None
        return self.known_sets.get(header.next_validators_hash)

    def json(self, height: int) -> dict[str, Any] | None:
        hc = self.certified(height)
        if hc is None:
            return None
        h, cert = hc
        nv = self.next_set(h)
        return {"height": height, "hash": h.hash().hex(), "header": h.encode().hex(), "certificate": cert.encode().hex(),
                "next_validators": None if nv is None else nv.encode().hex()}


def proof_routes(source: ProofSource, known_sets: Mapping[bytes, ValidatorSet] | None = None) -> list[ApiRoute]:
    """The light-client routes over `source`'s ledger and block store (`node.http.app`
    mounts them).

    `known_sets`: validator sets by hash that change headers may announce (default: every
    set the ledger has scheduled, genesis first: `Ledger.validator_sets_by_hash`, read at
    each request so sets adopted later are served too).
    """
    led, store = source.ledger, source.store
    if known_sets is None:
        known_sets = _LedgerSets(led)
    headers = _Headers(store, known_sets)

    def answer(key: bytes) -> Response:
        return answer_many(lambda _read: [key], single=True)

    def answer_many(keys_of: Callable[[Callable[[bytes], bytes | None]], list[bytes]], *, single: bool = False) -> Response:
        """Prove the keys `keys_of(read)` names (read: a key's value at the header's state)
        against the newest certified header whose state the ledger can still read."""
        lo, hi = led.history_window()
        head = store.head
        for height in range(head, max(0, head - MAX_BACK_SEARCH), -1):
            hc = headers.certified(height)
            if hc is None:
                continue
            h, cert = hc
            if not lo <= h.state_height <= hi:
                continue
            sh = h.state_height

            def read(key: bytes, sh: int = sh) -> bytes | None:
                return led.value_at(key, sh)

            try:
                keys = keys_of(read)
                proven = [(k, *led.prove_at(k, sh)) for k in keys]
            except LookupError:  # no undo record for some height (a store older than undo records)
                continue
            if led.root_at(sh) != h.state_root:
                return error(500, "proof.state_diverged", f"our state root at {sh} differs from header {height}'s")
            nv = headers.next_set(h)
            certified = {"state_height": sh, "state_root": h.state_root.hex(), "height": height,
                         "header": h.encode().hex(), "certificate": cert.encode().hex(),
                         "next_validators": None if nv is None else nv.encode().hex()}
            if single:
                k, value, proof = proven[0]
                return JSONResponse({"key": k.hex(), "value": None if value is None else value.hex(),
                                     "proof": proof.encode().hex(), **certified})
            return JSONResponse({**certified, "entries": [
                {"key": k.hex(), "value": None if value is None else value.hex(), "proof": proof.encode().hex()}
                for k, value, proof in proven]})
        return error(503, "proof.unavailable", "no committed header whose state this node can still prove")

    async def passport(request: Request) -> Response:
        gtin, serial = GTIN_P.read(request), SERIAL_P.read(request)
        return answer_many(lambda read: passport_keys(gtin, serial, read))

    genesis_doc: dict[str, Any] | None = None

    async def genesis(request: Request) -> Response:
        nonlocal genesis_doc
        if genesis_doc is None:
            g = source.genesis
            genesis_doc = {"hash": g.hash().hex(), "chain_id": g.chain_id, "encoded": g.encode().hex(),
                           "genesis": to_json_value(g)}
        return JSONResponse(genesis_doc)

    async def ticket(request: Request) -> Response:
        return answer(state_keys.ticket(TICKET_P.read(request)))

    async def product(request: Request) -> Response:
        return answer(state_keys.product(state_keys.product_id(GTIN_P.read(request), SERIAL_P.read(request))))

    async def quality(request: Request) -> Response:
        return answer(state_keys.quality(ORG_P.read(request)))

    async def state(request: Request) -> Response:
        return answer(KEY_P.read(request))

    async def one_header(request: Request) -> Response:
        height = HEIGHT_P.read(request)
        j = headers.json(height) if height >= 1 else None
        if j is None:
            return error(404, "header.not_found", f"no committed header at height {height}")
        return JSONResponse(j)

    async def header_range(request: Request) -> Response:
        lo = FROM_P.read(request)
        hi = TO_P.read(request)
        lo = 1 if lo is None else max(lo, 1)
        hi = store.head if hi is None else min(hi, store.head)
        if CHANGES_P.flag(request):
            out = []
            scanned_to = min(hi, lo + MAX_CHANGE_SCAN - 1)
            for height in range(lo, scanned_to + 1):
                h = headers.header(height)
                if h is not None and h.next_validators_hash != h.validators_hash:
                    j = headers.json(height)
                    if j is not None:
                        out.append(j)
                    if len(out) >= MAX_HEADERS:
                        scanned_to = height
                        break
            return JSONResponse({"from": lo, "scanned_to": scanned_to, "head": store.head, "headers": out})
        hi = min(hi, lo + MAX_HEADERS - 1)
        items = [j for j in (headers.json(h) for h in range(lo, hi + 1)) if j is not None]
        return JSONResponse({"from": lo, "to": hi, "head": store.head, "headers": items})

    proof: dict[int, Resp | Err] = {200: Resp("the value (null: absent) with its proof against the newest certified header whose state "
                       "this node can still prove", "$ref:StateProof"),
             500: Err("our state root differs from the certified header's (a bug here; logged)",
                      ("proof.state_diverged", "internal")),
             503: Err("no committed header whose state this node can still prove", ("proof.unavailable",))}
    return [
        ApiRoute("/v1/genesis", genesis, Op(
            "The genesis this node runs", "light",
            {200: Resp("the genesis: its hash (SHA-256 of `encoded`), chain id, canonical encoding (hex) and JSON form "
                       "(the genesis file's). A client checks the hash against the one it trusts before using it",
                       "$ref:Genesis")})),
        ApiRoute("/v1/proofs/tickets/{id}", ticket, Op("A ticket with its state proof", "light", proof,
                                                       params=(TICKET_P,))),
        ApiRoute("/v1/proofs/products/{gtin}/{serial}", product, Op("A product with its state proof", "light", proof,
                                                                    params=(GTIN_P, SERIAL_P))),
        ApiRoute("/v1/proofs/passports/{gtin}/{serial}", passport, Op(
            "A product passport: every state key it shows, proven against one certified header", "light",
            {**proof, 200: Resp("the keys of `protocol.passport.passport_keys` (product, history pages, policy, recall, "
                                "tickets, quality) with their values and proofs, against one certified header",
                                "$ref:PassportProof")}, params=(GTIN_P, SERIAL_P))),
        ApiRoute("/v1/proofs/quality/{org}", quality, Op("A quality report with its state proof", "light", proof,
                                                         params=(ORG_P,))),
        ApiRoute("/v1/proofs/state/{key}", state, Op("Any state key with its proof", "light", proof, params=(KEY_P,))),
        ApiRoute("/v1/headers/{height}", one_header, Op(
            "A certified header", "light",
            {200: Resp("the header with its certificate", "$ref:Header"),
             404: Err("no committed header at that height", ("header.not_found",))}, params=(HEIGHT_P,))),
        ApiRoute("/v1/headers", header_range, Op(
            "Certified headers from..to", "light",
            {200: Resp(f"at most {MAX_HEADERS} headers; with changes=1 the change headers and where the scan stopped",
                       "$ref:HeaderRange")}, params=(FROM_P, TO_P, CHANGES_P))),
    ]
