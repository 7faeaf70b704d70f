// The profile browser: plain DOM code, talking to this gateway only (see gateway/endpoints/ui.py).
"use strict";
const $ = (s) => document.querySelector(s);
const COLORS = { ECID: "#8a63d2", Email: "#2f6fde", CRMID: "#d2691e", Phone: "#22a55b", GAID: "#999", IDFA: "#999" };
let current = null, nextPage = null, liveAbort = null, seenEvents = new Set();

const token = () => sessionStorage.getItem("inlet.token");
const el = (tag, attrs = {}, ...children) => {
  const node = document.createElementNS(tag === "svg" || attrs.svg ? "http://www.w3.org/2000/svg" : "http://www.w3.org/1999/xhtml", tag);
  for (const [k, v] of Object.entries(attrs)) if (k !== "svg") node.setAttribute(k, v);
  for (const c of children) node.append(c);
  return node;
};
const showError = (text) => { const e = $("#error"); e.textContent = text; e.hidden = !text; };

async function api(path, options = {}) {
  const response = await fetch(path, { ...options, headers: { Authorization: `Bearer ${token()}`, ...(options.headers || {}) } });
  if (response.status === 401) { sessionStorage.removeItem("inlet.token"); askToken("That token was not accepted."); throw new Error("unauthorized"); }
  const body = response.status === 204 ? {} : await response.json();
  if (!response.ok) throw new Error(body.detail || body.title || `HTTP ${response.status}`);
  return body;
}

function askToken(message) {
  $("#login").hidden = false; $("#profile").hidden = true;
  if (message) showError(message);
}

function query() {
  const ns = $("#ns").value, value = $("#value").value.trim();
  return ns ? `entityId=${encodeURIComponent(value)}&entityIdNS=${encodeURIComponent(ns)}` : `entityId=${encodeURIComponent(value)}`;
}

async function load() {
  if (!token()) return askToken();
  try {
    const p = await api(`/ui/api/profile?${query()}`);
    showError(""); render(p); await loadEvents(true); listen(p.profileId);
  } catch (e) { if (e.message !== "unauthorized") { showError(e.message); $("#profile").hidden = true; } }
}

function render(p) {
  current = p; $("#profile").hidden = false; $("#login").hidden = true;
  $("#pid").textContent = p.profileId;
  $("#meta").textContent = `merge policy ${p.mergePolicy} · sources ${p.sources.join(", ") || "none"} · last modified ${new Date(p.lastModifiedAt).toLocaleString()}`;
  const rows = $("#attributes tbody"); rows.replaceChildren();
  const walk = (node, prefix) => {
    for (const [k, v] of Object.entries(node)) {
      const path = prefix ? `${prefix}.${k}` : k;
      if (k === "identityMap" || k === "computedAttributes") continue;
      if (v && typeof v === "object" && !Array.isArray(v)) walk(v, path);
      else {
        const src = p.provenance[path] || {};
        rows.append(el("tr", {}, el("td", { class: "mono" }, path), el("td", {}, JSON.stringify(v)),
          el("td", {}, src.dataset || ""), el("td", {}, src.writtenAt ? new Date(src.writtenAt).toLocaleString() : "")));
      }
    }
  };
  walk(p.entity, "");
  if (!rows.children.length) rows.append(el("tr", {}, el("td", { colspan: "4" }, "No attributes yet: only events so far.")));
  const computed = p.entity.computedAttributes || {};
  $("#computed-card").hidden = !Object.keys(computed).length;
  $("#computed tbody").replaceChildren(...Object.entries(computed).map(([k, v]) =>
    el("tr", {}, el("td", { class: "mono" }, k), el("td", {}, JSON.stringify(v.value ?? v)), el("td", {}, v.lastUpdatedAt || ""))));
  const accounts = p.accounts || [];
  $("#accounts-card").hidden = !accounts.length;
  $("#accounts").replaceChildren(...accounts.map((a) => {
    const org = a.entity.accountOrganization || {};
    const details = [org.industry, org.annualRevenue && `revenue ${(org.annualRevenue.amount ?? org.annualRevenue).toLocaleString()} ${org.annualRevenue.currencyCode || ""}`.trim(), `${a.people} ${a.people === 1 ? "person" : "people"}`];
    return el("li", {}, el("strong", {}, a.entity.accountName || a.accountKey), " ", el("code", {}, a.accountKey),
      el("br"), details.filter(Boolean).join(" · "));
  }));
  drawGraph(p);
}

