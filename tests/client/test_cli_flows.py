"""Every DOMAIN.md flow driven through the `afterchain` subcommands against 4 real nodes,
including refused actions (wrong role, wrong state, replayed nonce) and their exit codes."""

from __future__ import annotations

from .cluster import Cluster
from .conftest import Cli

GTIN = "00012345600012"
Q = "-q"


def sold(run: Cli, cluster: Cluster, serial: str, customer: str, *, policy: bool = True) -> str | None:
    """Register SERIAL (acme), move it to shopmart, sell it to `customer`, activate a warranty."""
    _, ckey = cluster.customer(customer)
    run("product", "register", GTIN, serial, "--model", "Kettle 2000", "--batch", "B1", key="acme")
    run("product", "transfer", GTIN, serial, "--to-org", "shopmart", key="acme")
    run("product", "sell", GTIN, serial, "--to-customer", ckey, "--order", f"order-{serial}", key="shopmart")
    if not policy:
        return None
    pid = run(
        "policy",
        "register",
        "--name",
        "Standard",
        "--service-org",
        "fixit",
        "--coverage-days",
        "365",
        "--fault",
        "no_power",
        "--fault",
        "leaks",
        "--first-response-hours",
        "4",
        "--resolution-hours",
        "72",
        "--penalty",
        "500",
        "--return-days",
        "10",
        Q,
        key="acme",
    ).id
    run("warranty", "activate", GTIN, serial, "--policy", pid, key="shopmart")
    return pid


def test_product_registration_sale_and_history(run: Cli, cluster: Cluster) -> None:
    _, alice = cluster.customer("alice")
    r = run("product", "register", GTIN, "P1", "--model", "Kettle 2000", "--batch", "B1", "--json", key="acme")
    assert r.json()["status"] == "committed" and r.json()["type"] == "product.register" and r.json()["height"] >= 1
    run.rejected("product.exists", "product", "register", GTIN, "P1", "--model", "K", "--batch", "B1", key="acme")
    run.rejected("permission.role", "product", "register", GTIN, "P2", "--model", "K", "--batch", "B1", key="shopmart")
    run(
        "product",
        "trace",
        GTIN,
        "P1",
        "--step",
        "shipping",
        "--disposition",
        "in_transit",
        "--location",
        "plant 7",
        key="acme",
    )
    run.rejected(
        "permission.not_owner", "product", "sell", GTIN, "P1", "--to-customer", alice, "--order", "o1", key="shopmart"
    )
    run("product", "transfer", GTIN, "P1", "--to-org", "shopmart", key="acme")
    out = run("product", "sell", GTIN, "P1", "--to-customer", alice, "--order", "o1", key="shopmart").out
    assert "committed" in out and "product.transfer" in out
    p = run("product", "show", GTIN, "P1", "--json").json()
    assert p["owner"].startswith("cust:") and p["seller"] == "shopmart" and p["disp"] == "retail_sold"
    hist = run("product", "history", GTIN, "P1", "--json").json()["history"]
    assert [e[0] for e in hist] == ["register", "trace", "transfer", "sale"]
    table = run("product", "history", GTIN, "P1").out
    assert "history of" in table and "sale" in table and "trace" in table
    run("product", "show", GTIN, "NOPE", "--json", expect=1)
    # a recall stops sales of the batch
    run("product", "register", GTIN, "P3", "--model", "K", "--batch", "B9", key="acme")
    run("product", "recall", GTIN, "B9", "--reason", "overheats", key="acme")
    run.rejected("product.recalled", "product", "sell", GTIN, "P3", "--to-customer", alice, "--order", "o3", key="acme")


def test_warranty_activation_rules(run: Cli, cluster: Cluster) -> None:
    pid = sold(run, cluster, "W1", "bob")
    assert pid is not None and len(pid) == 64
    run.rejected("warranty.active", "warranty", "activate", GTIN, "W1", "--policy", pid, key="shopmart")
    run("product", "register", GTIN, "W2", "--model", "K", "--batch", "B1", key="acme")
    run.rejected("product.not_sold", "warranty", "activate", GTIN, "W2", "--policy", pid, key="acme")
    run.rejected("policy.unknown", "warranty", "activate", GTIN, "W1", "--policy", "ab" * 32, key="shopmart")


