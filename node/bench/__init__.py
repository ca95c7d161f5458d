"""Benchmarks: `./scripts/bench NAME [ARGS]` runs `python -m afterchain.node.bench.NAME [ARGS]`.

Every bench is a module `node.bench.NAME` with `main(argv: list[str]) -> int`; each
accepts `--quick` (a smoke run of a few seconds, used by the test suite) and `--json FILE`
(save the figures). Add a new one by writing the module and listing it in `BENCHES`.
"""

from __future__ import annotations

import importlib
import importlib.util
import json
import sys
from pathlib import Path
from typing import Any

__all__ = ["BENCHES", "emit_json", "main", "usage"]

BENCHES: dict[str, str] = {
    "protocol": "Ed25519 verifies/s, the per-event path (decode, hash, verify), SMT block updates, SMT proofs",
    "vm": "contract VM calls/s per backend (wasmtime, lua)",
    "ledger": "ledger execution: events/s through the state machine",
    "intake": "a node's per-event intake path: CPU per event and stage, SHA-256 calls and decodes per event",
    "light": "light-client verification: headers, certificates, proofs",
    "cluster": "a local cluster end to end: events/s and latency",
    "catchup": "a node stopped while the chain grows: catch-up rate as a multiple of the production rate",
    "transport": "libp2p transport between 2 hosts: round trips/s, msgs/s, MB/s",
    "member": "a member node following certified blocks: CPU per event relying on certificates vs re-checking signatures",
    "soak": "a long run at a steady rate with crash drills and members leaving and joining: RSS and disk per node over time, 0 lost",
    "codec": "decoding signed events: the project's decoder against msgspec Structs (issue 27)",
    "snapshot": "checking a fetched state-sync snapshot in one process: certified header, blocks, state rebuilt against the root",
    "upload": "validators' upload by peer role and message, without and with member nodes, in one process",
    "stream": "GET /v1/stream with 1, 10 and 100 subscribers: events/s delivered, the node's CPU per subscriber",
}
"""Known benches (name -> what it measures). Some may not exist yet."""


def emit_json(figures: Any, path: Path | None) -> None:
    """Print a bench's figures as indented JSON, and save the same text to `path` (`--json`)."""
    text = json.dumps(figures, indent=2)
    print(text)
    if path is not None:
        path.write_text(text + "\n")


def usage() -> str:
    lines = ["usage: ./scripts/bench NAME [--quick] [--json FILE] [bench options]", "", "benches:"]
    for name, text in BENCHES.items():
        lines.append(f"  {name:<10} {text}{'' if _exists(name) else '  (not written yet)'}")
    return "\n".join(lines)


def _exists(name: str) -> bool:
    return importlib.util.find_spec(f"node.bench.{name}") is not None


def main(argv: list[str]) -> int:
    """Run bench `argv[0]` with the remaining arguments; print usage for an unknown name."""
    if not argv or argv[0] in ("-h", "--help"):
        print(usage())
        return 0 if argv else 2
    name = argv[0]
    if name not in BENCHES or not _exists(name):
        print(f"unknown bench {name!r}" if name not in BENCHES else f"bench {name!r} is not written yet", file=sys.stderr)
        print(usage(), file=sys.stderr)
        return 2
    module = importlib.import_module(f"afterchain.node.bench.{name}")
    result: int = module.main(argv[1:])
    return result
