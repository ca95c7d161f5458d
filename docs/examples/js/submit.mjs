// Register a product on an afterchain node from JavaScript, and wait until it is committed.
//   node submit.mjs --node http://127.0.0.1:8001 --key ../../../.cluster/keys/acme.key --serial SN-JS-1
// Prints {"id", "status", "height", ...} as JSON; exits 0 committed, 1 rejected, 2 on error.
import { parseArgs } from "node:util";
import {
  body, event, getJson, hex, publicKey, seedFromKeyFile, signEvent, submit, waitFor,
} from "./afterchain.mjs";

const { values: opt } = parseArgs({
  options: {
    node: { type: "string", default: "http://127.0.0.1:8001" },
    key: { type: "string" },
    gtin: { type: "string", default: "00012345600012" },
    serial: { type: "string" },
    model: { type: "string", default: "Kettle 2000" },
    batch: { type: "string", default: "JS1" },
  },
});
if (!opt.key || !opt.serial) {
  console.error("usage: node submit.mjs --node URL --key KEYFILE --serial SERIAL [--gtin G] [--model M] [--batch B]");
  process.exit(2);
}

try {
  const node = opt.node.replace(/\/+$/, "");
  const seed = seedFromKeyFile(opt.key);
  const sender = await publicKey(seed);
  const { chain_id: chainId } = await getJson(node, "/v1/status");
  const { next_nonce: nonce } = await getJson(node, `/v1/accounts/${hex(sender)}`);
  const ev = event({
    chainId, type: "product.register", sender, nonce, timeMs: Date.now(),
    body: body("product.register", {
      gtin: opt.gtin, serial: opt.serial, model: opt.model, batch: opt.batch, production_time_ms: Date.now(),
    }),
  });
  const signed = await signEvent(ev, seed);
  const id = hex(signed.id);
  const result = await submit(node, signed.encoding);
  if (result.id && result.id !== id) throw new Error(`the node computed event id ${result.id}, we ${id}`);
  const outcome = result.status === "rejected" ? { id, ...result } : await waitFor(node, id);
  console.log(JSON.stringify(outcome));
  process.exit(outcome.status === "committed" ? 0 : 1);
} catch (err) {
  console.error(`error: ${err.message}`);
  process.exit(2);
}
