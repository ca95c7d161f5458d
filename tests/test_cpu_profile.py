"""`node.bench.cpu_profile`: samples are put in the right component, idle samples are left
out, and a node's CPU (from /proc) is split in proportion to its threads' samples."""

from __future__ import annotations

import os
from pathlib import Path

from afterchain.node.bench import cpu_profile as cp


def test_classify_takes_the_first_matching_rule() -> None:
    verify = ["run (trio/_core/_run.py)", "decode_and_verify (node/runtime/mempool.py)", "crypto_sign_open (nacl/bindings/crypto_sign.py)"]
    assert cp.classify(verify) == "event signature verify (Ed25519)"
    decode = ["decode_and_verify (node/runtime/mempool.py)", "decode_as (protocol/codec.py)"]
    assert cp.classify(decode) == "event decode (codec)"
    vote = ["Replica.step (consensus/replica.py)", "Ed25519Verifier.verify (consensus/signer.py)", "crypto_sign_open (x)"]
    assert cp.classify(vote) == "consensus signatures (Ed25519, votes)"
    smt = ["Ledger.apply_block (node/app/ledger.py)", "SparseMerkleTree.update (protocol/smt.py)"]
    assert cp.classify(smt) == "ledger: state tree (SMT)"
    assert cp.classify(["unrolled_run (trio/_core/_run.py)"]) == cp.RULES[-1][0]


def test_account_splits_thread_cpu_by_samples(tmp_path: Path) -> None:
    raw = tmp_path / "node0.raw"
    raw.write_text(
        "thread (10): MainThread;run (trio/_core/_run.py);Ledger.apply_block (node/app/ledger.py);"
        "SparseMerkleTree.update (protocol/smt.py) 30\n"
        "thread (10): MainThread;run (trio/_core/_run.py);Replica.step (consensus/replica.py) 10\n"
        "thread (10): MainThread;run (trio/_core/_run.py);EpollIOManager.get_events (trio/_core/_io_epoll.py) 500\n"
        "thread (11): Trio thread 0;decode_and_verify (node/runtime/mempool.py);crypto_sign_open (nacl/bindings/crypto_sign.py) 20\n"
    )
    s = cp.Sampler({"node0": os.getpid()}, tmp_path, 10.0)
    s.cpu0 = {"node0": {10: ("python", 1.0), 11: ("Trio thread 0", 0.0), 12: ("rocksdb:high", 0.0)}}
    s.cpu1 = {"node0": {10: ("python", 5.0), 11: ("Trio thread 0", 2.0), 12: ("rocksdb:high", 0.5)}}
    acc = cp.account(s, committed_events=10_000)
    node = acc["nodes"]["node0"]
    assert node["cpu_s"] == 6.5 and node["us_per_event"] == 650.0
    comps = node["components_us_per_event"]
    # main thread: 4 s over 40 active samples (the epoll wait is idle): 3 s SMT, 1 s consensus
    assert comps["ledger: state tree (SMT)"] == 300.0
    assert comps["consensus (replica state machine)"] == 100.0
    assert comps["event signature verify (Ed25519)"] == 200.0
    assert comps[cp.NATIVE] == 50.0  # no Python frames: RocksDB's own thread
    assert "components" not in cp.format_table(acc).splitlines()[0]
    assert "650.0" in cp.format_table(acc)


def test_thread_cpu_reads_this_process() -> None:
    threads = cp.thread_cpu(os.getpid())
    assert os.getpid() in threads and threads[os.getpid()][1] >= 0
    assert cp.thread_cpu(2**22 + 12345) == {}


def test_http_socket_io_is_http_not_transport() -> None:
    http = ["TCPServer._read_data (hypercorn/trio/tcp_server.py)", "SocketStream.receive_some (trio/_highlevel_socket.py)",
            "_SocketType._nonblocking_helper (trio/_socket.py)"]
    assert cp.classify(http) == "HTTP API (hypercorn, starlette, routes)"
    p2p = ["Yamux.handle_incoming (libp2p/stream_muxer/yamux/yamux.py)", "SocketStream.receive_some (trio/_highlevel_socket.py)"]
    assert cp.classify(p2p) == "transport (libp2p: yamux, Noise, sockets)"
