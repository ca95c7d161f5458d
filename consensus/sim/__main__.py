"""Command line of the simulator: ``python -m afterchain.consensus.sim --seeds 0-99 --nodes 4 --byzantine 1``.

Prints one summary line per configuration (nodes x byzantine), the violations of failing
seeds with the command that replays each, and ends with ``violations: N``; exits 1 if N > 0.
"""

from __future__ import annotations

import argparse
import sys
import time

from . import ALL_FAULTS, BYZANTINE_FAULTS, MUTATIONS, NETWORK_FAULTS, RECONFIG, SimConfig, SimResult, run

_GROUPS = {"all": ALL_FAULTS, "network": NETWORK_FAULTS, "byzantine": BYZANTINE_FAULTS, "none": ()}


def _range(text: str) -> range:
    lo, _, hi = text.partition("-")
    return range(int(lo), int(hi or lo) + 1)


def _faults(text: str) -> tuple[str, ...]:
    out: list[str] = []
    for raw in text.split(","):
        part = raw.strip()
        if not part:
            continue
        if part in _GROUPS:
            out.extend(_GROUPS[part])
        elif part in ALL_FAULTS or part == RECONFIG:
            out.append(part)
        else:
            raise SystemExit(f"unknown fault {part!r}; known: {', '.join(ALL_FAULTS)}, {RECONFIG} or {', '.join(_GROUPS)}")
    return tuple(dict.fromkeys(out))


def replay_command(cfg: SimConfig) -> str:
    cmd = (f"python -m afterchain.consensus.sim --seeds {cfg.seed}-{cfg.seed} --nodes {cfg.nodes} --byzantine {cfg.byzantine} "
           f"--faults {','.join(cfg.faults) or 'none'} --fault-ticks {cfg.fault_ticks}")
    if cfg.real_crypto:
        cmd += " --real-crypto"
    for m in cfg.mutations:
        cmd += f" --mutate {m}"
    return cmd + " --trace-hash"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m afterchain.consensus.sim", description=__doc__)
    ap.add_argument("--seeds", default="0-99", help="inclusive range A-B")
    ap.add_argument("--nodes", default="4", help="comma list of n (each >= 4)")
    ap.add_argument("--byzantine", default=None, help="comma list; default f for each n")
    ap.add_argument("--faults", default="all",
                    help=f"comma list of {', '.join(ALL_FAULTS)}, {RECONFIG} (validator-set changes, not in 'all') or {', '.join(_GROUPS)}")
    ap.add_argument("--fault-ticks", type=int, default=200)
    ap.add_argument("--real-crypto", action="store_true", help="Ed25519 instead of the fast simulated signer")
    ap.add_argument("--mutate", action="append", default=[], choices=sorted(MUTATIONS), help="switch one safety rule off (SafetyRules field)")
    ap.add_argument("--trace-hash", action="store_true", help="print each seed's trace hash")
    args = ap.parse_args(argv)
    faults = _faults(args.faults)
    total_violations = 0
    for n in (int(x) for x in args.nodes.split(",")):
        if n < 4:
            raise SystemExit("--nodes must be >= 4")
        f = (n - 1) // 3
        byz_list = [f] if args.byzantine is None else [int(x) for x in args.byzantine.split(",")]
        for byz in byz_list:
            started = time.perf_counter()
            runs = failed = blocks = ticks = 0
            results: list[SimResult] = []
            for seed in _range(args.seeds):
                cfg = SimConfig(seed=seed, nodes=n, byzantine=byz, faults=faults, real_crypto=args.real_crypto,
                                mutations=tuple(args.mutate), fault_ticks=args.fault_ticks)
                res = run(cfg)
                runs += 1
                blocks += res.committed
                ticks += res.ticks
                if args.trace_hash:
                    print(f"seed {seed} n={n} byzantine={byz}: trace {res.trace_hash} ticks {res.ticks} "
                          f"height {res.committed} view {res.view}")
                if not res.ok:
                    failed += 1
                    total_violations += len(res.violations)
                    results.append(res)
            elapsed = time.perf_counter() - started
            sim_seconds = ticks * 10 / 1000
            print(f"n={n} byzantine={byz} faults={','.join(faults) or 'none'} seeds={args.seeds}: runs {runs}, "
                  f"failed {failed}, blocks {blocks}, {runs / elapsed * 60:.0f} seeds/min, "
                  f"{blocks / sim_seconds if sim_seconds else 0:.1f} blocks/simulated s")
            for res in results[:10]:
                for v in res.violations[:5]:
                    print(f"  seed {res.config.seed}: {v}")
                print(f"  replay: {replay_command(res.config)}")
    print(f"violations: {total_violations}")
    return 1 if total_violations else 0


if __name__ == "__main__":
    sys.exit(main())
