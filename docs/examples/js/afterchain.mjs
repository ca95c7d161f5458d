// The afterchain wire format in JavaScript (Node 20): canonical MessagePack, event ids,
// Ed25519 signatures over sign bytes, and the few HTTP calls of a submission.
// Every rule here is from docs/PROTOCOL.md (sections 1-3); check-vectors.mjs checks this
// module against that file's test vectors.
import { encode } from "@msgpack/msgpack";
import * as ed from "@noble/ed25519";
import { sha256 } from "@noble/hashes/sha2.js";
import { readFileSync } from "node:fs";

const utf8 = new TextEncoder();

export const hex = (bytes) => Buffer.from(bytes).toString("hex");
export const fromHex = (text) => {
  if (!/^([0-9a-f]{2})*$/.test(text)) throw new Error(`not lowercase hex: ${text}`);
  return new Uint8Array(Buffer.from(text, "hex"));
};
const concat = (...parts) => {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const p of parts) { out.set(p, at); at += p.length; }
  return out;
};

// Section 1: only u64 integers, bool, bin, str, nil and arrays; no maps, floats or negatives.
// @msgpack/msgpack writes the shortest form of each of these (the canonical form), so the
// check below is all it takes. u64 values above 2^53-1 (never needed for nonces, times in
// ms or amounts) are refused rather than written as floats.
function checkCanonical(value, path = "value") {
  if (value === null || typeof value === "boolean" || typeof value === "string") return;
  if (value instanceof Uint8Array) return;
  if (typeof value === "number") {
    if (!Number.isSafeInteger(value) || value < 0) throw new Error(`${path}: ${value} is not a u64 below 2^53`);
    return;
  }
  if (Array.isArray(value)) { value.forEach((v, i) => checkCanonical(v, `${path}[${i}]`)); return; }
  throw new Error(`${path}: ${typeof value} has no afterchain encoding (no maps, floats, undefined)`);
}

/** The canonical encoding of a message, e.g. [tag, version, ...fields]. */
export function encodeCanonical(value) {
  checkCanonical(value);
  return encode(value);
}

// Messages are arrays [tag, version, ...fields in wire order] (tables of PROTOCOL.md).
export const EVENT_TAG = 0x20;
export const SIGNED_EVENT_TAG = 0x21;
export const BODIES = {
  // type: [body tag, field names in wire order]
  "product.register": [0x110, ["gtin", "serial", "model", "batch", "production_time_ms"]],
  "ticket.open": [0x140, ["kind", "gtin", "serial", "fault_type", "description_hash", "attachments"]],
  "ticket.ack": [0x141, ["ticket_id", "note_hash"]],
  "rating.submit": [0x1a0, ["ticket_id", "score", "comment_hash"]],
};

/** An event body message: hashes and ids are Uint8Array(32), an absent optional field is null. */
export function body(type, fields) {
  const [tag, names] = BODIES[type] ?? [];
  if (tag === undefined) throw new Error(`this example knows no body for ${type} (see PROTOCOL.md section 3)`);
  for (const k of Object.keys(fields)) if (!names.includes(k)) throw new Error(`${type} has no field ${k}`);
  return [tag, 1, ...names.map((k) => fields[k] ?? null)];
}

/** The unsigned event: [0x20, 1, chain_id, type, sender, nonce, time_ms, body]. */
export const event = ({ chainId, type, sender, nonce, timeMs, body }) =>
  [EVENT_TAG, 1, chainId, type, sender, nonce, timeMs, body];

/** Section 2: "afterchain/v1/" || DOMAIN || 0x00 || chain_id || encode(msg). */
export const signBytes = (domain, chainId, encoded) =>
  concat(utf8.encode(`afterchain/v1/${domain}`), new Uint8Array([0]), utf8.encode(chainId), encoded);

/** Section 3: the event id is SHA-256 of the unsigned event's encoding. */
export const eventId = (eventEncoding) => sha256(eventEncoding);

/** Sign an event with a 32-byte Ed25519 seed: {id, encoding (of the SignedEvent), signature}. */
export async function signEvent(ev, seed) {
  const enc = encodeCanonical(ev);
  const signature = await ed.signAsync(signBytes("EVENT", ev[2], enc), seed);
  // [0x21, 1, event, signature]: the event's encoding sits between 94 21 01 and c4 40 <sig>
  const encoding = encodeCanonical([SIGNED_EVENT_TAG, 1, ev, signature]);
  return { id: eventId(enc), eventEncoding: enc, signature, encoding };
}

export const publicKey = (seed) => ed.getPublicKeyAsync(seed);

/** The seed of an afterchain key file ("afterchain-ed25519-seed HEX" on its first line). */
export function seedFromKeyFile(path) {
  const [word, seedHex] = readFileSync(path, "utf8").trim().split(/\s+/);
  if (word !== "afterchain-ed25519-seed" || !/^[0-9a-f]{64}$/.test(seedHex)) throw new Error(`${path}: not an afterchain key file`);
  return fromHex(seedHex);
}

// ---- HTTP (docs/INTEGRATION.md): JSON answers, errors as {"error": {"code", "message"}}
async function call(url, init) {
  const r = await fetch(url, init);
  const doc = await r.json().catch(() => ({}));
  return { status: r.status, doc };
}

export async function getJson(node, path) {
  const { status, doc } = await call(node + path);
  if (status !== 200) throw new Error(`GET ${path}: HTTP ${status} ${JSON.stringify(doc.error ?? doc)}`);
  return doc;
}

/** POST one signed event (msgpack); returns the node's result: {id, status, code?, message?}. */
export async function submit(node, signedEncoding) {
  const { status, doc } = await call(node + "/v1/events", {
    method: "POST", headers: { "content-type": "application/msgpack" }, body: signedEncoding,
  });
  if (!Array.isArray(doc.results)) throw new Error(`POST /v1/events: HTTP ${status} ${JSON.stringify(doc.error ?? doc)}`);
  return doc.results[0];
}

/** Poll /v1/events/{id} until committed or rejected (404: not heard of yet, ask again). */
export async function waitFor(node, idHex, timeoutMs = 30000) {
  const deadline = Date.now() + timeoutMs;
  for (let delay = 20; Date.now() < deadline; delay = Math.min(delay * 2, 200)) {
    const { status, doc } = await call(`${node}/v1/events/${idHex}`);
    if (status === 200 && (doc.status === "committed" || doc.status === "rejected")) return doc;
    await new Promise((ok) => setTimeout(ok, delay));
  }
  throw new Error(`no outcome for ${idHex} after ${timeoutMs} ms (it may still commit)`);
}
