// Sending to the edge: fetch with text/plain (no CORS preflight) and credentials; retries
// with exponential backoff and jitter on network errors and 429/502/503/504 (honouring
// Retry-After); on page hide, fetch keepalive first and sendBeacon as the fallback.
export const RETRYABLE = [429, 502, 503, 504];

export const backoff = (attempt, random = Math.random) => Math.min(30000, 500 * 2 ** attempt) * (0.5 + random() / 2);

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

export const createTransport = (config, fetcher = (...a) => globalThis.fetch(...a)) => {
  const url = (action) =>
    `${config.edgeUrl}/ee/v1/${action}?configId=${encodeURIComponent(config.datastreamId)}&requestId=${crypto.randomUUID ? crypto.randomUUID() : Date.now()}`;
  return {
    // Resolves with the parsed response, or rejects after the last retry (error.retry says
    // whether the events are worth keeping for later).
    async send(action, body) {
      const target = url(action);
      for (let attempt = 0; ; attempt++) {
        let status = 0, wait = 0;
        try {
          const r = await fetcher(target, { method: "POST", body: JSON.stringify(body), credentials: "include",
                                            headers: { "content-type": "text/plain;charset=UTF-8" } });
          if (r.ok) return r.status == 204 ? {} : await r.json();
          status = r.status;
          wait = +r.headers.get("retry-after") * 1000;
        } catch (e) {}
        if (status && !RETRYABLE.includes(status)) throw Object.assign(new Error(`inlet: edge answered ${status}`), { retry: false });
        if (attempt >= config.maxRetries) throw Object.assign(new Error("inlet: edge unreachable"), { retry: true });
        await sleep(wait || backoff(attempt));
      }
    },
    // Page hide: no awaiting; keepalive fetch (some blockers drop sendBeacon), else a beacon.
    beacon(body) {
      const target = url("collect"), payload = JSON.stringify(body);
      try {
        if (payload.length < 60000) {
          fetcher(target, { method: "POST", body: payload, keepalive: true, credentials: "include",
                            headers: { "content-type": "text/plain;charset=UTF-8" } }).catch(() => {});
          return true;
        }
      } catch (e) {}
      return globalThis.navigator.sendBeacon(target, new Blob([payload], { type: "text/plain;charset=UTF-8" }));
    },
  };
};
