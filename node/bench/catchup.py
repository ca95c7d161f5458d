"""Catch-up benchmark: a node stopped while the chain grows comes back and catches up.

    ./scripts/bench catchup [--down 30] [--rate 1000] [--out DIR] [--quick] [--profile FILE]
    ./scripts/bench catchup --state-sync --member [--prebuilt 1000000 [--prebuilt-dir DIR]]

A fresh 4-node `LocalNet`; one node is stopped; the other three commit a load of
pre-signed product registrations at `--rate` events/s for `--down` seconds (the chain's
production rate is measured as committed events/s and blocks/s over that window). Then the
node is started again, and the time until it has executed the same height is measured
(from process start, so start-up is included). The catch-up rate is (events and blocks it
had to fetch, verify and execute) / (catch-up time), and is reported as a multiple of the
production rate (target of issue 10: >= 10x).

With ``--state-sync`` the same node then joins a second time the other way (issue 25): it
is stopped and its data directory emptied; node0, node1 and node2 each take a snapshot
and offer it to peers (``POST /v1/admin/snapshot {"offer": true}``: the serving side's
cost, reported apart, as periodic snapshots would have been taken already), and the node is
started with ``[statesync] enable = true``: it fetches a snapshot from its peers over the
node-to-node transport, verifies it against its certified header and installs it, then
catches up the rest. The time from its process start to the same executed height is
compared with the replay above (``state_sync_speedup``). ``--member`` adds a member node,
stopped with the validator, that rejoins both ways too (``member_*``).

``--prebuilt N`` reaches large states without waiting for the chain to make them: before
the network starts, N product registrations are built in this process into a certified
chain (blocks of 500, each with the COMMIT signatures of 3 of the 4 validators, executed
by the ledger: `node.bench.snapshot.build_chain`) and laid into every node's data
directory. The stopped node (and member) then start on *empty* data directories, so the
replay fetches, checks and executes the whole chain from genesis, and state sync checks a
snapshot of all of it, as a real joiner would. ``--prebuilt-dir DIR --prepare-only``
builds once and keeps it; a later run with the same ``DIR`` reuses it.
"""

from __future__ import annotations

import argparse
import json
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
import msgpack

__all__ = ["main"]


