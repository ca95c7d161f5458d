"""The customer pages in headless Chromium: the passport and ticket pages of a 4-node network
(in-process, real HTTP) are verified in the browser; through a forging proxy in front of
node 0 they are refused, with the right reason, for each forgery an untrusted node could
try. A second proxy (honest, with CORS) in front of node 1 is the witness. Skipped, with
the reason, when Chromium is not installed (`.ci/run` installs it)."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import msgpack
import pytest
import trio
from hypercorn.config import Config as HyperConfig
from hypercorn.trio import serve

from afterchain.node.client import Client
from afterchain.protocol.block import Commit
from afterchain.protocol.crypto import Domain, KeyPair
from afterchain.protocol.types import Hash32, Seq

from ..client.cluster import CHAIN, Cluster
from ..node.util import genesis as other_genesis

GTIN = "00012345600012"
SERIAL = "PASS-1"
DAY = 24 * 3600 * 1000


def chromium() -> str | None:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        path = shutil.which(name)
        if path:
            return path
    return None


# ------------------------------------------------------------------ forgeries (on the proof answers' JSON)

def _cert(j: dict[str, Any]) -> list[Any]:
    return list(msgpack.unpackb(bytes.fromhex(j["certificate"]), raw=False))


def _set_cert(j: dict[str, Any], cert: list[Any]) -> None:
    j["certificate"] = msgpack.packb(cert, use_bin_type=True).hex()


def _value(j: dict[str, Any]) -> dict[str, Any]:
    return msgpack.unpackb(bytes.fromhex(j["value"]), raw=False)  # type: ignore[no-any-return]


OUTSIDER = KeyPair.from_seed(b"outsider".ljust(32, b"\0"))


def forge(mode: str, path: str, j: dict[str, Any]) -> dict[str, Any]:
    if mode == "status" and path.startswith("/v1/proofs/tickets/"):
        v = _value(j)
        v["status"] = "closed"
        j["value"] = msgpack.packb(v, use_bin_type=True).hex()
    elif mode == "flip_proof":
        proof = list(msgpack.unpackb(bytes.fromhex(j["proof"]), raw=False))
        sib = [bytes(s) for s in proof[4]]
        sib[-1] = bytes([sib[-1][0] ^ 1]) + sib[-1][1:]
        proof[4] = sib
        j["proof"] = msgpack.packb(proof, use_bin_type=True).hex()
    elif mode == "few_sigs":
        cert = _cert(j)
        cert[5] = cert[5][:2]  # a quorum of 4 is 3
        _set_cert(j, cert)
    elif mode == "dup_signer":
        cert = _cert(j)
        cert[5] = [*cert[5], cert[5][0]]
        _set_cert(j, cert)
    elif mode == "outsider":
        cert = _cert(j)
        vote = Commit(view=cert[2], seq=Seq(cert[3]), digest=Hash32(cert[4]), replica=OUTSIDER.public)
        cert[5] = [*cert[5][:-1], [0x14, 1, OUTSIDER.public, OUTSIDER.sign(Domain.COMMIT, CHAIN, vote)]]
        _set_cert(j, cert)
    elif mode == "absence" and path.startswith("/v1/proofs/products/"):
        j["value"] = None
    return j


class Proxy:
    """An ASGI app that forwards GETs to `upstream`, forging proof answers in `mode`,
    replaying `replay[path]` in mode ``stale``, and allowing any origin (CORS)."""

    def __init__(self, upstream: str) -> None:
        self.upstream = upstream
        self.mode: str | None = None
        self.replay: dict[str, dict[str, Any]] = {}
        self.seen: list[str] = []

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            while True:
                msg = await receive()
                await send({"type": msg["type"] + ".complete"})
                if msg["type"] == "lifespan.shutdown":
                    return
        path = scope["path"]
        self.seen.append(path)
        qs = scope["query_string"].decode()
        async with httpx.AsyncClient() as c:
            r = await c.get(self.upstream + path + (f"?{qs}" if qs else ""), headers={"accept-encoding": "identity"})
        body, status = r.content, r.status_code
        mode = self.mode
        if mode == "other_genesis" and path == "/v1/genesis":
            g = other_genesis().encode()
            body = json.dumps({"hash": "00" * 32, "encoded": g.hex()}).encode()
        elif mode == "stale" and path in self.replay:
            body = json.dumps(self.replay[path]).encode()
        elif mode is not None and path.startswith("/v1/proofs/") and status == 200:
            body = json.dumps(forge(mode, path, r.json())).encode()
        headers = [(b"content-type", r.headers.get("content-type", "application/octet-stream").encode()),
                   (b"access-control-allow-origin", b"*")]
        if "content-security-policy" in r.headers:
            headers.append((b"content-security-policy", r.headers["content-security-policy"].encode()))
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": body})


class Proxies:
    """Proxies served by hypercorn in a background trio thread; `urls[i]` fronts `proxies[i]`."""

    def __init__(self, proxies: list[Proxy]) -> None:
        self.proxies = proxies
        self.urls: list[str] = []
        self._ready = threading.Event()
        self._token: trio.lowlevel.TrioToken | None = None
        self._stop: trio.Event | None = None

        async def main() -> None:
            self._token = trio.lowlevel.current_trio_token()
            self._stop = trio.Event()
            async with trio.open_nursery() as nursery:
                for p in proxies:
                    cfg = HyperConfig()
                    cfg.bind = ["127.0.0.1:0"]
                    cfg.accesslog = None
                    cfg.errorlog = None
                    bound = await nursery.start(serve, p, cfg)  # type: ignore[arg-type]
                    self.urls.append(bound[0])
                self._ready.set()
                await self._stop.wait()
                nursery.cancel_scope.cancel()

        self._thread = threading.Thread(target=trio.run, args=(main,), daemon=True)
        self._thread.start()
        self._ready.wait(30)

    def stop(self) -> None:
        if self._token is not None and self._stop is not None:
            trio.from_thread.run_sync(self._stop.set, trio_token=self._token)
        self._thread.join(10)


# ------------------------------------------------------------------ the network and its data

class World:
    def __init__(self, cluster: Cluster, proxies: Proxies, genesis_hash: str, ticket: str) -> None:
        self.cluster = cluster
        self.proxies = proxies
        self.forger, self.witness = proxies.proxies
        self.forger_url, self.witness_url = proxies.urls
        self.genesis_hash = genesis_hash
        self.ticket = ticket


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    if chromium() is None:
        pytest.skip("Chromium is not installed (apt-get install chromium); the customer pages were not checked")
    c = Cluster(Path(tmp_path_factory.mktemp("pages-cluster")))
    c.start()
    proxies = Proxies([Proxy(c.urls[0]), Proxy(c.urls[1])])
    try:
        customer, _ = c.customer("ann")
        with Client(c.urls, key=c.key_file("acme")) as acme, Client(c.urls, key=c.key_file("fixit")) as fixit, \
                Client(c.urls, key=customer) as ann:
            now = int(time.time() * 1000)
            acme.submit_and_wait(acme.build.product_register(gtin=GTIN, serial=SERIAL, model="Kettle 2000", batch="B7",
                                                             production_time_ms=now - 30 * DAY))
            pol = acme.submit_and_wait(acme.build.policy_register(
                name="Two-year warranty", service_org="fixit", coverage_period_ms=730 * DAY,
                covered_faults=["no_power", "leak"], first_response_ms=DAY, resolution_ms=7 * DAY))
            acme.submit_and_wait(acme.build.product_transfer(gtin=GTIN, serial=SERIAL, kind="sale", to_customer=customer.public,
                                                             order_ref_hash="22" * 32))
            acme.submit_and_wait(acme.build.warranty_activate(gtin=GTIN, serial=SERIAL, policy_id=pol.id))
            t = ann.submit_and_wait(ann.build.ticket_open(kind="repair", gtin=GTIN, serial=SERIAL, fault_type="no_power",
                                                          description_hash="11" * 32))
            fixit.submit_and_wait(fixit.build.ticket_ack(ticket_id=t.id))
        g = httpx.get(f"{c.urls[0]}/v1/genesis").json()
        yield World(c, proxies, g["hash"], t.id.hex())
    finally:
        proxies.stop()
        c.stop()


def open_page(url: str, profile: Path) -> dict[str, str]:
    """Load `url` in headless Chromium (profile = its localStorage) and return the result's data."""
    browser = chromium()
    assert browser is not None
    flags = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--no-first-run",
             "--disable-background-networking", "--disable-component-update", "--disable-sync",
             "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1",  # no third-party host resolves
             f"--user-data-dir={profile}", "--virtual-time-budget=30000"]
    dom = subprocess.run([browser, *flags, "--dump-dom", url], capture_output=True, text=True, timeout=120).stdout
    m = re.search(r'<output id="result"([^>]*)>', dom)
    assert m is not None, dom[-3000:]
    data = dict(re.findall(r'data-([a-z-]+)="([^"]*)"', m.group(1)))
    data["dom"] = dom
    return data


