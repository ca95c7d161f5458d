"""The light client: ask ONE untrusted node for a state value and accept it only if it verifies.

Owns: fetching answers and headers over HTTP, the trusted-state file, the optional witness
cross-check, and decoding ledger values (tickets) for people. Verification itself is
`protocol.light` (pure); this module only feeds it and keeps what it returns.

Invariants
- The trusted state on disk only ever moves forward, to a header `protocol.light`
  verified (and the witness confirmed, when one is given); it is written atomically
  (temporary file + rename).
- Every refusal is a `LightError` with a stable `Reason`; a node that cannot be reached or
  answers an HTTP error is ``light.node_unavailable`` (nothing was verified).
- Downloads: one request per answer when the validator set did not change since the
  trusted header; otherwise also the change headers (``/v1/headers?changes=1``, paged).
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
import msgpack

from afterchain.protocol import state_keys
from afterchain.protocol.block import BlockHeader, ValidatorSet
from afterchain.protocol.errors import ProtocolError
from afterchain.protocol.genesis import Genesis
from afterchain.protocol.light import (
    DEFAULT_TRUSTING_PERIOD_MS,
    MAX_CHANGE_HEADERS,
    CertifiedHeader,
    LightError,
    Reason,
    StateAnswer,
    TrustedState,
    decode_answer,
    decode_certified,
    genesis_trust,
    verify_answer,
)
from afterchain.protocol.passport import MAX_PASSPORT_PAGES, MAX_PASSPORT_TICKETS, verify_passport
from afterchain.protocol.smt import SmtProof
from afterchain.protocol.types import Hash32, Height

__all__ = [
    "LightClient",
    "TicketView",
    "Verified",
    "default_state_path",
    "load_trust",
    "save_trust",
    "ticket_view",
    "trust_from_hash",
]

REQUEST_TIMEOUT_S = 10.0
MAX_RESPONSE_BYTES = 1 << 20
WITNESS_WAIT_S = 5.0
"""A witness slightly behind gets this long to reach the answer's height."""
STATE_FILE_VERSION = 1
MAX_PASSPORT_ENTRIES = 3 + MAX_PASSPORT_PAGES + 2 * MAX_PASSPORT_TICKETS + 1
"""Keys of a passport: product, policy, recall, pages, tickets, their orgs' quality and the service org's."""
MAX_PASSPORT_BYTES = 4 << 20
"""A passport answer (up to 1,024 history entries and 32 tickets with their proofs, as hex)."""
MAX_CHANGE_PAGES = 1000
"""Pages of ``/v1/headers?changes=1`` per answer (a node scans up to 10,000 heights a page)."""


def default_state_path(chain_id: str, genesis_hash: bytes) -> Path:
    """``~/.afterchain/light/<chain id>-<first 16 hex of the genesis hash>.json``: a chain
    recreated under the same id (``scripts/cluster reset``) gets its own file."""
    return Path(os.path.expanduser("~")) / ".afterchain" / "light" / f"{chain_id}-{genesis_hash.hex()[:16]}.json"


def _now_ms() -> int:
    return int(time.time() * 1000)


# --------------------------------------------------------------------------- trusted-state file


