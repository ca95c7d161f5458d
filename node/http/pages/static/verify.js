// afterchain light-client verification in JavaScript: the browser's (and Node's) copy of
// protocol/light.py, byte for byte what docs/PROTOCOL.md sections 1, 2, 5, 6 and 8 say.
// Pure: no I/O, no clock (callers pass nowMs). Every refusal is a LightError whose
// `reason` is one of the light.* reasons of PROTOCOL.md section 8, in the same order of
// checks as the Python reference, so a forged answer is refused with the same reason here
// and by `afterchain light`.
//
// Ed25519 is checked with libsodium's acceptance rules (the node verifies with PyNaCl):
// S < L; the public key a canonical encoding (y < p, noble's `zip215: false` decoding) of
// a point that is not of small order; R not one of libsodium's small-order encodings; and
// the cofactorless equation: the encoding of [S]B - [k]A must equal R byte for byte.
// noble's own `verify(..., {zip215: false})` checks the cofactored equation, which also
// accepts an R with a small-order component that libsodium refuses; so the equation is
// computed here with noble's audited point arithmetic, in one pass (verifyEd25519Js), or,
// where the platform has Ed25519 in WebCrypto (Chromium, Node), by the platform after the
// byte checks above (preverifySignatures: only its "valid" verdicts are used). Both paths
// run the edge cases against PyNaCl in tests/pages/test_ed25519_rules.py.
import { decode, encode } from "./vendor/msgpack.js";
import * as ed from "./vendor/noble-ed25519.js";
import { sha256, sha512 } from "./vendor/noble-hashes/sha2.js";

ed.hashes.sha512 = sha512;

export const DEFAULT_TRUSTING_PERIOD_MS = 14 * 24 * 3600 * 1000;
export const DEFAULT_MAX_CLOCK_DRIFT_MS = 10_000;
export const MAX_CHANGE_HEADERS = 256;
const MAX_ANSWER_BYTES = 256 * 1024;
const MAX_KEY_BYTES = 1024;
const MAX_VALIDATORS = 256;
const MAX_BLOCK_EVENTS = 100_000;
const DEPTH_BITS = 256;

export const REASONS = {
  "light.malformed": "an answer part is not the canonical encoding of its message, or is invalid",
  "light.wrong_chain": "the header's chain_id is not the trusted chain's",
  "light.wrong_genesis": "the node's genesis is not the one the link names",
  "light.trust_expired": "the trusted header is older than the trusting period: re-bootstrap from a trusted hash",
  "light.header_expired": "the header is older than the trusting period",
  "light.header_future": "the header's time is ahead of the client's clock by more than the allowed drift",
  "light.rollback": "the header (or its state) is older than what the client already trusts",
  "light.fork": "a certified header at the trusted height differs from the trusted header",
  "light.certificate_mismatch": "the certificate is for another header hash or height",
  "light.signer_unknown": "a certificate signer is not in the validator set",
  "light.signer_duplicate": "a validator signs the certificate twice",
  "light.signature_invalid": "a COMMIT signature does not verify",
  "light.no_quorum": "fewer than a quorum (n - f) of signatures of the validator set",
  "light.validators_unproven": "the header's validator set is not reached from the trusted set by change headers",
  "light.validator_change_uncertified": "a validator-set change header lacks a valid certificate or the new set",
  "light.wrong_key": "the answer is for another state key",
  "light.wrong_root": "the proof is against another root than the header's state_root",
  "light.value_tampered": "the value does not verify against the header's state root",
  "light.absence_forged": "the key is said to be absent but the proof does not show it",
  "light.witness_mismatch": "the witness node has another header at that height",
  "light.node_unavailable": "the node did not answer (or answered an error): nothing to verify",
};

export class LightError extends Error {
  constructor(reason, message) {
    super(`${reason}: ${message}`);
    this.reason = reason;
    this.detail = message;
  }
}
const fail = (reason, message) => { throw new LightError(reason, message); };

// ------------------------------------------------------------------ bytes

const utf8 = new TextEncoder();
export const toHex = (b) => Array.from(b, (x) => x.toString(16).padStart(2, "0")).join("");
export function fromHex(text, what = "value") {
  if (typeof text !== "string" || !/^([0-9a-f]{2})*$/.test(text)) fail("light.malformed", `${what} is not lowercase hex`);
  const out = new Uint8Array(text.length / 2);
  for (let i = 0; i < out.length; i++) out[i] = parseInt(text.substr(2 * i, 2), 16);
  return out;
}
export function concat(...parts) {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const p of parts) { out.set(p, at); at += p.length; }
  return out;
}
export const equal = (a, b) => a.length === b.length && a.every((x, i) => x === b[i]);
const short = (b) => `${toHex(b).slice(0, 16)}...`;
export { sha256 };