def passport_url(w: World, base: str, *, witness: bool = True) -> str:
    return f"{base}/01/{GTIN}/21/{SERIAL}?g={w.genesis_hash}" + (f"&w={w.witness_url}" if witness else "")


def test_passport_and_ticket_verify_in_the_browser(world: World, tmp_path: Path) -> None:
    world.forger.mode = None
    r = open_page(passport_url(world, world.forger_url), tmp_path / "p")
    assert r["status"] == "verified", r.get("reason", "") + r.get("detail", "") + r["dom"][-2000:]
    assert int(r["signers"]) >= 3 and r["validators"] == "4" and int(r["height"]) >= 6
    assert r["witness"] == "agrees", r["dom"][-2000:]
    dom = r["dom"]
    for text in ("Kettle 2000", "Acme Appliances", "FixIt Repairs", "Two-year warranty", "not recalled (proven)",
                 "Service tickets", "acknowledged", "Sold", "Warranty activated", f"Signed by {r['signers']} of 4 validators"):
        assert text in dom, text
    assert "cust:" not in dom  # no customer identity on the page
    # the ticket page, from the link on the passport
    assert f"/t/{world.ticket}?g={world.genesis_hash}" in dom
    r = open_page(f"{world.forger_url}/t/{world.ticket}?g={world.genesis_hash}&w={world.witness_url}", tmp_path / "p")
    assert r["status"] == "verified", r.get("detail", "") + r["dom"][-2000:]
    for text in ("acknowledged", "Two-year warranty", "FixIt Repairs", "First response due", "Timeline", "opened"):
        assert text in r["dom"], text
    # the pages run only their own scripts and fetch only from their node and the witness
    csp = httpx.get(passport_url(world, world.cluster.urls[0])).headers["content-security-policy"]
    assert "script-src 'self'" in csp and "default-src 'none'" in csp


