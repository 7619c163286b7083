// JetStream async-publish load generator for bench/compare_peers.sh (the
// Debian packages ship nats-server but not the `nats` CLI and its bench).
// Publishes N messages of B random bytes to a file-storage stream, keeping up
// to WINDOW publishes awaiting their acknowledgement, and prints one JSON
// object: {"records":..,"record_size":..,"seconds":..,"records_per_sec":..,"mb_per_sec":..}.
//
// usage: node nats_js_bench.mjs URL STREAM RECORDS RECORD_SIZE [WINDOW]
import { randomBytes } from "node:crypto";
import { connect, createInbox, StorageType } from "nats";

const [url, stream, recordsArg, sizeArg, windowArg] = process.argv.slice(2);
if (!url || !stream || !recordsArg || !sizeArg) {
  console.error("usage: node nats_js_bench.mjs URL STREAM RECORDS RECORD_SIZE [WINDOW]");
  process.exit(2);
}
const records = Number.parseInt(recordsArg, 10);
const size = Number.parseInt(sizeArg, 10);
const window = Number.parseInt(windowArg ?? "1024", 10);

const nc = await connect({ servers: url });
const jsm = await nc.jetstreamManager();
const subject = `${stream}.data`;
await jsm.streams.add({ name: stream, subjects: [`${stream}.>`], storage: StorageType.File });

// Random payloads, as Brook's bench uses, so nothing compresses.
const pool = randomBytes(size + 65536);
const payload = (i) => pool.subarray(i % 65536, (i % 65536) + size);

let errors = 0;
let inflight = 0;
let wake = null;  // resolves the publisher's wait once the window has room
const settle = () => {
  inflight--;
  if (wake && inflight <= window / 2) { const w = wake; wake = null; w(); }
};
// Asynchronous publish as the Go client's PublishAsync does it: each message
// carries a reply subject under one wildcard subscription that receives the
// stream's acknowledgements ({"stream":..,"seq":..} or {"error":..}).
const inbox = createInbox();
const decoder = new TextDecoder();
nc.subscribe(`${inbox}.*`, {
  callback: (err, msg) => {
    if (err || decoder.decode(msg.data).includes('"error"')) errors++;
    settle();
  },
});
let lastReport = Date.now();
const start = process.hrtime.bigint();
for (let i = 0; i < records; i++) {
  inflight++;
  nc.publish(subject, payload(i), { reply: `${inbox}.${i}` });
  if (inflight >= window) await new Promise((resolve) => { wake = resolve; });
  if (Date.now() - lastReport >= 1000) {
    lastReport = Date.now();
    console.error(`nats bench: ${i + 1}/${records} published`);
  }
}
while (inflight > 0) await new Promise((resolve) => { wake = resolve; if (inflight === 0) resolve(); });
const seconds = Number(process.hrtime.bigint() - start) / 1e9;
await nc.drain();
const ok = records - errors;
console.log(JSON.stringify({
  records: ok,
  record_size: size,
  seconds: Number(seconds.toFixed(3)),
  records_per_sec: Number((ok / seconds).toFixed(1)),
  mb_per_sec: Number((ok * size / seconds / 1e6).toFixed(3)),
  errors,
}));
process.exit(errors > 0 ? 1 : 0);