// ------------------------------------------------------------------ canonical messages (section 1)

const isBytes = (v) => v instanceof Uint8Array;
const isU64 = (v) => typeof v === "number" && Number.isSafeInteger(v) && v >= 0;

/** Decode `bytes` as message `tag` with `arity` fields; refuse anything but its one canonical encoding. */
export function decodeMessage(bytes, tag, arity, what) {
  if (!isBytes(bytes) || bytes.length > 4 * 1024 * 1024) fail("light.malformed", `${what}: not bytes, or too large`);
  let v;
  try {
    v = decode(bytes, { maxDepth: 16 });
  } catch (e) {
    fail("light.malformed", `${what}: not MessagePack (${e.message})`);
  }
  if (!Array.isArray(v) || v.length < 2) fail("light.malformed", `${what}: not a message array`);
  if (v[0] !== tag) fail("light.malformed", `${what}: tag ${v[0]}, expected ${tag}`);
  if (v[1] !== 1) fail("light.malformed", `${what}: unsupported version ${v[1]}`);
  if (v.length !== 2 + arity) fail("light.malformed", `${what}: ${v.length - 2} fields, expected ${arity}`);
  let again;
  try { again = encode(v); } catch (e) { fail("light.malformed", `${what}: ${e.message}`); }
  if (!equal(again, bytes)) fail("light.malformed", `${what}: not the canonical encoding`);
  return v;
}

function field(ok, what) { if (!ok) fail("light.malformed", what); }
const hash32 = (v, what) => field(isBytes(v) && v.length === 32, `${what} is not 32 bytes`);
const u64 = (v, what) => field(isU64(v), `${what} is not a u64 below 2^53`);
const CHAIN_ID = /^[a-z0-9][a-z0-9._-]{0,63}$/;

function validatorSetFrom(v, what) {
  field(Array.isArray(v) && v.length === 3 && v[0] === 0x10 && v[1] === 1, `${what} is not a ValidatorSet`);
  const keys = v[2];
  field(Array.isArray(keys) && keys.length >= 1 && keys.length <= MAX_VALIDATORS, `${what}: 1..${MAX_VALIDATORS} validators`);
  keys.forEach((k, i) => hash32(k, `${what}.validators[${i}]`));
  const hexes = keys.map(toHex);
  field(new Set(hexes).size === hexes.length, `${what}: a validator is listed twice`);
  const n = keys.length;
  const f = Math.floor((n - 1) / 3);
  return { keys, members: new Set(hexes), n, f, quorum: n - f, hash: sha256(encode(v)) };
}

export function decodeValidatorSet(bytes, what = "validator set") {
  return validatorSetFrom(decodeMessage(bytes, 0x10, 1, what), what);
}

export function decodeHeader(bytes) {
  const v = decodeMessage(bytes, 0x11, 12, "header");
  const [, , chainId, height, view, timeMs, prevHash, eventsRoot, eventCount, stateHeight, stateRoot, validatorsHash,
    nextValidatorsHash, proposer] = v;
  field(typeof chainId === "string" && CHAIN_ID.test(chainId), "header.chain_id is not a chain id");
  for (const [x, n] of [[height, "height"], [view, "view"], [timeMs, "time_ms"], [eventCount, "event_count"],
    [stateHeight, "state_height"]]) u64(x, `header.${n}`);
  for (const [x, n] of [[prevHash, "prev_hash"], [eventsRoot, "events_root"], [stateRoot, "state_root"],
    [validatorsHash, "validators_hash"], [nextValidatorsHash, "next_validators_hash"], [proposer, "proposer"]]) hash32(x, `header.${n}`);
  field(height >= 1, "header.height: block heights start at 1");
  field(stateHeight < height, "header.state_height must be below height");
  field(eventCount <= MAX_BLOCK_EVENTS, "header.event_count out of range");
  return { chainId, height, view, timeMs, stateHeight, stateRoot, validatorsHash, nextValidatorsHash, hash: sha256(bytes) };
}

