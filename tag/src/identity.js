// The device identity the edge hands out: the ECID from `identity:result`, and the
// `state:store` entries (the kndctr_* values) sent back on every request, as the Web SDK does.
import { read, write } from "./storage.js";

const KEY = "inlet.state";

export const createIdentity = (now = () => Date.now()) => {
  let saved = read(KEY, { ecid: "", entries: {} });
  const save = () => write(KEY, saved);
  return {
    get ecid() {
      return saved.ecid;
    },
    entries() {
      const t = now(), out = [];
      for (const key in saved.entries) {
        const e = saved.entries[key];
        if (e.expires > t) out.push({ key, value: e.value });
      }
      return out;
    },
    // Reads a response's handles; returns the ECID if one came.
    apply(handles) {
      for (const h of handles || []) {
        for (const p of h.payload || []) {
          if (h.type == "identity:result" && p.namespace && p.namespace.code == "ECID") saved.ecid = p.id;
          if (h.type == "state:store") saved.entries[p.key] = { value: p.value, expires: now() + (p.maxAge || 0) * 1000 };
        }
      }
      save();
      return saved.ecid;
    },
  };
};
