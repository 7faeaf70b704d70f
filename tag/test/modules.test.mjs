import { test, mock } from "node:test";
import assert from "node:assert/strict";
import { installStorage } from "./fakes.mjs";
import { createQueue } from "../src/queue.js";
import { createConsent } from "../src/consent.js";
import { createIdentity } from "../src/identity.js";
import { merge, uuid, event } from "../src/xdm.js";
import { backoff, createTransport } from "../src/transport.js";
import { createBatcher } from "../src/batch.js";
import { configure } from "../src/config.js";

const ev = (id) => ({ xdm: { _id: id } });

test("the queue is bounded, survives a reload, and only sent events leave it", () => {
  installStorage();
  const q = createQueue(3);
  q.push(ev("a"), ev("b"), ev("c"), ev("d"));
  assert.deepEqual(q.peek().map((e) => e.xdm._id), ["b", "c", "d"]);
  const reloaded = createQueue(3);
  assert.equal(reloaded.size, 3);
  reloaded.remove(reloaded.peek(2));
  assert.deepEqual(createQueue(3).peek().map((e) => e.xdm._id), ["d"]);
});

test("consent persists and refuses unknown values", () => {
  installStorage();
  const c = createConsent("pending");
  assert.equal(c.state, "pending");
  c.set("in");
  assert.equal(createConsent("out").state, "in");
  assert.throws(() => c.set("maybe"));
});

test("identity keeps the ECID and unexpired state entries", () => {
  installStorage();
  let now = 1000;
  const id = createIdentity(() => now);
  const ecid = id.apply([
    { type: "identity:result", payload: [{ id: "1".repeat(38), namespace: { code: "ECID" } }] },
    { type: "state:store", payload: [{ key: "kndctr_X_identity", value: "v", maxAge: 10 }] },
  ]);
  assert.equal(ecid, "1".repeat(38));
  assert.deepEqual(id.entries(), [{ key: "kndctr_X_identity", value: "v" }]);
  now = 20000;
  assert.deepEqual(id.entries(), []);
  assert.equal(createIdentity(() => now).ecid, "1".repeat(38));
});

test("events have an id, a timestamp and the caller's xdm merged deep", () => {
  const e = event({ eventType: "x", web: { webPageDetails: { name: "n" } } }, { k: 1 }, new Date(0));
  assert.match(e.xdm._id, /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
  assert.equal(e.xdm.timestamp, "1970-01-01T00:00:00.000Z");
  assert.equal(e.xdm.eventType, "x");
  assert.equal(e.xdm.web.webPageDetails.name, "n");
  assert.equal(e.xdm.implementationDetails.environment, "browser");
  assert.deepEqual(e.data, { k: 1 });
  assert.deepEqual(merge({ a: { b: 1, c: 2 }, l: [1] }, { a: { c: 3 }, l: [2] }), { a: { b: 1, c: 3 }, l: [2] });
  assert.notEqual(uuid(), uuid());
});

test("backoff grows exponentially with jitter and a cap", () => {
  assert.equal(backoff(0, () => 0), 250);
  assert.equal(backoff(0, () => 1), 500);
  assert.equal(backoff(3, () => 1), 4000);
  assert.equal(backoff(20, () => 1), 30000);
});

test("config needs a datastream and trims the edge URL", () => {
  assert.throws(() => configure({}));
  assert.equal(configure({ datastreamId: "d", edgeUrl: "https://e.example/" }).edgeUrl, "https://e.example");
});

test("the transport retries retryable answers, honours Retry-After and gives up on 4xx", async (ctx) => {
  ctx.mock.timers.enable({ apis: ["setTimeout"] }); // the test's own mock: reset even when it fails
  // Retry-After (7 s) is far longer than any first backoff (at most 500 ms): a transport that
  // ignored it would have retried long before the 7th second.
  const answers = [
    { ok: false, status: 503, headers: { get: (h) => (h.toLowerCase() === "retry-after" ? "7" : null) } },
    { ok: true, status: 200, headers: { get: () => null }, json: async () => ({ handle: [] }) },
  ];
  const calls = [];
  const t = createTransport(configure({ datastreamId: "d", maxRetries: 3 }), async (url, init) => {
    calls.push({ url, init });
    return answers.shift();
  });
  const settle = () => new Promise((r) => setImmediate(r));
  const pending = t.send("interact", { events: [] });
  await settle();
  assert.equal(calls.length, 1);
  ctx.mock.timers.tick(6999);
  await settle();
  assert.equal(calls.length, 1, "retried before Retry-After elapsed");
  ctx.mock.timers.tick(1);
  assert.deepEqual(await pending, { handle: [] });
  assert.equal(calls.length, 2);
  assert.match(calls[0].url, /\/ee\/v1\/interact\?configId=d&requestId=/);
  assert.equal(calls[0].init.headers["content-type"], "text/plain;charset=UTF-8");
  assert.equal(calls[0].init.credentials, "include");

  const refused = createTransport(configure({ datastreamId: "d" }), async () => ({ ok: false, status: 400, headers: { get: () => null } }));
  await assert.rejects(refused.send("interact", {}), (e) => e.retry === false);
});

test("the batcher coalesces events inside its window", () => {
  mock.timers.enable({ apis: ["setTimeout"] });
  let flushes = 0;
  const b = createBatcher(100, () => flushes++);
  b.schedule();
  b.schedule();
  mock.timers.tick(100);
  assert.equal(flushes, 1);
  mock.timers.reset();
});
