"""The after-sales demo story, driven through the client library against a running network.

`./scripts/cluster up --demo` runs it. The cast is the demo consortium of
`node.localnet.DEMO_MEMBERS` plus three customers with fresh keys. The story:

1. Acme deploys its service agreement (a WebAssembly contract answering the three hooks:
   claim eligibility, SLA penalty, return decision) and registers two policies that
   name it: a standard 2-year warranty and an "express care" plan whose first response
   is due 8 seconds after a ticket opens (short, so the demo shows a breach).
2. Acme registers products (with a production trace), ships them to ShopMart, which
   sells them to the customers and activates their warranties.
3. Alice's repair ticket is acknowledged, worked and resolved by FixIt; she confirms
   and rates it.
4. Bob's complaint under express care is ignored past its deadline: the ledger escalates
   it at the next block and credits the penalty the contract computed from FixIt to Bob.
5. Carol returns her purchase: FixIt approves, ShopMart puts the refund in escrow,
   QuickShip records the shipment, FixIt receives it and the contract releases the
   escrow to Carol.
6. The service quality report, balances, and a light-client verified ticket status
   (checked from the genesis file, trusting no node); a QR code of each product's passport
   link (``DIR/qr/<gtin>-<serial>.svg``) and the links of the tickets' pages. Ticket ids
   are printed in full (the CLI takes them as they are).

Everything is checked as it goes: a step that does not end as the story says stops the
demo with a non-zero exit status and the reason.
"""

from __future__ import annotations

import time
from typing import Any

from rich.console import Console
from rich.table import Table

from afterchain.node.app.vm.contracts import source
from afterchain.node.client.sdk import Client, ClientError, Outcome, content_hash, customer_account
from afterchain.node.tools.localnet import LocalNet
from afterchain.protocol.bodies import gtin_check_digit
from afterchain.protocol.crypto import KeyPair

__all__ = ["gtin14", "run_demo"]

DAY_MS = 24 * 3600 * 1000


def gtin14(base13: str) -> str:
    """A GTIN-14 from its first 13 digits (GS1 mod-10 check digit)."""
    return base13 + str(gtin_check_digit(base13))


GTIN_KETTLE = gtin14("0950600013435")
GTIN_BLENDER = gtin14("0950600013436")


class DemoFailed(RuntimeError):
    pass


