// The customer pages: fetch the certified answers from this node, verify them here
// (verify.js), and show them, or a plain-language refusal. The trust anchor is the genesis
// hash in the link (?g=) or pinned in the page's <meta name="afterchain-genesis">; the
// trusted header is kept in this browser (localStorage, per genesis), so an older header
// than one already verified is refused as a rollback. A witness (&w=URL, another node) is
// asked for its newest certified header, to say how fresh the answer is.
import {
  LightError, REASONS, decodeAnswer, decodeCertified, decodeGenesis, decodeValue, fromHex, genesisTrust, keys, toHex,
  preverifyCertified, trustFromJson, trustToJson, verifyHeader, verifyProof, warmUp,
} from "./verify.js";

const PLAIN = {
  "light.no_anchor": "This link does not say which network to trust (it has no g= genesis hash).",
  "light.malformed": "The node's answer is damaged or not in the expected format.",
  "light.wrong_genesis": "This node belongs to another network than the one this link trusts.",
  "light.wrong_chain": "The answer comes from another network than the one this link trusts.",
  "light.trust_expired": "What this browser verified before is too old to build on; open the link again from its source.",
  "light.header_expired": "The answer is too old to be checked (older than the two-week trusting period).",
  "light.header_future": "The answer claims a time in the future. Check your device's clock.",
  "light.rollback": "The node sent an older answer than one this browser has already verified: it may be replaying stale data.",
  "light.fork": "The node's history differs from the history this browser verified before.",
  "light.certificate_mismatch": "The signatures are for another record than the one sent.",
  "light.signer_unknown": "The answer is signed by someone who is not a validator of this network.",
  "light.signer_duplicate": "One validator's signature is counted twice.",
  "light.signature_invalid": "A validator's signature does not match: the data was changed after it was signed.",
  "light.no_quorum": "Too few validators signed the answer.",
  "light.validators_unproven": "The answer is signed by validators this browser cannot trace back to the network's start.",
  "light.validator_change_uncertified": "A change of the network's validators could not be proven.",
  "light.wrong_key": "The node answered about something else than what was asked.",
  "light.wrong_root": "The data does not match what the validators signed: it was changed.",
  "light.value_tampered": "The data does not match what the validators signed: it was changed.",
  "light.absence_forged": "The node says the record does not exist, but cannot prove it.",
  "light.witness_mismatch": "A second, independent node disagrees with this node's answer.",
  "light.node_unavailable": "The node could not be reached, or answered with an error.",
};
const WITNESS_WAIT_MS = 5000;

const $ = (id) => document.getElementById(id);
const body = document.body;
const root = new URL(document.querySelector('meta[name="afterchain-root"]').content, location.href);
const api = (path) => new URL(path, root).href;
const query = new URLSearchParams(location.search);

function el(tag, attrs = {}, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) if (v != null) e.setAttribute(k, v);
  for (const c of children.flat()) if (c != null) e.append(c instanceof Node ? c : String(c));
  return e;
}
const pad = (n) => String(n).padStart(2, "0");
function when(ms) {
  if (ms == null || ms === 0) return "—";
  const d = new Date(ms);
  return `${d.getUTCFullYear()}-${pad(d.getUTCMonth() + 1)}-${pad(d.getUTCDate())} ${pad(d.getUTCHours())}:${pad(d.getUTCMinutes())} UTC`;
}
function span(ms) {
  if (ms == null) return "—";
  const s = Math.round(ms / 1000);
  if (s < 120) return `${s} s`;
  if (s < 7200) return `${Math.round(s / 60)} min`;
  if (s < 172800) return `${Math.round(s / 3600)} h`;
  return `${Math.round(s / 86400)} days`;
}
const hexOf = (b) => (b instanceof Uint8Array ? toHex(b) : String(b ?? ""));

// ------------------------------------------------------------------ fetching and verifying

async function getJson(url, what) {
  let r;
  try {
    r = await fetch(url, { headers: { accept: "application/json" }, cache: "no-store" });
  } catch (e) {
    throw new LightError("light.node_unavailable", `${what}: ${e.message}`);
  }
  let j = null;
  try { j = await r.json(); } catch { /* not JSON */ }
  if (!r.ok) throw new LightError("light.node_unavailable", `${what}: HTTP ${r.status} ${j?.error?.code ?? ""}`);
  if (j === null) throw new LightError("light.malformed", `${what}: not JSON`);
  return j;
}