export function decodeCertificate(bytes) {
  const v = decodeMessage(bytes, 0x15, 4, "certificate");
  const [, , view, height, headerHash, sigs] = v;
  u64(view, "certificate.view");
  u64(height, "certificate.height");
  hash32(headerHash, "certificate.header_hash");
  field(Array.isArray(sigs), "certificate.signatures is not an array");
  const signatures = sigs.map((s, i) => {
    field(Array.isArray(s) && s.length === 4 && s[0] === 0x14 && s[1] === 1, `certificate.signatures[${i}] is not a CommitSig`);
    hash32(s[2], `certificate.signatures[${i}].replica`);
    field(isBytes(s[3]) && s[3].length === 64, `certificate.signatures[${i}].signature is not 64 bytes`);
    return { replica: s[2], signature: s[3] };
  });
  // the reference decoder refuses a certificate that names a signer twice (light.signer_duplicate)
  const seen = new Set(signatures.map((s) => toHex(s.replica)));
  if (seen.size !== signatures.length) fail("light.signer_duplicate", "certificate: a validator signs twice");
  return { view, height, headerHash, signatures };
}

export function decodeProof(bytes) {
  let v;
  try {
    v = decodeMessage(bytes, 0x30, 5, "proof");
  } catch (e) {
    fail("light.malformed", `proof: ${e.detail ?? e.message}`);
  }
  const [, , depth, bitmap, siblings, leafPath, leafValueHash] = v;
  u64(depth, "proof.depth");
  field(depth <= DEPTH_BITS, "proof.depth out of range");
  field(isBytes(bitmap) && bitmap.length === Math.ceil(depth / 8), "proof.bitmap has the wrong length");
  field(Array.isArray(siblings), "proof.siblings is not an array");
  siblings.forEach((s, i) => hash32(s, `proof.siblings[${i}]`));
  if (leafPath !== null) hash32(leafPath, "proof.leaf_path");
  if (leafValueHash !== null) hash32(leafValueHash, "proof.leaf_value_hash");
  let ones = 0;
  for (let d = 0; d < bitmap.length * 8; d++) {
    if (bitAt(bitmap, d)) { field(d < depth, "proof.bitmap bits beyond depth must be zero"); ones++; }
  }
  field(ones === siblings.length, "proof.siblings: the bitmap marks another number of siblings");
  field((leafPath === null) === (leafValueHash === null), "proof.leaf_path and leaf_value_hash go together");
  return { depth, bitmap, siblings, leafPath, leafValueHash };
}

/** The genesis document (tag 0x65): what a light client needs from it, and its hash. */
export function decodeGenesis(bytes) {
  const v = decodeMessage(bytes, 0x65, 7, "genesis");
  const [, , chainId, timeMs, validators, members] = v;
  field(typeof chainId === "string" && CHAIN_ID.test(chainId), "genesis.chain_id is not a chain id");
  u64(timeMs, "genesis.genesis_time_ms");
  field(Array.isArray(members), "genesis.members is not an array");
  const names = {};
  for (const m of members) {
    field(Array.isArray(m) && m.length === 7 && m[0] === 0x60, "genesis.members: not a Member");
    names[m[2]] = m[3];
  }
  return { chainId, timeMs, validators: validatorSetFrom(validators, "genesis.validators"), names, hash: sha256(bytes) };
}

// ------------------------------------------------------------------ Ed25519 with libsodium's rules

const L = 2n ** 252n + 27742317777372353535851937790883648493n;
// libsodium's ge25519_has_small_order blocklist (compared with the top bit cleared)
const SMALL_ORDER = [
  "0000000000000000000000000000000000000000000000000000000000000000",
  "0100000000000000000000000000000000000000000000000000000000000000",
  "26e8958fc2b227b045c3f489f2ef98f0d5dfac05d3c63339b13802886d53fc05",
  "c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac037a",
  "ecffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f",
  "edffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f",
  "eeffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f",
].map((h) => { const x = fromHex(h); x[31] &= 0x7f; return x; });
function hasSmallOrder(b) {
  const c = b.slice();
  c[31] &= 0x7f;
  return SMALL_ORDER.some((s) => equal(s, c));
}
const leNumber = (b) => { let n = 0n; for (let i = b.length - 1; i >= 0; i--) n = (n << 8n) | BigInt(b[i]); return n; };