def save_trust(path: Path, trust: TrustedState) -> None:
    """Write `trust` to `path` atomically (JSON with the hex encoding and readable fields)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    doc = {"version": STATE_FILE_VERSION, "chain_id": trust.chain_id, "genesis_hash": trust.genesis_hash.hex(),
           "height": trust.height, "header_hash": trust.header_hash.hex(), "time_ms": trust.time_ms,
           "validators": [v.hex() for v in trust.validators.validators], "encoded": trust.encode().hex()}
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(doc, indent=1) + "\n")
    os.replace(tmp, path)


def load_trust(path: Path, genesis: Genesis | None = None) -> TrustedState | None:
    """The trusted state in `path` (None if there is no file). Raises `ValueError` if the
    file is unreadable or belongs to another chain than `genesis`."""
    try:
        text = path.read_text()
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise ValueError(f"cannot read trusted state {path}: {exc}") from None
    try:
        doc = json.loads(text)
        trust = TrustedState.decode(bytes.fromhex(doc["encoded"]))
    except (ValueError, KeyError, TypeError, ProtocolError) as exc:
        raise ValueError(f"trusted state {path} is corrupt: {exc}") from None
    if genesis is not None and (trust.genesis_hash != genesis.hash() or trust.chain_id != genesis.chain_id):
        raise ValueError(f"trusted state {path} is for another chain or genesis than the genesis file "
                         f"(chain {trust.chain_id}, genesis {trust.genesis_hash.hex()[:16]}...): give another --state "
                         "file, or leave --state out to use the genesis's own default file")
    return trust


def trust_from_genesis(genesis: Genesis) -> TrustedState:
    return genesis_trust(genesis.chain_id, genesis.hash(), genesis.genesis_time_ms, genesis.validators)


# --------------------------------------------------------------------------- results


@dataclass(frozen=True)
class Verified:
    """A verified answer: `value` (msgpack bytes, None = proven absent) as of `state_height`,
    checked against the certified header `height` / `header_hash`."""

    key: bytes
    value: bytes | None
    height: int
    header_hash: bytes
    state_height: int
    state_root: bytes
    proof_bytes: int
    answer_bytes: int
    downloads: int

    def decoded(self) -> Any:
        return None if self.value is None else msgpack.unpackb(self.value, raw=False, strict_map_key=False)

    def to_json(self) -> dict[str, Any]:
        return {"key": self.key.hex(), "exists": self.value is not None, "height": self.height,
                "header_hash": self.header_hash.hex(), "state_height": self.state_height,
                "state_root": self.state_root.hex(), "proof_bytes": self.proof_bytes, "answer_bytes": self.answer_bytes,
                "downloads": self.downloads}


@dataclass(frozen=True)
class TicketView:
    """A ticket decoded for people: status and its timeline (oldest first)."""

    ticket_id: bytes
    exists: bool
    status: str | None = None
    kind: str | None = None
    product: str | None = None
    org: str | None = None
    timeline: list[dict[str, Any]] = field(default_factory=list)
    raw: dict[str, Any] | None = None

    def to_json(self) -> dict[str, Any]:
        return {"ticket_id": self.ticket_id.hex(), "exists": self.exists, "status": self.status, "kind": self.kind,
                "product": self.product, "org": self.org, "timeline": self.timeline}


def _iso(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, tz=UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def ticket_view(ticket_id: bytes, value: Any) -> TicketView:
    """Decode a ticket's ledger value (the msgpack dict under ``t/<id>``)."""
    if value is None:
        return TicketView(ticket_id=ticket_id, exists=False)
    timeline = []
    for entry in value.get("hist", []):
        status, time_ms, event_id, note = (list(entry) + [None] * 4)[:4]
        timeline.append({"status": status, "time_ms": time_ms, "time": _iso(time_ms) if isinstance(time_ms, int) else None,
                         "event_id": event_id.hex() if isinstance(event_id, bytes) else None, "note": note})
    return TicketView(ticket_id=ticket_id, exists=True, status=value.get("status"), kind=value.get("kind"),
                      product=f"{value.get('gtin')}/{value.get('serial')}", org=value.get("org"), timeline=timeline, raw=value)


# --------------------------------------------------------------------------- the client