class Session {
  /** `warm`: the self-test's promise (warmUp), awaited before an answer is verified;
   * `prefetched`: path -> the promise of an answer fetched before the genesis arrived. */
  constructor(genesis, trust, warm, prefetched) {
    this.genesis = genesis;
    this.warm = warm;
    this.prefetched = prefetched;
    this.start = trust; // every answer is verified from the trust this page started with
    this.best = trust;
    this.verified = new Map(); // header hash -> {signers, validators, header}
    this.changes = new Map();
    this.verifyMs = [];
    this.main = null;
  }

  async changeHeaders(base, target) {
    if (target.header.height <= this.start.height + 1) return [];
    const from = this.start.height + 1, to = target.header.height - 1;
    const k = `${base}|${from}|${to}`;
    if (!this.changes.has(k)) {
      this.changes.set(k, (async () => {
        const out = [];
        let at = from;
        for (let page = 0; page < 1000 && at <= to; page++) {
          const j = await getJson(`${base}v1/headers?from=${at}&to=${to}&changes=1`, "validator-set changes");
          for (const h of j.headers ?? []) out.push(decodeCertified(h));
          if (!(j.scanned_to >= at)) throw new LightError("light.malformed", "change headers: no scanned_to");
          at = j.scanned_to + 1;
        }
        return out;
      })());
    }
    return this.changes.get(k);
  }

  /** Verify a certified header from the page's starting trust; cached by header hash. */
  async header(certified, base = api("")) {
    const h = toHex(certified.header.hash);
    const hit = this.verified.get(h);
    if (hit) return hit;
    const changes = certified.header.validatorsHash.every((x, i) => x === this.start.validators.hash[i]) ? []
      : await this.changeHeaders(base, certified);
    const t0 = performance.now();
    // the browser's own Ed25519 (WebCrypto) checks the signatures first where it has it;
    // verifyHeader applies every rule and falls back to JavaScript for anything it did not pass
    await preverifyCertified(this.start.chainId, [certified, ...changes]);
    const t1 = performance.now();
    const r = verifyHeader(this.start, certified, changes, { nowMs: Date.now() });
    const t2 = performance.now();
    const out = { signers: r.signers, validators: r.validators, header: certified.header, ms: t2 - t0,
      parts: { native: t1 - t0, rules: t2 - t1 } };
    this.verified.set(h, out);
    if (r.trust.height > this.best.height) this.best = r.trust;
    return out;
  }

  /** A state key's verified value (null: proven absent); the header is verified once per page. */
  async get(key, path) {
    const pre = this.prefetched.get(path);
    this.prefetched.delete(path);
    const j = await (pre ?? getJson(api(path), path));
    await this.warm; // not counted: it verifies the self-test vector, not this answer
    const t0 = performance.now();
    const answer = decodeAnswer(j);
    const decodeMs = performance.now() - t0;
    let ms = decodeMs;
    let hv = this.verified.get(toHex(answer.certified.header.hash));
    let headerParts = {};
    if (!hv) {
      hv = await this.header(answer.certified);
      ms += hv.ms;
      headerParts = hv.parts;
    }
    const t1 = performance.now();
    const value = verifyProof(answer, key);
    const proofMs = performance.now() - t1;
    this.verifyMs.push(ms + proofMs);
    // where the first answer's time goes (decoding, WebCrypto, the other rules, the proof): the bench reports it
    this.parts ??= { decode: decodeMs, ...headerParts, proof: proofMs };
    if (this.main === null) this.main = hv;
    return value;
  }
}

async function loadGenesis(anchor) {
  const j = await getJson(api("v1/genesis"), "genesis");
  const bytes = fromHex(j.encoded ?? "", "genesis");
  const g = decodeGenesis(bytes);
  if (toHex(g.hash) !== anchor) {
    throw new LightError("light.wrong_genesis", `the node's genesis hashes to ${toHex(g.hash).slice(0, 16)}..., the link trusts ${anchor.slice(0, 16)}...`);
  }
  return g;
}

