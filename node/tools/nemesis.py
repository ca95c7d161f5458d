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
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx

from afterchain.node.tools.localnet import LocalNet
from afterchain.node.tools.nemesis_common import (
    START_ENV,
    VIEW_TIMEOUT_MS,
    Load,
    _heal,
    _heights,
    _partition,
    _primary,
    _wait_progress,
)
from afterchain.node.tools.nemesis_members import (
    BYZANTINE_MEMBER_ENTRY,
    BYZANTINE_MEMBER_ENV,
    MEMBER,
    _setup_member_byzantine,
    member_byzantine,
    member_kill,
    member_partition,
    member_pause,
)
from afterchain.node.tools.nemesis_storage import (
    _setup_clock,
    _setup_faultfs,
    clock_jump,
    corrupt,
    disk_full,
    fsync_fail,
)

__all__ = ["SCENARIOS", "Load", "check", "main", "run_scenario"]


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
START_ENV.update({
    "byzantine": {BYZANTINE_NODE: (BYZANTINE_ENTRY, BYZANTINE_ENV)},
    "member-byzantine": {MEMBER: (BYZANTINE_MEMBER_ENTRY, BYZANTINE_MEMBER_ENV)},
    "slow": {CENSOR_NODE: (CENSOR_ENTRY, {"AFTERCHAIN_TEST_CENSOR": "slow", "AFTERCHAIN_TEST_SWITCHES": "1"})},
    # "censor", "disk-full", "fsync-fail", "clock-jump": filled in by their SETUP (the
    # environment names keys and paths of the laid-out network)
})
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
