"""Nemesis: faults on real node processes under load, then a check that nothing was lost.

    ./scripts/nemesis --all                 # every scenario (a few minutes)
    ./scripts/nemesis kill-primary pause    # some of them
    ./scripts/nemesis --list

Each scenario starts a fresh 4-node `LocalNet` on 127.0.0.1, runs a load generator
(the client library, signing product registrations and traces as several members)
while it injects its faults, stops the load, heals, and checks:

- every event the API acknowledged with 202 ends committed or rejected with a reason
  on every node (nothing lost), and no event id is in two blocks (nothing duplicated);
- every node has the same block hashes up to the common height and the same state root
  at the same executed height;
- no validator signed two different things for one slot: no node observed equivocation
  evidence and none is committed (``GET /v1/evidence``) -- except in ``byzantine``, where
  evidence against exactly the Byzantine node must be committed (on every node) and no
  other validator may be named;
- commits resume within 2x the view timeout after the fault ends.

Scenarios (faults by signal, by the transport's fault switch through the admin API
``POST /v1/admin/faults``, or by the test-only Byzantine node):
- ``kill-primary``: SIGKILL the primary mid-load, restart it;
- ``kill-replica``: SIGKILL a backup three times in a row, restarting it each time;
- ``pause``: SIGSTOP a node for longer than the view timeout, then SIGCONT;
- ``wipe``: stop a node, delete its data directory, restart it: it must resync, not fork;
- ``partition-primary``: cut the primary off from the other three (both ways) under
  load; the three change view and go on, the isolated one commits nothing; heal: it
  catches up;
- ``split``: 2-2 partition: no quorum, so no node commits anything while it lasts
  (checked); heal: commits resume;
- ``byzantine``: one node runs the test-only equivocating entry
  (``python -m afterchain.node.testing.byzantine``, guarded by its environment switches) from the
  start (conflicting PREPARE/COMMIT votes and, as primary, pre-prepares); the three
  honest nodes keep committing and agree; evidence naming it is committed.

Censorship scenarios (issue 28): ``node0`` (the primary of view 0) runs the test-only
entry ``python -m afterchain.node.testing.censor`` from the start; the honest backups'
request timers (T1 2 s, T2 8 s: the node.toml defaults) must replace it. Each reports
``fault_to_commit_s``: from the load's start (the fault is on from the start) to the
proposal time of the first block at ``node1`` that carries the delayed events, and fails
if that exceeds T2 + 2 view timeouts + 2 s:

- ``censor``: ``node0`` leaves out every event of the load's organisation (acme) while
  primary, and still proposes (empty) blocks on time, so no view timer fires;
- ``slow``: ``node0`` proposes one event per block, each block at 0.8 x the view timeout.

Member-node scenarios (issue 23) run 4 validators and 2 member nodes (registered on the
ledger by their organisations); the load writes through ``member0`` first (failing over
to the validators), so the member's relay is on the path of what is acknowledged. The
checks above cover every node, members included, and the member must have caught up:

- ``member-kill``: SIGKILL ``member0`` twice under load, restarting it each time;
- ``member-pause``: SIGSTOP ``member0`` for 3x the view timeout (the validators keep
  committing meanwhile), then SIGCONT;
- ``member-partition``: cut ``member0`` off from every other node with the fault switch
  (both sides) for 3x the view timeout, the validators keep committing; heal;
- ``member-byzantine``: ``member0`` runs the test-only lying member
  (``python -m afterchain.node.testing.byzantine_member``): it answers other members'
  follow requests with forged, short or tampered certificates, blocks that do not chain
  and replays, and floods the validators with requests. ``member1`` lists it as a peer
  and is cut off from the validators for a while, so it can only ask the liar: it must
  refuse every lie (counted by reason), disconnect the liar, commit nothing while cut
  off, and catch up from the validators after the heal; the validators keep committing
  throughout (the load goes to the validators here).

Storage and clock scenarios (issue 28; docs/OPERATIONS.md, "Storage faults" and "Clocks"):

- ``disk-full``: ``node2`` runs under the LD_PRELOAD shim (`node.tools.faultfs`); mid-load
  every write under its data directory fails with ENOSPC: it must stop with exit code 6,
  having logged ``storage_fault`` (``disk_full``) and said why; the others go on; the shim
  is disarmed (space freed) and the node restarted: it catches up;
- ``fsync-fail``: the same with fsync failing with EIO (``io_error``);
- ``corrupt``: ``node2`` stopped and bytes flipped in its largest table file, then (after
  its repair) SIGKILLed and its chain-store write-ahead log cut in half: each time it must
  refuse to start (exit 6, ``corruption``); repaired by deleting its data directory, it
  resyncs from its peers;
- ``clock-jump``: every validator runs the test-only skewed-clock entry
  (``python -m afterchain.node.testing.clock_skew``); the primary's clock jumps 5 minutes
  ahead, later the next primary's 5 minutes behind, then the next one's drifts ahead by
  250 ms a second (one wrong clock at a time): the view
  changes each time, commits go on, and every block committed meanwhile carries a time
  within the bound (docs/PROTOCOL.md, "Block time") of the real time it was seen committed.

Each reports, besides the checks above, the time from the fault to the node's clean stop
(``fault_to_stop_s``, ``exit_codes``) and from the repair to its catch-up
(``repair_to_caught_up_s``), or from the clock jump to the next commit
(``fault_to_commit_s``) and the block times' distance from the real time.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from afterchain.node.client.sdk import Client, ClientError, content_hash
from afterchain.node.tools import faultfs
from afterchain.node.tools.demo import gtin14
from afterchain.node.tools.localnet import _CHILDREN as _LOCALNET_CHILDREN
from afterchain.node.tools.localnet import LocalNet

__all__ = ["SCENARIOS", "main", "run_scenario"]

VIEW_TIMEOUT_MS = 1500
GTIN = gtin14("0950600077777")


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


def _heights(net: LocalNet) -> dict[str, int]:
    out = {}
    for n in net.nodes():
        st = _status(net, n.name)
        if st is not None:
            out[n.name] = int(st["height"])
    return out


def _wait_progress(net: LocalNet, names: list[str], timeout_s: float) -> float:
    """Seconds until every named node committed a new block (raises after timeout)."""
    start = {k: v for k, v in _heights(net).items() if k in names}
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout_s:
        now = _heights(net)
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


# --------------------------------------------------------------------------- faults
def kill_primary(net: LocalNet, report: dict[str, Any]) -> None:
    p = _primary(net)
    net.kill(p)
    report["faults"].append(f"SIGKILL {p} (primary)")
    others = [n.name for n in net.nodes() if n.name != p]
    report["resume_s"].append(_wait_progress(net, others, 6 * VIEW_TIMEOUT_MS / 1000))
    time.sleep(2)
    net.start(p)
    net.wait_healthy([p], timeout_s=60)


def kill_replica(net: LocalNet, report: dict[str, Any]) -> None:
    for _ in range(3):
        p = _primary(net)
        victim = next(n.name for n in net.nodes() if n.name != p)
        net.kill(victim)
        report["faults"].append(f"SIGKILL {victim}")
        time.sleep(1.5)
        net.start(victim)
        net.wait_healthy([victim], timeout_s=60)


def pause(net: LocalNet, report: dict[str, Any]) -> None:
    victim = _primary(net)
    pid = net.pid(victim)
    if pid is None:
        raise RuntimeError(f"{victim} is not running")
    os.kill(pid, signal.SIGSTOP)
    report["faults"].append(f"SIGSTOP {victim} for {3 * VIEW_TIMEOUT_MS} ms")
    try:
        others = [n.name for n in net.nodes() if n.name != victim]
        report["resume_s"].append(_wait_progress(net, others, 6 * VIEW_TIMEOUT_MS / 1000))
        time.sleep(3 * VIEW_TIMEOUT_MS / 1000)
    finally:
        os.kill(pid, signal.SIGCONT)
    report["faults"].append(f"SIGCONT {victim}")
    net.wait_healthy([victim], timeout_s=60)


def wipe(net: LocalNet, report: dict[str, Any]) -> None:
    p = _primary(net)
    victim = next(n.name for n in net.nodes() if n.name != p)
    net.stop(victim)
    shutil.rmtree(net.root / victim / "data")
    report["faults"].append(f"stop {victim}, delete its data directory, restart")
    time.sleep(1)
    net.start(victim)
    net.wait_healthy([victim], timeout_s=90)


def partition_primary(net: LocalNet, report: dict[str, Any]) -> None:
    p = _primary(net)
    others = [n.name for n in net.nodes() if n.name != p]
    _partition(net, [[p], others])
    report["faults"].append(f"partition {p} (primary) from {', '.join(others)}")
    try:
        report["resume_s"].append(_wait_progress(net, others, 6 * VIEW_TIMEOUT_MS / 1000))
        isolated = _heights(net).get(p)
        time.sleep(2 * VIEW_TIMEOUT_MS / 1000)
        after = _heights(net).get(p)
        if isolated is not None and after is not None and after > isolated:
            report["problems"].append(f"the isolated {p} committed {after - isolated} blocks without a quorum")
    finally:
        _heal(net)
    report["faults"].append("heal")
    t0 = time.monotonic()
    target = max(_heights(net).values())
    while time.monotonic() - t0 < 60 and _heights(net).get(p, -1) < target:
        time.sleep(0.1)
    report["catch_up_s"] = round(time.monotonic() - t0, 2)
    report["resume_s"].append(_wait_progress(net, [n.name for n in net.nodes()], 6 * VIEW_TIMEOUT_MS / 1000))


def split(net: LocalNet, report: dict[str, Any]) -> None:
    names = [n.name for n in net.nodes()]
    groups = [names[:2], names[2:]]
    _partition(net, groups)
    report["faults"].append(f"split {'+'.join(groups[0])} | {'+'.join(groups[1])}")
    try:
        time.sleep(1.0)  # what was already in flight may still commit
        before = _heights(net)
        time.sleep(3 * VIEW_TIMEOUT_MS / 1000)
        after = _heights(net)
        moved = {k: after[k] - before[k] for k in before if k in after and after[k] != before[k]}
        report["commits_during_split"] = sum(moved.values())
        if moved:
            report["problems"].append(f"commits without a quorum during the split: {moved}")
    finally:
        _heal(net)
    report["faults"].append("heal")
    report["resume_s"].append(_wait_progress(net, names, 6 * VIEW_TIMEOUT_MS / 1000))


BYZANTINE_NODE = "node3"
BYZANTINE_ENV = {"AFTERCHAIN_TEST_BYZANTINE": "equivocate", "AFTERCHAIN_TEST_SWITCHES": "1"}
BYZANTINE_ENTRY = "afterchain.node.testing.byzantine"


def byzantine(net: LocalNet, report: dict[str, Any]) -> None:
    report["faults"].append(f"{BYZANTINE_NODE} equivocates (test flag) from the start")
    key = net.node(BYZANTINE_NODE).key
    honest = [n for n in net.nodes() if n.name != BYZANTINE_NODE]
    report["resume_s"].append(_wait_progress(net, [n.name for n in honest], 6 * VIEW_TIMEOUT_MS / 1000))
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            if all(any(e["validator"] == key for e in httpx.get(f"{n.api_url}/v1/evidence", timeout=3).json()["evidence"])
                   for n in honest):
                return
        except (httpx.HTTPError, ValueError, KeyError):
            pass
        time.sleep(0.2)
    report["problems"].append("no evidence against the Byzantine node committed within 30 s")


# --------------------------------------------------------------------------- censorship
CENSOR_NODE = "node0"
CENSOR_ENTRY = "afterchain.node.testing.censor"
REQUEST_TIMEOUT_MS = 8000  # node.toml [consensus] request_timeout_ms default


def _setup_censor(net: LocalNet) -> None:
    """The censoring node's environment names the load's organisation's key."""
    START_ENV["censor"] = {CENSOR_NODE: (CENSOR_ENTRY, {
        "AFTERCHAIN_TEST_CENSOR": "censor", "AFTERCHAIN_TEST_SWITCHES": "1",
        "AFTERCHAIN_TEST_CENSOR_SENDERS": net.member_key("acme").public.hex()})}


