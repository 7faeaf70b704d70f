// XDM ExperienceEvents: the fields every event gets, with the caller's xdm merged over them.
export const uuid = () => {
  const c = globalThis.crypto;
  if (c && c.randomUUID) return c.randomUUID();
  const b = c.getRandomValues(new Uint8Array(16));
  b[6] = (b[6] & 15) | 64;
  b[8] = (b[8] & 63) | 128;
  const h = [...b].map((x) => (x + 256).toString(16).slice(1)).join("");
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20)}`;
};

const isObject = (v) => v && typeof v == "object" && !Array.isArray(v);

export const merge = (target, source) => {
  for (const key in source) {
    target[key] = isObject(source[key]) && isObject(target[key]) ? merge(target[key], source[key]) : source[key];
  }
  return target;
};

export const VERSION = "0.1.0";

export const event = (xdm = {}, data, now = new Date()) => {
  const d = globalThis.document, w = globalThis.window || {};
  const base = {
    _id: uuid(),
    timestamp: now.toISOString(),
    eventType: "web.webinteraction.linkClicks",
    web: { webPageDetails: { URL: (globalThis.location || {}).href, name: d && d.title } },
    environment: { type: "browser", browserDetails: { viewportWidth: w.innerWidth, viewportHeight: w.innerHeight } },
    implementationDetails: { name: "https://github.com/inlet/tag", version: VERSION, environment: "browser" },
  };
  if (d && d.referrer) base.web.webReferrer = { URL: d.referrer };
  const out = { xdm: merge(base, xdm) };
  if (data) out.data = data;
  return out;
};

export const pageView = () => event({ eventType: "web.webpagedetails.pageViews", web: { webPageDetails: { pageViews: { value: 1 } } } });