const TRUST_KEY = (g) => `afterchain.trust.${g}`;
function loadTrust(genesis) {
  try {
    const j = JSON.parse(localStorage.getItem(TRUST_KEY(toHex(genesis.hash))) ?? "null");
    if (j && j.genesis_hash === toHex(genesis.hash) && j.chain_id === genesis.chainId) return trustFromJson(j);
  } catch { /* unreadable: start from genesis */ }
  return genesisTrust(genesis);
}
function saveTrust(trust) {
  try { localStorage.setItem(TRUST_KEY(toHex(trust.genesisHash)), JSON.stringify(trustToJson(trust))); } catch { /* private mode */ }
}

// ------------------------------------------------------------------ rendering

function orgName(s, org) {
  if (org == null) return "—";
  if (String(org).startsWith("cust:")) return "a customer (private)";
  return s.names[org] ? `${s.names[org]} (${org})` : org;
}

const HIST = {
  register: (s, e) => ["Registered", orgName(s, e[3])],
  sale: (s, e) => ["Sold", `to ${orgName(s, e[3])}`],
  transfer: (s, e) => ["Transferred", `to ${orgName(s, e[3])}`],
  trace: (s, e) => ["Trace", `${orgName(s, e[3])}: ${e[4]}, ${e[5]}`],
  warranty: (s, e) => ["Warranty activated", `by ${orgName(s, e[3])}`],
  ticket: (s, e) => ["Service ticket opened", e[3]],
  return: (s, e) => ["Return requested", e[3]],
};

function ticketLink(id) {
  const u = new URL(`t/${id}`, root);
  u.search = location.search;
  return u.href;
}

function qualityBox(s, org, q) {
  if (q == null) return el("p", {}, `${orgName(s, org)} has no service record yet (proven).`);
  const B = [1, 5, 15, 30, 60, 120, 240, 480, 720, 1440, 2880, 4320, 7200, 10080, 20160, 43200, 86400, 129600].map((m) => m * 60000);
  const median = (hist, n, max) => {
    if (!n || !Array.isArray(hist)) return "—";
    const rank = Math.floor((n + 1) / 2);
    let seen = 0;
    for (let i = 0; i < hist.length; i++) {
      seen += hist[i];
      if (seen >= rank) return i < B.length ? `between ${span(i ? B[i - 1] : 0)} and ${span(B[i])}` : `about ${span(max)}`;
    }
    return "—";
  };
  const rate = q.handled ? `${Math.floor((q.resolved * 1000) / q.handled) / 10} %` : "—";
  return el("dl", {},
    el("dt", {}, "Organisation"), el("dd", {}, orgName(s, org)),
    el("dt", {}, "Tickets handled"), el("dd", {}, q.handled ?? "—"),
    el("dt", {}, "Resolved"), el("dd", {}, `${q.resolved ?? "—"} (${rate})`),
    el("dt", {}, "Median first response"), el("dd", {}, median(q.fr, q.fr_n, q.fr_max)),
    el("dt", {}, "Median resolution"), el("dd", {}, median(q.res, q.res_n, q.res_max)),
    el("dt", {}, "Deadlines missed"), el("dd", {}, q.breaches ?? "—"),
    el("dt", {}, "Ratings"), el("dd", {}, q.r_n ? `${(q.r_sum / q.r_n).toFixed(2)} of 5 (${q.r_n} ratings)` : "none yet"),
    el("dt", {}, "Counted since"), el("dd", {}, when(q.since)));
}

