// A follower of an afterchain network written from docs/PROTOCOL.md alone, on js-libp2p
// (TCP, Noise, yamux; Node 20): it dials a node with an admitted key (a registered member
// node key), asks for committed blocks with FollowRequest (section 7, "Member nodes"),
// checks each block (section 4: chained, events root; section 5: the commit certificate
// against the validator set, Ed25519 with @noble/ed25519) and prints one line per block:
//
//     block <height> <header hash hex> <event count>
//
//   node follow.mjs --peer /ip4/127.0.0.1/tcp/7001/p2p/12D3KooW... --key SEED_FILE \
//                   --genesis GENESIS_JSON [--trust GENESIS_HASH] --until HEIGHT [--timeout-s 60]
//
// SEED_FILE holds the 32-byte Ed25519 seed of the node key (64 hex digits); GENESIS_JSON is
// the answer of a node's GET /v1/genesis ({"hash", "encoded", ...}), checked against
// --trust when given. It exits 0 after printing block HEIGHT, 1 on any refusal (with the
// reason on stderr) and 2 on a timeout. It never trusts the node: a block that fails a
// check stops it.
import { readFileSync } from "node:fs";
import { noise } from "@chainsafe/libp2p-noise";
import { yamux } from "@chainsafe/libp2p-yamux";
import { generateKeyPairFromSeed } from "@libp2p/crypto/keys";
import { tcp } from "@libp2p/tcp";
import { decode, encode } from "@msgpack/msgpack";
import { multiaddr } from "@multiformats/multiaddr";
import * as ed from "@noble/ed25519";
import { sha256, sha512 } from "@noble/hashes/sha2.js";
import { createLibp2p } from "libp2p";

ed.hashes.sha512 = sha512;

const PROTOCOL = "/afterchain/transport/1.0.0"; // section 7, "Transport and protocol versions"
const KIND = { GOSSIP: 1, DIRECT: 2, REQUEST: 3, RESPONSE: 4, ERROR: 5 };
const TAG = { VALIDATOR_SET: 0x10, HEADER: 0x11, BLOCK: 0x12, COMMIT: 0x13, COMMIT_SIG: 0x14, CERTIFICATE: 0x15,
  GENESIS: 0x65, CONSENSUS_PARAMS: 0x61, CERTIFIED_BLOCK: 0x59, FOLLOW_REQUEST: 0x78, FOLLOW_RESPONSE: 0x79 };
const FOLLOW_COUNT = 128;
const POLL_MS = 100;
const REQUEST_TIMEOUT_MS = 2_000;
const REQUEST_TRIES = 10; // a request the node could not answer yet (its stream to us not ready) gets no answer

class Refused extends Error {}
const refuse = (msg) => { throw new Refused(msg); };

// ------------------------------------------------------------------ arguments

function args(argv) {
  const out = { timeoutS: 60 };
  for (let i = 2; i < argv.length; i += 2) {
    const k = argv[i].replace(/^--/, "").replace(/-([a-z])/g, (_, c) => c.toUpperCase());
    out[k] = argv[i + 1];
  }
  for (const k of ["peer", "key", "genesis", "until"]) if (out[k] === undefined) refuse(`--${k} is required`);
  out.until = Number(out.until);
  out.timeoutS = Number(out.timeoutS);
  return out;
}

// ------------------------------------------------------------------ bytes and messages (sections 1, 2)

const utf8 = new TextEncoder();
const toHex = (b) => Buffer.from(b).toString("hex");
const fromHex = (s) => {
  if (!/^([0-9a-f]{2})*$/.test(s)) refuse("not lowercase hex");
  return new Uint8Array(Buffer.from(s, "hex"));
};
const equal = (a, b) => a.length === b.length && a.every((x, i) => x === b[i]);
const concat = (...parts) => {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const p of parts) { out.set(p, at); at += p.length; }
  return out;
};
const isBytes = (v, n) => v instanceof Uint8Array && (n === undefined || v.length === n);
const isU64 = (v) => Number.isSafeInteger(v) && v >= 0;

