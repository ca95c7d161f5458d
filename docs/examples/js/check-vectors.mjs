// Check afterchain.mjs against the test vectors of docs/PROTOCOL.md (section 10: keys and
// a signed event) and the canonical MessagePack forms of section 1.
//   node check-vectors.mjs ../../PROTOCOL.md      -> prints "ok: N checks", exit 0; else exit 1
import { readFileSync } from "node:fs";
import {
  body, encodeCanonical, event, eventId, fromHex, hex, publicKey, signBytes, signEvent,
} from "./afterchain.mjs";
import { sha256 } from "@noble/hashes/sha2.js";

const doc = readFileSync(process.argv[2] ?? "../../PROTOCOL.md", "utf8");
function vector(name) {
  const m = doc.match(new RegExp("```vector " + name + "\\n([\\s\\S]*?)```"));
  if (!m) throw new Error(`no vector ${name} in the document`);
  return Object.fromEntries(m[1].trim().split("\n").map((l) => [l.slice(0, l.indexOf(":")), l.slice(l.indexOf(":") + 1).trim()]));
}

let checks = 0;
const failures = [];
function same(what, got, want) {
  checks += 1;
  if (got !== want) failures.push(`${what}:\n  got  ${got}\n  want ${want}`);
}

// Section 1, canonical form: the shortest form of each item, never a signed integer format.
const u = (n) => hex(encodeCanonical(n));
for (const [n, want] of [[0, "00"], [127, "7f"], [128, "cc80"], [255, "ccff"], [256, "cd0100"], [65535, "cdffff"],
  [65536, "ce00010000"], [4294967295, "ceffffffff"], [4294967296, "cf0000000100000000"],
  [Number.MAX_SAFE_INTEGER, "cf001fffffffffffff"]]) same(`u64 ${n}`, u(n), want);
for (const [len, want] of [[0, "a0"], [31, "bf"], [32, "d920"], [255, "d9ff"], [256, "da0100"], [65536, "db00010000"]])
  same(`str of ${len} bytes`, hex(encodeCanonical("a".repeat(len))).slice(0, want.length), want);
for (const [len, want] of [[0, "c400"], [255, "c4ff"], [256, "c50100"], [65536, "c600010000"]])
  same(`bin of ${len} bytes`, hex(encodeCanonical(new Uint8Array(len))).slice(0, want.length), want);
for (const [len, want] of [[0, "90"], [15, "9f"], [16, "dc0010"]])
  same(`array of ${len}`, hex(encodeCanonical(new Array(len).fill(0))).slice(0, want.length), want);
same("nil true false", hex(encodeCanonical([null, true, false])), "93c0c3c2");
for (const bad of [-1, 1.5, 2 ** 53, { a: 1 }, undefined]) {
  checks += 1;
  try { encodeCanonical([bad]); failures.push(`${String(bad)} was encoded; it has no afterchain encoding`); } catch { /* refused */ }
}

// Section 10: keys, then the signed rating.submit event.
const keys = vector("keys");
same("public_key", hex(await publicKey(fromHex(keys.seed))), keys.public_key);

const v = vector("event");
const seed = fromHex(v.seed);
same("ticket_id", hex(sha256(new TextEncoder().encode("ticket-1"))), v["body.ticket_id"]);
const b = body(v.type, {
  ticket_id: fromHex(v["body.ticket_id"]), score: Number(v["body.score"]),
  comment_hash: v["body.comment_hash"] === "nil" ? null : fromHex(v["body.comment_hash"]),
});
same("body_encoding", hex(encodeCanonical(b)), v.body_encoding);
const ev = event({
  chainId: v.chain_id, type: v.type, sender: await publicKey(seed), nonce: Number(v.nonce), timeMs: Number(v.time_ms), body: b,
});
same("sender", hex(ev[4]), v.sender);
const signed = await signEvent(ev, seed);
same("event_encoding", hex(signed.eventEncoding), v.event_encoding);
same("event_id", hex(eventId(signed.eventEncoding)), v.event_id);
same("event_id (signEvent)", hex(signed.id), v.event_id);
same("sign_bytes", hex(signBytes("EVENT", v.chain_id, signed.eventEncoding)), v.sign_bytes);
same("signature", hex(signed.signature), v.signature);
same("signed_event_encoding", hex(signed.encoding), v.signed_event_encoding);
same("signed_event_hash", hex(sha256(signed.encoding)), v.signed_event_hash);

if (failures.length) {
  console.error(`FAILED ${failures.length} of ${checks} checks:\n${failures.join("\n")}`);
  process.exit(1);
}
console.log(`ok: ${checks} checks against ${process.argv[2] ?? "../../PROTOCOL.md"}`);