def _until_events_commit(net: LocalNet, report: dict[str, Any], min_events: int) -> None:
    """`fault_to_commit_s`: from the load's start (the fault is on from the start) to the
    proposal time of node1's first block with >= `min_events` events (the delayed ones, once
    an honest primary proposes them); checked against the bound T2 + 2 view timeouts + 2 s."""
    url = net.node("node1").api_url
    bound = (REQUEST_TIMEOUT_MS + 2 * VIEW_TIMEOUT_MS) / 1000 + 2.0
    t0 = time.monotonic()
    h = 1
    while time.monotonic() - t0 < 3 * bound:
        head = int(httpx.get(f"{url}/v1/status", timeout=5).json()["height"])
        while h <= head:
            b = httpx.get(f"{url}/v1/blocks/{h}", timeout=5).json()
            if len(b["event_ids"]) >= min_events:
                took = int(b["header"]["time_ms"]) / 1000 - report["load_started_s"]
                report["fault_to_commit_s"] = round(took, 2)
                report["view_after"] = int(b["header"]["view"])
                report["request_timer_expiries"] = _timer_expiries(net)
                if not sum(report["request_timer_expiries"].values()):
                    report["problems"].append("no honest validator's request timer fired: was node0 ever primary?")
                if took > bound:
                    report["problems"].append(f"delayed events committed after {took:.1f} s (> bound {bound:.1f} s)")
                return
            h += 1
        time.sleep(0.1)
    report["problems"].append(f"no block with >= {min_events} events at node1 within {3 * bound:.0f} s")