async function passport(s) {
  const gtin = body.dataset.gtin, serial = body.dataset.serial;
  const raw = await s.get(keys.product(gtin, serial), `v1/proofs/products/${gtin}/${serial}`);
  const content = $("content");
  if (raw === null) {
    content.append(el("section", { class: "box" }, el("h2", {}, "No such product"),
      el("p", {}, `No product with GTIN ${gtin} and serial ${serial} is registered on this network. This absence is proven.`)));
    return `Product ${gtin} / ${serial}: not registered`;
  }
  const p = decodeValue(raw);
  const pages = [];
  for (let i = 0; i < (p.pages ?? 0) && i < 64; i++) {
    pages.push(s.get(keys.productPage(gtin, serial, i), `v1/proofs/state/${toHex(keys.productPage(gtin, serial, i))}`));
  }
  const policyId = p.policy instanceof Uint8Array ? p.policy : null;
  const orgs = [...new Set([p.mfr, p.seller].filter((o) => o && !String(o).startsWith("cust:")))];
  const [recall, policyRaw, ...rest] = await Promise.all([
    s.get(keys.recall(gtin, p.batch), `v1/proofs/state/${toHex(keys.recall(gtin, p.batch))}`),
    policyId ? s.get(keys.policy(policyId), `v1/proofs/state/${toHex(keys.policy(policyId))}`) : null,
    ...orgs.map((o) => s.get(keys.org(o), `v1/proofs/state/${toHex(keys.org(o))}`)),
    ...pages,
  ]);
  orgs.forEach((o, i) => { const v = rest[i] && decodeValue(rest[i]); if (v?.name) s.names[o] = v.name; });
  const history = [...rest.slice(orgs.length).flatMap((v) => (v ? decodeValue(v) : [])), ...(p.hist ?? [])];
  const policy = policyRaw ? decodeValue(policyRaw) : null;
  const serviceOrg = policy?.service_org ?? p.seller ?? p.mfr;
  const ticketIds = history.filter((e) => e[0] === "ticket" || e[0] === "return").map((e) => e[2]).slice(-20);
  const [qualityRaw, serviceRaw, ...ticketRaws] = await Promise.all([
    s.get(keys.quality(serviceOrg), `v1/proofs/quality/${serviceOrg}`),
    s.names[serviceOrg] ? null : s.get(keys.org(serviceOrg), `v1/proofs/state/${toHex(keys.org(serviceOrg))}`),
    ...ticketIds.map((id) => s.get(keys.ticket(id), `v1/proofs/tickets/${toHex(id)}`)),
  ]);
  if (serviceRaw) { const v = decodeValue(serviceRaw); if (v?.name) s.names[serviceOrg] = v.name; }

  document.title = `${p.model} · ${serial} · product passport`;
  const recalled = recall !== null ? decodeValue(recall) : null;
  content.append(
    el("section", { class: "box", id: "product" }, el("h2", {}, "Product"), el("dl", {},
      el("dt", {}, "Model"), el("dd", {}, p.model),
      el("dt", {}, "Made by"), el("dd", {}, orgName(s, p.mfr)),
      el("dt", {}, "GTIN / serial"), el("dd", { class: "mono" }, `${gtin} / ${serial}`),
      el("dt", {}, "Batch"), el("dd", {}, p.batch),
      el("dt", {}, "Produced"), el("dd", {}, when(p.prod_ms)),
      el("dt", {}, "Registered"), el("dd", {}, when(p.reg_ms)),
      el("dt", {}, "Status"), el("dd", { id: "disposition" }, p.disp),
      el("dt", {}, "Sold by"), el("dd", {}, p.seller ? orgName(s, p.seller) : "not sold yet"),
      el("dt", {}, "Sale date"), el("dd", {}, p.sale_ms ? when(p.sale_ms) : "—"))),
    el("section", { class: recalled ? "box warn" : "box", id: "recall" }, el("h2", {}, "Recall"),
      recalled ? el("p", {}, el("strong", {}, `⚠ RECALLED: batch ${p.batch} was recalled on ${when(recalled.time)} by ${orgName(s, recalled.by)}.`))
        : el("p", {}, `✔ Batch ${p.batch} is not recalled (proven).`)),
    el("section", { class: "box", id: "warranty" }, el("h2", {}, "Warranty"), policy ? (() => {
      const end = p.w_start + policy.coverage_ms;
      const active = Date.now() <= end;
      return el("dl", {},
        el("dt", {}, "Policy"), el("dd", {}, policy.name),
        el("dt", {}, "Covered"), el("dd", {}, `${when(p.w_start)} to ${when(end)} (${active ? "active" : "expired"})`),
        el("dt", {}, "Faults covered"), el("dd", {}, (policy.faults ?? []).join(", ") || "—"),
        el("dt", {}, "Service by"), el("dd", {}, orgName(s, policy.service_org)),
        el("dt", {}, "Promised first response"), el("dd", {}, span(policy.fr_ms)),
        el("dt", {}, "Promised resolution"), el("dd", {}, span(policy.res_ms)));
    })() : el("p", {}, "No warranty is registered for this product.")),
    el("section", { class: "box", id: "tickets" }, el("h2", {}, "Service tickets"), ticketIds.length === 0 ? el("p", {}, "None.")
      : el("table", {}, el("tr", {}, el("th", {}, "Opened"), el("th", {}, "Kind"), el("th", {}, "Status"), el("th", {}, "Ticket")),
        ticketIds.map((id, i) => {
          const t = ticketRaws[i] ? decodeValue(ticketRaws[i]) : null;
          return el("tr", {}, el("td", {}, when(t?.opened)), el("td", {}, t?.kind ?? "—"), el("td", {}, t?.status ?? "missing"),
            el("td", { class: "mono" }, el("a", { href: ticketLink(toHex(id)) }, `${toHex(id).slice(0, 12)}…`)));
        }))),
    el("section", { class: "box", id: "history" }, el("h2", {}, "Trace and custody"),
      el("table", {}, el("tr", {}, el("th", {}, "When"), el("th", {}, "What"), el("th", {}, "Who / details")),
        history.map((e) => {
          const [what, who] = (HIST[e[0]] ?? ((_, x) => [x[0], ""]))(s, e);
          return el("tr", {}, el("td", {}, when(e[1])), el("td", {}, what), el("td", {}, who));
        }))),
    el("section", { class: "box", id: "quality" }, el("h2", {}, "Service quality"),
      qualityBox(s, serviceOrg, qualityRaw ? decodeValue(qualityRaw) : null)),
  );
  return `${p.model}, serial ${serial}`;
}

