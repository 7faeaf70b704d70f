// localStorage that never throws (private modes, quotas, disabled storage).
export const read = (key, fallback) => {
  try {
    const v = globalThis.localStorage.getItem(key);
    return v == null ? fallback : JSON.parse(v);
  } catch (e) {
    return fallback;
  }
};

export const write = (key, value) => {
  try {
    globalThis.localStorage.setItem(key, JSON.stringify(value));
  } catch (e) {}
};