def _timer_expiries(net: LocalNet) -> dict[str, int]:
    """afterchain_request_timer_expiries_total by reason, summed over the honest validators."""
    out: dict[str, int] = {}
    for n in net.nodes():
        if n.name == CENSOR_NODE or n.role != "validator":
            continue
        for line in httpx.get(f"{n.api_url}/metrics", timeout=5).text.splitlines():
            if line.startswith("afterchain_request_timer_expiries_total{"):
                reason = line.split('reason="', 1)[1].split('"', 1)[0]
                out[reason] = out.get(reason, 0) + int(float(line.rsplit(" ", 1)[1]))
    return out


def censor(net: LocalNet, report: dict[str, Any]) -> None:
    report["faults"].append(f"{CENSOR_NODE} leaves out every acme event while primary (test flag) from the start")
    _until_events_commit(net, report, 1)


def slow(net: LocalNet, report: dict[str, Any]) -> None:
    report["faults"].append(f"{CENSOR_NODE} proposes one event per block at 0.8 x the view timeout (test flag)")
    _until_events_commit(net, report, 2)


# --------------------------------------------------------------------------- member nodes
MEMBER = "member0"
MEMBER_FAULT_S = 3 * VIEW_TIMEOUT_MS / 1000


def _catch_up(net: LocalNet, name: str, report: dict[str, Any], timeout_s: float = 60.0) -> None:
    """Wait until `name` has executed what the validators had committed when called."""
    target = max(v for k, v in _heights(net).items() if k in _validators(net))
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout_s:
        st = _status(net, name)
        if st is not None and int(st["executed_height"]) >= target:
            report.setdefault("member_catch_up_s", []).append(round(time.monotonic() - t0, 2))
            return
        time.sleep(0.1)
    report["problems"].append(f"{name} did not catch up to height {target} within {timeout_s:.0f} s "
                              f"(at {_heights(net).get(name)})")


def member_kill(net: LocalNet, report: dict[str, Any]) -> None:
    for _ in range(2):
        net.kill(MEMBER)
        report["faults"].append(f"SIGKILL {MEMBER}")
        report["resume_s"].append(_wait_progress(net, _validators(net), 6 * VIEW_TIMEOUT_MS / 1000))
        time.sleep(1.0)
        net.start(MEMBER)
        net.wait_healthy([MEMBER], timeout_s=60)
        _catch_up(net, MEMBER, report)


def member_pause(net: LocalNet, report: dict[str, Any]) -> None:
    pid = net.pid(MEMBER)
    if pid is None:
        raise RuntimeError(f"{MEMBER} is not running")
    os.kill(pid, signal.SIGSTOP)
    report["faults"].append(f"SIGSTOP {MEMBER} for {MEMBER_FAULT_S:.1f} s")
    try:
        report["resume_s"].append(_wait_progress(net, _validators(net), 6 * VIEW_TIMEOUT_MS / 1000))
        time.sleep(MEMBER_FAULT_S)
    finally:
        os.kill(pid, signal.SIGCONT)
    report["faults"].append(f"SIGCONT {MEMBER}")
    net.wait_healthy([MEMBER], timeout_s=60)
    _catch_up(net, MEMBER, report)


def member_partition(net: LocalNet, report: dict[str, Any]) -> None:
    others = [n.name for n in net.nodes() if n.name != MEMBER]
    _partition(net, [[MEMBER], others])
    report["faults"].append(f"partition {MEMBER} from {', '.join(others)}")
    try:
        report["resume_s"].append(_wait_progress(net, _validators(net), 6 * VIEW_TIMEOUT_MS / 1000))
        time.sleep(MEMBER_FAULT_S)
    finally:
        _heal(net)
    report["faults"].append("heal")
    _catch_up(net, MEMBER, report)


