"""Where each node's CPU goes, per committed event: the accounting behind `bench cluster --profile`.

During the measured window every node process is sampled by py-spy (``--nonblocking``:
the node is never paused; ``--threads``; active samples only), and every thread's CPU
time is read from ``/proc/PID/task/*/stat`` at the start and end of the window. Then:

- the CPU of threads py-spy cannot see (RocksDB's own flush and compaction threads, and
  any other thread with no Python frames) is its own component, from /proc;
- the CPU of the Python threads is split over components in proportion to their
  samples: each sample is put in the first component (`RULES`, most specific first)
  that one of its frames matches. Samples of a thread waiting in the event loop's
  ``epoll`` call are idle, not CPU, and are left out (py-spy counts a thread that is
  about to sleep or has just woken as active);
- each component's CPU seconds are divided by the events committed in the window:
  microseconds of CPU per committed event on each node.

The split inside the Python threads is statistical (tens of samples per second per
thread): components below ~2% of a node's CPU are noise. The totals per node and the
per-thread figures are exact (/proc).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from collections import Counter
from pathlib import Path
from typing import Any

__all__ = ["RULES", "Sampler", "account", "classify", "format_table", "proc_status", "stat_cpu_s", "thread_cpu"]

_CLK = os.sysconf("SC_CLK_TCK")

RULES: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("consensus signatures (Ed25519, votes)", ("consensus/signer.py", "(protocol/crypto.py) sign", "sign (protocol/crypto.py)")),
    ("event signature verify (Ed25519)", ("crypto_sign_open", "verify_raw (protocol/crypto.py)", "VerifyKey.verify")),
    ("event decode (codec)", ("decode_and_verify", "SignedEvent.decode", "_decode_committed")),
    ("ledger: contracts (wasm VM)", ("node/app/vm/",)),
    ("ledger: state tree (SMT)", ("protocol/smt.py",)),
    ("ledger: RocksDB write and reads", ("node/app/store.py",)),
    ("ledger: handlers and block records", ("Ledger.apply_block", "node/app/")),
    ("chain store and consensus log (RocksDB)", ("node/runtime/chain_store.py",)),
    ("HTTP API (hypercorn, starlette, routes)", ("hypercorn/", "starlette/", "h11/", "node/http/", "node/server.py")),
    ("transport (libp2p: yamux, Noise, sockets)", ("libp2p/", "node/transport/", "noise/", "trio/_socket.py",
                                                    "trio/_highlevel_socket.py")),
    ("consensus (replica state machine)", ("consensus/",)),
    ("node runner (intake, mempool, block checks, commit)", ("node/runtime/", "protocol/")),
    ("metrics and logs", ("prometheus_client/", "structlog/", "node/common/log.py")),
    ("runtime (trio scheduler, thread hand-offs, GC)", ("",)),
)
"""(component, frame substrings): a sample goes to the first component one of whose
substrings occurs in one of its frames (the catch-all "" last)."""

IDLE_LEAVES = ("EpollIOManager.get_events", "_io_epoll.py", "WorkerThread._work (trio/_core/_thread_cache.py")
"""A sample whose innermost frame is one of these waits (for I/O, or an idle worker thread
for its next job): not CPU."""

NATIVE = "native threads (RocksDB flush and compaction)"

_THREAD = re.compile(r"^thread \((\d+)\)")


def classify(frames: list[str]) -> str:
    for name, needles in RULES:
        for needle in needles:
            if any(needle in f for f in frames):
                return name
    return RULES[-1][0]


def stat_cpu_s(stat: str) -> float:
    """User + system CPU seconds from the text of a /proc ``stat`` file (a process's or a thread's)."""
    fields = stat[stat.rindex(")") + 2 :].split()
    return (int(fields[11]) + int(fields[12])) / _CLK


def proc_status(pid: int | None) -> dict[str, int]:
    """The numeric fields of ``/proc/PID/status`` (``VmRSS``, ``VmHWM``, ``RssAnon``,
    ``RssFile``, ``Threads``, ...): sizes in bytes, counts as they are; empty if the process
    is gone."""
    out: dict[str, int] = {}
    if pid is None:
        return out
    try:
        lines = Path(f"/proc/{pid}/status").read_text().splitlines()
    except OSError:
        return out
    for ln in lines:
        key, _, rest = ln.partition(":")
        words = rest.split()
        if words and words[0].isdigit():
            out[key] = int(words[0]) * (1024 if words[1:] == ["kB"] else 1)
    return out


def thread_cpu(pid: int) -> dict[int, tuple[str, float]]:
    """tid -> (thread name, CPU seconds so far) of every thread of `pid` (empty if gone)."""
    out: dict[int, tuple[str, float]] = {}
    base = Path(f"/proc/{pid}/task")
    try:
        tids = [int(t) for t in os.listdir(base)]
    except OSError:
        return out
    for tid in tids:
        try:
            stat = (base / str(tid) / "stat").read_text()
            name = (base / str(tid) / "comm").read_text().strip()
        except OSError:
            continue
        out[tid] = (name, stat_cpu_s(stat))
    return out


class Sampler:
    """py-spy on each node process for `duration_s`, plus /proc thread CPU at both ends."""

    def __init__(self, pids: dict[str, int], out_dir: Path, duration_s: float, rate_hz: int = 50) -> None:
        self.pids = pids
        self.out_dir = out_dir
        self.duration_s = duration_s
        self.rate_hz = rate_hz
        self.procs: dict[str, subprocess.Popen[bytes]] = {}
        self.cpu0: dict[str, dict[int, tuple[str, float]]] = {}
        self.cpu1: dict[str, dict[int, tuple[str, float]]] = {}

    @staticmethod
    def available() -> str | None:
        """The py-spy executable, or None."""
        return shutil.which("py-spy") or (str(p) if (p := Path(sys.executable).with_name("py-spy")).exists() else None)

    def start(self) -> None:
        pyspy = self.available()
        if pyspy is None:
            raise RuntimeError("py-spy is not installed (pip install py-spy; ./scripts/bench installs it)")
        self.out_dir.mkdir(parents=True, exist_ok=True)
        for name, pid in self.pids.items():
            self.cpu0[name] = thread_cpu(pid)
            self.procs[name] = subprocess.Popen(
                [pyspy, "record", "--pid", str(pid), "--rate", str(self.rate_hz), "--duration", str(int(self.duration_s)),
                 "--nonblocking", "--threads", "--format", "raw", "--output", str(self.out_dir / f"{name}.raw")],
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    def stop(self) -> None:
        """Wait for the samplers (they stop after `duration_s`), then read the thread CPU."""
        for name, p in self.procs.items():
            try:
                p.wait(timeout=self.duration_s + 30)
            except subprocess.TimeoutExpired:
                p.kill()
            self.cpu1[name] = thread_cpu(self.pids[name])


def _samples(path: Path) -> dict[int, Counter[str]]:
    """Thread id -> component -> active samples, from a py-spy raw file."""
    per_thread: dict[int, Counter[str]] = {}
    if not path.exists():
        return per_thread
    for line in path.read_text(errors="replace").splitlines():
        stack, _, n = line.rpartition(" ")
        if not stack or not n.isdigit():
            continue
        frames = stack.split(";")
        if any(leaf in frames[-1] for leaf in IDLE_LEAVES):
            continue
        m = _THREAD.match(frames[0])
        tid = int(m.group(1)) if m else -1
        per_thread.setdefault(tid, Counter())[classify(frames[1:] if m else frames)] += int(n)
    return per_thread


def account(sampler: Sampler, committed_events: int) -> dict[str, Any]:
    """Per node: CPU seconds of the window, by thread and by component, and us per event."""
    nodes: dict[str, Any] = {}
    for name in sampler.pids:
        c0, c1 = sampler.cpu0.get(name, {}), sampler.cpu1.get(name, {})
        threads = {tid: (nm, t - c0.get(tid, (nm, 0.0))[1]) for tid, (nm, t) in c1.items()}
        per_thread = _samples(sampler.out_dir / f"{name}.raw")
        comp_s: dict[str, float] = {}
        for tid, (_nm, cpu_s) in threads.items():
            samples = per_thread.get(tid)
            if not samples:  # no Python frames seen on it: a native thread (or idle)
                comp_s[NATIVE] = comp_s.get(NATIVE, 0.0) + cpu_s
                continue
            n = sum(samples.values())
            for comp, k in samples.items():
                comp_s[comp] = comp_s.get(comp, 0.0) + cpu_s * k / n
        total_s = sum(t for _, t in threads.values())
        by_thread: dict[str, float] = {}
        for nm, t in threads.values():
            key = "Trio worker threads" if nm.startswith("Trio thread") else nm
            by_thread[key] = by_thread.get(key, 0.0) + t
        nodes[name] = {
            "cpu_s": round(total_s, 2),
            "us_per_event": round(1e6 * total_s / max(1, committed_events), 1),
            "threads_cpu_s": {k: round(v, 2) for k, v in sorted(by_thread.items(), key=lambda kv: -kv[1])},
            "thread_cpu_window": {str(tid): [nm, round(t, 3)] for tid, (nm, t) in threads.items()},
            "components_us_per_event": {k: round(1e6 * v / max(1, committed_events), 1)
                                        for k, v in sorted(comp_s.items(), key=lambda kv: -kv[1])},
        }
    comps = sorted({c for v in nodes.values() for c in v["components_us_per_event"]},
                   key=lambda c: -sum(v["components_us_per_event"].get(c, 0) for v in nodes.values()))
    mean = {c: round(sum(v["components_us_per_event"].get(c, 0) for v in nodes.values()) / max(1, len(nodes)), 1)
            for c in comps}
    return {"window_s": sampler.duration_s, "committed_events": committed_events, "nodes": nodes,
            "mean_us_per_event": mean,
            "mean_total_us_per_event": round(sum(v["us_per_event"] for v in nodes.values()) / max(1, len(nodes)), 1)}


def format_table(acc: dict[str, Any]) -> str:
    names = list(acc["nodes"])
    total = acc["mean_total_us_per_event"]
    w = max(len("total (all threads, /proc)"), *(len(c) for c in acc["mean_us_per_event"])) + 2
    head = f"{'component':<{w}}" + "".join(f"{n:>9}" for n in names) + f"{'mean':>9}{'share':>7}"
    lines = [f"CPU per committed event (us) over {acc['window_s']:.0f} s, {acc['committed_events']:,} events committed:",
             head, "-" * len(head)]
    for comp, m in acc["mean_us_per_event"].items():
        row = "".join(f"{acc['nodes'][n]['components_us_per_event'].get(comp, 0):>9.1f}" for n in names)
        lines.append(f"{comp:<{w}}{row}{m:>9.1f}{100 * m / max(total, 1e-9):>6.0f}%")
    lines.append("-" * len(head))
    lines.append(f"{'total (all threads, /proc)':<{w}}" + "".join(f"{acc['nodes'][n]['us_per_event']:>9.1f}" for n in names)
                 + f"{total:>9.1f}")
    return "\n".join(lines)