// The equation [S]B - [k]A is computed in ONE pass (Straus' method with width-5 signed
// digits, as libsodium's ge25519_double_scalarmult_vartime): about 253 doublings and 85
// additions, with the odd multiples 1..15 of B (made once, 8 points) and of -A (made once
// per key and cached). The result is the same point as noble's separate multiplications
// would give; only the work differs: noble's [S]B first builds a 4224-point table of B,
// which cost a cold page most of its first answer (OPERATIONS.md 2b). Only public data is
// multiplied (a verifier holds no secret), so variable time is fine, as in libsodium.
const oddMultiples = (P) => {
  const out = [P];
  const P2 = P.double();
  for (let i = 1; i < 8; i++) out.push(out[i - 1].add(P2));
  return out;
};
/** Width-5 non-adjacent form of 0 <= n: digits (least significant first) in {0, +-1, +-3, ..., +-15}. */
function naf5(n) {
  const digits = [];
  while (n > 0n) {
    let d = 0;
    if (n & 1n) {
      d = Number(n & 31n);
      if (d > 16) d -= 32;
      n -= BigInt(d);
    }
    digits.push(d);
    n >>= 1n;
  }
  return digits;
}
let baseOdd = null;
/** [a]P + [b]Q from the odd multiples of P and Q (variable time: public inputs only). */
function doubleScalarMul(a, pOdd, b, qOdd) {
  const da = naf5(a), db = naf5(b);
  let acc = ed.Point.ZERO;
  for (let i = Math.max(da.length, db.length) - 1; i >= 0; i--) {
    acc = acc.double();
    const x = da[i] ?? 0, y = db[i] ?? 0;
    if (x > 0) acc = acc.add(pOdd[x >> 1]); else if (x < 0) acc = acc.subtract(pOdd[-x >> 1]);
    if (y > 0) acc = acc.add(qOdd[y >> 1]); else if (y < 0) acc = acc.subtract(qOdd[-y >> 1]);
  }
  return acc;
}
const publicPoints = new Map(); // key hex -> odd multiples of -A, or null for a refused key
const P_FIELD = 2n ** 255n - 19n;
/** libsodium's checks on the bytes alone: S < L, R and A not small-order encodings, A's y < p. */
function bytesAcceptable(publicKey, signature) {
  if (!isBytes(publicKey) || publicKey.length !== 32 || !isBytes(signature) || signature.length !== 64) return false;
  const yA = publicKey.slice();
  yA[31] &= 0x7f;
  return leNumber(signature.subarray(32)) < L && !hasSmallOrder(signature.subarray(0, 32)) && !hasSmallOrder(publicKey) &&
    leNumber(yA) < P_FIELD;
}

// Signatures the browser's own Ed25519 (WebCrypto) verified, after `bytesAcceptable`:
// preverifySignatures fills it before a header is verified. The native verifiers compute the
// same cofactorless equation on a canonical, not small-order A and compare R (BoringSSL in
// Chromium, OpenSSL in Node); a key that is not a curve point fails there. Only `true`
// verdicts are kept: anything else is decided by the JavaScript equation below.
const nativeVerified = new Set();
const sigKey = (publicKey, message, signature) => `${toHex(publicKey)}${toHex(signature)}${toHex(message)}`;
let nativeEd25519 = globalThis.crypto?.subtle ? undefined : null; // undefined: not probed yet

/** Verify `items` ({publicKey, message, signature}) with WebCrypto where the platform has
 * Ed25519; the verdicts feed `verifyEd25519`. Never throws: without WebCrypto Ed25519,
 * verification falls back to the JavaScript equation. */
export async function preverifySignatures(items) {
  if (nativeEd25519 === null) return 0;
  const subtle = globalThis.crypto.subtle;
  let n = 0;
  await Promise.all(items.map(async ({ publicKey, message, signature }) => {
    if (!bytesAcceptable(publicKey, signature)) return;
    const k = sigKey(publicKey, message, signature);
    if (nativeVerified.has(k)) return;
    try {
      const key = await subtle.importKey("raw", publicKey, { name: "Ed25519" }, false, ["verify"]);
      if (await subtle.verify({ name: "Ed25519" }, key, signature, message)) {
        if (nativeVerified.size > 4096) nativeVerified.clear();
        nativeVerified.add(k);
        n++;
      }
      nativeEd25519 = true;
    } catch (e) {
      if (nativeEd25519 === undefined && e?.name === "NotSupportedError") nativeEd25519 = null;
    }
  }));
  return n;
}

/** libsodium's crypto_sign_verify_detached, with noble's point arithmetic (or the verdict of
 * the platform's Ed25519 for a signature `preverifySignatures` passed). */
export function verifyEd25519(publicKey, message, signature) {
  if (!bytesAcceptable(publicKey, signature)) return false;
  if (nativeVerified.has(sigKey(publicKey, message, signature))) return true;
  return verifyEd25519Js(publicKey, message, signature);
}