class LightClient:
    """Verified reads from one node (`node_url`), optionally cross-checked with `witness_url`.

    `trust` is the starting trusted state; with `state_path` every verified answer moves it
    forward on disk. `http` / `witness_http` may be given (tests: a malicious app).
    """

    def __init__(self, node_url: str, trust: TrustedState, *, state_path: Path | None = None, witness_url: str | None = None,
                 trusting_period_ms: int = DEFAULT_TRUSTING_PERIOD_MS, http: httpx.Client | None = None,
                 witness_http: httpx.Client | None = None, now_ms: Callable[[], int] = _now_ms) -> None:
        self.node_url = node_url.rstrip("/")
        self.trust = trust
        self.state_path = state_path
        self.witness_url = witness_url.rstrip("/") if witness_url else None
        self.trusting_period_ms = trusting_period_ms
        self._http = http or httpx.Client(timeout=REQUEST_TIMEOUT_S)
        self._witness_http = witness_http or (httpx.Client(timeout=REQUEST_TIMEOUT_S) if witness_url else None)
        self._now_ms = now_ms
        self.downloads = 0

    def close(self) -> None:
        self._http.close()
        if self._witness_http is not None:
            self._witness_http.close()

    def __enter__(self) -> LightClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ---- HTTP
    def _get(self, http: httpx.Client, url: str, *, max_bytes: int = MAX_RESPONSE_BYTES) -> dict[str, Any]:
        doc = self._get_opt(http, url, allow_404=False, max_bytes=max_bytes)
        if doc is None:  # pragma: no cover - only with allow_404
            raise LightError(Reason.NODE_UNAVAILABLE, f"{url}: not found")
        return doc

    def _get_opt(self, http: httpx.Client, url: str, *, allow_404: bool = True,
                 max_bytes: int = MAX_RESPONSE_BYTES) -> dict[str, Any] | None:
        self.downloads += 1
        try:
            r = http.get(url)
        except httpx.HTTPError as exc:
            raise LightError(Reason.NODE_UNAVAILABLE, f"{url}: {exc}") from None
        if r.status_code == 404 and allow_404:
            return None
        if r.status_code != 200:
            raise LightError(Reason.NODE_UNAVAILABLE, f"{url}: HTTP {r.status_code} {r.text[:200]}")
        if len(r.content) > max_bytes:
            raise LightError(Reason.MALFORMED, f"{url}: answer of {len(r.content)} bytes")
        try:
            doc = r.json()
        except ValueError:
            raise LightError(Reason.MALFORMED, f"{url}: not JSON") from None
        if not isinstance(doc, dict):
            raise LightError(Reason.MALFORMED, f"{url}: not a JSON object")
        return doc

    @staticmethod
    def _hex(doc: dict[str, Any], name: str, *, optional: bool = False) -> bytes | None:
        v = doc.get(name)
        if v is None and optional:
            return None
        if not isinstance(v, str):
            raise LightError(Reason.MALFORMED, f"{name}: expected hex")
        try:
            return bytes.fromhex(v)
        except ValueError:
            raise LightError(Reason.MALFORMED, f"{name}: not hex") from None

    def _certified(self, doc: dict[str, Any]) -> CertifiedHeader:
        header, cert = self._hex(doc, "header"), self._hex(doc, "certificate")
        if header is None or cert is None:  # pragma: no cover - _hex raises first
            raise LightError(Reason.MALFORMED, "missing header or certificate")
        return decode_certified(header, cert, self._hex(doc, "next_validators", optional=True))

    def _answer(self, doc: dict[str, Any]) -> StateAnswer:
        key, root, proof = self._hex(doc, "key"), self._hex(doc, "state_root"), self._hex(doc, "proof")
        if key is None or root is None or proof is None:  # pragma: no cover - _hex raises first
            raise LightError(Reason.MALFORMED, "missing fields")
        return decode_answer(key, self._hex(doc, "value", optional=True), root, proof, self._certified(doc))

    def _changes(self, above: int, below: int) -> list[CertifiedHeader]:
        """The validator-set change headers at heights above..below-1 (exclusive of `above`)."""
        out: list[CertifiedHeader] = []
        lo = above + 1
        pages = 0
        while lo < below and len(out) <= MAX_CHANGE_HEADERS:
            pages += 1
            if pages > MAX_CHANGE_PAGES:
                raise LightError(Reason.MALFORMED, f"change headers: more than {MAX_CHANGE_PAGES} pages for {above}..{below}")
            doc = self._get(self._http, f"{self.node_url}/v1/headers?from={lo}&to={below - 1}&changes=1")
            items = doc.get("headers")
            scanned = doc.get("scanned_to")
            if not isinstance(items, list) or not isinstance(scanned, int) or scanned < lo:
                raise LightError(Reason.MALFORMED, "headers: bad page")
            out.extend(self._certified(d) for d in items if isinstance(d, dict))
            lo = scanned + 1
        return out

    def _witness(self, header: BlockHeader) -> None:
        if self._witness_http is None or self.witness_url is None:
            return
        url = f"{self.witness_url}/v1/headers/{header.height}"
        deadline = time.monotonic() + WITNESS_WAIT_S
        while True:
            doc = self._get_opt(self._witness_http, url)
            if doc is not None:
                break
            if time.monotonic() > deadline:
                raise LightError(Reason.NODE_UNAVAILABLE, f"the witness has no header at height {header.height}")
            time.sleep(0.1)
        if doc.get("hash") != header.hash().hex():
            raise LightError(Reason.WITNESS_MISMATCH, f"the witness has header {str(doc.get('hash'))[:16]}... at height "
                                                      f"{header.height}, the node {header.hash().hex()[:16]}...")

    # ---- verified reads
    def verify_path(self, path: str, key: bytes) -> Verified:
        """GET `path` (a ``/v1/proofs/...`` route answering for `key`) and verify it."""
        start = self.downloads
        doc = self._get(self._http, self.node_url + path)
        answer = self._answer(doc)
        header = answer.header.header
        changes: list[CertifiedHeader] = []
        if header.validators_hash != self.trust.validators.hash() and header.height > self.trust.height:
            changes = self._changes(self.trust.height, header.height)
        value, new_trust = verify_answer(self.trust, answer, key, changes, now_ms=self._now_ms(),
                                         trusting_period_ms=self.trusting_period_ms)
        self._witness(header)
        if new_trust != self.trust:
            self.trust = new_trust
            if self.state_path is not None:
                save_trust(self.state_path, new_trust)
        return Verified(key=key, value=value, height=header.height, header_hash=header.hash(), state_height=header.state_height,
                        state_root=header.state_root, proof_bytes=len(answer.proof.encode()), answer_bytes=len(answer.encode()),
                        downloads=self.downloads - start)

    def state(self, key: bytes) -> Verified:
        return self.verify_path(f"/v1/proofs/state/{key.hex()}", key)

    def ticket(self, ticket_id: bytes) -> tuple[TicketView, Verified]:
        v = self.verify_path(f"/v1/proofs/tickets/{ticket_id.hex()}", state_keys.ticket(ticket_id))
        return ticket_view(ticket_id, v.decoded()), v

    def product(self, gtin: str, serial: str) -> Verified:
        key = state_keys.product(state_keys.product_id(gtin, serial))
        return self.verify_path(f"/v1/proofs/products/{quote(gtin, safe='')}/{quote(serial, safe='')}", key)

    def passport(self, gtin: str, serial: str) -> tuple[dict[bytes, bytes | None], Verified]:
        """A product's passport: every key of `protocol.passport.passport_keys`, verified
        against one certified header (``/v1/proofs/passports/{gtin}/{serial}``)."""
        start = self.downloads
        doc = self._get(self._http, f"{self.node_url}/v1/proofs/passports/{quote(gtin, safe='')}/{quote(serial, safe='')}",
                        max_bytes=MAX_PASSPORT_BYTES)
        certified = self._certified(doc)
        root = self._hex(doc, "state_root")
        items = doc.get("entries")
        if not isinstance(items, list) or root is None or len(items) > MAX_PASSPORT_ENTRIES:
            raise LightError(Reason.MALFORMED, f"entries: a list of at most {MAX_PASSPORT_ENTRIES} is expected")
        entries: list[tuple[bytes, bytes | None, SmtProof]] = []
        proof_bytes = 0
        for item in items:
            if not isinstance(item, dict):
                raise LightError(Reason.MALFORMED, "entries: objects expected")
            key, proof = self._hex(item, "key"), self._hex(item, "proof")
            if key is None or proof is None:  # pragma: no cover - _hex raises first
                raise LightError(Reason.MALFORMED, "entries: key and proof")
            try:
                p = SmtProof.decode(proof)
            except ProtocolError as exc:
                raise LightError(Reason.MALFORMED, f"proof of {key.hex()}: {exc}") from None
            proof_bytes += len(proof)
            entries.append((key, self._hex(item, "value", optional=True), p))
        header = certified.header
        changes: list[CertifiedHeader] = []
        if header.validators_hash != self.trust.validators.hash() and header.height > self.trust.height:
            changes = self._changes(self.trust.height, header.height)
        values, new_trust = verify_passport(self.trust, gtin, serial, certified, root, entries, changes,
                                            now_ms=self._now_ms(), trusting_period_ms=self.trusting_period_ms)
        self._witness(header)
        if new_trust != self.trust:
            self.trust = new_trust
            if self.state_path is not None:
                save_trust(self.state_path, new_trust)
        key = state_keys.product(state_keys.product_id(gtin, serial))
        return values, Verified(key=key, value=values.get(key), height=header.height, header_hash=header.hash(),
                                state_height=header.state_height, state_root=header.state_root, proof_bytes=proof_bytes,
                                answer_bytes=proof_bytes + sum(len(v or b"") for v in values.values()),
                                downloads=self.downloads - start)

    def quality(self, org: str) -> Verified:
        return self.verify_path(f"/v1/proofs/quality/{quote(org, safe='')}", state_keys.quality(org))