const STATUS_WORDS = { opened: "opened", acknowledged: "acknowledged", in_progress: "in progress", waiting_customer: "waiting for you",
  escalated: "escalated", resolved: "resolved", closed: "closed", rejected: "rejected", reopened: "reopened" };

async function ticketPage(s) {
  const id = fromHex(body.dataset.ticket);
  const raw = await s.get(keys.ticket(id), `v1/proofs/tickets/${body.dataset.ticket}`);
  const content = $("content");
  if (raw === null) {
    content.append(el("section", { class: "box" }, el("h2", {}, "No such ticket"),
      el("p", {}, "No ticket with this id exists on this network. This absence is proven.")));
    return "Ticket: not found";
  }
  const t = decodeValue(raw);
  const [orgRaw, policyRaw] = await Promise.all([
    s.get(keys.org(t.org), `v1/proofs/state/${toHex(keys.org(t.org))}`),
    t.policy instanceof Uint8Array ? s.get(keys.policy(t.policy), `v1/proofs/state/${toHex(keys.policy(t.policy))}`) : null,
  ]);
  if (orgRaw) { const v = decodeValue(orgRaw); if (v?.name) s.names[t.org] = v.name; }
  const policy = policyRaw ? decodeValue(policyRaw) : null;
  const now = Date.now();
  const due = (ms, done) => (ms == null ? (done ? `met (${when(done)})` : "—") : `${when(ms)}${ms < now ? " (passed)" : ""}`);
  const escalated = (t.hist ?? []).some((h) => h[0] === "escalated");
  const passport = new URL(`01/${t.gtin}/21/${encodeURIComponent(t.serial)}`, root);
  passport.search = location.search;
  document.title = `Ticket ${body.dataset.ticket.slice(0, 8)} · ${t.status}`;
  content.append(
    el("section", { class: "box", id: "ticket" }, el("h2", {}, "Ticket"), el("dl", {},
      el("dt", {}, "Status"), el("dd", { id: "ticket-status" }, STATUS_WORDS[t.status] ?? t.status),
      el("dt", {}, "Kind"), el("dd", {}, `${t.kind}${t.fault ? ` (${t.fault})` : ""}`),
      el("dt", {}, "Product"), el("dd", {}, el("a", { href: passport.href }, `${t.gtin} / ${t.serial}`)),
      el("dt", {}, "Handled by"), el("dd", {}, orgName(s, t.org)),
      el("dt", {}, "Opened"), el("dd", {}, when(t.opened)),
      el("dt", {}, "Acknowledged"), el("dd", {}, when(t.ack)),
      el("dt", {}, "Resolved"), el("dd", {}, when(t.resolved)),
      el("dt", {}, "Closed"), el("dd", {}, when(t.closed)))),
    el("section", { class: "box", id: "sla" }, el("h2", {}, "Service promises"), el("dl", {},
      el("dt", {}, "Policy"), el("dd", {}, policy ? policy.name : "none"),
      el("dt", {}, "First response due"), el("dd", {}, due(t.fr_due, t.ack)),
      el("dt", {}, "Resolution due"), el("dd", {}, due(t.res_due, t.resolved)),
      el("dt", {}, "Deadlines missed"), el("dd", { id: "breaches" }, String(t.breaches ?? 0)),
      el("dt", {}, "Escalated"), el("dd", {}, escalated ? "yes" : "no"),
      el("dt", {}, "Penalties paid"), el("dd", {}, String(t.penalties ?? 0)))),
    el("section", { class: "box", id: "outcome" }, el("h2", {}, "Outcome"), el("dl", {},
      el("dt", {}, "Resolution"), el("dd", {}, t.resolution == null ? "—" : `recorded (fingerprint ${hexOf(t.resolution).slice(0, 16)}…)`),
      el("dt", {}, "Reason"), el("dd", {}, t.reason ?? "—"),
      el("dt", {}, "Rating"), el("dd", {}, Array.isArray(t.rating) ? `${t.rating[0]} of 5 (${when(t.rating[2])})` : "not rated"))),
    el("section", { class: "box", id: "timeline" }, el("h2", {}, "Timeline"),
      el("table", {}, el("tr", {}, el("th", {}, "When"), el("th", {}, "Status"), el("th", {}, "Note")),
        (t.hist ?? []).map((h) => el("tr", {}, el("td", {}, when(h[1])), el("td", {}, STATUS_WORDS[h[0]] ?? h[0]), el("td", {}, h[3] ?? ""))))),
  );
  return `Ticket ${body.dataset.ticket.slice(0, 12)}…: ${STATUS_WORDS[t.status] ?? t.status}`;
}

