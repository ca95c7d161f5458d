"""Nemesis scenarios for member nodes (issue 23): killed, paused, partitioned and lying
members; the table and the docstring of `nemesis` describe them."""

from __future__ import annotations

import os
import signal
import time
from typing import Any

import httpx

from afterchain.node.tools.localnet import LocalNet
from afterchain.node.tools.nemesis_common import (
    VIEW_TIMEOUT_MS,
    _heal,
    _heights,
    _partition,
    _set_faults,
    _status,
    _validators,
    _wait_progress,
)

# --------------------------------------------------------------------------- member nodes
MEMBER = "member0"
MEMBER_FAULT_S = 3 * VIEW_TIMEOUT_MS / 1000

__all__ = ["MEMBER", "member_byzantine", "member_kill", "member_partition", "member_pause"]


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