/** The same verdict by the JavaScript equation alone (no platform Ed25519). */
export function verifyEd25519Js(publicKey, message, signature) {
  if (!bytesAcceptable(publicKey, signature)) return false;
  const r = signature.subarray(0, 32);
  const s = leNumber(signature.subarray(32));
  const pkHex = toHex(publicKey);
  let negA = publicPoints.get(pkHex);
  if (negA === undefined) {
    negA = null;
    try {
      const p = ed.Point.fromBytes(publicKey, false); // zip215: false: y < p, canonical
      if (!p.isSmallOrder()) negA = oddMultiples(p.negate());
    } catch { negA = null; }
    if (publicPoints.size > 4096) publicPoints.clear();
    publicPoints.set(pkHex, negA);
  }
  if (negA === null) return false;
  const k = leNumber(sha512(concat(r, publicKey, message))) % L;
  baseOdd ??= oddMultiples(ed.Point.BASE);
  const rCheck = doubleScalarMul(s, baseOdd, k, negA); // [S]B + [k](-A)
  return equal(rCheck.toBytes(), r);
}

/** The same equation with noble's separate multiplications (the previous code): for tests. */
export function verifyEd25519Separate(publicKey, message, signature) {
  if (!isBytes(publicKey) || publicKey.length !== 32 || !isBytes(signature) || signature.length !== 64) return false;
  const r = signature.subarray(0, 32);
  const s = leNumber(signature.subarray(32));
  if (s >= L || hasSmallOrder(r) || hasSmallOrder(publicKey)) return false;
  let A;
  try { A = ed.Point.fromBytes(publicKey, false); } catch { return false; }
  if (A.isSmallOrder()) return false;
  const k = leNumber(sha512(concat(r, publicKey, message))) % L;
  return equal(ed.Point.BASE.multiply(s, false).subtract(A.multiply(k, false)).toBytes(), r);
}

/** noble's own strict verification (cofactored): for comparison in tests only. */
export function verifyNobleStrict(publicKey, message, signature) {
  try { return ed.verify(signature, message, publicKey, { zip215: false }); } catch { return false; }
}

// ------------------------------------------------------------------ certificates and headers (sections 5, 8)

const COMMIT_PREFIX = utf8.encode("afterchain/v1/COMMIT\0");

/** What each COMMIT signature of `cert` signs: [{publicKey, message, signature}]. */
export function certificateSignatures(chainId, cert) {
  const prefix = concat(COMMIT_PREFIX, utf8.encode(chainId));
  return cert.signatures.map((sig) => ({
    publicKey: sig.replica, signature: sig.signature,
    message: concat(prefix, encode([0x13, 1, cert.view, cert.height, cert.headerHash, sig.replica])),
  }));
}

/** `preverifySignatures` of every signature of the certified headers `certifieds`. */
export function preverifyCertified(chainId, certifieds) {
  return preverifySignatures(certifieds.flatMap((c) => certificateSignatures(chainId, c.certificate)));
}

export function verifyCertificate(chainId, validators, header, cert) {
  if (!equal(cert.headerHash, header.hash) || cert.height !== header.height) {
    fail("light.certificate_mismatch", `certificate is for height ${cert.height} hash ${short(cert.headerHash)}, ` +
      `header is ${header.height} ${short(header.hash)}`);
  }
  const seen = new Set();
  cert.signatures.forEach((sig, i) => {
    const h = toHex(sig.replica);
    if (!validators.members.has(h)) fail("light.signer_unknown", `signature ${i} is by ${h.slice(0, 16)}..., not a validator`);
    if (seen.has(h)) fail("light.signer_duplicate", `${h.slice(0, 16)}... signs twice`);
    seen.add(h);
  });
  certificateSignatures(chainId, cert).forEach(({ publicKey, message, signature }, i) => {
    if (!verifyEd25519(publicKey, message, signature)) {
      fail("light.signature_invalid", `signature ${i} by ${toHex(sig.replica).slice(0, 16)}... does not verify`);
    }
  });
  if (seen.size < validators.quorum) fail("light.no_quorum", `${seen.size} signatures, a quorum is ${validators.quorum} of ${validators.n}`);
  return seen.size;
}

/** A certified header from the JSON of /v1/headers or a proof answer. */
export function decodeCertified(j) {
  if (j === null || typeof j !== "object") fail("light.malformed", "no certified header");
  const header = decodeHeader(fromHex(j.header, "header"));
  const certificate = decodeCertificate(fromHex(j.certificate, "certificate"));
  const nextValidators = j.next_validators == null ? null : decodeValidatorSet(fromHex(j.next_validators, "next_validators"), "next_validators");
  return { header, certificate, nextValidators };
}