BYZANTINE_MEMBER_ENTRY = "afterchain.node.testing.byzantine_member"
BYZANTINE_MEMBER_ENV = {"AFTERCHAIN_TEST_BYZANTINE": "member", "AFTERCHAIN_TEST_SWITCHES": "1"}
HONEST_MEMBER = "member1"


def _member_refusals(net: LocalNet, name: str) -> tuple[dict[str, int], int]:
    """(refused blocks by reason, peers banned) from `name`'s /metrics."""
    text = httpx.get(f"{net.node(name).api_url}/metrics", timeout=5).text
    refused: dict[str, int] = {}
    banned = 0
    for ln in text.splitlines():
        if ln.startswith("afterchain_member_blocks_refused_total{"):
            reason = ln.split('reason="', 1)[1].split('"', 1)[0]
            refused[reason] = int(float(ln.rsplit(" ", 1)[1]))
        elif ln.startswith("afterchain_member_peers_banned_total "):
            banned = int(float(ln.rsplit(" ", 1)[1]))
    return refused, banned


def _setup_member_byzantine(net: LocalNet) -> None:
    net.set_peers(HONEST_MEMBER, [*_validators(net), MEMBER])  # it also knows the liar


def member_byzantine(net: LocalNet, report: dict[str, Any]) -> None:
    report["faults"].append(f"{MEMBER} lies to members and floods the validators (test entry) from the start")
    vals = _validators(net)
    before = _heights(net).get(HONEST_MEMBER, 0)
    _partition(net, [[HONEST_MEMBER, MEMBER], vals])  # the liar is the honest member's only source
    keys = {n.name: n.key for n in net.nodes()}
    _set_faults(net, MEMBER, [])  # the liar still follows the validators (it has real blocks to falsify)
    for v in vals:
        _set_faults(net, v, [keys[HONEST_MEMBER]])
    report["faults"].append(f"cut {HONEST_MEMBER} off from the validators")
    try:
        report["resume_s"].append(_wait_progress(net, vals, 6 * VIEW_TIMEOUT_MS / 1000))
        deadline = time.monotonic() + 20
        refused, banned = _member_refusals(net, HONEST_MEMBER)
        while not banned and time.monotonic() < deadline:
            time.sleep(0.2)
            refused, banned = _member_refusals(net, HONEST_MEMBER)
        report["member_refused"], report["member_banned"] = refused, banned
        if not banned:
            report["problems"].append(f"{HONEST_MEMBER} did not disconnect the lying member (refused {refused})")
        during = _heights(net).get(HONEST_MEMBER, 0)
        target = max(v for k, v in _heights(net).items() if k in vals)
        if during > before and during >= target:
            report["problems"].append(f"{HONEST_MEMBER} kept up while it could only hear the liar")
        report["member_progress_while_cut_off"] = during - before
    finally:
        _heal(net)
    report["faults"].append("heal")
    _catch_up(net, HONEST_MEMBER, report)


# --------------------------------------------------------------------------- storage faults (issue 28)
STORAGE_NODE = "node2"
"""The node whose disk fails (a backup at the start: the primary of view 0 is node0)."""
EXIT_STORAGE = 6
"""`afterchain node run`'s exit code on a storage fault (`node.cli.EXIT_STORAGE`)."""
STORAGE_STOP_S = 30.0


def _faultfs_paths(net: LocalNet) -> tuple[Path, Path]:
    return net.root / "faultfs" / "libfaultfs.so", net.root / "faultfs" / "trigger"


def _setup_faultfs(net: LocalNet, name: str) -> None:
    """Build the LD_PRELOAD shim into the network's directory and start `STORAGE_NODE` under
    it (disarmed). No C compiler: the scenario cannot run (RuntimeError names why)."""
    lib = faultfs.build(net.root / "faultfs")
    if lib is None:
        raise RuntimeError("no C compiler (gcc/cc) to build the faultfs LD_PRELOAD shim")
    _, trigger = _faultfs_paths(net)
    START_ENV[name] = {STORAGE_NODE: ("afterchain.node.cli",
                                      faultfs.env(lib, net.root / STORAGE_NODE / "data", trigger))}


def _wait_exit(net: LocalNet, name: str, pid: int, timeout_s: float) -> int | None:
    """The exit code of process `pid` of `name` once it exited (None: not started by this
    process, so unknown); raises after `timeout_s`."""
    proc = _LOCALNET_CHILDREN.get(pid)
    t_end = time.monotonic() + timeout_s
    while time.monotonic() < t_end:
        if proc is not None:
            code = proc.poll()
            if code is not None:
                return code
        elif net.pid(name) is None:
            return None
        time.sleep(0.02)
    raise AssertionError(f"{name} did not stop within {timeout_s:.0f} s of its storage fault")


def _check_stopped(net: LocalNet, name: str, pid: int, kind: str, report: dict[str, Any], t_fault: float) -> None:
    """`name` must stop with exit code 6, having logged ``storage_fault`` of `kind` and said
    why on stderr; the others keep committing meanwhile."""
    code = _wait_exit(net, name, pid, STORAGE_STOP_S)
    report.setdefault("fault_to_stop_s", []).append(round(time.monotonic() - t_fault, 3))
    report.setdefault("exit_codes", []).append(code)
    (net.root / name / "node.pid").unlink(missing_ok=True)
    log = (net.root / name / "node.log").read_text(errors="replace")
    if code != EXIT_STORAGE:
        report["problems"].append(f"{name} exited with {code}, expected {EXIT_STORAGE}")
    logged = []
    for ln in log.splitlines():
        try:
            rec = json.loads(ln)
        except ValueError:
            continue
        if isinstance(rec, dict) and rec.get("event") == "storage_fault":
            logged.append(rec.get("kind"))
    if kind not in logged:
        report["problems"].append(f"{name} did not log a storage_fault of kind {kind} (logged {logged})")
    stop_lines = [ln for ln in log.splitlines() if ln.startswith("node stopped: storage fault")]
    if not stop_lines:
        report["problems"].append(f"{name} did not say why it stopped")
    else:
        report.setdefault("stop_messages", []).append(stop_lines[-1][:300])
    others = [n.name for n in net.nodes() if n.name != name]
    report["resume_s"].append(_wait_progress(net, others, 6 * VIEW_TIMEOUT_MS / 1000))


