"""The nemesis's shared pieces: the load generator and the helpers that read and steer a
`LocalNet` (status, primary, heights, progress, the fault switch). The scenarios live in
`nemesis` (process and consensus faults, the checker, the command), `nemesis_members`
(member nodes) and `nemesis_storage` (disks and clocks)."""

from __future__ import annotations

import os
import threading
import time
from dataclasses import dataclass, field
from typing import Any

import httpx

from afterchain.node.client.sdk import Client, ClientError, content_hash
from afterchain.node.tools.demo import gtin14
from afterchain.node.tools.localnet import LocalNet

VIEW_TIMEOUT_MS = 1500
GTIN = gtin14("0950600077777")

__all__ = ["GTIN", "START_ENV", "VIEW_TIMEOUT_MS", "Load"]


@dataclass
class Load:
    """Submits events continuously as several members until stopped; remembers every id
    the API acknowledged with 202."""

    net: LocalNet
    first: str | None = None
    """The node the load writes to first (default: node0), failing over to the others."""
    acked: set[bytes] = field(default_factory=set)
    stop: threading.Event = field(default_factory=threading.Event)
    errors: int = 0
    threads: list[threading.Thread] = field(default_factory=list)

    def start(self) -> None:
        nodes = self.net.nodes()
        urls = [n.api_url for n in nodes if n.name == self.first] + [n.api_url for n in nodes if n.name != self.first]
        for i, org in enumerate(("acme",)):
            t = threading.Thread(target=self._run, args=(org, urls[i:] + urls[:i]), daemon=True)
            t.start()
            self.threads.append(t)

    def _run(self, org: str, urls: list[str]) -> None:
        n = 0
        with Client(urls, key=self.net.member_key(org), request_timeout_s=5, max_attempts=2) as c:
            while not self.stop.is_set():
                try:
                    serial = f"N{os.getpid()}-{n:06d}"
                    evs = [c.build.product_register(gtin=GTIN, serial=serial, model="M", batch="NEM", production_time_ms=1),
                           c.build.trace_record(gtin=GTIN, serial=serial, biz_step="commissioning", disposition="active",
                                                location_hash=content_hash("plant"))]
                    outs = c.submit(evs)
                    for e, o in zip(evs, outs, strict=True):
                        if o.status in ("accepted", "duplicate"):
                            self.acked.add(e.id)
                    if any(o.status == "rejected" for o in outs):
                        c.resync_nonce()
                    n += 1
                except ClientError:
                    self.errors += 1
                    c.resync_nonce() if self._reachable(c) else time.sleep(0.2)
                time.sleep(0.02)

    @staticmethod
    def _reachable(c: Client) -> bool:
        try:
            c.status()
        except ClientError:
            return False
        return True

    def halt(self) -> None:
        self.stop.set()
        for t in self.threads:
            t.join(timeout=30)


def _status(net: LocalNet, name: str) -> dict[str, Any] | None:
    return net.status(name, timeout_s=3)


def _primary(net: LocalNet) -> str:
    keys = {n.key: n.name for n in net.nodes()}
    for n in net.nodes():
        st = _status(net, n.name)
        if st is not None:
            return keys.get(st["primary"], n.name)
    raise RuntimeError("no node answers")


def _validators(net: LocalNet) -> list[str]:
    return [n.name for n in net.nodes() if n.role == "validator"]


def _heights(net: LocalNet, names: list[str] | None = None) -> dict[str, int]:
    """Each node's height (of `names` only, if given: asking a paused node costs `_status`'s
    3 s timeout, which a measure of the others' progress must not include)."""
    out = {}
    for n in net.nodes():
        if names is not None and n.name not in names:
            continue
        st = _status(net, n.name)
        if st is not None:
            out[n.name] = int(st["height"])
    return out


def _wait_progress(net: LocalNet, names: list[str], timeout_s: float) -> float:
    """Seconds until every named node committed a new block (raises after timeout)."""
    start = _heights(net, names)
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout_s:
        now = _heights(net, names)
        if all(now.get(k, -1) > start.get(k, 10**18) for k in names if k in start) and len(start) == len(names):
            return time.monotonic() - t0
        if len(start) < len(names):
            start = {k: v for k, v in now.items() if k in names}
        time.sleep(0.1)
    raise AssertionError(f"no progress on {names} within {timeout_s:.1f} s (heights {_heights(net)})")


def _set_faults(net: LocalNet, name: str, block: list[str]) -> None:
    r = httpx.post(f"{net.node(name).api_url}/v1/admin/faults", json={"block": block}, timeout=5)
    if r.status_code != 200:
        raise RuntimeError(f"{name}: POST /v1/admin/faults answered {r.status_code} {r.text[:200]}")


def _partition(net: LocalNet, groups: list[list[str]]) -> None:
    """Each node blocks every node outside its group (both sides, so both directions)."""
    keys = {n.name: n.key for n in net.nodes()}
    for g in groups:
        outside = [keys[m] for m in keys if m not in g]
        for name in g:
            _set_faults(net, name, outside)


def _heal(net: LocalNet) -> None:
    for n in net.nodes():
        _set_faults(net, n.name, [])


START_ENV: dict[str, dict[str, tuple[str, dict[str, str]]]] = {}
"""Per scenario: nodes started from another entry module, with extra environment variables
(test switches). `nemesis` lists the fixed ones; a scenario's set-up adds those that name
keys or paths of the laid-out network."""