/** The trusted state of a client that starts from a genesis it trusts. */
export function genesisTrust(genesis) {
  return { chainId: genesis.chainId, genesisHash: genesis.hash, height: 0, headerHash: new Uint8Array(32),
    timeMs: genesis.timeMs, stateHeight: 0, validators: genesis.validators };
}

export function trustToJson(t) {
  return { chain_id: t.chainId, genesis_hash: toHex(t.genesisHash), height: t.height, header_hash: toHex(t.headerHash),
    time_ms: t.timeMs, state_height: t.stateHeight, validators: toHex(encode([0x10, 1, t.validators.keys])) };
}

export function trustFromJson(j) {
  return { chainId: j.chain_id, genesisHash: fromHex(j.genesis_hash), height: j.height, headerHash: fromHex(j.header_hash),
    timeMs: j.time_ms, stateHeight: j.state_height, validators: decodeValidatorSet(fromHex(j.validators)) };
}

function checkTime(trust, header, nowMs, period, drift) {
  if (header.chainId !== trust.chainId) fail("light.wrong_chain", `header is for chain "${header.chainId}", we follow "${trust.chainId}"`);
  if (header.timeMs > nowMs + drift) fail("light.header_future", `header time ${header.timeMs} is ahead of now ${nowMs} by more than ${drift} ms`);
  if (header.timeMs + period < nowMs) fail("light.header_expired", `header ${header.height} is ${nowMs - header.timeMs} ms old, the trusting period is ${period} ms`);
}

/** Verify `target` from `trust` through the validator-set `changes`; the new trusted state and who signed. */
export function verifyHeader(trust, target, changes = [], { nowMs, trustingPeriodMs = DEFAULT_TRUSTING_PERIOD_MS,
  maxClockDriftMs = DEFAULT_MAX_CLOCK_DRIFT_MS } = {}) {
  const header = target.header;
  checkTime(trust, header, nowMs, trustingPeriodMs, maxClockDriftMs);
  if (trust.timeMs + trustingPeriodMs < nowMs) {
    fail("light.trust_expired", `the trusted header ${trust.height} is ${nowMs - trust.timeMs} ms old, the trusting period is ${trustingPeriodMs} ms`);
  }
  if (header.height < trust.height || header.stateHeight < trust.stateHeight) {
    fail("light.rollback", `header ${header.height} (state ${header.stateHeight}) is older than the trusted header ${trust.height} (state ${trust.stateHeight})`);
  }
  if (header.height === trust.height) {
    if (!equal(header.hash, trust.headerHash)) fail("light.fork", `header ${header.height} is not the trusted header ${short(trust.headerHash)}`);
    return { trust, signers: null, validators: trust.validators };
  }
  if (changes.length > MAX_CHANGE_HEADERS) fail("light.malformed", `at most ${MAX_CHANGE_HEADERS} change headers, got ${changes.length}`);
  let current = trust.validators;
  let last = trust.height;
  if (!equal(header.validatorsHash, current.hash)) {
    for (const ch of changes) {
      const c = ch.header;
      if (c.height <= last || c.height >= header.height) {
        fail("light.validator_change_uncertified", `change header ${c.height} is out of order (after ${last}, before ${header.height})`);
      }
      if (!equal(c.validatorsHash, current.hash)) fail("light.validators_unproven", `change header ${c.height} is signed by an unknown set ${short(c.validatorsHash)}`);
      try {
        checkTime(trust, c, nowMs, trustingPeriodMs, maxClockDriftMs);
        verifyCertificate(trust.chainId, current, c, ch.certificate);
      } catch (e) {
        if (e instanceof LightError) fail("light.validator_change_uncertified", `change header ${c.height}: ${e.message}`);
        throw e;
      }
      const nv = ch.nextValidators;
      if (nv === null || !equal(nv.hash, c.nextValidatorsHash)) {
        fail("light.validator_change_uncertified", `change header ${c.height} does not carry the set ${short(c.nextValidatorsHash)} it announces`);
      }
      current = nv;
      last = c.height;
      if (equal(current.hash, header.validatorsHash)) break;
    }
    if (!equal(header.validatorsHash, current.hash)) {
      fail("light.validators_unproven", `header ${header.height} is signed by set ${short(header.validatorsHash)}, not reached from the trusted set by certified changes`);
    }
  }
  const signers = verifyCertificate(trust.chainId, current, header, target.certificate);
  let next = current;
  if (!equal(header.nextValidatorsHash, header.validatorsHash)) {
    const nv = target.nextValidators;
    if (nv === null || !equal(nv.hash, header.nextValidatorsHash)) {
      fail("light.validator_change_uncertified", `header ${header.height} announces set ${short(header.nextValidatorsHash)} without carrying it`);
    }
    next = nv;
  }
  return {
    trust: { ...trust, height: header.height, headerHash: header.hash, timeMs: header.timeMs, stateHeight: header.stateHeight, validators: next },
    signers, validators: current,
  };
}

