"""Nemesis scenarios for storage faults and clocks (issue 28): disk full and failed fsync
through the LD_PRELOAD shim (`faultfs`), corrupted and truncated data files, and clocks
that jump or drift on the test-only skewed-clock entry; the table and the docstring of
`nemesis` describe them."""

from __future__ import annotations

import json
import os
import shutil
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from afterchain.node.tools import faultfs
from afterchain.node.tools.localnet import _CHILDREN as _LOCALNET_CHILDREN
from afterchain.node.tools.localnet import LocalNet
from afterchain.node.tools.nemesis_common import (
    START_ENV,
    VIEW_TIMEOUT_MS,
    _heights,
    _primary,
    _validators,
    _wait_progress,
)

# --------------------------------------------------------------------------- storage faults (issue 28)
STORAGE_NODE = "node2"
"""The node whose disk fails (a backup at the start: the primary of view 0 is node0)."""
EXIT_STORAGE = 6
"""`afterchain node run`'s exit code on a storage fault (`node.cli.EXIT_STORAGE`)."""
STORAGE_STOP_S = 30.0

__all__ = ["clock_jump", "corrupt", "disk_full", "fsync_fail"]


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