/** A message [tag, 1, ...fields] of `arity` fields, from its one canonical encoding (section 1). */
function message(bytes, tag, arity, what) {
  let v;
  try { v = decode(bytes); } catch (e) { refuse(`${what}: not MessagePack (${e.message})`); }
  return checkMessage(v, tag, arity, what, bytes);
}
function checkMessage(v, tag, arity, what, bytes) {
  if (!Array.isArray(v) || v[0] !== tag || v[1] !== 1 || v.length !== 2 + arity) {
    refuse(`${what}: not a ${arity}-field message of tag 0x${tag.toString(16)} version 1`);
  }
  if (bytes !== undefined && !equal(encode(v), bytes)) refuse(`${what}: not the canonical encoding`);
  return v;
}

// ------------------------------------------------------------------ genesis, validator sets (sections 5, 10)

function validatorSet(v, what) {
  checkMessage(v, TAG.VALIDATOR_SET, 1, what);
  const keys = v[2];
  if (!Array.isArray(keys) || keys.length < 1 || keys.length > 256 || !keys.every((k) => isBytes(k, 32))) refuse(`${what}: bad keys`);
  const hexes = new Set(keys.map(toHex));
  if (hexes.size !== keys.length) refuse(`${what}: a validator is listed twice`);
  const n = keys.length, f = Math.floor((n - 1) / 3);
  return { keys, members: hexes, n, quorum: n - f, hash: sha256(encode(v)) };
}

function genesisFrom(file, trust) {
  const j = JSON.parse(readFileSync(file, "utf8"));
  const bytes = fromHex(j.encoded);
  const hash = sha256(bytes);
  if (trust !== undefined && toHex(hash) !== trust.toLowerCase()) refuse(`the genesis hashes to ${toHex(hash)}, not the trusted ${trust}`);
  const g = message(bytes, TAG.GENESIS, 7, "genesis");
  const [, , chainId, , validators, , consensus] = g;
  checkMessage(consensus, TAG.CONSENSUS_PARAMS, 7, "genesis.consensus");
  return { chainId, hash, validators: validatorSet(validators, "genesis.validators"), checkpointInterval: consensus[2] };
}

// ------------------------------------------------------------------ blocks and certificates (sections 4, 5)

/** The events root (section 4, RFC 6962 layout) of the encoded signed events `events`. */
function eventsRoot(events) {
  const node = (leaves) => {
    if (leaves.length === 1) return sha256(concat([0], leaves[0]));
    let k = 1;
    while (k * 2 < leaves.length) k *= 2;
    return sha256(concat([1], node(leaves.slice(0, k)), node(leaves.slice(k))));
  };
  return events.length === 0 ? sha256(new Uint8Array(0)) : node(events.map((e) => sha256(e)));
}

const COMMIT_PREFIX = utf8.encode("afterchain/v1/COMMIT\0");

