"""The customer pages across a validator-set change, in headless Chromium: a 4-validator
network (in-process, real HTTP, a fifth node following as an observer) adds the fifth
validator by governance; once the new set certifies blocks, a page opened with a link that
trusts only genesis follows the change header and verifies the passport and the ticket
under the set of 5. Skipped, with the reason, when Chromium is not installed."""

from __future__ import annotations

import time
from pathlib import Path

import httpx
import pytest

from afterchain.node.client import Client
from afterchain.protocol.block import ValidatorSet

from ..client.cluster import Cluster, seeded
from .test_pages import DAY, GTIN, SERIAL, chromium, open_page

CHANGE_TIMEOUT_S = 60.0


def _validators(url: str) -> dict[str, object]:
    return httpx.get(f"{url}/v1/validators", timeout=5).json()  # type: ignore[no-any-return]


def test_pages_verify_across_a_validator_set_change(tmp_path: Path) -> None:
    if chromium() is None:
        pytest.skip("Chromium is not installed (apt-get install chromium); the customer pages were not checked")
    (tmp_path / "cluster").mkdir()
    c = Cluster(tmp_path / "cluster", spare_validators=1)
    c.start()
    try:
        url = c.urls[0]
        vkeys = [c.root / "keys" / f"val{i}.key" for i in range(4)]
        from afterchain.node.common.keys import write_key

        for i, p in enumerate(vkeys):
            write_key(p, seeded(f"val{i}"), overwrite=True)
        new_set = ValidatorSet(validators=tuple(seeded(f"val{i}").public for i in range(5)))  # type: ignore[arg-type]
        with Client(c.urls, key=str(vkeys[0])) as v0:
            pid = v0.submit_and_wait(v0.build.governance_propose(kind="validator_change", payload=new_set.encode(),
                                                                 voting_period_ms=120_000)).id
        for p in vkeys[:3]:
            with Client(c.urls, key=str(p)) as v:
                assert v.submit_and_wait(v.build.governance_vote(proposal_id=pid, approve=True)).committed
        assert httpx.get(f"{url}/v1/governance/proposals/{pid.hex()}").json()["status"] == "adopted"
        # the set votes from the first epoch boundary at least K blocks later: make blocks until it does
        customer, _ = c.customer("ann")
        with Client(c.urls, key=c.key_file("acme")) as acme, Client(c.urls, key=customer) as ann:
            deadline = time.monotonic() + CHANGE_TIMEOUT_S
            n = 0
            while len(_validators(url)["voting_next"]["validators"]) != 5:  # type: ignore[index]
                assert time.monotonic() < deadline, _validators(url)
                n += 1
                acme.submit_and_wait(acme.build.product_register(gtin=GTIN, serial=f"FILL-{n}", model="Filler", batch="F",
                                                                 production_time_ms=0))
            now = int(time.time() * 1000)
            acme.submit_and_wait(acme.build.product_register(gtin=GTIN, serial=SERIAL, model="Kettle 2000", batch="B7",
                                                             production_time_ms=now - 30 * DAY))
            acme.submit_and_wait(acme.build.product_transfer(gtin=GTIN, serial=SERIAL, kind="sale", to_customer=customer.public,
                                                             order_ref_hash="22" * 32))
            t = ann.submit_and_wait(ann.build.ticket_open(kind="repair", gtin=GTIN, serial=SERIAL, fault_type="no_power",
                                                          description_hash="11" * 32))
        g = httpx.get(f"{url}/v1/genesis").json()["hash"]
        r = open_page(f"{url}/01/{GTIN}/21/{SERIAL}?g={g}", tmp_path / "p")
        assert r["status"] == "verified", r.get("reason", "") + r.get("detail", "") + r["dom"][-2000:]
        assert r["validators"] == "5" and int(r["signers"]) >= 4, r  # a quorum of the NEW set of 5
        assert "Kettle 2000" in r["dom"] and "of 5 validators" in r["dom"]
        # the ticket page, in a browser that now trusts a header of the new set
        r = open_page(f"{url}/t/{t.id.hex()}?g={g}", tmp_path / "p")
        assert r["status"] == "verified" and r["validators"] == "5", r.get("reason", "") + r.get("detail", "")
    finally:
        c.stop()