// ------------------------------------------------------------------ the state tree (section 6)

const EMPTY = new Uint8Array(32);
const bitAt = (b, i) => (b[i >> 3] >> (7 - (i & 7))) & 1;

/** True iff `proof` shows `key` -> `value` (null: absent) under `root`; never throws. */
export function verifySmtProof(root, key, value, proof) {
  try {
    const { depth, bitmap, siblings, leafPath, leafValueHash } = proof;
    const path = sha256(key);
    let h;
    if (value !== null) {
      if (leafPath !== null || leafValueHash !== null) return false;
      h = sha256(concat([0], path, sha256(value)));
    } else if (leafPath === null) {
      if (leafValueHash !== null) return false;
      h = EMPTY;
    } else {
      if (leafValueHash === null || equal(leafPath, path)) return false;
      for (let d = 0; d < depth; d++) if (bitAt(leafPath, d) !== bitAt(path, d)) return false;
      h = sha256(concat([0], leafPath, leafValueHash));
    }
    if (depth > 0 && !bitAt(bitmap, depth - 1)) return false;
    let idx = siblings.length;
    for (let d = depth - 1; d >= 0; d--) {
      const sib = bitAt(bitmap, d) ? siblings[--idx] : EMPTY;
      h = bitAt(path, d) ? sha256(concat([1], sib, h)) : sha256(concat([1], h, sib));
    }
    return equal(h, root);
  } catch {
    return false;
  }
}

/** A proof answer's JSON (/v1/proofs/...) decoded. */
export function decodeAnswer(j) {
  if (j === null || typeof j !== "object") fail("light.malformed", "not an answer");
  if (JSON.stringify(j).length > 4 * MAX_ANSWER_BYTES) fail("light.malformed", "the answer is too large");
  const key = fromHex(j.key, "key");
  if (key.length > MAX_KEY_BYTES) fail("light.malformed", `a state key is at most ${MAX_KEY_BYTES} bytes`);
  const value = j.value == null ? null : fromHex(j.value, "value");
  const stateRoot = fromHex(j.state_root, "state_root");
  if (stateRoot.length !== 32) fail("light.malformed", "state_root is 32 bytes");
  const certified = decodeCertified(j);
  const proof = decodeProof(fromHex(j.proof, "proof"));
  return { key, value, stateRoot, proof, certified };
}

/** Step 6: the verified value (null: proven absent) of `key`. */
export function verifyProof(answer, key) {
  if (!equal(answer.key, key)) fail("light.wrong_key", `asked for key ${toHex(key)}, the answer is for ${toHex(answer.key)}`);
  const root = answer.certified.header.stateRoot;
  if (!equal(answer.stateRoot, root)) fail("light.wrong_root", `the proof is against root ${short(answer.stateRoot)}, the header's state_root is ${short(root)}`);
  if (!verifySmtProof(root, key, answer.value, answer.proof)) {
    if (answer.value === null) fail("light.absence_forged", "the proof does not show the key absent under the header's state root");
    fail("light.value_tampered", "the value does not verify under the header's state root");
  }
  return answer.value;
}

/** Verify an answer: {value (null: proven absent), trust (new), signers, validators}. */
export function verifyAnswer(trust, answer, key, changes = [], opts = {}) {
  const r = verifyHeader(trust, answer.certified, changes, opts);
  return { value: verifyProof(answer, key), ...r };
}

/** A stored value (msgpack maps, arrays, bin, str, ints) as JavaScript. */
export function decodeValue(bytes) {
  try { return decode(bytes, { maxDepth: 32 }); } catch (e) { fail("light.malformed", `value: ${e.message}`); }
}

// ------------------------------------------------------------------ state keys (protocol/state_keys.py)

export const keys = {
  productId: (gtin, serial) => { const s = utf8.encode(serial); return concat(utf8.encode(gtin), [s.length], s); },
  product: (gtin, serial) => concat(utf8.encode("prod/"), keys.productId(gtin, serial)),
  productPage: (gtin, serial, page) => concat(utf8.encode("ph/"), keys.productId(gtin, serial),
    [(page >>> 24) & 255, (page >>> 16) & 255, (page >>> 8) & 255, page & 255]),
  recall: (gtin, batch) => utf8.encode(`recall/${gtin}/${batch}`),
  policy: (id) => concat(utf8.encode("pol/"), id),
  ticket: (id) => concat(utf8.encode("t/"), id),
  quality: (org) => utf8.encode(`q/${org}`),
  org: (org) => utf8.encode(`org/${org}`),
};