/** Check certified block `cb` (a decoded CertifiedBlock) as the next block after `prev`. */
function checkBlock(g, prev, cb) {
  checkMessage(cb, TAG.CERTIFIED_BLOCK, 2, "certified block");
  const [, , block, cert] = cb;
  checkMessage(block, TAG.BLOCK, 2, "block");
  const [, , header, events] = block;
  checkMessage(header, TAG.HEADER, 12, "header");
  const [, , chainId, height, , , prevHash, root, eventCount, , , validatorsHash, nextValidatorsHash] = header;
  const headerHash = sha256(encode(header));
  if (chainId !== g.chainId) refuse(`block ${height}: chain "${chainId}", we follow "${g.chainId}"`);
  if (height !== prev.height + 1) refuse(`block ${height}: expected height ${prev.height + 1}`);
  if (!isBytes(prevHash, 32) || !equal(prevHash, prev.hash)) refuse(`block ${height}: prev_hash does not chain`);
  if (!Array.isArray(events) || !events.every((e) => isBytes(e))) refuse(`block ${height}: events are not an array of bin`);
  if (events.length !== eventCount) refuse(`block ${height}: ${events.length} events, the header says ${eventCount}`);
  if (!equal(eventsRoot(events), root)) refuse(`block ${height}: the events do not hash to events_root`);
  // V(h) is the genesis set until governance changes it (section 5, "epochs"): this follower
  // does not execute the ledger, so it follows only while both hashes name the genesis set
  if (!equal(validatorsHash, g.validators.hash) || !equal(nextValidatorsHash, g.validators.hash)) {
    refuse(`block ${height}: the validator set changes here; this follower knows only the genesis set`);
  }
  checkMessage(cert, TAG.CERTIFICATE, 4, "certificate");
  const [, , view, certHeight, certHash, sigs] = cert;
  if (certHeight !== height || !equal(certHash, headerHash)) refuse(`block ${height}: the certificate is for another header`);
  if (!isU64(view) || !Array.isArray(sigs)) refuse(`block ${height}: malformed certificate`);
  const seen = new Set();
  for (const s of sigs) {
    checkMessage(s, TAG.COMMIT_SIG, 2, "commit signature");
    const [, , replica, signature] = s;
    const who = toHex(replica);
    if (!g.validators.members.has(who)) refuse(`block ${height}: ${who.slice(0, 16)}... is not a validator`);
    if (seen.has(who)) refuse(`block ${height}: ${who.slice(0, 16)}... signs twice`);
    seen.add(who);
    const signed = concat(COMMIT_PREFIX, utf8.encode(g.chainId), encode([TAG.COMMIT, 1, view, height, headerHash, replica]));
    if (!isBytes(signature, 64) || !ed.verify(signature, signed, replica, { zip215: false })) {
      refuse(`block ${height}: the COMMIT signature of ${who.slice(0, 16)}... does not verify`);
    }
  }
  if (seen.size < g.validators.quorum) refuse(`block ${height}: ${seen.size} signatures, a quorum is ${g.validators.quorum}`);
  return { height, hash: headerHash, events: events.length, signers: seen.size };
}

// ------------------------------------------------------------------ frames (section 7)

function frame(kind, requestId, payload) {
  const out = new Uint8Array(4 + 11 + payload.length);
  const dv = new DataView(out.buffer);
  dv.setUint32(0, 11 + payload.length);
  dv.setUint8(4, kind);
  dv.setBigUint64(5, BigInt(requestId));
  dv.setUint16(13, 0);
  out.set(payload, 15);
  return out;
}

/** Frames ({kind, requestId, topic, payload}) read from a libp2p stream's source. */
async function* frames(source) {
  let buf = new Uint8Array(0);
  for await (const chunk of source) {
    buf = concat(buf, chunk.subarray());
    for (;;) {
      if (buf.length < 4) break;
      const len = new DataView(buf.buffer, buf.byteOffset).getUint32(0);
      if (len > 64 * 1024 * 1024 || len < 11) refuse(`a frame of ${len} bytes`);
      if (buf.length < 4 + len) break;
      const f = buf.subarray(4, 4 + len);
      const dv = new DataView(f.buffer, f.byteOffset);
      const topicLen = dv.getUint16(9);
      if (11 + topicLen > len) refuse("a frame's topic is longer than the frame");
      yield { kind: dv.getUint8(0), requestId: dv.getBigUint64(1), topic: new TextDecoder().decode(f.subarray(11, 11 + topicLen)),
        payload: f.slice(11 + topicLen) };
      buf = buf.slice(4 + len);
    }
  }
}

/** An async queue to feed a stream's sink. */
function queue() {
  const items = [];
  let wake = null;
  return {
    push(x) { items.push(x); if (wake) { wake(); wake = null; } },
    async* [Symbol.asyncIterator]() {
      for (;;) {
        while (items.length) yield items.shift();
        await new Promise((r) => { wake = r; });
      }
    },
  };
}

// ------------------------------------------------------------------ main

