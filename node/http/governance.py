"""Governance reads over HTTP: proposals, their votes and results, and the validator schedule.

Owns the JSON form of governance state (`proposal_json`, `validators_json`) and the routes
mounted in the node's API by `node.http.app`:

- ``GET /v1/governance/proposals[?status=S][&cursor=C&limit=N]``: ``{"status", "proposals":
  [proposal, ...], "next_cursor"}``, a page (`node.http.paging`), oldest first;
  ``status=open`` reads the open-proposal index (by deadline), any other status filters
  the full list (a page may then hold fewer than N; only a null ``next_cursor`` ends it).
- ``GET /v1/governance/proposals/{id}``: one proposal; 400 ``request.invalid`` for an id
  that is not 64 hex characters, 404 ``proposal.not_found`` for an unknown one.
- ``GET /v1/validators``: the adopted set, the schedule and the pending change.
- ``GET /v1/params``: the adopted ``consensus`` / ``vm`` / ``ledger`` parameters (JSON
  form of `ConsensusParams` / `VmParams` / `LedgerParams`).
- ``GET /v1/orgs/{org}``: a member organisation as the ledger has it now (name, roles,
  keys, since, removed); 404 ``org.not_found``.

Reads are of committed state only (what a light client can prove: keys ``gov/<id>``,
``meta/validators``, ``sched/<first height:8>``). Bytes are lowercase hex.
"""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from afterchain.node.http.errors import error
from afterchain.node.http.paging import PAGE_PARAMS, filtered_page, read_page
from afterchain.node.http.params import HEX32, ORG_ID, Param, enum_kind
from afterchain.node.http.ports import GovernanceReads
from afterchain.node.http.spec import ApiRoute, Err, Op, Resp
from afterchain.protocol import bodies as B
from afterchain.protocol.errors import ProtocolError
from afterchain.protocol.jsonform import to_json

__all__ = ["PROPOSAL_STATUSES", "governance_routes", "payload_json", "proposal_json", "validators_json"]

PROPOSAL_STATUSES = ("open", "adopted", "rejected", "expired", "failed")
STATUS_P = Param("status", "query", enum_kind(PROPOSAL_STATUSES, f"one of {', '.join(PROPOSAL_STATUSES)}"),
                 "only proposals in this status (open: from the open-proposal index)")
PROPOSAL_P = Param("proposal_id", "path", HEX32, "the proposal's id (the id of the event that made it)",
                   "a proposal id")
ORG_P = Param("org", "path", ORG_ID, "an organisation id", "an organisation id")


def payload_json(kind: str, payload: bytes) -> Any:
    """A proposal's change in JSON form (the org id for remove_member), or None if it does
    not parse (it always does for a stored proposal: it was validated when proposed)."""
    try:
        change = B.GovernancePropose(kind=kind, payload=payload, voting_period_ms=1).change()
    except ProtocolError:
        return None
    return change if isinstance(change, str) else to_json(change)


def proposal_json(led: GovernanceReads, proposal_id: bytes, p: dict[str, Any]) -> dict[str, Any]:
    """One proposal record as JSON; an open one also carries its live tally against the
    current validator set (``current``: yes, no, validators, yes_needed, no_needed)."""
    out: dict[str, Any] = {
        "id": proposal_id.hex(), "kind": p["kind"], "payload": payload_json(p["kind"], p["payload"]),
        "payload_hex": p["payload"].hex(), "by": p["by"], "by_key": _hex(p.get("by_key")),
        "created_ms": p["created"], "height": p.get("height"), "deadline_ms": p["deadline"],
        "yes": [v.hex() for v in p["yes"]], "no": [v.hex() for v in p["no"]],
        "status": p["status"], "result": p["result"], "decided_ms": p.get("decided"),
        "decided_height": p.get("decided_height"), "effective_height": p.get("effective_height"),
        "tally": None,
    }
    if p.get("tally") is not None:
        y, n, size = p["tally"]
        out["tally"] = {"yes": y, "no": n, "validators": size}
    if p["status"] == "open":
        vs = led.validators()
        size = vs.n
        out["current"] = {
            "yes": sum(1 for v in p["yes"] if v in vs), "no": sum(1 for v in p["no"] if v in vs), "validators": size,
            "yes_needed": 2 * size // 3 + 1, "no_needed": -(-size // 3),
        }
    return out


