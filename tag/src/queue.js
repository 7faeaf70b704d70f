// A bounded queue of events that survives reloads: what could not be sent yet is kept in
// localStorage and sent on the next page. Each event keeps its _id, so a resend is deduped.
import { read, write } from "./storage.js";

const KEY = "inlet.q";

export const createQueue = (max) => {
  let items = read(KEY, []);
  const save = () => write(KEY, items);
  return {
    push(...events) {
      items.push(...events);
      if (items.length > max) items = items.slice(items.length - max);
      save();
    },
    // Events stay queued while they are being sent; they leave only once the edge has them.
    peek(n = items.length) {
      return items.slice(0, n);
    },
    remove(events) {
      const sent = new Set(events.map((e) => e.xdm._id));
      items = items.filter((e) => !sent.has(e.xdm._id));
      save();
    },
    clear() {
      items = [];
      save();
    },
    get size() {
      return items.length;
    },
  };
};