def test_repair_ticket_to_close_and_rating(run: Cli, cluster: Cluster) -> None:
    _, carol = cluster.customer("carol")
    sold(run, cluster, "R1", "carol")
    t = run(
        "ticket", "open", GTIN, "R1", "--kind", "repair", "--fault", "no_power", "--description", "dead", Q, key=carol
    ).id
    assert run("ticket", "show", t, "--json").json()["status"] == "opened"
    # wrong role: a customer cannot acknowledge, another company cannot work the ticket
    run.rejected("permission.not_member", "ticket", "ack", t, key=carol)
    run.rejected("permission.not_assigned", "ticket", "ack", t, key="shopmart")
    # wrong state: nothing to confirm yet
    run.rejected("ticket.transition", "ticket", "confirm", t, key=carol)
    run("ticket", "ack", t, "--note", "on it", key="fixit")
    shown = run("ticket", "show", t).out
    assert "acknowledged" in shown and "history" in shown
    run("ticket", "update", t, "--status", "waiting_customer", "--note", "serial photo?", key="fixit")
    run("ticket", "update", t, "--status", "in_progress", "--note", "sent", key=carol)
    run("ticket", "resolve", t, "--resolution", "repaired", "--details", "new heating element", key="fixit")
    run.rejected("rating.not_closed", "ticket", "rate", t, "4", key=carol)
    run("ticket", "confirm", t, key=carol)
    run.rejected("permission.not_customer", "ticket", "rate", t, "5", key="fixit")
    run("ticket", "rate", t, "4", "--comment", "quick", key=carol)
    run.rejected("rating.exists", "ticket", "rate", t, "5", key=carol)
    doc = run("ticket", "show", t, "--json").json()
    assert doc["status"] == "closed" and doc["rating"] is not None
    assert [h[0] for h in doc["hist"]] == [
        "opened",
        "acknowledged",
        "waiting_customer",
        "in_progress",
        "resolved",
        "closed",
    ]
    q = run("org", "quality", "fixit", "--json").json()
    assert q["ratings"] >= 1 and q["resolved"] >= 1 and q["first_responses"] >= 1
    assert "service quality of fixit" in run("org", "quality", "fixit").out
    assert t in run("ticket", "list", "--org", "fixit", "--status", "closed", "--json").json()["tickets"]
    assert t in run("ticket", "list", "--customer", carol, "--json").json()["tickets"]
    assert t[:16] in run("ticket", "list", "--customer", carol).out
    run("ticket", "list", expect=2)  # neither --org nor --customer
    # reopen: resolved, the customer is not satisfied, resolved again
    t2 = run("ticket", "open", GTIN, "R1", "--fault", "leaks", Q, key=carol).id
    run("ticket", "ack", t2, key="fixit")
    run("ticket", "resolve", t2, "--resolution", "advice", key="fixit")
    run("ticket", "reopen", t2, "--reason", "still leaks", key=carol)
    run("ticket", "resolve", t2, "--resolution", "replaced", key="fixit")
    run("ticket", "confirm", t2, key=carol)
    assert run("ticket", "show", t2, "--json").json()["status"] == "closed"


