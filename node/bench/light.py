"""`./scripts/bench light`: what a light client downloads and how long verifying takes.

    ./scripts/bench light                  # SMT of 1M keys, 4 and 16 validators (~1 min)
    ./scripts/bench light --quick          # a few seconds (used by the tests)
    ./scripts/bench light --keys 100000 --json out.json
    ./scripts/bench light --pages-only     # only the customer pages in headless Chromium

Figures (one thread; times are CPU time of the process, best of a few rounds):
- SMT proof size in bytes (median / max over present and absent keys) in a tree of
  `--keys` keys, and `verify_smt_proof` time;
- a whole answer (`protocol.light.StateAnswer`: key, a ~1 KB ticket value, proof, header,
  certificate of a quorum) in bytes, and as the JSON the node serves;
- `verify_answer` time (header checks, the quorum's Ed25519 signatures, the proof) and
  the client's decoding of the JSON parts, per validator-set size;
- downloads per answer when the validator set did not change: 1 (the answer carries
  its header; no header sync);
- the customer pages in headless Chromium (`node.bench.light_page`, skipped without
  Chromium and with --quick): in-browser verification time per answer and the bytes a
  cold page load transfers.
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import sys
import time
from collections.abc import Callable
from typing import Any

import msgpack

from afterchain.protocol.block import BlockHeader, Commit, CommitCertificate, CommitSig, ValidatorSet
from afterchain.protocol.crypto import Domain, KeyPair
from afterchain.protocol.light import (
    CertifiedHeader,
    StateAnswer,
    decode_answer,
    decode_certified,
    genesis_trust,
    verify_answer,
)
from afterchain.protocol.smt import MemoryNodeStore, SparseMerkleTree, verify_smt_proof
from afterchain.protocol.types import Hash32, Height, Seq, Signature, ValidatorId, View

__all__ = ["main", "run"]

CHAIN = "bench-light"
T0 = 1_700_000_000_000
BUILD_BATCH = 50_000


def _clock() -> float:
    return time.process_time()


def _best_per_item(fn: Callable[[], None], items: int, rounds: int) -> float:
    best = float("inf")
    for _ in range(rounds):
        start = _clock()
        fn()
        best = min(best, (_clock() - start) / items)
    return best


def ticket_value(rng: random.Random) -> bytes:
    """A ticket as the ledger stores it (same fields), with a 10-change history."""
    eid = rng.randbytes(32)
    hist = [[s, T0 + i * 60_000, rng.randbytes(32), None] for i, s in enumerate(
        ["opened", "acknowledged", "in_progress", "waiting_customer", "in_progress", "resolved", "reopened",
         "in_progress", "resolved", "closed"])]
    t = {"kind": "repair", "gtin": "00012345600012", "serial": "SN0001234", "cust": rng.randbytes(32), "org": "fixit",
         "policy": rng.randbytes(32), "status": "closed", "opened": T0, "ack": T0 + 60_000, "resolved": T0 + 480_000,
         "closed": T0 + 540_000, "fr_due": T0 + 14_400_000, "res_due": T0 + 259_200_000, "ac_due": None, "paused": None,
         "breaches": 0, "penalties": 0, "escrow": None, "rating": [5, rng.randbytes(32), T0 + 600_000], "reason": None,
         "resolution": "repaired", "hist": hist, "notes": [], "fault": "no_power", "desc": rng.randbytes(32),
         "att": [rng.randbytes(32)], "id": eid}
    return msgpack.packb(t, use_bin_type=True)  # type: ignore[no-any-return]


def build_tree(keys: int) -> SparseMerkleTree:
    tree = SparseMerkleTree(MemoryNodeStore())
    for lo in range(0, keys, BUILD_BATCH):
        tree.update({b"t/%032d" % i: b"v%d" % i for i in range(lo, min(keys, lo + BUILD_BATCH))})
    return tree


def certified(root: bytes, validators: list[KeyPair]) -> CertifiedHeader:
    vs = ValidatorSet(validators=tuple(ValidatorId(k.public) for k in validators))
    header = BlockHeader(chain_id=CHAIN, height=Height(1000), view=View(0), time_ms=T0 + 1000, prev_hash=Hash32(b"\1" * 32),
                         events_root=Hash32(b"\2" * 32), event_count=500, state_height=Height(999), state_root=Hash32(root),
                         validators_hash=Hash32(vs.hash()), next_validators_hash=Hash32(vs.hash()),
                         proposer=ValidatorId(validators[0].public))
    hh = Hash32(header.hash())
    sigs = tuple(
        CommitSig(replica=ValidatorId(k.public), signature=Signature(k.sign(
            Domain.COMMIT, CHAIN, Commit(view=View(0), seq=Seq(1000), digest=hh, replica=ValidatorId(k.public)))))
        for k in validators[: vs.quorum])
    return CertifiedHeader(header=header, certificate=CommitCertificate(view=View(0), height=Height(1000), header_hash=hh,
                                                                        signatures=sigs), next_validators=None)


def _bench_set(root: bytes, key: bytes, value: bytes | None, proof: Any, n: int, rounds: int) -> dict[str, Any]:
    """Sizes and times of one answer whose header is certified by a quorum of `n` validators."""
    validators = [KeyPair.from_seed(b"bench-validator-%04d".ljust(32, b"\0")[:32] % i) for i in range(n)]
    ch = certified(root, validators)
    answer = StateAnswer(key=key, value=value, state_root=Hash32(root), proof=proof, header=ch)
    trust = genesis_trust(CHAIN, b"\0" * 32, T0, ValidatorSet(validators=tuple(ValidatorId(k.public) for k in validators)))
    parts = {"key": key, "value": value or b"", "state_root": root, "proof": proof.encode(), "header": ch.header.encode(),
             "certificate": ch.certificate.encode()}
    doc = {name: b.hex() for name, b in parts.items()} | {"state_height": 999, "height": 1000, "next_validators": None}
    reps = 20

    def verify_all() -> None:
        for _ in range(reps):
            verify_answer(trust, answer, key, now_ms=T0 + 2000)

    def decode_all() -> None:
        for _ in range(reps):
            h = {name: bytes.fromhex(str(doc[name])) for name in parts}
            decode_answer(h["key"], h["value"], h["state_root"], h["proof"], decode_certified(h["header"], h["certificate"]))

    return {
        "validators": n, "quorum": len(ch.certificate.signatures),
        "answer_bytes": len(answer.encode()), "value_bytes": len(value or b""), "proof_bytes": len(proof.encode()),
        "header_bytes": len(ch.header.encode()), "certificate_bytes": len(ch.certificate.encode()),
        "json_bytes": len(json.dumps(doc).encode()),
        "verify_answer_ms": _best_per_item(verify_all, reps, rounds) * 1e3,
        "decode_json_ms": _best_per_item(decode_all, reps, rounds) * 1e3,
    }


def run(*, keys: int, samples: int, validator_counts: list[int], rounds: int, seed: int = 1) -> dict[str, Any]:
    rng = random.Random(seed)
    start = _clock()
    tree = build_tree(keys)
    build_s = _clock() - start
    value = ticket_value(rng)
    present = [b"t/%032d" % rng.randrange(keys) for _ in range(samples * 3 // 4)]
    tree.update({k: value for k in present})
    absent = [b"t/absent-%d" % j for j in range(samples - len(present))]
    root = tree.root
    cases = [(k, value, tree.prove(k)) for k in present] + [(k, None, tree.prove(k)) for k in absent]
    sizes = sorted(len(p.encode()) for _, _, p in cases)
    depths = sorted(p.depth for _, _, p in cases)
    if not all(verify_smt_proof(root, k, v, p) for k, v, p in cases):
        raise RuntimeError("a proof does not verify")

    def verify_proofs() -> None:
        for k, v, p in cases:
            verify_smt_proof(root, k, v, p)

    proof_us = _best_per_item(verify_proofs, len(cases), rounds) * 1e6
    k0, v0, p0 = cases[0]
    per_set = [_bench_set(root, k0, v0, p0, n, rounds) for n in validator_counts]
    return {
        "keys": keys, "build_s": build_s, "samples": len(cases),
        "proof_bytes_median": statistics.median(sizes), "proof_bytes_max": sizes[-1],
        "proof_depth_median": statistics.median(depths), "verify_proof_us": proof_us,
        "downloads_per_answer_same_set": 1, "per_validator_set": per_set,
    }


def report(r: dict[str, Any]) -> str:
    lines = [
        f"SMT of {r['keys']:,} keys (built in {r['build_s']:.1f} s CPU); {r['samples']} proofs (3/4 present, 1/4 absent)",
        f"  proof size: median {r['proof_bytes_median']:.0f} bytes, max {r['proof_bytes_max']} bytes "
        f"(median depth {r['proof_depth_median']:.0f}); verify_smt_proof {r['verify_proof_us']:.1f} us",
        f"downloads per answer while the validator set is unchanged: {r['downloads_per_answer_same_set']}",
    ]
    for s in r["per_validator_set"]:
        lines.append(
            f"{s['validators']} validators (quorum {s['quorum']}): answer {s['answer_bytes']} bytes "
            f"(value {s['value_bytes']}, proof {s['proof_bytes']}, header {s['header_bytes']}, certificate "
            f"{s['certificate_bytes']}); JSON {s['json_bytes']} bytes; verify_answer {s['verify_answer_ms']:.2f} ms, "
            f"decode {s['decode_json_ms']:.3f} ms")
    return "\n".join(lines)


def main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(prog="bench light", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="a smoke run of a few seconds")
    ap.add_argument("--keys", type=int, default=None, help="keys in the state tree (default 1,000,000; quick 20,000)")
    ap.add_argument("--validators", type=int, nargs="+", default=None, help="validator-set sizes (default 4 16)")
    ap.add_argument("--json", default=None, help="also write the figures to this file")
    ap.add_argument("--pages-only", action="store_true", help="only the customer pages in headless Chromium")
    ap.add_argument("--pages-host", default="127.0.0.1",
                    help="serve the pages on this address (not 127.0.0.1: plain HTTP is not a secure context, so the "
                         "browser has no WebCrypto and the JavaScript Ed25519 runs)")
    a = ap.parse_args(argv)
    keys = a.keys or (20_000 if a.quick else 1_000_000)
    r: dict[str, Any] = {}
    if not a.pages_only:
        r = run(keys=keys, samples=200 if a.quick else 1000, validator_counts=a.validators or [4, 16],
                rounds=2 if a.quick else 5)
        print(report(r))
    if not a.quick:
        from afterchain.node.bench.light_page import report_pages, run_pages

        r["pages"] = run_pages(host=a.pages_host)
        print(report_pages(r["pages"]))
    if a.json:
        with open(a.json, "w") as f:
            json.dump(r, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