// ------------------------------------------------------------------ the self-test (warm-up)

// A certified header (one validator: RFC 8032's test key 1) and a state proof, made and
// checked by the Python reference: tests/pages/test_page_selftest.py regenerates it and
// checks that this copy is the same.
const SELF_TEST = {"chain_id": "afterchain-selftest", "time_ms": 1767225600000, "validators": "93100191c420d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a", "key": "73656c66746573742f62", "answer": {"key": "73656c66746573742f62", "value": "76616c75652062", "state_root": "7c1d37b35b8318c88032716b81d95a18bd92b9185aa5981cca42b78e9a5a8169", "proof": "97300102c401c092c4203271bec8c476999be3e389d38548af7f172418457668752aefbfd09af762e6bdc42049d24fff090fdbd94cd60d43bf7b2fc832d504d884be3521b292870e8ddd5ea9c0c0", "header": "9e1101b36166746572636861696e2d73656c66746573740100cf0000019b76daa800c4200000000000000000000000000000000000000000000000000000000000000000c42000000000000000000000000000000000000000000000000000000000000000000000c4207c1d37b35b8318c88032716b81d95a18bd92b9185aa5981cca42b78e9a5a8169c42005658cf876125bc166fe37dba4b84cec3ab02053b110d66a2a7ce30ca69f9bccc42005658cf876125bc166fe37dba4b84cec3ab02053b110d66a2a7ce30ca69f9bccc420d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a", "certificate": "9615010001c420f324cff32218817383c64508abe93682721ba1742a54763f5a1da56da497dca091941401c420d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511ac4405e053331c998bf06af19ec4be08c2d8d8afe830c7ba48f231a85743cf6d69ce3ade40a28a80ef6878bc5b7d8ecae8f78c381312a4567bdffa11b3c727d0cda06", "next_validators": null}};

/** Verify the self-test vector with every routine an answer uses (hex, MessagePack decoding
 * and the canonical re-encoding, SHA-256, the certificate and header rules, the platform's
 * Ed25519, the state proof). A page runs it while its first fetches are in flight, so its
 * first answer does not pay for compiling these functions (V8 compiles a function at its
 * first call) nor for the first call into WebCrypto; the answer's own verification is not
 * shortened: every answer is still checked in full. It also checks the platform's Ed25519
 * before its verdicts are used: it must accept the vector's signature and refuse it with
 * one bit changed, else only the JavaScript equation is used. Throws a LightError if the
 * vector does not verify (this browser cannot be trusted to verify). */
export async function warmUp() {
  const st = SELF_TEST;
  const validators = decodeValidatorSet(fromHex(st.validators));
  const trust = { chainId: st.chain_id, genesisHash: new Uint8Array(32), height: 0, headerHash: new Uint8Array(32),
    timeMs: st.time_ms, stateHeight: 0, validators };
  const answer = decodeAnswer(st.answer);
  const [good] = certificateSignatures(st.chain_id, answer.certified.certificate);
  const bad = { ...good, signature: good.signature.slice() };
  bad.signature[5] ^= 1;
  if (nativeEd25519 !== null) {
    await preverifySignatures([good, bad]);
    if (nativeEd25519 === undefined || nativeVerified.has(sigKey(bad.publicKey, bad.message, bad.signature)) ||
        !nativeVerified.has(sigKey(good.publicKey, good.message, good.signature))) {
      nativeEd25519 = null; // absent, or wrong on a known answer: the JavaScript equation decides everything
      nativeVerified.clear();
    }
  }
  try {
    const r = verifyAnswer(trust, answer, fromHex(st.key), [], { nowMs: st.time_ms });
    if (!equal(r.value, fromHex(st.answer.value)) || r.signers !== 1) fail("light.malformed", "wrong value or signers");
    // without the platform's Ed25519 the JavaScript equation decided: it must refuse the changed signature too
    if (nativeEd25519 === null && verifyEd25519(bad.publicKey, bad.message, bad.signature)) {
      fail("light.malformed", "a changed signature verified");
    }
  } catch (e) {
    throw new LightError("light.malformed", `this browser failed the verifier's self-test: ${e.message}`);
  }
  return { native: nativeEd25519 === true };
}