def _rejoin(net: LocalNet, name: str, report: dict[str, Any], t_repair: float) -> None:
    net.start(name, extra_env=START_ENV.get(report["scenario"], {}).get(name, ("", {}))[1])
    net.wait_healthy([name], timeout_s=90)
    target = max(v for k, v in _heights(net).items() if k != name)
    t_end = time.monotonic() + 90
    while time.monotonic() < t_end and _heights(net).get(name, -1) < target:
        time.sleep(0.1)
    report.setdefault("repair_to_caught_up_s", []).append(round(time.monotonic() - t_repair, 2))
    if _heights(net).get(name, -1) < target:
        report["problems"].append(f"{name} did not catch up to height {target} after the repair")


def _disk_fault(net: LocalNet, report: dict[str, Any], mode: str, kind: str, what: str) -> None:
    name = STORAGE_NODE
    _, trigger = _faultfs_paths(net)
    pid = net.pid(name)
    if pid is None:
        raise RuntimeError(f"{name} is not running")
    t_fault = time.monotonic()
    faultfs.arm(trigger, mode)
    report["faults"].append(f"{what} on {name} (LD_PRELOAD shim: {mode} under its data directory)")
    try:
        _check_stopped(net, name, pid, kind, report, t_fault)
    finally:
        faultfs.disarm(trigger)
    report["faults"].append(f"repair: {'space freed' if mode == 'enospc' else 'disk healthy again'}, restart {name}")
    _rejoin(net, name, report, time.monotonic())


def disk_full(net: LocalNet, report: dict[str, Any]) -> None:
    _disk_fault(net, report, "enospc", "disk_full", "disk full")


def fsync_fail(net: LocalNet, report: dict[str, Any]) -> None:
    _disk_fault(net, report, "eio-fsync", "io_error", "fsync fails")


def _flip_table(data_dir: Path) -> Path | None:
    """Flip a byte in every 4 KiB of the largest table file under `data_dir` (None: none)."""
    tables = sorted(data_dir.rglob("*.sst"), key=lambda p: p.stat().st_size)
    if not tables:
        return None
    sst = tables[-1]
    raw = bytearray(sst.read_bytes())
    for i in range(100, max(101, len(raw) - 200), 4096):
        raw[i] ^= 0xFF
    sst.write_bytes(bytes(raw))
    return sst