@pytest.mark.parametrize(("mode", "page", "reason"), [
    ("status", "ticket", "light.value_tampered"),
    ("flip_proof", "passport", "light.value_tampered"),
    ("few_sigs", "passport", "light.no_quorum"),
    ("dup_signer", "ticket", "light.signer_duplicate"),
    ("outsider", "passport", "light.signer_unknown"),
    ("other_genesis", "passport", "light.wrong_genesis"),
    ("absence", "passport", "light.absence_forged"),
])
def test_forged_answers_are_refused_with_the_reason(world: World, tmp_path: Path, mode: str, page: str, reason: str) -> None:
    world.forger.mode = mode
    try:
        url = (passport_url(world, world.forger_url, witness=False) if page == "passport"
               else f"{world.forger_url}/t/{world.ticket}?g={world.genesis_hash}")
        r = open_page(url, tmp_path / "p")
    finally:
        world.forger.mode = None
    assert r["status"] == "refused" and r["reason"] == reason, (r.get("reason"), r.get("detail"))
    assert "NOT VERIFIED" in r["dom"] and "Kettle 2000" not in r["dom"]


def test_a_stale_header_older_than_the_trusted_one_is_refused(world: World, tmp_path: Path) -> None:
    path = f"/v1/proofs/products/{GTIN}/{SERIAL}"
    world.forger.replay[path] = httpx.get(world.cluster.urls[0] + path).json()
    old = world.forger.replay[path]["height"]
    with Client(world.cluster.urls, key=world.cluster.key_file("acme")) as acme:  # the chain moves on
        acme.submit_and_wait(acme.build.product_register(gtin=GTIN, serial="PASS-2", model="Kettle 2000", batch="B7",
                                                         production_time_ms=0))
    profile = tmp_path / "p"
    r = open_page(passport_url(world, world.forger_url, witness=False), profile)
    assert r["status"] == "verified" and int(r["height"]) > old  # this browser now trusts a newer header
    world.forger.mode = "stale"
    try:
        r = open_page(passport_url(world, world.forger_url, witness=False), profile)
    finally:
        world.forger.mode = None
    assert r["status"] == "refused" and r["reason"] == "light.rollback", (r.get("reason"), r.get("detail"))
    # a fresh browser (no trusted header yet) accepts the same old answer: it is genuine, only old
    world.forger.mode = "stale"
    try:
        r = open_page(passport_url(world, world.forger_url, witness=False), tmp_path / "fresh")
    finally:
        world.forger.mode = None
    assert r["status"] == "verified" and int(r["height"]) == old


def test_a_link_without_a_trust_anchor_is_refused(world: World, tmp_path: Path) -> None:
    r = open_page(f"{world.forger_url}/01/{GTIN}/21/{SERIAL}", tmp_path / "p")
    assert r["status"] == "refused" and r["reason"] == "light.no_anchor"
    assert "does not say which network to trust" in r["dom"]


def test_the_qr_code_of_product_qr_opens_the_verified_passport(world: World, tmp_path: Path,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    """`afterchain product qr` with the trust anchor from the node (no genesis file here: a
    warning says so) writes a QR code; zxing-cpp decodes it to exactly the printed link, and
    that link, opened in Chromium, shows the passport verified, the witness agreeing."""
    import zxingcpp
    from click.testing import CliRunner
    from PIL import Image

    from afterchain.node.cli import cli

    world.forger.mode = None
    monkeypatch.setenv("AFTERCHAIN_CLUSTER_DIR", str(tmp_path / "no-cluster"))
    out = tmp_path / "label.png"
    r = CliRunner().invoke(cli, ["product", "qr", GTIN, SERIAL, "--node", world.cluster.urls[0], "--base-url", world.forger_url,
                                 "--witness", world.witness_url, "--out", str(out)])
    assert r.exit_code == 0, r.stderr
    assert "without verification" in r.stderr and world.genesis_hash[:16] in r.stderr
    link = r.stdout.splitlines()[0]
    assert link == passport_url(world, world.forger_url)
    (found,) = zxingcpp.read_barcodes(Image.open(out))
    assert found.format == zxingcpp.BarcodeFormat.QRCode and found.text == link
    page = open_page(found.text, tmp_path / "p")
    assert page["status"] == "verified", page.get("reason", "") + page.get("detail", "") + page["dom"][-2000:]
    assert page["witness"] == "agrees" and "Kettle 2000" in page["dom"]
