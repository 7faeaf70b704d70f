// Consent: "in" sends, "pending" holds events in the queue, "out" drops them. The choice
// persists across pages.
import { read, write } from "./storage.js";

const KEY = "inlet.consent";

export const createConsent = (initial) => {
  let state = read(KEY, initial);
  return {
    get state() {
      return state;
    },
    set(next) {
      if (next != "in" && next != "out" && next != "pending") throw new Error("inlet: consent is in, out or pending");
      state = next;
      write(KEY, state);
    },
  };
};