def test_complaint_escalation_assignment_rejection_and_withdrawal(run: Cli, cluster: Cluster) -> None:
    _, dave = cluster.customer("dave")
    sold(run, cluster, "C1", "dave")
    c = run(
        "ticket", "open", GTIN, "C1", "--kind", "complaint", "--fault", "rude_staff", "--description", "x", Q, key=dave
    ).id
    run.rejected("permission.not_customer", "ticket", "escalate", c, "--reason", "ignored", key="fixit")
    run("ticket", "escalate", c, "--reason", "nobody answers", key=dave)
    assert run("ticket", "show", c, "--json").json()["status"] == "escalated"
    run.rejected("org.wrong_role", "ticket", "assign", c, "quickship", key="fixit")
    run("ticket", "assign", c, "acme", key="fixit")  # the policy owner takes it over
    assert run("ticket", "show", c, "--json").json()["org"] == "acme"
    run("ticket", "update", c, "--status", "in_progress", key="acme")
    run("ticket", "resolve", c, "--resolution", "other", "--details", "apology and voucher", key="acme")
    run("ticket", "confirm", c, key=dave)
    # a claim the service organisation refuses
    r = run("ticket", "open", GTIN, "C1", "--fault", "no_power", Q, key=dave).id
    run("ticket", "reject", r, "--reason-code", "warranty_void", "--reason", "opened by user", key="fixit")
    doc = run("ticket", "show", r, "--json").json()
    assert doc["status"] == "rejected" and doc["reason"] == "warranty_void"
    # an uncovered fault is refused by the policy itself at opening
    nc = run("ticket", "open", GTIN, "C1", "--fault", "scratch", Q, key=dave).id
    assert run("ticket", "show", nc, "--json").json()["reason"] == "fault_not_covered"
    # the customer withdraws an inquiry
    i = run("ticket", "open", GTIN, "C1", "--kind", "inquiry", "--fault", "manual", Q, key=dave).id
    run("ticket", "close", i, key=dave)
    run.rejected("ticket.transition", "ticket", "close", i, key=dave)


def test_return_with_escrow_refund(run: Cli, cluster: Cluster) -> None:
    erin_kp, erin = cluster.customer("erin")
    sold(run, cluster, "X1", "erin")
    run.rejected(
        "permission.not_customer", "return", "request", GTIN, "X1", "--reason-code", "changed_mind", key="shopmart"
    )
    t = run("return", "request", GTIN, "X1", "--reason-code", "changed_mind", "--reason", "too big", Q, key=erin).id
    e = run(
        "escrow",
        "deposit",
        "--amount",
        "30000",
        "--payee-customer",
        erin,
        "--ticket",
        t,
        "--ref",
        "order-X1",
        Q,
        key="shopmart",
    ).id
    run.rejected("escrow.bound", "escrow", "release", e, key="shopmart")
    run.rejected(
        "ticket.transition",
        "shipment",
        "checkpoint",
        t,
        "--checkpoint",
        "picked_up",
        "--location",
        "depot",
        key="quickship",
    )
    run.rejected("permission.not_assigned", "return", "approve", t, key="shopmart")
    run("return", "approve", t, key="fixit")
    run.rejected(
        "permission.role", "shipment", "checkpoint", t, "--checkpoint", "picked_up", "--location", "x", key="fixit"
    )
    run(
        "shipment",
        "checkpoint",
        t,
        "--checkpoint",
        "picked_up",
        "--location",
        "erin's door",
        "--tracking",
        "QS1",
        key="quickship",
    )
    run("shipment", "checkpoint", t, "--checkpoint", "delivered", "--location", "fixit depot", key="quickship")
    run("return", "receive", t, "--condition", "used", "--inspection", "fine", key="fixit")
    doc = run("ticket", "show", t, "--json").json()
    assert doc["status"] == "refunded" and doc["carrier"] == "quickship"
    assert [h[0] for h in doc["hist"]] == [
        "return_requested",
        "return_approved",
        "shipped_back",
        "received",
        "refunded",
    ]
    assert run("escrow", "show", e, "--json").json()["state"] == "released"
    assert run("org", "balance", erin, "--json").json()["balance"] == 30_000
    acct = run("account", "show", "--key", erin, "--json").json()
    assert acct["key"] == erin_kp.public.hex() and acct["balance"] == 30_000 and acct["nonce"] >= 1
    run("ticket", "rate", t, "5", key=erin)


def test_return_refused(run: Cli, cluster: Cluster) -> None:
    _, fred = cluster.customer("fred")
    sold(run, cluster, "X2", "fred")
    t = run("return", "request", GTIN, "X2", "--reason-code", "broken", Q, key=fred).id
    run.rejected("ticket.kind", "ticket", "ack", t, key="fixit")
    run("return", "reject", t, "--reason-code", "not_eligible", key="fixit")
    assert run("ticket", "show", t, "--json").json()["status"] == "return_rejected"
    run.rejected("ticket.transition", "return", "approve", t, key="fixit")