def _truncate_chain_wal(data_dir: Path) -> Path | None:
    logs = sorted((data_dir / "chain").glob("*.log"), key=lambda p: p.stat().st_size)
    if not logs or not logs[-1].stat().st_size:
        return None
    wal = logs[-1]
    with wal.open("r+b") as f:
        f.truncate(wal.stat().st_size // 2 + 17)
    return wal


def corrupt(net: LocalNet, report: dict[str, Any]) -> None:
    """Two faults on `STORAGE_NODE`, one after the other: a damaged table file (stopped
    cleanly, bytes flipped in its largest SST), then a truncated chain-store write-ahead
    log (SIGKILLed under load, its log cut in half). Each time it must refuse to start
    (exit 6, never serving the damaged state); the repair is the operator's: delete the
    data directory and start it, it resyncs from its peers."""
    name = STORAGE_NODE
    data = net.root / name / "data"
    for fault in ("table", "wal"):
        if fault == "table":
            net.stop(name)
            damaged = _flip_table(data)
        else:
            net.kill(name)
            damaged = _truncate_chain_wal(data)
        if damaged is None:
            report["problems"].append(f"{name}: no {'table file' if fault == 'table' else 'write-ahead log'} to damage")
            net.start(name)
            net.wait_healthy([name], timeout_s=90)
            continue
        report["faults"].append(f"{'flip bytes in' if fault == 'table' else 'truncate'} {damaged.relative_to(net.root)}")
        t_fault = time.monotonic()
        pid = net.start(name)
        _check_stopped(net, name, pid, "corruption", report, t_fault)
        shutil.rmtree(data)
        report["faults"].append(f"repair: delete {name}'s data directory, restart (resync from peers)")
        _rejoin(net, name, report, time.monotonic())
        time.sleep(1.0)  # a little load on the repaired node before the next fault


# --------------------------------------------------------------------------- clocks (issue 28)
CLOCK_ENTRY = "afterchain.node.testing.clock_skew"
CLOCK_JUMP_MS = 5 * 60_000
CLOCK_DRIFT_MS_PER_S = 250.0
BLOCK_TIME_FUTURE_MS = 2_000
BLOCK_TIME_PAST_MS = 10_000
"""The bound backups hold a proposed block's time to (`node.runtime.app_adapter`; the tools
do not import the runtime): at most this far ahead of / behind their clocks."""


def _setup_clock(net: LocalNet) -> None:
    """Every validator runs the test-only skewed-clock entry, each with its own (absent:
    no skew) clock file, so the scenario can jump whichever is primary."""
    START_ENV["clock-jump"] = {n.name: (CLOCK_ENTRY, {"AFTERCHAIN_TEST_CLOCK_FILE": str(net.root / n.name / "clock_skew"),
                                                      "AFTERCHAIN_TEST_SWITCHES": "1"})
                               for n in net.nodes()}


def _skew(net: LocalNet, name: str, offset_ms: int, drift_ms_per_s: float = 0.0) -> None:
    path = net.root / name / "clock_skew"
    tmp = path.with_suffix(".tmp")
    tmp.write_text(f"{offset_ms} {drift_ms_per_s}\n")
    os.replace(tmp, path)


@dataclass
class _CommitTimes:
    """Polls every node's height: the real time (this machine's clock, ms) each height was
    first seen committed somewhere."""

    net: LocalNet
    seen: dict[int, int] = field(default_factory=dict)
    stop: threading.Event = field(default_factory=threading.Event)
    thread: threading.Thread | None = None

    def start(self) -> None:
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        urls = [n.api_url for n in self.net.nodes()]
        with httpx.Client(timeout=2) as http:
            while not self.stop.is_set():
                for u in urls:
                    try:
                        h = int(http.get(f"{u}/v1/status").json()["height"])
                    except (httpx.HTTPError, ValueError, KeyError):
                        continue
                    now = int(time.time() * 1000)
                    top = max(self.seen, default=0)
                    for x in range(top + 1, h + 1):
                        self.seen.setdefault(x, now)
                time.sleep(0.05)

    def halt(self) -> None:
        self.stop.set()
        if self.thread is not None:
            self.thread.join(timeout=10)


def clock_jump(net: LocalNet, report: dict[str, Any]) -> None:
    """The primary's clock jumps 5 minutes ahead (its blocks are refused, the view changes);
    a while later it is right again and the next primary's jumps 5 minutes behind (its
    blocks lag until they are refused, the view changes), then is right again; then the
    next primary's clock drifts ahead by 250 ms a second (its blocks are refused once
    they are more than the bound ahead), then is right again. Each block
    committed meanwhile must carry a time within the bound of the real time it was seen
    committed at, and every node (the wrong-clock ones too) ends on the same chain."""
    watch = _CommitTimes(net)
    watch.start()
    first = max(_heights(net).values())
    try:
        ahead = _primary(net)
        _skew(net, ahead, CLOCK_JUMP_MS)
        report["faults"].append(f"{ahead}'s clock jumps {CLOCK_JUMP_MS // 60_000} min ahead (while primary)")
        others = [n.name for n in net.nodes() if n.name != ahead]
        t0 = time.monotonic()
        while time.monotonic() - t0 < 15 and _primary(net) == ahead:
            time.sleep(0.1)
        report["resume_s"].append(_wait_progress(net, others, 6 * VIEW_TIMEOUT_MS / 1000))
        report.setdefault("fault_to_commit_s", []).append(round(time.monotonic() - t0, 2))
        time.sleep(2.0)
        # (two wrong clocks at once would be two faults: n = 4 tolerates one)
        _skew(net, ahead, 0)
        report["faults"].append(f"{ahead}'s clock right again")
        behind = _primary(net)
        if behind == ahead:
            report["problems"].append(f"{ahead} is still primary 15 s after its clock jumped ahead")
            return
        _skew(net, behind, -CLOCK_JUMP_MS)
        report["faults"].append(f"{behind}'s clock jumps {CLOCK_JUMP_MS // 60_000} min behind (while primary)")
        t1 = time.monotonic()
        while time.monotonic() - t1 < BLOCK_TIME_PAST_MS / 1000 + 15 and _primary(net) == behind:
            time.sleep(0.1)
        rest = [n.name for n in net.nodes() if n.name not in (ahead, behind)]
        report["resume_s"].append(_wait_progress(net, rest, 6 * VIEW_TIMEOUT_MS / 1000))
        report.setdefault("fault_to_commit_s", []).append(round(time.monotonic() - t1, 2))
        if _primary(net) == behind:
            report["problems"].append(f"{behind} is still primary {BLOCK_TIME_PAST_MS / 1000 + 15:.0f} s after its "
                                      "clock jumped behind")
        time.sleep(2.0)
        _skew(net, behind, 0)
        report["faults"].append(f"{behind}'s clock right again")
        time.sleep(1.0)
        drifting = _primary(net)
        _skew(net, drifting, 0, CLOCK_DRIFT_MS_PER_S)
        report["faults"].append(f"{drifting}'s clock gains {CLOCK_DRIFT_MS_PER_S:.0f} ms a second (while primary)")
        t2 = time.monotonic()
        limit = BLOCK_TIME_FUTURE_MS / CLOCK_DRIFT_MS_PER_S + 15
        while time.monotonic() - t2 < limit and _primary(net) == drifting:
            time.sleep(0.1)
        rest = [n.name for n in net.nodes() if n.name != drifting]
        report["resume_s"].append(_wait_progress(net, rest, 6 * VIEW_TIMEOUT_MS / 1000))
        report.setdefault("fault_to_commit_s", []).append(round(time.monotonic() - t2, 2))
        if _primary(net) == drifting:
            report["problems"].append(f"{drifting} is still primary {limit:.0f} s after its clock began to drift")
        time.sleep(2.0)
        _skew(net, drifting, 0)
        report["faults"].append(f"{drifting}'s clock right again")
    finally:
        watch.halt()
        for n in net.nodes():
            _skew(net, n.name, 0)
    last = max(watch.seen, default=first)
    http = httpx.Client(timeout=10)
    try:
        url = net.node(_validators(net)[0]).api_url
        skews = []
        for h in range(first + 1, last + 1):
            if h not in watch.seen:
                continue
            b = http.get(f"{url}/v1/blocks/{h}").json()
            t = int(b["header"]["time_ms"]) if "header" in b else int(b["time_ms"])
            skews.append(t - watch.seen[h])
    finally:
        http.close()
    # a block is seen committed after it was proposed: the poll (50 ms a round) and the
    # commit latency make it look older; 3 s of slack for those on a loaded machine
    report["block_time_ahead_ms"] = max(skews, default=0)
    report["block_time_behind_ms"] = -min(skews, default=0)
    report["blocks_timed"] = len(skews)
    if report["block_time_ahead_ms"] > BLOCK_TIME_FUTURE_MS + 500:
        report["problems"].append(f"a block time {report['block_time_ahead_ms']} ms ahead of the real time")
    if report["block_time_behind_ms"] > BLOCK_TIME_PAST_MS + 3_000:
        report["problems"].append(f"a block time {report['block_time_behind_ms']} ms behind the real time")
    report["resume_s"].append(_wait_progress(net, [n.name for n in net.nodes()], 6 * VIEW_TIMEOUT_MS / 1000))


SCENARIOS: dict[str, Callable[[LocalNet, dict[str, Any]], None]] = {
    "kill-primary": kill_primary,
    "kill-replica": kill_replica,
    "pause": pause,
    "wipe": wipe,
    "partition-primary": partition_primary,
    "split": split,
    "byzantine": byzantine,
    "member-kill": member_kill,
    "member-pause": member_pause,
    "member-partition": member_partition,
    "member-byzantine": member_byzantine,
    "disk-full": disk_full,
    "fsync-fail": fsync_fail,
    "corrupt": corrupt,
    "clock-jump": clock_jump,
    "censor": censor,
    "slow": slow,
}
START_ENV: dict[str, dict[str, tuple[str, dict[str, str]]]] = {
    "byzantine": {BYZANTINE_NODE: (BYZANTINE_ENTRY, BYZANTINE_ENV)},
    "member-byzantine": {MEMBER: (BYZANTINE_MEMBER_ENTRY, BYZANTINE_MEMBER_ENV)},
    "slow": {CENSOR_NODE: (CENSOR_ENTRY, {"AFTERCHAIN_TEST_CENSOR": "slow", "AFTERCHAIN_TEST_SWITCHES": "1"})},
    # "censor": filled in by its SETUP (the environment names a key made by `create`)
}
"""Per scenario: nodes started from another entry module, with extra environment variables
(test switches)."""
MEMBERS: dict[str, int] = {"member-kill": 2, "member-pause": 2, "member-partition": 2, "member-byzantine": 2}
"""Per scenario: member nodes next to the 4 validators (none when absent)."""
LOAD_FIRST: dict[str, str] = {"member-kill": MEMBER, "member-pause": MEMBER, "member-partition": MEMBER}
"""Per scenario: the node the load writes to first."""
SETUP: dict[str, Callable[[LocalNet], None]] = {
    "member-byzantine": _setup_member_byzantine,
    "disk-full": lambda net: _setup_faultfs(net, "disk-full"),
    "fsync-fail": lambda net: _setup_faultfs(net, "fsync-fail"),
    "clock-jump": _setup_clock,
    "censor": _setup_censor,
}
"""Per scenario: changes to the laid-out network before it starts."""


# --------------------------------------------------------------------------- checker
def check(net: LocalNet, load: Load, report: dict[str, Any]) -> None:
    names = [n.name for n in net.nodes()]
    urls = {n.name: n.api_url for n in net.nodes()}
    http = httpx.Client(timeout=10)
    try:
        # everything acknowledged reaches a final outcome on every node
        deadline = time.monotonic() + 60
        pending = {(n, i) for n in names for i in load.acked}
        outcomes: dict[bytes, set[str]] = {}
        while pending and time.monotonic() < deadline:
            for n, i in list(pending):
                r = http.get(f"{urls[n]}/v1/events/{i.hex()}")
                if r.status_code == 200 and r.json()["status"] in ("committed", "rejected"):
                    pending.discard((n, i))
                    outcomes.setdefault(i, set()).add(r.json()["status"])
            # an event dropped with a reason after its 202 (e.g. its nonce used by another
            # event while the node that took it was down) is known only to the nodes that
            # held it: rejected there, unknown elsewhere, and final
            rejected = {i for i, s in outcomes.items() if "rejected" in s}
            pending = {(n, i) for n, i in pending if i not in rejected}
            if pending:
                time.sleep(0.2)
        report["acknowledged"] = len(load.acked)
        report["lost"] = len({i for _, i in pending})
        report["rejected_with_reason"] = sum(1 for s in outcomes.values() if s == {"rejected"})
        split = [i.hex()[:16] for i, s in outcomes.items() if len(s) > 1]
        if split:
            report["problems"].append(f"{len(split)} events committed on some nodes and rejected on others: {split[:5]}")
        # the same chain everywhere; no event in two blocks
        heights = {n: int(http.get(f"{urls[n]}/v1/status").json()["height"]) for n in names}
        top = min(heights.values())
        seen: dict[str, int] = {}
        dup = 0
        for h in range(1, top + 1):
            hashes = set()
            for n in names:
                b = http.get(f"{urls[n]}/v1/blocks/{h}").json()
                hashes.add(b["hash"])
                if n == names[0]:
                    for e in b["event_ids"]:
                        dup += e in seen
                        seen[e] = h
            if len(hashes) != 1:
                raise AssertionError(f"nodes disagree at height {h}")
        report["duplicated"] = dup
        report["blocks_compared"] = top
        # who signed twice: observed by any node, and committed evidence (every node's view)
        by_key = {n.key: n.name for n in net.nodes()}
        observed: set[str] = set()
        committed: dict[str, set[str]] = {}
        records = 0
        for n in names:
            doc = http.get(f"{urls[n]}/v1/evidence").json()
            observed |= {by_key.get(k, k[:16]) for k in doc["observed"]}
            committed[n] = {by_key.get(e["validator"], e["validator"][:16]) for e in doc["evidence"]}
            records = max(records, len(doc["evidence"]))
        report["equivocators_observed"] = sorted(observed)
        report["equivocators_committed"] = sorted(set().union(*committed.values()))
        report["evidence_records"] = records
        expected = {BYZANTINE_NODE} if report["scenario"] == "byzantine" else set()
        report["equivocations"] = 0 if observed <= expected else len(observed - expected)
        if expected and any(c != expected for c in committed.values()):
            report["problems"].append(f"committed evidence per node {committed}, expected exactly {sorted(expected)} on each")
        if not expected and any(committed.values()):
            report["problems"].append(f"evidence committed against {report['equivocators_committed']}")
        # same root at the same executed height: nodes move on, so sample until they line up
        t_end = time.monotonic() + 20
        while True:
            st = [http.get(f"{urls[n]}/v1/status").json() for n in names]
            if len({s["executed_height"] for s in st}) == 1:
                if len({s["state_root"] for s in st}) != 1:
                    raise AssertionError("state roots differ at one height")
                break
            if time.monotonic() > t_end:
                raise AssertionError("could not see all nodes at one height")
            time.sleep(0.05)
    finally:
        http.close()
    problems = list(report["problems"])
    if report["lost"]:
        problems.append(f"{report['lost']} acknowledged events lost")
    if report["duplicated"]:
        problems.append(f"{report['duplicated']} events in two blocks")
    if report["equivocations"]:
        problems.append(f"equivocation by validators that should be honest: {report['equivocators_observed']}")
    limit = 2 * VIEW_TIMEOUT_MS / 1000 + 1.0  # +1 s: the status polling and a block interval
    slow = [r for r in report["resume_s"] if r > limit]
    if slow:
        problems.append(f"commits resumed after {max(slow):.1f} s (> {limit:.1f} s)")
    if problems:
        raise AssertionError("; ".join(problems))


def run_scenario(name: str, workdir: Path, *, load_s: float = 4.0) -> dict[str, Any]:
    net = LocalNet(workdir / name)
    net.create(4, chain_id=f"nemesis-{name}", view_timeout_ms=VIEW_TIMEOUT_MS, members=MEMBERS.get(name, 0))
    if name in SETUP:
        SETUP[name](net)
    report: dict[str, Any] = {"scenario": name, "faults": [], "resume_s": [], "problems": []}
    t0 = time.monotonic()
    try:
        net.start_all(timeout_s=60, entries=START_ENV.get(name, {}))
        net.wait_healthy(timeout_s=60)
        load = Load(net, first=LOAD_FIRST.get(name))
        report["load_started_s"] = time.time()
        load.start()
        time.sleep(load_s)
        SCENARIOS[name](net, report)
        time.sleep(load_s)
        load.halt()
        report["load_errors"] = load.errors
        check(net, load, report)
        report["ok"] = True
    except AssertionError as exc:
        report["ok"] = False
        report["error"] = str(exc)
    finally:
        net.stop_all()
    report["seconds"] = round(time.monotonic() - t0, 1)
    report["resume_s"] = [round(x, 2) for x in report["resume_s"]]
    return report


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="./scripts/nemesis", description=__doc__.split("\n\n")[0])
    ap.add_argument("scenarios", nargs="*", help=f"some of: {', '.join(SCENARIOS)}")
    ap.add_argument("--all", action="store_true", help="run every scenario")
    ap.add_argument("--list", action="store_true")
    ap.add_argument("--dir", default=None, help="work directory (default: a temporary one, deleted afterwards)")
    ap.add_argument("--json", dest="json_path", default=None)
    args = ap.parse_args(argv)
    if args.list:
        for k in SCENARIOS:
            print(k)
        return 0
    names = list(SCENARIOS) if args.all else args.scenarios
    unknown = [n for n in names if n not in SCENARIOS]
    if not names or unknown:
        print(f"choose scenarios from {', '.join(SCENARIOS)} or --all" + (f" (unknown: {unknown})" if unknown else ""),
              file=sys.stderr)
        return 2
    tmp = Path(args.dir) if args.dir else Path(tempfile.mkdtemp(prefix="afterchain-nemesis-"))
    reports = []
    try:
        for i, n in enumerate(names):
            print(f"scenario {n} ...", flush=True)
            r = run_scenario(n, tmp / str(i))
            reports.append(r)
            state = "ok" if r["ok"] else f"FAILED: {r['error']}"
            print(f"  {state}; faults: {', '.join(r['faults'])}; acknowledged {r.get('acknowledged', '?')}, "
                  f"lost {r.get('lost', '?')}, duplicated {r.get('duplicated', '?')}, rejected with reason "
                  f"{r.get('rejected_with_reason', '?')}, equivocators {r.get('equivocators_committed', '?')} "
                  f"({r.get('evidence_records', '?')} evidence records), "
                  f"commits resumed after {r['resume_s'] or '-'} s"
                  + (f", isolated node caught up in {r['catch_up_s']} s" if "catch_up_s" in r else "")
                  + (f", commits during the split {r['commits_during_split']}" if "commits_during_split" in r else "")
                  + (f", fault to commit {r['fault_to_commit_s']} s" if "fault_to_commit_s" in r else "")
                  + (f", block time minus the real time it was seen committed from {-r['block_time_behind_ms']} to "
                     f"{r['block_time_ahead_ms']} ms ({r['blocks_timed']} blocks)" if "block_time_behind_ms" in r else "")
                  + (f" (view {r.get('view_after')}, request timer expiries {r.get('request_timer_expiries')})"
                     if "request_timer_expiries" in r else "")
                  + (f", fault to clean stop {r['fault_to_stop_s']} s (exit {r.get('exit_codes')}), repair to caught up "
                     f"{r.get('repair_to_caught_up_s')} s" if "fault_to_stop_s" in r else "")
                  + f"; {r['seconds']} s", flush=True)
    finally:
        if not args.dir:
            shutil.rmtree(tmp, ignore_errors=True)
    total = {k: sum(int(r.get(k, 0)) for r in reports) for k in ("acknowledged", "lost", "duplicated")}
    faults = sum(len(r["faults"]) for r in reports)
    print(f"scenarios {len(reports)}, faults injected {faults}, events acknowledged {total['acknowledged']}, "
          f"lost {total['lost']}, duplicated {total['duplicated']}, failed {sum(not r['ok'] for r in reports)}")
    if args.json_path:
        Path(args.json_path).write_text(json.dumps(reports, indent=2) + "\n")
    return 0 if all(r["ok"] for r in reports) else 1


if __name__ == "__main__":
    sys.exit(main())