// ------------------------------------------------------------------ the witness

async function witness(s, url) {
  const base = url.endsWith("/") ? url : `${url}/`;
  const main = s.main.header;
  let j;
  const until = Date.now() + WITNESS_WAIT_MS;
  for (;;) {
    j = await getJson(`${base}v1/headers?from=${main.height}&to=${main.height}`, "witness");
    if ((j.headers ?? []).length > 0 || Date.now() > until) break;
    await new Promise((r) => setTimeout(r, 250));
  }
  const same = (j.headers ?? [])[0];
  if (same) {
    const c = decodeCertified(same);
    if (toHex(c.header.hash) !== toHex(main.hash)) {
      throw new LightError("light.witness_mismatch", `the witness ${new URL(base).host} has another header at height ${main.height}`);
    }
  }
  const latest = decodeCertified(await getJson(`${base}v1/headers/${j.head}`, "witness"));
  await s.header(latest, base);
  return { host: new URL(base).host, height: latest.header.height, timeMs: latest.header.timeMs, behind: !same };
}

// ------------------------------------------------------------------ the verdict

function show(state, title, text, code) {
  const v = $("verdict");
  v.className = `verdict ${state}`;
  $("verdict-title").textContent = title;
  $("verdict-text").replaceChildren(text);
  if (code) v.append(el("p", { class: "code" }, `Reason: ${code}${REASONS[code] ? ` (${REASONS[code]})` : ""}`));
}

function result(attrs) {
  const r = $("result");
  for (const [k, v] of Object.entries(attrs)) r.dataset[k] = String(v);
}