function drawGraph(p) {
  const svg = $("#graph"); svg.replaceChildren();
  const n = p.identities.length, pos = {};
  p.identities.forEach((m, i) => {
    const a = (2 * Math.PI * i) / n - Math.PI / 2, r = n > 1 ? 105 : 0;
    pos[m.identity] = [200 + r * Math.cos(a), 140 + r * Math.sin(a)];
  });
  for (const l of p.links) {
    const [x1, y1] = pos[l.a] || [0, 0], [x2, y2] = pos[l.b] || [0, 0];
    const line = el("line", { svg: 1, class: "edge", x1, y1, x2, y2 });
    line.append(el("title", { svg: 1 }, `linked by ${l.messageId} at ${new Date(l.timeMs).toLocaleString()}`));
    svg.append(line);
  }
  for (const m of p.identities) {
    const [x, y] = pos[m.identity], ns = m.identity.split(":")[0];
    const g = el("g", { svg: 1, class: "node" });
    g.append(el("circle", { svg: 1, cx: x, cy: y, r: 14, fill: COLORS[ns] || "#555" }));
    const label = m.identity.length > 28 ? m.identity.slice(0, 27) + "…" : m.identity;
    g.append(el("text", { svg: 1, x, y: y + 28, "text-anchor": "middle" }, label));
    g.append(el("title", { svg: 1 }, `${m.identity}\nfirst seen ${new Date(m.firstSeenMs).toLocaleString()}`));
    svg.append(g);
  }
  $("#identities").replaceChildren(...p.identities.map((m) => {
    const [ns, ...rest] = m.identity.split(":");
    const item = el("li", {}, `${m.identity} `);
    if (n > 1) {
      const b = el("button", { class: "link", type: "button" }, "unlink");
      b.addEventListener("click", async () => {
        await api(`/data/core/ups/access/unlink?entityId=${encodeURIComponent(rest.join(":"))}&entityIdNS=${encodeURIComponent(ns)}`, { method: "POST" });
      });
      item.append(b);
    }
    return item;
  }));
}

async function loadEvents(first) {
  const path = first
    ? `/data/core/ups/access/entities?schema.name=_xdm.context.experienceevent&relatedSchema.name=_xdm.context.profile&relatedEntityId=${current.profileId}&limit=20`
    : nextPage;
  const page = await api(path);
  const rows = $("#events tbody");
  if (first) rows.replaceChildren();
  for (const c of page.children) {
    const e = c.entity, fresh = seenEvents.size && !seenEvents.has(c.entityId);
    seenEvents.add(c.entityId);
    const details = e.commerce?.order?.priceTotal != null ? `${e.commerce.order.priceTotal} ${e.commerce.order.currencyCode || ""}` : (e.web?.webPageDetails?.name || "");
    rows.append(el("tr", fresh ? { class: "fresh" } : {}, el("td", {}, new Date(c.timestamp).toLocaleString()),
      el("td", {}, e.eventType || ""), el("td", { class: "mono" }, c.entityId), el("td", {}, details)));
  }
  nextPage = page._links?.next?.href || null;
  $("#more").hidden = !nextPage;
}

async function listen(profileId) {
  if (liveAbort) liveAbort.abort();
  liveAbort = new AbortController();
  const signal = liveAbort.signal;
  try {
    const response = await fetch(`/ui/api/live?profileId=${profileId}`, { headers: { Authorization: `Bearer ${token()}` }, signal });
    const reader = response.body.getReader(), decoder = new TextDecoder();
    $("#live").classList.add("on");
    let buffer = "";
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      buffer += decoder.decode(value, { stream: true });
      if (buffer.includes("event: change")) {
        buffer = "";
        const p = await api(`/ui/api/profile?entityId=${profileId}`);
        render(p); await loadEvents(true);
        if (p.profileId !== profileId) return listen(p.profileId);
      }
      if (buffer.length > 4096) buffer = "";
    }
  } catch (e) { /* aborted or the connection dropped */ }
  $("#live").classList.remove("on");
}

async function overview() {
  if (!token()) return;
  try {
    const o = await api("/ui/api/overview");
    const now = o.timeMs, last = overview.last;
    const rate = last ? ((o.accepted - last.accepted) / ((now - last.timeMs) / 1000)).toFixed(1) : "…";
    overview.last = o;
    const rows = [["accepted", `${o.accepted} (${rate}/s)`],
      ["rejected", Object.entries(o.rejected).map(([k, v]) => `${k} ${v}`).join(", ") || "none"],
      ["consumer lag", Object.entries(o.consumerLag).map(([k, v]) => `${k} ${v}`).join(", ")],
      ["lake freshness", Object.entries(o.lakeAgeSeconds).map(([k, v]) => `${k} ${v}s ago`).join(", ") || "no files yet"]];
    $("#stats").replaceChildren(...rows.flatMap(([k, v]) => [el("dt", {}, k), el("dd", {}, v)]));
  } catch (e) { /* shown by the profile view when it matters */ }
}

$("#token-form").addEventListener("submit", (e) => {
  e.preventDefault(); sessionStorage.setItem("inlet.token", $("#token").value); $("#token").value = "";
  $("#login").hidden = true; showError(""); overview(); if ($("#value").value) load();
});
$("#search").addEventListener("submit", (e) => { e.preventDefault(); seenEvents = new Set(); load(); });
$("#more").addEventListener("click", () => loadEvents(false));
if (!token()) askToken();
overview(); setInterval(overview, 2000);
