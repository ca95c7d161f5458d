"""The pages' self-test vector: a certified header (one validator, RFC 8032's test key 1)
and a state proof, made and checked by the Python reference (`protocol/light.py`), that
`verify.js`'s `warmUp` verifies while a page's first fetches are in flight (so that the
first answer does not pay for compiling the verifier, and the platform's Ed25519 is
checked on a known valid and a known invalid signature before it is trusted).

`make_vector()` regenerates it (Ed25519 signing is deterministic); the copy in verify.js
must be byte for byte this one. Run under Node: `warmUp` passes on the vector, and its
verdict on the platform's Ed25519 is used only when correct. Skipped when `node` is missing."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from typing import Any

import pytest

from afterchain.node.http.pages import STATIC_DIR
from afterchain.protocol.block import ZERO_HASH, BlockHeader, Commit, CommitCertificate, CommitSig, ValidatorSet
from afterchain.protocol.codec import encode
from afterchain.protocol.crypto import Domain, KeyPair
from afterchain.protocol.light import CertifiedHeader, StateAnswer, genesis_trust, verify_answer
from afterchain.protocol.smt import MemoryNodeStore, SparseMerkleTree
from afterchain.protocol.types import Hash32, Height, Seq, ValidatorId, View

RFC8032_TEST1_SEED = bytes.fromhex("9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60")
CHAIN = "afterchain-selftest"
TIME_MS = 1_767_225_600_000  # 2026-01-01T00:00:00Z; the self-test passes this as its clock
KEY = b"selftest/b"


def make_vector() -> dict[str, Any]:
    key = KeyPair.from_seed(RFC8032_TEST1_SEED)
    vid = ValidatorId(key.public)
    vs = ValidatorSet(validators=(vid,))
    tree = SparseMerkleTree(MemoryNodeStore())
    items = {f"selftest/{c}".encode(): f"value {c}".encode() for c in "abcdefgh"}
    root = tree.update(items)
    header = BlockHeader(chain_id=CHAIN, height=Height(1), view=View(0), time_ms=TIME_MS, prev_hash=ZERO_HASH,
                         events_root=ZERO_HASH, event_count=0, state_height=Height(0), state_root=Hash32(root),
                         validators_hash=Hash32(vs.hash()), next_validators_hash=Hash32(vs.hash()), proposer=vid)
    h = header.hash()
    sig = key.sign(Domain.COMMIT, CHAIN, Commit(view=View(0), seq=Seq(1), digest=Hash32(h), replica=vid))
    cert = CommitCertificate(view=View(0), height=Height(1), header_hash=Hash32(h),
                             signatures=(CommitSig(replica=vid, signature=sig),))
    proof = tree.prove(KEY)
    answer = StateAnswer(key=KEY, value=items[KEY], state_root=Hash32(root), proof=proof,
                         header=CertifiedHeader(header=header, certificate=cert, next_validators=None))
    trust = genesis_trust(CHAIN, ZERO_HASH, TIME_MS, vs)
    value, _ = verify_answer(trust, answer, KEY, now_ms=TIME_MS)  # the reference accepts it
    assert value == items[KEY] and proof.depth >= 2
    return {"chain_id": CHAIN, "time_ms": TIME_MS, "validators": encode(vs).hex(), "key": KEY.hex(),
            "answer": {"key": KEY.hex(), "value": items[KEY].hex(), "state_root": root.hex(), "proof": encode(proof).hex(),
                       "header": encode(header).hex(), "certificate": encode(cert).hex(), "next_validators": None}}


def embedded() -> dict[str, Any]:
    text = (STATIC_DIR / "verify.js").read_text()
    m = re.search(r"^const SELF_TEST = (\{.*?\});$", text, re.M | re.S)
    assert m, "verify.js has no SELF_TEST vector"
    return json.loads(m.group(1))  # type: ignore[no-any-return]


def test_verify_js_embeds_the_reference_vector() -> None:
    assert embedded() == make_vector(), "regenerate: python -m tests.pages.test_page_selftest"


JS = """
import { warmUp, preverifySignatures, verifyEd25519, fromHex } from "%s";
const r = await warmUp();
// the RFC 8032 test 1 signature over the empty message: the platform path (if any) and the JS path agree
const pk = fromHex("d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a");
const sig = fromHex("e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e065224901555fb8821590a33bacc61e39701cf9b46bd25bf5f0595bbe24655141438e7a100b");
const bad = sig.slice(); bad[5] ^= 1;
await preverifySignatures([{ publicKey: pk, message: new Uint8Array(0), signature: bad }]);
console.log(JSON.stringify({ ...r, good: verifyEd25519(pk, new Uint8Array(0), sig), bad: verifyEd25519(pk, new Uint8Array(0), bad) }));
"""


def test_warm_up_verifies_the_vector_under_node() -> None:
    node = shutil.which("node")
    if node is None:
        pytest.skip("node is not installed")
    p = subprocess.run([node, "--input-type=module", "-e", JS % (STATIC_DIR / "verify.js").as_uri()],
                       capture_output=True, text=True, timeout=60, check=False)
    assert p.returncode == 0, p.stderr
    out = json.loads(p.stdout)
    # Node 20 has Ed25519 in WebCrypto (OpenSSL): the self-test found it correct and uses it
    assert out == {"native": True, "good": True, "bad": False}


if __name__ == "__main__":
    print(f"const SELF_TEST = {json.dumps(make_vector(), indent=None)};")