async function main() {
  const t0 = performance.now();
  let s = null;
  try {
    const pinned = document.querySelector('meta[name="afterchain-genesis"]').content.trim().toLowerCase();
    const anchor = (query.get("g") ?? pinned).toLowerCase();
    if (!/^[0-9a-f]{64}$/.test(anchor)) throw new LightError("light.no_anchor", "no genesis hash in the link (g=) or the page");
    // While the genesis and the page's first answer are on their way, the verifier checks its
    // self-test vector (verify.js warmUp): the first answer then runs in compiled code, and
    // its verification (timed below) is the same full check as every other answer's.
    const firstPath = body.dataset.kind === "ticket" ? `v1/proofs/tickets/${body.dataset.ticket}`
      : `v1/proofs/products/${body.dataset.gtin}/${body.dataset.serial}`;
    const prefetched = new Map([[firstPath, getJson(api(firstPath), firstPath)]]);
    prefetched.get(firstPath).catch(() => {}); // an error is reported where the answer is awaited
    const genesisP = loadGenesis(anchor);
    genesisP.catch(() => {});
    const w0 = performance.now();
    const warm = warmUp().then((r) => { result({ warmMs: (performance.now() - w0).toFixed(1), native: r.native }); });
    warm.catch(() => {});
    const genesis = await genesisP;
    s = new Session(genesis, loadTrust(genesis), warm, prefetched);
    s.names = { ...genesis.names };
    const what = body.dataset.kind === "ticket" ? await ticketPage(s) : await passport(s);
    const h = s.main.header;
    show("verified", `✔ Verified: ${what}`,
      `Signed by ${s.main.signers ?? "previously verified"} of ${s.main.validators.n} validators at height ${h.height}, time ${when(h.timeMs)}. ` +
      `${s.verifyMs.length} answers checked in this browser.`);
    result({ status: "verified", height: h.height, signers: s.main.signers ?? 0, validators: s.main.validators.n,
      answers: s.verifyMs.length, verifyMs: s.verifyMs.map((x) => x.toFixed(2)).join(","), timeMs: h.timeMs,
      headers: s.verified.size, firstParts: Object.entries(s.parts ?? {}).map(([k, v]) => `${k}:${v.toFixed(2)}`).join(",") });
    const fresh = $("freshness");
    fresh.hidden = false;
    fresh.append(el("h2", {}, "How fresh is this?"), el("p", {}, `The answer is from ${when(h.timeMs)}, ${span(Date.now() - h.timeMs)} ago by this device's clock.`));
    for (const w of query.getAll("w")) {
      try {
        const r = await witness(s, w);
        const lag = r.height - h.height;
        fresh.append(el("p", { id: "witness" }, `✔ Witness ${r.host} (another node) is at height ${r.height}, ${when(r.timeMs)}` +
          (r.behind ? ": it has not reached this answer's height yet." : `: this answer is ${lag} blocks, ${span(Math.max(0, r.timeMs - h.timeMs))}, behind the network.`)));
        result({ witness: "agrees", witnessHeight: r.height });
      } catch (e) {
        if (e instanceof LightError && e.reason === "light.witness_mismatch") throw e;
        fresh.append(el("p", { class: "warn", id: "witness" }, `⚠ Could not check with the witness ${w}: ${e.message ?? e}. Freshness is unchecked.`));
        result({ witness: "unreachable" });
      }
    }
    saveTrust(s.best);
  } catch (e) {
    const reason = e instanceof LightError ? e.reason : "light.malformed";
    const detail = e instanceof LightError ? e.detail : String(e?.message ?? e);
    $("content").replaceChildren();
    $("freshness").hidden = true;
    show("refused", "✘ NOT VERIFIED: do not rely on this page", PLAIN[reason] ?? REASONS[reason] ?? detail, reason);
    $("verdict").append(el("p", { class: "code" }, `Detail: ${detail}`));
    result({ status: "refused", reason, detail });
  } finally {
    // bytes over the wire (same-origin Resource Timing): the page and its scripts, and the answers
    let pageBytes = 0, dataBytes = 0;
    for (const e of [...performance.getEntriesByType("navigation"), ...performance.getEntriesByType("resource")]) {
      if (new URL(e.name).pathname.includes("/v1/")) dataBytes += e.transferSize; else pageBytes += e.transferSize;
    }
    result({ totalMs: (performance.now() - t0).toFixed(1), pageBytes, dataBytes });
  }
}

main();