class _Story:
    def __init__(self, net: LocalNet, console: Console) -> None:
        self.net = net
        self.console = console
        self.urls = [n.api_url for n in net.nodes()]
        # a company that runs member nodes writes and reads through its own nodes first
        own = {org: [n.api_url for n in net.nodes() if n.org == org] for org in ("acme", "shopmart", "fixit", "quickship")}
        self.orgs = {org: Client(own[org] + [u for u in self.urls if u not in own[org]], key=net.member_key(org))
                     for org in own}
        self.customers = {name: KeyPair.generate() for name in ("alice", "bob", "carol")}
        self.cust = {name: Client(self.urls, key=kp) for name, kp in self.customers.items()}
        self.run_tag = time.strftime("%H%M%S")

    def say(self, text: str) -> None:
        self.console.print(f"[bold cyan]>[/bold cyan] {text}")

    def ok(self, who: Client, ev: Any, what: str) -> Outcome:
        out = who.send(ev, timeout_s=30)
        if not out.committed:
            raise DemoFailed(f"{what}: {out.status} {out.code} {out.message}")
        return out

    def close(self) -> None:
        for c in [*self.orgs.values(), *self.cust.values()]:
            c.close()

    # ------------------------------------------------------------------ the story
    def run(self) -> None:
        acme, shop, fixit, ship = (self.orgs[o] for o in ("acme", "shopmart", "fixit", "quickship"))
        self.say("Acme deploys its service agreement contract (WebAssembly) and registers two policies")
        cid = self.ok(acme, acme.build.contract_deploy(vm_id="wasm", name="acme-service", code=source("service", "wasm")),
                      "deploy the agreement").id
        standard = self.ok(acme, acme.build.policy_register(
            name="Acme 2-year warranty", service_org="fixit", coverage_period_ms=730 * DAY_MS,
            covered_faults=("battery", "heating", "motor"), first_response_ms=4 * 3600 * 1000,
            resolution_ms=5 * DAY_MS, penalty_amount=2_500, return_window_ms=30 * DAY_MS, contract_id=cid),
            "register the standard policy").id
        express = self.ok(acme, acme.build.policy_register(
            name="Acme express care", service_org="fixit", coverage_period_ms=365 * DAY_MS,
            covered_faults=("battery", "heating", "motor", "late_delivery"), first_response_ms=8_000,
            resolution_ms=DAY_MS, penalty_amount=5_000, return_window_ms=30 * DAY_MS, contract_id=cid),
            "register the express policy").id

        self.say("Acme registers products with a production trace and ships them to ShopMart")
        items = {"alice": (GTIN_KETTLE, f"K{self.run_tag}A", standard), "bob": (GTIN_BLENDER, f"B{self.run_tag}B", express),
                 "carol": (GTIN_KETTLE, f"K{self.run_tag}C", standard)}
        evs = []
        for gtin, serial, _ in items.values():
            evs.append(acme.build.product_register(gtin=gtin, serial=serial, model="KettlePro 2" if gtin == GTIN_KETTLE else "BlendMax",
                                                   batch="LOT-2026-11", production_time_ms=int(time.time() * 1000) - DAY_MS))
            evs.append(acme.build.trace_record(gtin=gtin, serial=serial, biz_step="commissioning", disposition="active",
                                               location_hash=content_hash("Acme plant, Eindhoven")))
            evs.append(acme.build.product_transfer(gtin=gtin, serial=serial, to_org="shopmart"))
        self._all_committed(acme, evs, "register and ship the products")

        self.say("ShopMart sells them to Alice, Bob and Carol and activates their warranties")
        evs = []
        for name, (gtin, serial, policy) in items.items():
            evs.append(shop.build.product_sell(gtin=gtin, serial=serial, to_customer=self.customers[name].public,
                                               order_ref_hash=content_hash(f"order {serial}")))
            evs.append(shop.build.warranty_activate(gtin=gtin, serial=serial, policy_id=policy))
        self._all_committed(shop, evs, "sell and activate warranties")

        alice, bob, carol = self.cust["alice"], self.cust["bob"], self.cust["carol"]
        self.say("Alice opens a repair ticket: her kettle does not heat")
        g, s, _ = items["alice"]
        t_alice = self.ok(alice, alice.build.ticket_open(kind="repair", gtin=g, serial=s, fault_type="heating",
                                                         description_hash=content_hash("does not heat since Monday")),
                          "Alice opens a ticket").id
        self.say("Bob complains under express care: FixIt does not answer in time")
        g, s, _ = items["bob"]
        t_bob = self.ok(bob, bob.build.ticket_open(kind="complaint", gtin=g, serial=s, fault_type="motor",
                                                   description_hash=content_hash("motor stops after 10 s")),
                        "Bob opens a complaint").id
        bob_before = bob.balance(customer_account(self.customers["bob"].public))

        self.say("FixIt acknowledges, works and resolves Alice's ticket; she confirms and rates it")
        self.ok(fixit, fixit.build.ticket_ack(ticket_id=t_alice), "FixIt acknowledges")
        self.ok(fixit, fixit.build.ticket_update(ticket_id=t_alice, status="in_progress",
                                                 note_hash=content_hash("heating element replaced")), "FixIt works on it")
        self.ok(fixit, fixit.build.ticket_resolve(ticket_id=t_alice, resolution="repaired",
                                                  resolution_hash=content_hash("new heating element")), "FixIt resolves")
        self.ok(alice, alice.build.ticket_confirm(ticket_id=t_alice), "Alice confirms")
        self.ok(alice, alice.build.rating_submit(ticket_id=t_alice, score=5, comment_hash=content_hash("fast and friendly")),
                "Alice rates")

        self.say("Carol returns her kettle; the refund waits in escrow until the return arrives")
        g, s, _ = items["carol"]
        t_carol = self.ok(carol, carol.build.return_request(gtin=g, serial=s, reason_code="changed_mind",
                                                            reason_hash=content_hash("too small")), "Carol requests a return").id
        self.ok(fixit, fixit.build.return_approve(ticket_id=t_carol), "FixIt approves the return")
        esc = self.ok(shop, shop.build.escrow_deposit(amount=49_99, payee_customer=self.customers["carol"].public,
                                                      ticket_id=t_carol, ref_hash=content_hash(f"refund {s}")),
                      "ShopMart deposits the refund in escrow").id
        self.ok(ship, ship.build.shipment_checkpoint(ticket_id=t_carol, checkpoint="picked_up",
                                                     location_hash=content_hash("Carol's address")), "QuickShip picks it up")
        self.ok(ship, ship.build.shipment_checkpoint(ticket_id=t_carol, checkpoint="delivered",
                                                     location_hash=content_hash("FixIt depot")), "QuickShip delivers it")
        self.ok(fixit, fixit.build.return_receive(ticket_id=t_carol, condition="as_new",
                                                  inspection_hash=content_hash("sealed, unused")), "FixIt receives it")
        escrow = shop.escrow(esc)
        if escrow.get("state") != "released":
            raise DemoFailed(f"the escrow should be released to Carol, it is {escrow.get('state')}")
        self.say(f"the contract released the escrow: Carol's balance is {carol.balance(customer_account(self.customers['carol'].public))}")

        self.say("waiting for Bob's first-response deadline to pass (8 s of block time)")
        deadline = time.monotonic() + 40
        while True:
            t = bob.ticket(t_bob)
            if t["status"] == "escalated" and t.get("breaches", 0) >= 1:
                break
            if time.monotonic() > deadline:
                raise DemoFailed(f"Bob's ticket did not escalate (status {t['status']})")
            time.sleep(0.5)
        bob_after = bob.balance(customer_account(self.customers["bob"].public))
        if bob_after <= bob_before:
            raise DemoFailed("no SLA penalty was credited to Bob")
        self.say(f"SLA breached: the ticket escalated and the contract's penalty of {bob_after - bob_before} "
                 "was credited from FixIt to Bob")
        self.ok(fixit, fixit.build.ticket_update(ticket_id=t_bob, status="in_progress",
                                                 note_hash=content_hash("sorry for the delay")), "FixIt takes up Bob's ticket (late)")
        self.ok(fixit, fixit.build.ticket_resolve(ticket_id=t_bob, resolution="replaced",
                                                  resolution_hash=content_hash("replacement unit sent")), "FixIt resolves")
        self.ok(bob, bob.build.ticket_confirm(ticket_id=t_bob), "Bob confirms")
        self.ok(bob, bob.build.rating_submit(ticket_id=t_bob, score=3), "Bob rates")
        self.ok(carol, carol.build.rating_submit(ticket_id=t_carol, score=4), "Carol rates")

        self.report(fixit, {"alice": t_alice, "bob": t_bob, "carol": t_carol}, esc)
        self.links({name: (gtin, serial) for name, (gtin, serial, _) in items.items()},
                   {"alice": t_alice, "bob": t_bob, "carol": t_carol})

    def links(self, products: dict[str, tuple[str, str]], tickets: dict[str, bytes]) -> None:
        """QR codes of the products' passports (GS1 Digital Link) in the network directory,
        and the links of the tickets' pages, as a company prints and mails them."""
        from afterchain.node.client.links import product_link, ticket_link, write_qr
        from afterchain.node.common.files import load_genesis

        base = self.urls[0]
        # the trust anchor from the network's own genesis file; the second node is the witness
        anchor, witnesses = load_genesis(self.net.root / "genesis.json").hash(), self.urls[1:2]
        out = self.net.root / "qr"
        out.mkdir(exist_ok=True)
        t = Table(title="Customer links (a QR code per product in " + str(out) + ")")
        for col in ("customer", "what", "link"):
            t.add_column(col, overflow="fold")
        for name, (gtin, serial) in products.items():
            link = product_link(base, gtin, serial, anchor, witnesses)
            write_qr(link, out / f"{gtin}-{serial}.svg")
            t.add_row(name, f"passport {gtin}/{serial} ({gtin}-{serial}.svg)", link)
        for name, tid in tickets.items():
            t.add_row(name, "ticket", ticket_link(base, tid, anchor, witnesses))
        self.console.print(t)

    def _all_committed(self, who: Client, evs: list[Any], what: str) -> None:
        outs = who.submit(evs)
        bad = [o for o in outs if o.status == "rejected"]
        if bad:
            raise DemoFailed(f"{what}: {bad[0].code} {bad[0].message}")
        for o in who.wait_all([e.id for e in evs], timeout_s=30):
            if not o.committed:
                raise DemoFailed(f"{what}: {o.code} {o.message}")

    def report(self, reader: Client, tickets: dict[str, bytes], escrow_id: bytes) -> None:
        q = reader.quality("fixit")
        t = Table(title="Service quality of FixIt Repairs (computed from the ledger)")
        for col in ("tickets", "resolved", "resolution rate", "median first response", "median resolution",
                    "SLA breaches", "ratings", "mean rating"):
            t.add_column(col)

        def dur(ms: int | None) -> str:
            return "-" if ms is None else f"{ms / 1000:.1f} s" if ms < 120_000 else f"{ms / 60000:.1f} min"

        def median(name: str) -> str:
            exact, bounds = q[f"median_{name}_ms"], q[f"median_{name}_bounds_ms"]
            if exact is not None or bounds is None:
                return dur(exact) + (" (exact)" if exact is not None else "")
            return f"{dur(bounds[0])} .. {dur(bounds[1])} (bound)"

        t.add_row(str(q["tickets"]), str(q["resolved"]), f"{q['resolution_rate_permille'] / 10:.1f} %",
                  median("first_response"), median("resolution"), str(q["breaches"]),
                  str(q["ratings"]), f"{q['mean_rating_centi'] / 100:.2f}")
        self.console.print(t)
        tt = Table(title="Tickets")
        for col in ("customer", "ticket", "kind", "status", "history"):
            tt.add_column(col)
        for name, tid in tickets.items():
            doc = reader.ticket(tid)
            tt.add_row(name, tid.hex(), doc["kind"], doc["status"], " -> ".join(h[0] for h in doc["hist"]))
        self.console.print(tt)
        bal = Table(title="Balances (minor units)")
        bal.add_column("account")
        bal.add_column("balance", justify="right")
        for org in ("acme", "shopmart", "fixit", "quickship"):
            bal.add_row(org, str(reader.balance(org)))
        for name, kp in self.customers.items():
            bal.add_row(name, str(reader.balance(customer_account(kp.public))))
        self.console.print(bal)
        self.console.print(f"dashboard: {self.urls[0]}/?ticket={tickets['bob'].hex()}")
        self.light_check(tickets["bob"])

    def light_check(self, ticket_id: bytes) -> None:
        """Ask ONE node for Bob's ticket and verify the answer from the genesis file alone:
        the commit certificate of a header (a quorum of validator signatures) and the
        sparse Merkle proof of the ticket against that header's state root."""
        import tempfile
        from pathlib import Path

        from afterchain.node.client.light.client import LightClient, trust_from_genesis
        from afterchain.node.common.files import load_genesis

        genesis = load_genesis(self.net.root / "genesis.json")
        url = self.urls[-1]
        with tempfile.TemporaryDirectory() as d, LightClient(url, trust_from_genesis(genesis), state_path=Path(d) / "trust.json",
                                                             witness_url=self.urls[0]) as lc:
            view, verified = lc.ticket(ticket_id)
        steps = " -> ".join(str(e.get("status")) for e in view.timeline)
        self.console.print(
            f"light client: ticket {ticket_id.hex()} is [bold]{view.status}[/bold] ({steps}), verified from the "
            f"genesis file against block {verified.height} (state at height {verified.state_height}, certificate of a "
            f"validator quorum, {verified.proof_bytes}-byte proof), asked {url} and cross-checked with {self.urls[0]}")


def run_demo(net: LocalNet, console: Console) -> int:
    """Run the story; 0 when every step ended as told, 1 otherwise (with the reason)."""
    story = _Story(net, console)
    t0 = time.monotonic()
    try:
        story.run()
    except (DemoFailed, ClientError) as exc:
        console.print(f"[red]demo failed: {exc}[/red]")
        return 1
    finally:
        story.close()
    console.print(f"[green]demo finished in {time.monotonic() - t0:.1f} s[/green]")
    return 0