async function main() {
  const a = args(process.argv);
  const seed = fromHex(readFileSync(a.key, "utf8").trim());
  if (seed.length !== 32) refuse("the key file must hold a 32-byte seed in hex");
  const g = genesisFrom(a.genesis, a.trust);
  const privateKey = await generateKeyPairFromSeed("Ed25519", seed);
  const node = await createLibp2p({
    privateKey, addresses: { listen: [] }, transports: [tcp()], connectionEncrypters: [noise()], streamMuxers: [yamux()],
  });
  await node.start();
  process.stderr.write(`follower peer id ${node.peerId.toString()}, genesis ${toHex(g.hash)}, ${g.validators.n} validators\n`);

  // The node answers a request on ITS stream to us (section 7: each side writes on the stream
  // it opened), which it opens once our connection is up: we wait for it before asking.
  const pending = new Map();
  let inbound;
  const inboundOpen = new Promise((r) => { inbound = r; });
  let ignored = 0;
  await node.handle(PROTOCOL, ({ stream }) => {
    inbound();
    (async () => {
      for await (const f of frames(stream.source)) {
        const p = pending.get(f.requestId);
        if ((f.kind === KIND.RESPONSE || f.kind === KIND.ERROR) && p) {
          pending.delete(f.requestId);
          if (f.kind === KIND.RESPONSE) p.resolve(f.payload); else p.reject(new Error(`the node answered ERROR: ${new TextDecoder().decode(f.payload)}`));
        } else {
          ignored++; // gossip, consensus messages, statuses: not for a follower
        }
      }
    })().catch((e) => process.stderr.write(`inbound stream ended: ${e.message}\n`));
  });

  const out = await node.dialProtocol(multiaddr(a.peer), PROTOCOL);
  const q = queue();
  out.sink(q).catch((e) => process.stderr.write(`outbound stream ended: ${e.message}\n`));
  await Promise.race([inboundOpen, new Promise((_, rej) => setTimeout(() => rej(new Error("the node opened no stream to us")), 30_000))]);

  let nextId = 1n;
  let retried = 0;
  const once = (payload) => new Promise((resolve, reject) => {
    const id = nextId++;
    const timer = setTimeout(() => { pending.delete(id); reject(new Error("request timed out")); }, REQUEST_TIMEOUT_MS);
    pending.set(id, { resolve: (x) => { clearTimeout(timer); resolve(x); }, reject: (e) => { clearTimeout(timer); reject(e); } });
    q.push(frame(KIND.REQUEST, id, payload));
  });
  const request = async (payload) => {
    for (let i = 1; ; i++) {
      try {
        return await once(payload);
      } catch (e) {
        if (e.message !== "request timed out" || i === REQUEST_TRIES) throw e;
        retried++; // a new request id: a late answer to the old one is ignored
      }
    }
  };

  let prev = { height: 0, hash: g.hash }; // block 1 chains to the genesis hash
  const deadline = Date.now() + a.timeoutS * 1000;
  while (prev.height < a.until) {
    if (Date.now() > deadline) {
      process.stderr.write(`timed out at height ${prev.height}\n`);
      await node.stop();
      process.exit(2);
    }
    const raw = await request(encode([TAG.FOLLOW_REQUEST, 1, prev.height + 1, FOLLOW_COUNT]));
    const [, , head, blocks] = message(raw, TAG.FOLLOW_RESPONSE, 2, "FollowResponse");
    if (!isU64(head) || !Array.isArray(blocks)) refuse("malformed FollowResponse");
    for (const cb of blocks) {
      prev = checkBlock(g, prev, cb);
      process.stdout.write(`block ${prev.height} ${toHex(prev.hash)} ${prev.events}\n`);
      if (prev.height >= a.until) break;
    }
    if (blocks.length === 0) await new Promise((r) => setTimeout(r, POLL_MS));
  }
  process.stderr.write(`followed ${prev.height} blocks (${ignored} other frames ignored, ${retried} requests retried)\n`);
  await node.stop();
  process.exit(0);
}

main().catch((e) => {
  process.stderr.write(`${e instanceof Refused ? "refused" : "error"}: ${e.message}\n`);
  process.exit(1);
});
