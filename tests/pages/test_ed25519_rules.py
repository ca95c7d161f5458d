"""The customer pages verify Ed25519 exactly as the node does (libsodium through PyNaCl):
edge-case signatures that ZIP-215 or cofactored verifiers accept (small-order or
non-canonical keys, small-order or mixed-order R, S >= L) are checked by PyNaCl and by
the pages' `verify.js` (run under Node, the same module the browser loads), and every
verdict must agree. noble's own strict mode (`zip215: false`) is run too, to show why
`verify.js` does not rely on it alone: it accepts R with a small-order component.
Skipped, with the reason, when `node` is missing."""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess

import nacl.bindings as nb
import pytest

from afterchain.node.http.pages import STATIC_DIR
from afterchain.protocol.crypto import verify_raw

L = 2**252 + 27742317777372353535851937790883648493
ORDER8 = bytes.fromhex("26e8958fc2b227b045c3f489f2ef98f0d5dfac05d3c63339b13802886d53fc05")
IDENTITY = bytes.fromhex("01" + "00" * 31)
IDENTITY_NONCANONICAL = bytes.fromhex("ee" + "ff" * 30 + "7f")  # y = p + 1
IDENTITY_SIGNBIT = bytes.fromhex("01" + "00" * 30 + "80")  # x = 0 with the sign bit set
MSG = b"afterchain/v1/COMMIT\x00edge-cases"


def scalar(n: int) -> bytes:
    return (n % L).to_bytes(32, "little")


def h_scalar(*parts: bytes) -> int:
    return int.from_bytes(hashlib.sha512(b"".join(parts)).digest(), "little") % L


def keypair(seed: bytes) -> tuple[int, bytes]:
    h = bytearray(hashlib.sha512(seed).digest()[:32])
    h[0] &= 248
    h[31] &= 127
    h[31] |= 64
    a = int.from_bytes(h, "little")
    return a, nb.crypto_scalarmult_ed25519_base_noclamp(scalar(a))


def cases() -> dict[str, tuple[bytes, bytes]]:
    """name -> (public key, signature) over MSG."""
    a, pk = keypair(b"\x07" * 32)
    sk = nb.crypto_sign_seed_keypair(b"\x07" * 32)[1]
    good = nb.crypto_sign(MSG, sk)[:64]
    r = 123456789
    rb = nb.crypto_scalarmult_ed25519_base_noclamp(scalar(r))
    s_good = int.from_bytes(good[32:], "little")
    out = {
        "valid": (pk, good),
        "S plus L (non-canonical S)": (pk, good[:32] + (s_good + L).to_bytes(32, "little")),
        "flipped message bit": (pk, bytes([good[0] ^ 1]) + good[1:]),
    }
    # A of small order (identity): [S]B = R holds for S = r, whatever k is
    for name, a_bytes in (("small-order A (identity)", IDENTITY), ("non-canonical small-order A (y = p + 1)",
                                                                    IDENTITY_NONCANONICAL),
                          ("small-order A with the sign bit on x = 0", IDENTITY_SIGNBIT)):
        out[name] = (a_bytes, rb + scalar(r))
    # R of small order: cofactored verifiers accept S = k * a
    k = h_scalar(ORDER8, pk, MSG)
    out["small-order R"] = (pk, ORDER8 + scalar(k * a))
    # R = rB + T8 (mixed order): S = r + k * a satisfies the cofactored equation only
    r_mixed = nb.crypto_core_ed25519_add(rb, ORDER8)
    k = h_scalar(r_mixed, pk, MSG)
    out["mixed-order R"] = (pk, r_mixed + scalar(r + k * a))
    # the same construction with a prime-order R is an ordinary valid signature
    k = h_scalar(rb, pk, MSG)
    out["hand-made valid"] = (pk, rb + scalar(r + k * a))
    return out


JS = """
import { verifyEd25519, verifyEd25519Js, verifyNobleStrict, preverifySignatures, fromHex } from "%s";
const cases = JSON.parse(process.argv[1]);
const msg = fromHex(cases.msg);
const out = {};
const items = Object.values(cases.cases).map(([pk, sig]) => ({ publicKey: fromHex(pk), message: msg, signature: fromHex(sig) }));
const native = await preverifySignatures(items);  // Node's WebCrypto Ed25519 (OpenSSL)
for (const [name, [pk, sig]] of Object.entries(cases.cases)) {
  const args = [fromHex(pk), msg, fromHex(sig)];
  out[name] = [verifyEd25519Js(...args), verifyNobleStrict(...args), verifyEd25519(...args)];
}
out.native = native;
console.log(JSON.stringify(out));
"""