def test_escrow_release_and_refund(run: Cli, cluster: Cluster) -> None:
    before = run("org", "balance", "shopmart", "--json").json()["balance"]
    e1 = run("escrow", "deposit", "--amount", "700", "--payee-org", "shopmart", "--ref", "po-1", Q, key="acme").id
    e2 = run("escrow", "deposit", "--amount", "300", "--payee-org", "shopmart", Q, key="acme").id
    assert run("escrow", "show", e1, "--json").json()["state"] == "held"
    run.rejected("permission.not_party", "escrow", "release", e1, key="shopmart")
    run.rejected("permission.not_party", "escrow", "refund", e1, key="acme")
    run("escrow", "release", e1, key="acme")
    run("escrow", "refund", e2, key="shopmart")
    run.rejected("escrow.not_held", "escrow", "release", e1, key="acme")
    assert run("escrow", "show", e2, "--json").json()["state"] == "refunded"
    assert run("org", "balance", "shopmart", "--json").json()["balance"] == before + 700
    _, gina = cluster.customer("gina")
    run.rejected("escrow.insufficient_funds", "escrow", "deposit", "--amount", "5", "--payee-org", "acme", key=gina)
    run.rejected("escrow.unknown", "escrow", "release", "cd" * 32, key="acme")


def test_replayed_nonce_is_rejected(run: Cli, cluster: Cluster, tmp_path) -> None:  # type: ignore[no-untyped-def]
    from afterchain.node.client import Client

    run("product", "register", GTIN, "N0", "--model", "K", "--batch", "B1", key="acme")
    n = run("account", "show", "--key", cluster.key_file("acme"), "--json").json()["nonce"]
    r = run(
        "product",
        "register",
        GTIN,
        "N1",
        "--model",
        "K",
        "--batch",
        "B1",
        "--nonce",
        str(n),
        "--json",
        key="acme",
        expect=1,
    )
    assert r.json()["code"] == "nonce.replayed" and "nonce.replayed" in r.err
    # the very same signed event submitted again is harmless (idempotent): it is already committed
    with Client(cluster.urls, key=cluster.key_file("acme")) as c:
        ev = c.build.product_register(gtin=GTIN, serial="N2", model="K", batch="B1", production_time_ms=0)
        c.send(ev)
        replay = c.sign(ev.event.body, nonce=ev.event.nonce, time_ms=1)  # same nonce, another event
    f = tmp_path / "ev.hex"
    f.write_text(ev.encode().hex())
    assert run("event", "submit", str(f), "--json").json()["status"] == "committed"
    # another event under a used nonce is a replay
    f.write_bytes(replay.encode())
    run.rejected("nonce.replayed", "event", "submit", str(f))
    # and the client recovers: the next command learns the nonce again
    run("product", "register", GTIN, "N3", "--model", "K", "--batch", "B1", key="acme")


def test_usage_unreachable_timeout_and_failover(run: Cli, cluster: Cluster) -> None:
    from afterchain.node.tools.localnet import free_ports

    dead = [f"http://127.0.0.1:{p}" for p in free_ports(2)]
    r = run("ticket", "show", "ab" * 32, "--json", nodes=dead, expect=3)
    assert r.json()["status"] == "unreachable"
    # a dead node first in the list: the next one answers
    run("product", "register", GTIN, "F1", "--model", "K", "--batch", "B1", key="acme", nodes=[dead[0], *cluster.urls])
    run("event", "wait", "ef" * 32, "--timeout", "0.3", expect=4)
    run("product", "register", GTIN, "F2", "--model", "K", "--batch", "B1", expect=2)  # no key
    r = run("product", "register", "12345678901234", "F3", "--model", "K", "--batch", "B1", key="acme", expect=2)
    assert "gtin" in r.err.lower()
    run("ticket", "ack", "nothex", key="fixit", expect=2)
    run("ticket", "rate", "ab" * 32, "9", key="fixit", expect=2)  # click: score out of range
    run.rejected("ticket.unknown", "ticket", "ack", "ab" * 32, key="fixit")
    run("ticket", "show", "ab" * 32, expect=1)
    assert "ticket" in run("--help", nodes=[]).out
    for group in ("product", "ticket", "return", "escrow", "org"):
        assert "Usage" in run(group, "--help", nodes=[]).out


