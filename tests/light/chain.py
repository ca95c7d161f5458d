"""A hand-built certified chain over a real in-memory ledger, served by the real proof routes.

`FakeChain` executes ledger blocks (through `tests.ledger.world.World`) and seals headers
whose ``state_root`` is the ledger's root, signed by whichever validator set it is told
(so tests can change sets, sign with too few or foreign keys, or equivocate). `app()` is
the node's real `node.proofs_api.proof_routes` over a duck-typed node, and `http()` an
httpx client talking to it in-process (optionally through a `forge` function that
rewrites the JSON of each answer: the malicious node).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import httpx
import trio
from starlette.applications import Starlette

from afterchain.node.app.ledger import Ledger
from afterchain.node.http.proofs import proof_routes
from afterchain.protocol import bodies as B
from afterchain.protocol.block import ZERO_HASH, Block, BlockHeader, Commit, CommitCertificate, CommitSig, ValidatorSet
from afterchain.protocol.crypto import Domain, KeyPair
from afterchain.protocol.light import TrustedState, genesis_trust
from afterchain.protocol.merkle import merkle_root
from afterchain.protocol.types import Hash32, Height, Seq, Signature, ValidatorId, View
from tests.ledger.world import CHAIN, T0, World, cust, key, make_genesis

BASE = "http://node.test"
HOUR_MS = 3_600_000

Forge = Callable[[str, dict[str, Any]], dict[str, Any]]


def vset(keys: Sequence[KeyPair]) -> ValidatorSet:
    return ValidatorSet(validators=tuple(ValidatorId(k.public) for k in keys))


def certify(header: BlockHeader, signers: Sequence[KeyPair], *, chain_id: str | None = None, view: int = 0) -> CommitCertificate:
    hh = Hash32(header.hash())
    sigs = []
    for k in signers:
        vote = Commit(view=View(view), seq=Seq(header.height), digest=hh, replica=ValidatorId(k.public))
        sigs.append(CommitSig(replica=ValidatorId(k.public), signature=Signature(k.sign(Domain.COMMIT, chain_id or header.chain_id, vote))))
    return CommitCertificate(view=View(view), height=header.height, header_hash=hh, signatures=tuple(sigs))


@dataclass
class _Store:
    blocks: dict[int, bytes] = field(default_factory=dict)
    certs: dict[int, CommitCertificate] = field(default_factory=dict)
    head: int = 0

    def block_bytes(self, height: int) -> bytes | None:
        return self.blocks.get(height)

    def certificate(self, height: int) -> CommitCertificate | None:
        return self.certs.get(height)


class FakeChain:
    def __init__(self) -> None:
        self.genesis = make_genesis()
        self.ledger = Ledger.open(None, self.genesis)
        self.world = World(self.ledger)
        self.store = _Store()
        self.validators = [key(f"val{i}") for i in range(4)]
        self.next_validators: list[KeyPair] | None = None
        self.sets: dict[bytes, ValidatorSet] = {}
        self._remember(self.validators)
        self.headers: dict[int, BlockHeader] = {}

    def _remember(self, keys: Sequence[KeyPair]) -> None:
        s = vset(keys)
        self.sets[s.hash()] = s

    @property
    def time_ms(self) -> int:
        return self.world.time_ms

    def trust(self) -> TrustedState:
        g = self.genesis
        return genesis_trust(g.chain_id, g.hash(), g.genesis_time_ms, g.validators)

    def make_header(self, height: int, *, chain_id: str = CHAIN, next_keys: Sequence[KeyPair] | None = None,
                    time_ms: int | None = None, state_height: int | None = None) -> BlockHeader:
        sh = self.ledger.height if state_height is None else state_height
        root = self.ledger.root_at(sh)
        cur = vset(self.validators).hash()
        nxt = vset(next_keys).hash() if next_keys is not None else cur
        prev = self.headers[height - 1].hash() if height - 1 in self.headers else ZERO_HASH
        return BlockHeader(chain_id=chain_id, height=Height(height), view=View(0), time_ms=time_ms or self.time_ms + 1,
                           prev_hash=Hash32(prev), events_root=Hash32(merkle_root([])), event_count=0,
                           state_height=Height(sh), state_root=Hash32(root or ZERO_HASH), validators_hash=Hash32(cur),
                           next_validators_hash=Hash32(nxt), proposer=ValidatorId(self.validators[0].public))

    def seal(self, *, next_keys: Sequence[KeyPair] | None = None, signers: Sequence[KeyPair] | None = None) -> BlockHeader:
        """Commit the next header (state = the ledger now); `next_keys` announces a set change."""
        height = max(self.store.head, self.ledger.height) + 1
        header = self.make_header(height, next_keys=next_keys)
        self.put(header, certify(header, self.validators if signers is None else signers))
        if next_keys is not None:
            self._remember(next_keys)
            self.validators = list(next_keys)
        return header

    def put(self, header: BlockHeader, cert: CommitCertificate) -> None:
        self.headers[header.height] = header
        self.store.blocks[header.height] = Block(header=header, events=()).encode()
        self.store.certs[header.height] = cert
        self.store.head = max(self.store.head, header.height)

    def step(self, *, next_keys: Sequence[KeyPair] | None = None) -> BlockHeader:
        """An empty ledger block, then a sealed header over it."""
        self.world.block()
        return self.seal(next_keys=next_keys)

    def with_ticket(self) -> bytes:
        """A sold product with a warranty and an open ticket; headers sealed along the way."""
        alice = cust()
        self.world.sold_with_warranty(alice)
        self.seal()
        tid = self.world.open_ticket(alice)
        self.seal()
        self.world.ok("fixit", B.TicketAck(ticket_id=Hash32(tid), note_hash=None))
        self.seal()
        return tid

    # ---- serving

    def app(self) -> Starlette:
        return Starlette(routes=proof_routes(self, known_sets=self.sets))  # type: ignore[arg-type]

    def http(self, forge: Forge | None = None) -> httpx.Client:
        """An httpx client whose requests this chain's proof routes answer (through `forge`)."""
        transport = httpx.ASGITransport(app=self.app())

        async def call(request: httpx.Request) -> tuple[int, bytes]:
            async with httpx.AsyncClient(transport=transport, base_url=BASE) as c:
                r = await c.get(request.url.raw_path.decode())
                return r.status_code, r.content

        def handler(request: httpx.Request) -> httpx.Response:
            status, content = trio.run(call, request)
            if status != 200 or forge is None:
                return httpx.Response(status, content=content, headers={"content-type": "application/json"})
            return httpx.Response(200, json=forge(request.url.raw_path.decode(), json.loads(content)))

        return httpx.Client(transport=httpx.MockTransport(handler), base_url=BASE)


NOW_MS = T0 + HOUR_MS
"""A `now` for tests: an hour after genesis (the chain's blocks are seconds apart)."""