def test_verify_js_accepts_exactly_what_libsodium_accepts() -> None:
    node = shutil.which("node")
    if node is None:
        pytest.skip("`node` is not installed: the JavaScript side of the Ed25519 rules did not run")
    cs = cases()
    arg = json.dumps({"msg": MSG.hex(), "cases": {n: [pk.hex(), sig.hex()] for n, (pk, sig) in cs.items()}})
    p = subprocess.run([node, "--input-type=module", "-e", JS % (STATIC_DIR / "verify.js").as_uri(), arg],
                       capture_output=True, text=True, timeout=120, check=False)
    assert p.returncode == 0, p.stderr
    js = json.loads(p.stdout)
    sodium = {n: verify_raw(pk, sig, MSG) for n, (pk, sig) in cs.items()}
    assert sodium["valid"] and sodium["hand-made valid"]
    assert sum(sodium.values()) == 2, sodium  # every edge case is refused by libsodium
    for name in cs:
        assert js[name][0] == sodium[name], (name, js[name], sodium[name])  # the JavaScript equation
        assert js[name][2] == sodium[name], (name, js[name], sodium[name])  # WebCrypto after the byte checks
    assert js["native"] == 2  # the platform's Ed25519 passed the two valid ones (and no edge case)
    # noble's strict (cofactored) mode alone would accept these two: why verify.js adds the checks
    assert js["small-order R"][1] and js["mixed-order R"][1]


JS_AGREE = """
import { verifyEd25519, verifyEd25519Js, verifyEd25519Separate, preverifySignatures, fromHex } from "%s";
const rows = JSON.parse(process.argv[1]).map((r) => r.map(fromHex));
await preverifySignatures(rows.map(([publicKey, message, signature]) => ({ publicKey, message, signature })));
const out = rows.map((args) => [verifyEd25519Js(...args), verifyEd25519Separate(...args), verifyEd25519(...args)]);
console.log(JSON.stringify(out));
"""


def test_the_one_pass_equation_agrees_with_separate_multiplications_and_libsodium() -> None:
    """verify.js computes [S]B - [k]A in one pass (Straus, width-5 digits), or lets the
    platform's Ed25519 (WebCrypto) decide after its byte checks; on valid signatures and on
    near misses (another message, S + 1, S = 0, S = L - 1, R of another valid signature),
    the one-pass equation, noble's separate multiplications, the WebCrypto path and PyNaCl
    give the same verdict."""
    import random

    node = shutil.which("node")
    if node is None:
        pytest.skip("`node` is not installed: the JavaScript side of the Ed25519 rules did not run")
    rnd = random.Random(24)
    rows: list[tuple[bytes, bytes, bytes]] = []
    for _ in range(12):
        pk, sk = nb.crypto_sign_seed_keypair(rnd.randbytes(32))
        msg = rnd.randbytes(rnd.randrange(0, 200))
        sig = nb.crypto_sign(msg, sk)[:64]
        s_int = int.from_bytes(sig[32:], "little")
        other = nb.crypto_sign(msg + b"x", sk)[:64]
        rows += [(pk, msg, sig), (pk, msg + b"!", sig), (pk, msg, sig[:32] + scalar(s_int + 1)),
                 (pk, msg, sig[:32] + scalar(0)), (pk, msg, sig[:32] + scalar(L - 1)), (pk, msg, other[:32] + sig[32:])]
    arg = json.dumps([[pk.hex(), m.hex(), sig.hex()] for pk, m, sig in rows])
    p = subprocess.run([node, "--input-type=module", "-e", JS_AGREE % (STATIC_DIR / "verify.js").as_uri(), arg],
                       capture_output=True, text=True, timeout=120, check=False)
    assert p.returncode == 0, p.stderr
    got = json.loads(p.stdout)
    sodium = [verify_raw(pk, sig, m) for pk, m, sig in rows]
    assert sum(sodium) == 12  # the valid ones; every near miss is refused
    for row, (one_pass, separate, native), want in zip(rows, got, sodium, strict=True):
        assert one_pass == separate == native == want, (row, one_pass, separate, native, want)


def test_the_vendored_libraries_are_pinned_licensed_and_packaged() -> None:
    import tomllib
    from pathlib import Path

    from afterchain.node.http.pages import ASSETS

    root = Path(__file__).resolve().parents[2]
    for folder, names in ASSETS.items():
        for name in names:
            text = (STATIC_DIR / folder / name).read_text()
            assert "sourceMappingURL" not in text, (folder, name)
    script = (root / "scripts" / "vendor_page_libs").read_text()
    lock = json.loads((root / "docs" / "examples" / "js" / "package-lock.json").read_text())["packages"]
    for line in (STATIC_DIR / "vendor" / "VERSION").read_text().splitlines():
        name, version, integrity = line.split()
        assert integrity.strip("()") in script and version in script
        assert lock[f"node_modules/{name}"]["version"] == version  # the same pins as the JavaScript example
        assert lock[f"node_modules/{name}"]["integrity"] == integrity.strip("()")
    for lic in ("LICENSE.noble-ed25519", "LICENSE.noble-hashes", "LICENSE.msgpack"):
        assert "Permission" in (STATIC_DIR / "vendor" / lic).read_text()
    data = tomllib.loads((root / "pyproject.toml").read_text())["tool"]["setuptools"]["package-data"]
    assert set(data["afterchain.node.http.pages"]) == {"static/*", "static/vendor/*", "static/vendor/noble-hashes/*"}