def test_service_agreement_contract_and_event_commands(run: Cli, cluster: Cluster) -> None:
    from pathlib import Path

    import afterchain.node.app.vm.contracts as contracts

    code = Path(contracts.__file__).parent / "warranty.lua"
    cid = run("contract", "deploy", str(code), "--vm", "lua", "--name", "warranty", Q, key="acme").id
    run.rejected("permission.role", "contract", "deploy", str(code), "--vm", "lua", "--name", "w", key="watchdog")
    run.rejected("contract.call_failed", "contract", "call", cid, "claim_eligibility", "--args-hex", "00", key="acme")
    _, hana = cluster.customer("hana")
    run("product", "register", GTIN, "K1", "--model", "K", "--batch", "B1", key="acme")
    run("product", "sell", GTIN, "K1", "--to-customer", hana, "--order", "o-k1", key="acme")
    pid = run(
        "policy",
        "register",
        "--name",
        "Contract warranty",
        "--service-org",
        "fixit",
        "--coverage-days",
        "30",
        "--fault",
        "no_power",
        "--first-response-hours",
        "4",
        "--resolution-hours",
        "48",
        "--contract",
        cid,
        Q,
        key="acme",
    ).id
    run("warranty", "activate", GTIN, "K1", "--policy", pid, key="acme")
    covered = run("ticket", "open", GTIN, "K1", "--fault", "no_power", Q, key=hana).id
    refused = run("ticket", "open", GTIN, "K1", "--fault", "scratch", "--json", key=hana).json()
    assert run("ticket", "show", covered, "--json").json()["status"] == "opened"
    assert refused["ticket_status"] == "rejected"  # the contract decided: fault not covered
    # events: submit without waiting, then follow it
    ev = run("ticket", "ack", covered, "--no-wait", Q, key="fixit").id
    assert run("event", "wait", ev, "--json").json()["status"] == "committed"
    shown = run("event", "show", ev, "--json").json()
    assert shown["status"] == "committed" and shown["height"] >= 1
    assert "committed" in run("event", "show", ev).out


def test_member_node_keys_add_list_remove(run: Cli, cluster: Cluster, tmp_path) -> None:  # type: ignore[no-untyped-def]
    from afterchain.node.common.keys import write_key
    from afterchain.protocol.crypto import KeyPair

    node_a = KeyPair.from_seed(b"cli-node-a".ljust(32, b"\0"))
    node_b = KeyPair.from_seed(b"cli-node-b".ljust(32, b"\0"))
    key_file = str(write_key(tmp_path / "node-b.key", node_b))
    r = run("org", "node", "add", node_a.public.hex(), key_file, "--json", key="fixit")  # hex or a node's key file
    assert r.json()["status"] == "committed" and r.json()["type"] == "node.register"
    listed = run("org", "node", "list", "--org", "fixit", "--json").json()
    assert sorted(n["key"] for n in listed) == sorted([node_a.public.hex(), node_b.public.hex()])
    assert {n["org"] for n in listed} == {"fixit"}
    assert node_a.public.hex() in run("org", "node", "list").out  # the table
    run.rejected("node.registered", "org", "node", "add", node_a.public.hex(), key="fixit")
    run.rejected("node.key_in_use", "org", "node", "add", node_a.public.hex(), key="acme")
    run.rejected("node.unknown", "org", "node", "remove", node_a.public.hex(), key="acme")
    run("org", "node", "add", "nothex", key="fixit", expect=2)
    run("org", "node", "remove", node_a.public.hex(), key_file, key="fixit")
    assert run("org", "node", "list", "--org", "fixit", "--json").json() == []
    assert "no node keys registered by fixit" in run("org", "node", "list", "--org", "fixit").out