def _hex(v: Any) -> Any:
    return v.hex() if isinstance(v, bytes) else v


def validators_json(led: GovernanceReads) -> dict[str, Any]:
    """The adopted set (votes on proposals count against it), the schedule (the set voting
    from each first height, with its consensus parameters) and the change the next
    checkpoint boundary will schedule, if any."""
    current = led.validators()
    sched = led.consensus_schedule()
    pending = led.pending_schedule_entry()
    return {
        "height": led.height,
        "adopted": {"validators": [v.hex() for v in current.validators], "hash": current.hash().hex()},
        "voting_next": _set_json(led.validators_for(led.height + 1)),
        "schedule": [
            {"first_height": first, **(_set_json(vs) or {}), "consensus": to_json(cp)}
            for (first, vs), (_, cp) in zip(led.validator_schedule(), sched, strict=True)
        ],
        "pending": None if pending is None else {
            "first_height": pending[0], **(_set_json(pending[1]) or {}), "consensus": to_json(pending[2]),
        },
    }


def _set_json(vs: Any) -> dict[str, Any] | None:
    return None if vs is None else {"validators": [v.hex() for v in vs.validators], "hash": vs.hash().hex()}


def governance_routes(led: GovernanceReads) -> list[ApiRoute]:
    async def proposals(request: Request) -> Response:
        status = STATUS_P.read(request)
        page = read_page(request)

        def fetch(after: bytes | None, n: int) -> list[tuple[bytes, tuple[bytes, bytes]]]:
            return [(pos, (pos, pid)) for pos, pid in led.proposal_page(open_only=status == "open", limit=n, after=after)]

        def keep(row: tuple[bytes, bytes]) -> dict[str, Any] | None:
            p = led.proposal(row[1])
            if p is None or (status is not None and p["status"] != status):
                return None
            return proposal_json(led, row[1], p)

        out, nxt = filtered_page(page, fetch, keep)
        return JSONResponse({"status": status, "proposals": out, "next_cursor": nxt})

    async def proposal(request: Request) -> Response:
        pid = PROPOSAL_P.read(request)
        p = led.proposal(pid)
        if p is None:
            return error(404, "proposal.not_found", "no such proposal")
        return JSONResponse(proposal_json(led, pid, p))

    async def validators(request: Request) -> Response:
        return JSONResponse(validators_json(led))

    async def params(request: Request) -> Response:
        consensus, vm, ledger = led.current_params()
        return JSONResponse({"height": led.height, "consensus": to_json(consensus), "vm": to_json(vm),
                             "ledger": to_json(ledger)})

    async def org(request: Request) -> Response:
        org_id = ORG_P.read(request)
        o = led.org(org_id)
        if o is None:
            return error(404, "org.not_found", f"no organisation {org_id!r}")
        return JSONResponse({"org_id": org_id, "name": o["name"], "roles": o["roles"], "keys": [k.hex() for k in o["keys"]],
                             "since_ms": o.get("since"), "removed_ms": o.get("removed")})

    return [
        ApiRoute("/v1/governance/proposals", proposals, Op(
            "Governance proposals", "governance",
            {200: Resp("a page of proposals, oldest first (status=open: by deadline)", "$ref:Proposals")},
            params=(STATUS_P, *PAGE_PARAMS))),
        ApiRoute("/v1/governance/proposals/{proposal_id}", proposal, Op(
            "A proposal, its votes and result", "governance",
            {200: Resp("the proposal (an open one with its live tally)", "$ref:Proposal"),
             404: Err("no such proposal", ("proposal.not_found",))}, params=(PROPOSAL_P,))),
        ApiRoute("/v1/validators", validators, Op(
            "The validator set and schedule", "governance",
            {200: Resp("the adopted set, the schedule and the pending change", "$ref:Validators")})),
        ApiRoute("/v1/params", params, Op(
            "The adopted parameters", "governance",
            {200: Resp("consensus, VM and ledger parameters", "$ref:Params")})),
        ApiRoute("/v1/orgs/{org}", org, Op(
            "A member organisation", "governance",
            {200: Resp("name, roles, keys, since and removed", "$ref:Org"),
             404: Err("no such organisation", ("org.not_found",))}, params=(ORG_P,))),
    ]
