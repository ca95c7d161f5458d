"""`afterchain gov ...` against the shared 4-node test cluster: propose, vote with node keys,
show proposals and the validator schedule (the HTTP routes behind them included).

The cluster is shared by the client tests: nothing here adopts a validator or consensus
change (a change of the voting set would need the nodes to follow it)."""

from __future__ import annotations

from pathlib import Path

import httpx

from afterchain.node.common.keys import write_key

from .cluster import Cluster, seeded
from .conftest import Cli

DAY_MS = 86_400_000


def val_key(cluster: Cluster, i: int) -> str:
    p = Path(cluster.root) / "keys" / f"val{i}.key"
    if not p.exists():
        write_key(p, seeded(f"val{i}"))
    return str(p)


def test_policy_standard_proposed_voted_by_validators_and_shown(run: Cli, cluster: Cluster) -> None:
    r = run("gov", "propose", "policy", "--default-return-window", "29d", "--voting-period", "1h", "--json", key="acme").json()
    assert r["status"] == "committed" and r["proposal_status"] == "open"
    pid = r["proposal_id"]
    run.rejected("permission.not_validator", "gov", "vote", pid, "yes", key="acme")  # members do not vote
    assert run("gov", "vote", pid, "yes", "--json", key=val_key(cluster, 0)).json()["proposal_status"] == "open"
    run.rejected("governance.voted", "gov", "vote", pid, "no", key=val_key(cluster, 0))
    run("gov", "vote", pid, "yes", key=val_key(cluster, 1))
    r = run("gov", "vote", pid, "yes", "--json", key=val_key(cluster, 2)).json()
    assert r["proposal_status"] == "adopted" and r["proposal_result"] == "policy standard from block " + str(r["height"] + 1)
    shown = run("gov", "show", pid, "--json").json()
    assert shown["status"] == "adopted" and shown["payload"]["default_return_window_ms"] == 29 * DAY_MS
    assert shown["tally"] == {"yes": 3, "no": 0, "validators": 4} and len(shown["yes"]) == 3
    assert "adopted" in run("gov", "show", pid).out
    assert pid in [p["id"] for p in run("gov", "show", "--status", "adopted", "--json").json()]
    assert run("governance", "show", "--json").json()  # the old group name still works
    params = httpx.get(cluster.urls[0] + "/v1/params").json()
    assert params["ledger"]["default_return_window_ms"] == 29 * DAY_MS


def test_validator_change_rejected_and_the_schedule_unchanged(run: Cli, cluster: Cluster) -> None:
    before = run("gov", "show", "--validators", "--json").json()
    newkey = seeded("val-new").public.hex()
    r = run("gov", "propose", "add-validator", newkey, "--json", key=val_key(cluster, 3)).json()
    pid = r["proposal_id"]
    shown = run("gov", "show", pid, "--json").json()
    assert shown["payload"]["validators"] == [*before["adopted"]["validators"], newkey] and shown["by"] is None
    assert shown["current"] == {"yes": 0, "no": 0, "validators": 4, "yes_needed": 3, "no_needed": 2}
    assert pid in [p["id"] for p in run("gov", "show", "--status", "open", "--json").json()]
    run("gov", "vote", pid, "no", key=val_key(cluster, 1))
    r = run("gov", "vote", pid, "no", "--json", key=val_key(cluster, 2)).json()
    assert r["proposal_status"] == "rejected"
    run.rejected("governance.closed", "gov", "vote", pid, "yes", key=val_key(cluster, 0))
    after = run("gov", "show", "--validators", "--json").json()
    assert after["adopted"] == before["adopted"] and after["pending"] is None and len(after["schedule"]) == 1
    assert "pending: none" in run("gov", "show", "--validators").out
    # the CLI refuses what cannot be a change before signing anything
    run("gov", "propose", "add-validator", before["adopted"]["validators"][0], key="acme", expect=2)
    run("gov", "propose", "remove-validator", newkey, key="acme", expect=2)
    r = run("gov", "propose", "remove-validator", before["adopted"]["validators"][0], "--no-wait", "-q", key="acme")
    assert len(r.id) == 64


def test_member_and_parameter_proposals(run: Cli, cluster: Cluster) -> None:
    newco = seeded("newco-gov").public.hex()
    r = run("gov", "propose", "admit-member", "--org", "newco", "--name", "New Co", "--roles", "retailer,logistics",
            "--member-key", newco, "--json", key="shopmart").json()
    pid = r["proposal_id"]
    for i in (0, 1, 2):
        run("gov", "vote", pid, "yes", key=val_key(cluster, i))
    org = httpx.get(cluster.urls[1] + "/v1/orgs/newco").json()
    assert org["roles"] == ["logistics", "retailer"] and org["keys"] == [newco]
    assert "newco" in [o["org_id"] for o in httpx.get(cluster.urls[1] + "/v1/orgs").json()["orgs"]]
    # set-roles keeps the keys it reads from the node
    pid = run("gov", "propose", "set-roles", "newco", "retailer", "-q", key="acme").id
    assert run("gov", "show", pid, "--json").json()["payload"] == {"org_id": "newco", "roles": ["retailer"], "keys": [newco]}
    pid = run("gov", "propose", "remove-member", "newco", "-q", key="acme").id
    assert run("gov", "show", pid, "--json").json()["payload"] == "newco"
    # parameters: the named ones change, the others are the current ones
    cur = httpx.get(cluster.urls[0] + "/v1/params").json()
    pid = run("gov", "propose", "params", "--consensus", "view_timeout_ms=3s", "--vm", "max_gas_per_call=123456",
              "-q", key="acme").id
    payload = run("gov", "show", pid, "--json").json()["payload"]
    assert payload["consensus"] == {**cur["consensus"], "view_timeout_ms": 3000}
    assert payload["vm"] == {**cur["vm"], "max_gas_per_call": 123456}
    run.rejected("governance.invalid", "gov", "propose", "params", "--consensus", "checkpoint_interval=5", key="acme")
    run.rejected("governance.invalid", "gov", "propose", "params", "--vm",
                 f"max_gas_per_call={cur['vm']['max_gas_per_call']}", key="acme")
    # usage errors: exit 2, nothing signed
    run("gov", "propose", "policy", key="acme", expect=2)
    run("gov", "propose", "policy", "--default-return-window", "5x", key="acme", expect=2)
    run("gov", "propose", "params", "--consensus", "nope=1", key="acme", expect=2)
    run("gov", "propose", "set-roles", "newco", "wizard", key="acme", expect=2)
    run("gov", "vote", "zz", "yes", key="acme", expect=2)
    run("gov", "show", "ab" * 32, expect=1)
