"""The customer pages in a browser (`./scripts/bench light` part 2): an in-process 4-node
network (memory transport, real HTTP) with one sold product under warranty and one
acknowledged ticket; headless Chromium opens its passport and ticket pages with a fresh
profile (cold: no cache, no trusted header) and the page reports (in its result element):

- the in-browser verification time per answer (decoding, the certificate's Ed25519
  signatures the first time a header is seen, the state proof), in ms;
- the bytes transferred: the page and its scripts (HTML, JS, CSS, gzip-compressed), and the
  answers (JSON), from the browser's Resource Timing.

Chromium runs with its default JIT; the figures include the first calls (a customer opens
one page once). The machine's load changes them a lot: compare runs taken together.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import statistics
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import trio

from afterchain.node.client import AsyncClient
from afterchain.node.common.log import configure
from afterchain.node.runtime.runner import Node, NodeOptions
from afterchain.node.server import serve_api
from afterchain.node.tools.genesis import DAY_MS, MemberSpec, build_genesis
from afterchain.node.transport.memory import MemoryNetwork
from afterchain.protocol.crypto import KeyPair

__all__ = ["chromium", "run_pages"]

GTIN = "00012345600012"
SERIAL = "BENCH-1"


def chromium() -> str | None:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        path = shutil.which(name)
        if path:
            return path
    return None


def _key(name: str) -> KeyPair:
    return KeyPair.from_seed(name.encode().ljust(32, b"\0")[:32])


def open_page(browser: str, url: str, profile: Path, timeout_s: float = 120.0) -> dict[str, str]:
    """The page's result data after loading `url` in headless Chromium, driven over the
    DevTools protocol on a pipe (real time: the page's clocks run as they do for a user)."""
    flags = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--no-first-run",
             "--disable-background-networking", "--disable-component-update", "--disable-sync",
             f"--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1, EXCLUDE {urlsplit(url).hostname}",
             f"--user-data-dir={profile}",
             "--remote-debugging-pipe", "about:blank"]
    to_chrome_r, to_chrome_w = os.pipe()
    from_chrome_r, from_chrome_w = os.pipe()

    # the pipe protocol: Chromium reads fd 3 and writes fd 4 (the shell puts our pipes there)
    proc = subprocess.Popen(["bash", "-c", f'exec "$0" "$@" 3<&{to_chrome_r} 4>&{from_chrome_w}', browser, *flags],
                            pass_fds=(to_chrome_r, from_chrome_w), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    os.close(to_chrome_r)
    os.close(from_chrome_w)
    buf = b""
    ids = iter(range(1, 1_000_000))

    def call(method: str, params: dict[str, Any], session: str | None = None) -> dict[str, Any]:
        nonlocal buf
        i = next(ids)
        msg: dict[str, Any] = {"id": i, "method": method, "params": params}
        if session is not None:
            msg["sessionId"] = session
        os.write(to_chrome_w, json.dumps(msg).encode() + b"\0")
        while True:
            while b"\0" not in buf:
                chunk = os.read(from_chrome_r, 1 << 16)
                if not chunk:
                    raise RuntimeError("Chromium closed the DevTools pipe")
                buf += chunk
            raw, buf = buf.split(b"\0", 1)
            reply = json.loads(raw)
            if reply.get("id") == i:
                if "error" in reply:
                    raise RuntimeError(f"{method}: {reply['error']}")
                return reply["result"]  # type: ignore[no-any-return]

    try:
        target = call("Target.createTarget", {"url": url})["targetId"]
        session = call("Target.attachToTarget", {"targetId": target, "flatten": True})["sessionId"]
        deadline = time.monotonic() + timeout_s
        data: dict[str, str] = {}
        expr = "JSON.stringify(Object.assign({}, document.getElementById('result')?.dataset ?? {}))"
        while time.monotonic() < deadline:
            try:
                r = call("Runtime.evaluate", {"expression": expr, "returnByValue": True}, session)
            except RuntimeError as e:
                if "execution context" not in str(e):  # still navigating: no document to ask yet
                    raise
                time.sleep(0.2)
                continue
            data = json.loads(r["result"].get("value") or "{}")
            if data.get("status") not in (None, "checking") and "totalMs" in data:
                return {re.sub(r"[A-Z]", lambda m: "-" + m.group(0).lower(), k): v for k, v in data.items()}
            time.sleep(0.2)
        raise RuntimeError(f"the page did not finish in {timeout_s} s (its result element: {data})")
    finally:
        with contextlib.suppress(RuntimeError, OSError):
            call("Browser.close", {})
        os.close(to_chrome_w)
        os.close(from_chrome_r)
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


async def _network(root: Path, host: str, task_status: trio.TaskStatus[tuple[list[str], str, str]]) -> None:
    validators = [_key(f"val{i}") for i in range(4)]
    acme, fixit, ann = _key("acme"), _key("fixit"), _key("customer-ann")
    g = build_genesis(chain_id="bench-pages", genesis_time_ms=int(time.time() * 1000) - DAY_MS,
                      validators=[v.public for v in validators],
                      members=[MemberSpec("acme", "Acme Appliances", ("manufacturer",), (acme.public,), 1000),
                               MemberSpec("fixit", "FixIt Repairs", ("service_provider",), (fixit.public,), 1000)])
    net = MemoryNetwork()
    urls: list[str] = []
    async with trio.open_nursery() as nursery:
        for i, v in enumerate(validators):
            node = Node(key=v, genesis=g, data_dir=root / f"n{i}", transport=net.add(v.public),
                        options=NodeOptions(name=f"n{i}", tick_ms=20))
            await nursery.start(node.run)
            urls.append((await nursery.start(serve_api, node, host, 0))[0])
        now = int(time.time() * 1000)
        async with AsyncClient(urls, key=acme) as a, AsyncClient(urls, key=fixit) as f, AsyncClient(urls, key=ann) as c:
            await a.submit_and_wait(await a.build.product_register(gtin=GTIN, serial=SERIAL, model="Kettle 2000", batch="B1",
                                                                   production_time_ms=now - 30 * DAY_MS))
            pol = await a.submit_and_wait(await a.build.policy_register(
                name="Two-year warranty", service_org="fixit", coverage_period_ms=730 * DAY_MS, covered_faults=["no_power"],
                first_response_ms=DAY_MS, resolution_ms=7 * DAY_MS))
            await a.submit_and_wait(await a.build.product_transfer(gtin=GTIN, serial=SERIAL, kind="sale", to_customer=ann.public,
                                                                   order_ref_hash="22" * 32))
            await a.submit_and_wait(await a.build.warranty_activate(gtin=GTIN, serial=SERIAL, policy_id=pol.id))
            t = await c.submit_and_wait(await c.build.ticket_open(kind="repair", gtin=GTIN, serial=SERIAL, fault_type="no_power",
                                                                  description_hash="11" * 32))
            await f.submit_and_wait(await f.build.ticket_ack(ticket_id=t.id))
        task_status.started((urls, g.hash().hex(), t.id.hex()))
        await trio.sleep_forever()


def run_pages(*, rounds: int = 3, host: str = "127.0.0.1") -> dict[str, Any]:
    """Open each page `rounds` times, cold; the figures of every round. `host`: the address
    the nodes serve on; 127.0.0.1 is a secure context for the browser (WebCrypto's Ed25519
    is there), a plain-HTTP page on another address is not (the JavaScript equation runs)."""
    browser = chromium()
    if browser is None:
        return {"skipped": "Chromium is not installed"}
    configure(json=True, level="error", stream=open(os.devnull, "w"))  # noqa: SIM115 - the nodes log for the whole run
    out: dict[str, Any] = {}

    async def main() -> None:
        with tempfile.TemporaryDirectory() as d:
            async with trio.open_nursery() as nursery:
                urls, ghash, tid = await nursery.start(_network, Path(d), host)
                pages = {"passport": f"{urls[0]}/01/{GTIN}/21/{SERIAL}?g={ghash}", "ticket": f"{urls[0]}/t/{tid}?g={ghash}"}
                for name, url in pages.items():
                    runs = []
                    for i in range(rounds):
                        runs.append(await trio.to_thread.run_sync(open_page, browser, url, Path(d) / f"profile-{name}-{i}"))
                    out[name] = runs
                nursery.cancel_scope.cancel()

    trio.run(main)
    for name, runs in list(out.items()):
        if any(r.get("status") != "verified" for r in runs):
            raise RuntimeError(f"the {name} page was not verified: {runs}")
        per_answer = [float(x) for r in runs for x in r["verify-ms"].split(",")]
        firsts = [float(r["verify-ms"].split(",")[0]) for r in runs]
        parts: dict[str, list[float]] = {}
        for r in runs:
            for item in filter(None, r.get("first-parts", "").split(",")):
                k, v = item.split(":")
                parts.setdefault(k, []).append(float(v))
        out[name] = {"answers": int(runs[0]["answers"]), "verify_ms_per_answer_median": statistics.median(per_answer),
                     "verify_ms_per_answer_max": max(per_answer), "verify_ms_first_answer_median": statistics.median(firsts),
                     "first_answer_parts_ms_median": {k: statistics.median(v) for k, v in parts.items()},
                     "verify_ms_by_round": [[float(x) for x in r["verify-ms"].split(",")] for r in runs],
                     "first_answer_parts_by_round": [r.get("first-parts", "") for r in runs],
                     "headers_verified_by_round": [int(r.get("headers", "0")) for r in runs],
                     "warm_up_ms_median": statistics.median(float(r.get("warm-ms", "nan")) for r in runs),
                     "platform_ed25519": runs[0].get("native") == "true",
                     "page_bytes_cold": int(runs[0]["page-bytes"]), "data_bytes": int(runs[0]["data-bytes"]),
                     "total_ms_median": statistics.median(float(r["total-ms"]) for r in runs), "rounds": len(runs)}
    return out


def report_pages(r: dict[str, Any]) -> str:
    if "skipped" in r:
        return f"customer pages in the browser: skipped ({r['skipped']})"
    lines = ["customer pages in headless Chromium (cold: fresh profile each round):"]
    for name, s in r.items():
        lines.append(f"  {name}: {s['answers']} answers; verification per answer median {s['verify_ms_per_answer_median']:.1f} ms, "
                     f"max {s['verify_ms_per_answer_max']:.1f} ms (first answer, with the signatures: median "
                     f"{s['verify_ms_first_answer_median']:.1f} ms: "
                     + ", ".join(f"{k} {v:.1f}" for k, v in s["first_answer_parts_ms_median"].items())
                     + f"; the self-test warm-up during the first fetches, not counted: median {s['warm_up_ms_median']:.1f} ms, "
                     + ("WebCrypto Ed25519" if s["platform_ed25519"] else "JavaScript Ed25519")
                     + f"); page and scripts {s['page_bytes_cold']:,} bytes "
                     f"transferred, answers {s['data_bytes']:,} bytes; whole page {s['total_ms_median']:.0f} ms "
                     f"({s['rounds']} rounds)")
    return "\n".join(lines)