def trust_from_hash(node_url: str, genesis: Genesis, height: int, header_hash: bytes, *,
                    http: httpx.Client | None = None) -> TrustedState:
    """A trusted state from a header hash the user trusts (obtained out of band): fetch that
    header, check its hash, and take the set it names for the next height (the genesis set,
    or the set the node sends, checked against the header's `next_validators_hash`)."""
    c = http or httpx.Client(timeout=REQUEST_TIMEOUT_S)
    lc = LightClient(node_url, trust_from_genesis(genesis), http=c)
    try:
        doc = lc._get(c, f"{lc.node_url}/v1/headers/{height}")
    finally:
        if http is None:
            c.close()
    ch = lc._certified(doc)
    h = ch.header
    if h.hash() != header_hash or h.height != height or h.chain_id != genesis.chain_id:
        raise LightError(Reason.FORK, f"the node's header {height} is {h.hash().hex()[:16]}..., not the trusted hash")
    nxt: ValidatorSet | None = genesis.validators if genesis.validators.hash() == h.next_validators_hash else ch.next_validators
    if nxt is None or nxt.hash() != h.next_validators_hash:
        raise LightError(Reason.VALIDATORS_UNPROVEN, f"the set after header {height} is unknown")
    return TrustedState(chain_id=genesis.chain_id, genesis_hash=Hash32(genesis.hash()), height=Height(height),
                        header_hash=Hash32(header_hash), time_ms=h.time_ms, state_height=h.state_height, validators=nxt)
