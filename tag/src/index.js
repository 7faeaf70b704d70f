// inlet's tag: replaces the snippet's command queue with the real command handler and runs
// what was queued, in order. Commands: configure, sendEvent, setConsent, getIdentity.
import { configure } from "./config.js";
import { event, pageView } from "./xdm.js";
import { createQueue } from "./queue.js";
import { createConsent } from "./consent.js";
import { createIdentity } from "./identity.js";
import { createTransport } from "./transport.js";
import { createBatcher } from "./batch.js";

const PER_REQUEST = 50;
const w = window, d = document;
let config, queue, consent, identity, transport, batcher, busy = false, waiting = [];

const log = (...a) => config && config.debug && console.log("[inlet]", ...a);
const apex = () => location.hostname.split(".").slice(-2).join(".");
const meta = () => ({ state: { domain: location.hostname.includes(".") ? apex() : "", cookiesEnabled: true, entries: identity.entries() } });
const body = (events) => ({ events, meta: meta(), query: { identity: { fetch: ["ECID"] } } });
const settle = (result) => { waiting.splice(0).forEach((r) => r(result)); };

// One request at a time: until the first answer establishes the device id, a second request
// would mint a second id (the Web SDK does the same).
const flush = async () => {
  if (busy || consent.state != "in" || !queue.size) return;
  busy = true;
  const events = queue.peek(PER_REQUEST);
  try {
    const answer = await transport.send("interact", body(events));
    identity.apply(answer.handle);
    queue.remove(events);
    settle({ sent: true });
  } catch (e) {
    log(e.message);
    if (!e.retry) queue.remove(events); // refused (4xx): resending cannot help
    settle({ queued: e.retry });
  }
  busy = false;
  if (queue.size) batcher.schedule();
};

const sendEvent = (options = {}) => {
  if (consent.state == "out") return Promise.resolve({ dropped: true });
  const e = event(options.xdm, options.data);
  const ids = e.xdm.identityMap || (e.xdm.identityMap = {});
  if (identity.ecid && !ids.ECID) ids.ECID = [{ id: identity.ecid, authenticatedState: "ambiguous", primary: false }];
  queue.push(e);
  if (consent.state == "pending") return Promise.resolve({ queued: true });
  batcher.schedule();
  return new Promise((r) => waiting.push(r));
};

const hide = () => {
  if (consent.state != "in" || !queue.size) return;
  batcher.cancel();
  const events = queue.peek();
  // Kept queued until the edge confirms: if the page dies first, the next page resends them
  // with the same _id, and the edge stores them once.
  if (transport.beacon(body(events))) queue.remove(events);
};

const click = (ev) => {
  const a = ev.target.closest && ev.target.closest("a[href]");
  if (!a) return;
  const exit = a.host != location.host;
  sendEvent({ xdm: { eventType: "web.webinteraction.linkClicks",
                     web: { webInteraction: { URL: a.href, name: (a.textContent || "").trim().slice(0, 100), type: exit ? "exit" : "other", linkClicks: { value: 1 } } } } });
};

const commands = {
  configure(options) {
    config = configure(options);
    queue = createQueue(config.maxQueue);
    consent = createConsent(config.defaultConsent);
    identity = createIdentity();
    transport = createTransport(config);
    batcher = createBatcher(config.batchWindowMs, flush);
    w.addEventListener("pagehide", hide);
    d.addEventListener("visibilitychange", () => d.visibilityState == "hidden" && hide());
    if (config.clickCollection) d.addEventListener("click", click, true);
    if (consent.state == "out") queue.clear();
    if (config.autoPageView) sendEvent(pageView());
    else if (queue.size) batcher.schedule(); // events left by an earlier page
  },
  sendEvent,
  async setConsent(choice) {
    consent.set(choice);
    if (choice == "out") queue.clear();
    const answer = await transport.send("privacy/set-consent", {
      consent: [{ standard: "Adobe", version: "2.0", value: { collect: { val: choice == "in" ? "y" : "n" } } }],
      meta: meta(), query: { identity: { fetch: ["ECID"] } },
    });
    identity.apply(answer.handle);
    if (choice == "in") batcher.schedule();
    return {};
  },
  async getIdentity() {
    if (!identity.ecid) identity.apply((await transport.send("identity/acquire", { meta: meta(), query: { identity: { fetch: ["ECID"] } } })).handle);
    return { identity: { ECID: identity.ecid } };
  },
};

const run = (name, args) => {
  try {
    if (!commands[name]) throw new Error(`inlet: unknown command ${name}`);
    if (name != "configure" && !config) throw new Error("inlet: configure first");
    return Promise.resolve(commands[name](...args));
  } catch (e) {
    return Promise.reject(e);
  }
};

const pending = (w.inlet && w.inlet.q) || [];
w.inlet = (name, ...args) => run(name, args);
for (const [resolve, reject, args] of pending) run(args[0], [...args].slice(1)).then(resolve, reject);
