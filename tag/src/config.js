// Options of `inlet("configure", {...})`, with their defaults.
export const defaults = {
  edgeUrl: "",            // base URL of the gateway; "" = the page's own origin
  datastreamId: "",       // sent as configId
  orgId: "",              // names the identity entry: kndctr_<org with @ as _>_identity
  defaultConsent: "in",   // "in" | "out" | "pending"
  autoPageView: true,
  clickCollection: false,
  batchWindowMs: 100,
  maxQueue: 100,          // events kept while offline or pending consent (oldest dropped)
  maxRetries: 5,
  debug: false,
};

export const configure = (options) => {
  const config = { ...defaults, ...options };
  if (!config.datastreamId) throw new Error("inlet: datastreamId is required");
  config.edgeUrl = String(config.edgeUrl).replace(/\/+$/, "");
  return config;
};