def run(args: argparse.Namespace) -> dict[str, Any]:
    from afterchain.node.bench.cpu_profile import stat_cpu_s
    from afterchain.node.tools.demo import gtin14
    from afterchain.node.tools.localnet import LocalNet
    from afterchain.protocol import bodies as B
    from afterchain.protocol.events import Event, sign_event

    keep = Path(args.prebuilt_dir).resolve() if args.prebuilt_dir else None
    reuse = keep is not None and (keep / "net" / "network.json").is_file() and (keep / "prebuilt.json").is_file()
    net_dir = keep if keep is not None else Path(tempfile.mkdtemp(prefix="afterchain-catchup-"))
    net = LocalNet(net_dir / "net")
    victim = "node3"
    if not reuse:
        net_dir.mkdir(parents=True, exist_ok=True)
        net.create(4, chain_id="afterchain-catchup", members=1 if args.member else 0)
    member = net.members()[0].name if args.member else None
    http = httpx.Client(timeout=30)
    prebuilt: dict[str, Any] = {}
    try:
        if reuse:
            prebuilt = _relink(net, net_dir)
        elif args.prebuilt:
            prebuilt = _prebuild(net, net_dir, args.prebuilt, keep_source=keep is not None)
        if args.prepare_only:
            return {"prepared": str(net_dir), "prebuilt": prebuilt}
        net.start_all()
        net.wait_healthy(timeout_s=90)
        urls = [n.api_url for n in net.nodes()]
        acme = net.member_key("acme")
        chain = net.manifest()["chain_id"]
        total = int(args.rate * args.down)
        start_nonce = int(http.get(f"{urls[0]}/v1/accounts/{acme.public.hex()}").json()["next_nonce"])
        gtin = gtin14("0950600055555")
        evs = [sign_event(acme, Event(chain_id=chain, type="product.register", sender=acme.public, nonce=start_nonce + i,
                                      time_ms=1, body=B.ProductRegister(gtin=gtin, serial=f"C{i:08d}", model="M", batch="CU",
                                                                        production_time_ms=1))).encode()
               for i in range(total)]
        net.stop(victim)
        if member:
            net.stop(member)
        if prebuilt:  # they replay the whole chain from genesis, the prebuilt blocks first
            for name in (victim, member):
                if name:
                    shutil.rmtree(net_dir / "net" / name / "data")
        h0 = int(http.get(f"{urls[0]}/v1/status").json()["executed_height"])
        t0 = time.time()
        batch = max(1, int(args.rate / 10))
        for i in range(0, total, batch):
            due = t0 + i / args.rate
            if due > time.time():
                time.sleep(due - time.time())
            while True:
                r = http.post(f"{urls[0]}/v1/events", content=msgpack.packb(evs[i : i + batch]),
                              headers={"content-type": "application/msgpack"})
                if r.status_code in (429, 503):
                    time.sleep(0.1)
                    continue
                break
        # wait until the last event is committed on the live nodes
        from afterchain.protocol.events import SignedEvent

        last = SignedEvent.decode(evs[-1]).id.hex()
        while http.get(f"{urls[0]}/v1/events/{last}").json()["status"] == "pending":
            time.sleep(0.05)
        t1 = time.time()
        h1 = int(http.get(f"{urls[0]}/v1/status").json()["executed_height"])
        production_s = t1 - t0
        blocks = h1 - h0
        # the victim comes back
        t2 = time.time()
        vpid = net.start(victim)
        spy = None
        if args.profile:
            # py-spy from process start (idle samples included: waiting is what catch-up must avoid)
            pyspy = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))
            spy = subprocess.Popen([pyspy, "record", "-p", str(vpid), "-r", "200", "--idle", "--threads", "--nonblocking",
                                    "-f", "raw", "-o", args.profile], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        vurl = net.node(victim).api_url
        t_up: float | None = None  # the node's API answers: process start done
        h_up = h0
        timeline: list[tuple[float, int]] = []  # (s since process start, executed height): plateaus are idle time
        while True:
            try:
                st = http.get(f"{vurl}/v1/status", timeout=2).json()
                timeline.append((round(time.time() - t2, 3), int(st["executed_height"]) - h0))
                if t_up is None:
                    t_up, h_up = time.time(), int(st["executed_height"])
                if int(st["executed_height"]) >= h1:
                    break
            except (httpx.HTTPError, ValueError, KeyError):
                pass
            time.sleep(0.05)
        t3 = time.time()
        # its CPU time from process start (all threads): a figure a busy machine does not skew
        # the way wall time is skewed (the neighbours' load still costs it cache and memory)
        cpu_s = stat_cpu_s(Path(f"/proc/{vpid}/stat").read_text())
        if spy is not None:
            spy.send_signal(signal.SIGINT)
            spy.wait(timeout=30)
        catchup_s = t3 - t2
        start_s = (t_up or t3) - t2
        # events fetched and executed after the API came up (blocks carry equal shares of the load)
        events_after_up = total * max(0, h1 - h_up) / max(1, h1 - h0)
        excl_rate = events_after_up / max(1e-9, t3 - (t_up or t3))
        prod_rate = total / production_s
        catch_rate = total / catchup_s
        extra: dict[str, Any] = {}
        if member:
            m_s, _ = _rejoin(net, member, h1, http)
            extra["member_catchup_s_including_start"] = round(m_s, 2)
        if args.state_sync:
            extra.update(_offer_snapshots(net, http))
            extra.update(_state_sync(net, net_dir, victim, h1, http))
            extra["state_sync_speedup"] = round(catchup_s / extra["state_sync_total_s"], 2)
            if member:
                extra.update({f"member_{k}": v for k, v in _state_sync(net, net_dir, member, h1, http).items()})
                extra["member_state_sync_speedup"] = round(extra["member_catchup_s_including_start"]
                                                           / extra["member_state_sync_total_s"], 2)
        if prebuilt:
            extra["prebuilt"] = prebuilt
            extra["events_to_join"] = total + prebuilt["events"]
        return {**extra, **{
            "events": total, "blocks": blocks, "production_s": round(production_s, 2),
            "production_events_per_s": round(prod_rate, 1), "production_blocks_per_s": round(blocks / production_s, 2),
            "catchup_s_including_start": round(catchup_s, 2), "catchup_events_per_s": round(catch_rate, 1),
            "catchup_blocks_per_s": round(blocks / catchup_s, 2), "ratio": round(catch_rate / prod_rate, 2),
            "process_start_s": round(start_s, 2), "executed_at_start": h_up - h0,
            "catchup_events_per_s_excluding_start": round(excl_rate, 1),
            "ratio_excluding_start": round(excl_rate / prod_rate, 2),
            "catchup_cpu_s": round(cpu_s, 2), "catchup_events_per_cpu_s": round(total / max(1e-9, cpu_s), 1),
            "timeline": timeline,
        }}
    finally:
        http.close()
        net.stop_all()
        # the returning node's log (its start-up and fetch timeline) outlives the network
        for name, dest in ((victim, "returning-node.log"), ("member0", "returning-member.log")):
            log = net_dir / "net" / name / "node.log"
            if log.exists():
                out = Path(args.out)
                out.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(log, out / dest)
        if keep is None:
            shutil.rmtree(net_dir, ignore_errors=True)


def _prebuild(net: Any, net_dir: Path, events: int, *, keep_source: bool = False) -> dict[str, Any]:
    """Before the network starts: `events` product registrations by acme in certified
    blocks (3 of the 4 validators' COMMIT signatures on each, the ledger executed, as
    `bench snapshot` builds them), laid into every node's data directory (hard links of
    the table files, `node.bench.snapshot.link_data`). The nodes then start at that
    height; a node whose data is removed replays it all from its peers. With a member
    node, the first block registers its key (the validators admit it from the chain)."""
    from afterchain.node.bench.snapshot import build_chain, link_data
    from afterchain.node.common.files import load_genesis
    from afterchain.node.common.keys import load_key
    from afterchain.protocol import bodies as B
    from afterchain.protocol.events import Event, sign_event
    from afterchain.protocol.types import PublicKey

    g = load_genesis(net.root / "genesis.json")
    signers = [load_key(net.root / n.name / "node.key") for n in net.validators()[:3]]
    acme = net.member_key("acme")
    first = []
    nonces: dict[bytes, int] = {}
    for m in net.members():
        kp = net.member_key(m.org)
        nonces[kp.public] = nonces.get(kp.public, 0) + 1
        first.append(sign_event(kp, Event(chain_id=g.chain_id, type="node.register", sender=kp.public,
                                          nonce=nonces[kp.public], time_ms=1,
                                          body=B.NodeRegister(keys=(PublicKey(bytes.fromhex(m.key)),)))))
    src = net_dir / "prebuilt"
    print(f"building {events:,} events of chain for the network before it starts ...", flush=True)
    fig = build_chain(src, events, g=g, sender=acme, signers=signers, first=first, serial_prefix="P",
                      start_nonce=nonces.get(acme.public, 0) + 1,
                      say=lambda m: print(m, flush=True) if "000 blocks" in m else None)
    _stable_checkpoint(src / "chain", g, signers)
    for n in net.nodes():
        link_data(src, net_dir / "net" / n.name / "data")
    if keep_source:
        (net_dir / "prebuilt.json").write_text(json.dumps(fig) + "\n")
    else:
        shutil.rmtree(src)
    print(f"built {fig['events']:,} events in {fig['blocks']} blocks in {fig['build_s']} s", flush=True)
    return fig


def _stable_checkpoint(chain: Path, g: Any, signers: list[Any]) -> None:
    """The consensus log's stable checkpoint at the highest checkpoint boundary of the
    built chain (a quorum's signed CHECKPOINTs over that block's header hash), as a running
    network leaves it: without it the validators restart at sequence 0, and the next block
    lies beyond their watermark window. Written once (none if the log has one)."""
    from afterchain.consensus.messages import CheckpointBody, CheckpointProof, SignedCheckpoint
    from afterchain.node.runtime.chain_store import ChainStore
    from afterchain.protocol.crypto import Domain
    from afterchain.protocol.types import Hash32, Seq, ValidatorId

    store = ChainStore(chain)
    try:
        if any(True for _ in store.consensus_records()):
            return
        interval = g.consensus.checkpoint_interval
        seq = store.head // interval * interval
        block = store.block(seq)
        if block is None:
            return
        digest = Hash32(block.header.hash())
        cps = []
        for kp in signers:
            body = CheckpointBody(seq=Seq(seq), digest=digest, replica=ValidatorId(kp.public))
            cps.append(SignedCheckpoint(body=body, signature=kp.sign(Domain.CHECKPOINT, g.chain_id, body)))
        proof = CheckpointProof(seq=Seq(seq), digest=digest, checkpoints=tuple(cps))
        store.persist([((0).to_bytes(8, "big"), proof.encode())])
    finally:
        store.close()


def _relink(net: Any, net_dir: Path) -> dict[str, Any]:
    """A network `--prebuilt-dir` prepared before: every node's data laid again from the
    kept prebuilt chain, state sync off in every configuration."""
    from afterchain.node.bench.snapshot import link_data
    from afterchain.node.common.files import load_genesis
    from afterchain.node.common.keys import load_key

    g = load_genesis(net.root / "genesis.json")
    _stable_checkpoint(net_dir / "prebuilt" / "chain", g,
                       [load_key(net.root / n.name / "node.key") for n in net.validators()[:3]])
    for n in net.nodes():
        ndir = net_dir / "net" / n.name
        shutil.rmtree(ndir / "data", ignore_errors=True)
        toml = ndir / "node.toml"
        toml.write_text(toml.read_text().replace("\n[statesync]\nenable = true\n", ""))
        link_data(net_dir / "prebuilt", ndir / "data")
    fig: dict[str, Any] = json.loads((net_dir / "prebuilt.json").read_text())
    print(f"reusing the network and the {fig['events']:,} prebuilt events in {net_dir}", flush=True)
    return fig


def _rejoin(net: Any, name: str, h1: int, http: httpx.Client) -> tuple[float, float]:
    """Start `name` and wait until it has executed `h1`: (seconds from process start, seconds
    until its API answered)."""
    t0 = time.time()
    net.start(name)
    url = net.node(name).api_url
    t_up: float | None = None
    while True:
        try:
            st = http.get(f"{url}/v1/status", timeout=2).json()
            t_up = t_up or time.time()
            if int(st["executed_height"]) >= h1:
                break
        except (httpx.HTTPError, ValueError, KeyError):
            pass
        if time.time() - t0 > 5 and net.pid(name) is None:  # (right after the fork its cmdline is still ours)
            raise RuntimeError(f"{name} exited: see its node.log")
        time.sleep(0.05)
    return time.time() - t0, (t_up or time.time()) - t0


def _offer_snapshots(net: Any, http: httpx.Client) -> dict[str, Any]:
    """node0..node2 each take a snapshot and offer it (the serving side, timed apart)."""
    times: list[float] = []
    doc: dict[str, Any] = {}
    for n in net.validators()[:3]:
        t0 = time.time()
        r = http.post(f"{n.api_url}/v1/admin/snapshot", json={"offer": True}, timeout=600)
        r.raise_for_status()
        times.append(time.time() - t0)
        doc = r.json()
    return {"offer_snapshot_s": [round(t, 2) for t in times], "snapshot_mb": round(doc["bytes"] / 1e6, 1),
            "snapshot_chunks": doc["chunks"], "snapshot_height": doc["chain_height"]}


def _state_sync(net: Any, net_dir: Path, name: str, h1: int, http: httpx.Client) -> dict[str, Any]:
    """`name` joins again on an empty data directory by state sync from its peers (module
    docstring): the total and, from its log, the fetch and verify steps."""
    net.stop(name)
    ndir = net_dir / "net" / name
    shutil.rmtree(ndir / "data")
    toml = ndir / "node.toml"
    if "[statesync]" not in toml.read_text():
        with toml.open("a") as f:
            f.write("\n[statesync]\nenable = true\n")
    log = ndir / "node.log"
    mark = log.stat().st_size if log.exists() else 0
    total, up = _rejoin(net, name, h1, http)
    out: dict[str, Any] = {"state_sync_total_s": round(total, 2), "state_sync_api_up_s": round(up, 2)}
    with log.open("rb") as f:
        f.seek(mark)
        for line in f:
            if b"statesync_installed" in line:
                try:
                    ev = json.loads(line)
                except ValueError:
                    continue
                out.update({f"state_sync_{k}": ev[k] for k in ("fetch_s", "verify_install_s", "bytes", "chunks",
                                                               "values", "height") if k in ev})
                out["state_sync_discover_fetch_install_s"] = ev.get("total_s")
    return out


def main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(prog="./scripts/bench catchup", description=__doc__.split("\n\n")[0])
    ap.add_argument("--down", type=float, default=30.0, help="seconds the node is down while the chain grows")
    ap.add_argument("--rate", type=float, default=1000.0, help="events/s offered while it is down")
    ap.add_argument("--out", default="bench-out")
    ap.add_argument("--quick", action="store_true", help="smoke run: 4 s at 200 events/s")
    ap.add_argument("--json", dest="json_path", default=None)
    ap.add_argument("--state-sync", action="store_true",
                    help="then join again on an empty data directory by state sync from peers, and compare")
    ap.add_argument("--member", action="store_true",
                    help="a member node is stopped too and rejoins both ways (by replay, by state sync)")
    ap.add_argument("--prebuilt", type=int, default=0, metavar="EVENTS",
                    help="before the network starts, build EVENTS events of certified chain into every node's data "
                         "(the joining nodes then replay, or state-sync, those too: the way to 1M events)")
    ap.add_argument("--prebuilt-dir", default=None, metavar="DIR",
                    help="lay the network and the prebuilt chain out in DIR and keep them; a later run with the same "
                         "DIR reuses both (the build is then not part of the run)")
    ap.add_argument("--prepare-only", action="store_true",
                    help="with --prebuilt-dir: lay out the network and build the chain, start nothing")
    ap.add_argument("--profile", default=None, metavar="FILE",
                    help="py-spy record the returning node (raw format, idle included) from its start until caught up")
    args = ap.parse_args(argv)
    if args.quick:
        args.down, args.rate = 4.0, 200.0
    res = run(args)
    if args.prepare_only:
        print(f"prepared {res['prepared']}: {res['prebuilt'].get('events', 0):,} prebuilt events")
        return 0
    print(f"chain production while the node was down: {res['events']:,} events in {res['blocks']} blocks over "
          f"{res['production_s']} s = {res['production_events_per_s']:,} events/s ({res['production_blocks_per_s']} blocks/s)")
    if "prebuilt" in res:
        print(f"prebuilt before the network started: {res['prebuilt']['events']:,} events in {res['prebuilt']['blocks']} "
              f"blocks (built in {res['prebuilt']['build_s']} s); a joining node joins {res['events_to_join']:,} events")
    print(f"catch-up (process start to the same executed height): {res['catchup_s_including_start']} s = "
          f"{res['catchup_events_per_s']:,} events/s ({res['catchup_blocks_per_s']} blocks/s)")
    print(f"catch-up rate = {res['ratio']}x the production rate (target >= 10x), process start included")
    print(f"process start (until its API answers): {res['process_start_s']} s; after it: "
          f"{res['catchup_events_per_s_excluding_start']:,} events/s = {res['ratio_excluding_start']}x the production rate"
          + (f" ({res['executed_at_start']} blocks were executed before the API answered)" if res["executed_at_start"] >= 0
             else f" (its executed height came back {-res['executed_at_start']} blocks below where it stopped:"
                  " it executes those blocks again)"))
    print(f"the returning node's CPU from process start until caught up: {res['catchup_cpu_s']} s "
          f"= {res['catchup_events_per_cpu_s']:,} events per CPU-second (start included)")
    if "state_sync_total_s" in res:
        print(f"peers' snapshots (node0-2, offered for state sync): {res['offer_snapshot_s']} s each, "
              f"{res['snapshot_mb']} MB in {res['snapshot_chunks']} chunks, height {res['snapshot_height']}")
        for who, p in (("validator", ""), ("member", "member_")):
            if f"{p}state_sync_total_s" not in res:
                continue
            replay = res["catchup_s_including_start"] if not p else res["member_catchup_s_including_start"]
            print(f"{who}: by replay {replay} s; by state sync from peers {res[f'{p}state_sync_total_s']} s "
                  f"(fetch {res.get(f'{p}state_sync_fetch_s')} s of {res.get(f'{p}state_sync_bytes')} bytes, "
                  f"verify+install {res.get(f'{p}state_sync_verify_install_s')} s, discovery+fetch+install "
                  f"{res.get(f'{p}state_sync_discover_fetch_install_s')} s, "
                  f"{res.get(f'{p}state_sync_values')} state values) = {res[f'{p}state_sync_speedup']}x faster, "
                  "process start included")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "catchup.json").write_text(json.dumps(res, indent=2) + "\n")
    if args.json_path:
        Path(args.json_path).write_text(json.dumps(res, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
