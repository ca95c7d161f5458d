"""The governance HTTP routes over a ledger driven by the ledger tests' world."""

from __future__ import annotations

import httpx
from starlette.applications import Starlette

from afterchain.node.app.ledger import Ledger
from afterchain.node.http.governance import governance_routes
from afterchain.protocol import bodies as B
from afterchain.protocol.codec import encode
from afterchain.protocol.genesis import LedgerParams
from afterchain.protocol.types import Hash32

from ..ledger.test_governance import GENESIS_SET, K, propose, val, vote, vset
from ..ledger.world import DAY, HOUR, World, make_genesis


def client(led: Ledger) -> httpx.AsyncClient:
    app = Starlette(routes=governance_routes(led))
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://node")


async def test_proposals_votes_results_and_the_schedule() -> None:
    w = World(Ledger.open(None, make_genesis()))
    grow = vset(0, 1, 2, 3, 4)
    p1 = propose(w, "acme", "validator_change", encode(grow))
    std = LedgerParams(auto_close_delay_ms=DAY, default_return_window_ms=HOUR, max_deadlines_per_block=10)
    p2 = propose(w, val(1), "policy_standard", encode(std), period_ms=HOUR)
    p3 = propose(w, "shop", "remove_member", b"audit")
    vote(w, 0, p1)
    vote(w, 1, p1, approve=False)
    async with client(w.led) as c:
        r = (await c.get(f"/v1/governance/proposals/{p1.hex()}")).json()
        assert r["kind"] == "validator_change" and r["status"] == "open" and r["by"] == "acme"
        assert r["payload"] == {"validators": [v.hex() for v in grow.validators]}
        assert r["yes"] == [val(0).public.hex()] and r["no"] == [val(1).public.hex()]
        assert r["current"] == {"yes": 1, "no": 1, "validators": 4, "yes_needed": 3, "no_needed": 2}
        assert r["deadline_ms"] == r["created_ms"] + DAY and r["tally"] is None
        r = (await c.get(f"/v1/governance/proposals/{p2.hex()}")).json()
        assert r["payload"]["default_return_window_ms"] == HOUR and r["by"] is None and r["by_key"] == val(1).public.hex()
        assert (await c.get(f"/v1/governance/proposals/{p3.hex()}")).json()["payload"] == "audit"
        vote(w, 2, p1)
        assert vote(w, 3, p1) == "adopted"
        w.block(advance_ms=2 * HOUR)  # p2 expires
        r = (await c.get(f"/v1/governance/proposals/{p1.hex()}")).json()
        assert r["status"] == "adopted" and r["tally"] == {"yes": 3, "no": 1, "validators": 4} and "current" not in r
        assert r["effective_height"] == 2 * K + 1 and r["result"] == f"validators from height {2 * K + 1}"
        assert (await c.get(f"/v1/governance/proposals/{p2.hex()}")).json()["status"] == "expired"
        listed = (await c.get("/v1/governance/proposals")).json()["proposals"]
        assert [p["id"] for p in listed] == [p1.hex(), p2.hex(), p3.hex()]
        assert [p["id"] for p in (await c.get("/v1/governance/proposals?status=open")).json()["proposals"]] == [p3.hex()]
        assert [p["id"] for p in (await c.get("/v1/governance/proposals?status=expired")).json()["proposals"]] == [p2.hex()]
        # the validator schedule: adopted now, scheduled at the next boundary
        v = (await c.get("/v1/validators")).json()
        assert v["adopted"]["validators"] == [k.hex() for k in grow.validators] and v["adopted"]["hash"] == grow.hash().hex()
        assert v["voting_next"]["hash"] == GENESIS_SET.hash().hex()
        assert [e["first_height"] for e in v["schedule"]] == [1]
        assert v["pending"]["first_height"] == 2 * K + 1 and v["pending"]["hash"] == grow.hash().hex()
        while w.led.height < K:
            w.block()
        v = (await c.get("/v1/validators")).json()
        assert v["pending"] is None and [(e["first_height"], e["hash"]) for e in v["schedule"]] == [
            (1, GENESIS_SET.hash().hex()), (2 * K + 1, grow.hash().hex())]
        assert v["schedule"][1]["consensus"]["checkpoint_interval"] == K
        # errors
        r = await c.get("/v1/governance/proposals/zz")
        assert r.status_code == 400 and r.json()["error"]["code"] == "request.invalid"
        r = await c.get("/v1/governance/proposals/" + "ab" * 32)
        assert r.status_code == 404 and r.json()["error"]["code"] == "proposal.not_found"
        r = await c.get("/v1/governance/proposals?status=maybe")
        assert r.status_code == 400
    assert w.one("acme", B.GovernanceVote(proposal_id=Hash32(p3), approve=True)).code == "permission.not_validator"
