// One person: attributes with provenance, identity graph, accounts, computed attributes, live
// timeline over SSE; delete (with what is kept) and upsert.
import { $, api, el, field, policyParam, showError, state, table, token, when, announce } from "./api.js";

const COLORS = { ECID: "#7a4fc9", Email: "#2563c9", CRMID: "#b5520f", Phone: "#1b7f44" };

export async function render(main, [id, value]) {
  // #/profile/<profile id>, or #/profile/<namespace>/<identity value>
  const enc = encodeURIComponent;
  const query = () => (current ? `entityId=${current.profileId}` : value ? `entityId=${enc(value)}&entityIdNS=${enc(id)}` : `entityId=${enc(id)}`);
  let nextPage = null, seen = new Set(), live = null, current = null;
  const view = el("div", { class: "grid" });
  main.append(view);

  async function load() {
    current = await api(`/ui/api/profile?${query()}${policyParam()}`);
    draw(current);
    await loadEvents(true);
  }

  function draw(p) {
    const attrs = [];
    const walk = (node, prefix) => {
      for (const [k, v] of Object.entries(node)) {
        const path = prefix ? `${prefix}.${k}` : k;
        if (k === "identityMap" || k === "computedAttributes") continue;
        if (v && typeof v === "object" && !Array.isArray(v)) walk(v, path);
        else {
          const src = p.provenance[path] || {};
          attrs.push(el("tr", {}, el("td", { class: "mono" }, path), el("td", {}, JSON.stringify(v)),
            el("td", {}, src.dataset || ""), el("td", {}, when(src.writtenAt))));
        }
      }
    };
    walk(p.entity, "");
    const computed = Object.entries(p.entity.computedAttributes || {}).map(([k, v]) =>
      el("tr", {}, el("td", { class: "mono" }, k), el("td", {}, JSON.stringify(v.value ?? v)), el("td", {}, when(v.lastUpdatedAt))));
    const accounts = (p.accounts || []).map((a) => el("li", {},
      el("a", { href: `#/account/${encodeURIComponent(a.accountKey)}` }, a.entity.accountName || a.accountKey), " ",
      el("code", {}, a.accountKey), ` · ${a.people} ${a.people === 1 ? "person" : "people"}`));
    view.replaceChildren(
      el("section", { class: "card wide" },
        el("h2", {}, "Profile ", el("code", { id: "pid" }, p.profileId), " ", el("span", { id: "live", title: "live updates", "aria-label": "live updates" }, "●")),
        el("p", { id: "meta", class: "muted" }, `merge policy ${p.mergePolicy} · sources ${p.sources.join(", ") || "none"} · last modified ${when(p.lastModifiedAt)}`),
        actions(p)),
      el("section", { class: "card" }, el("h2", {}, "Attributes"),
        el("div", { id: "attributes" }, table(["attribute", "value", "dataset", "written"], attrs))),
      el("section", { class: "card" }, el("h2", {}, "Identity graph"), graph(p), identities(p)),
      el("section", { class: "card", id: "computed-card" }, el("h2", {}, "Computed attributes"),
        el("div", { id: "computed" }, table(["attribute", "value", "last updated"], computed))),
      el("section", { class: "card", id: "accounts-card" }, el("h2", {}, "Accounts"),
        accounts.length ? el("ul", { id: "accounts" }, accounts) : el("p", { class: "muted" }, "Not linked to a business account.")),
      el("section", { class: "card wide" }, el("h2", {}, "Experience events ", el("small", {}, "newest first")),
        el("div", { id: "events" }, table(["time", "type", "id", "details"], [])),
        el("button", { id: "more", type: "button", hidden: true, onclick: () => loadEvents(false) }, "Older events")));
    if (live) $("#live").classList.add("on");
  }

  function actions(p) {
    const datasets = state.context.datasets.filter((d) => d.class === "profile");
    const first = p.identities[0]?.identity || "";
    const [ns, ...rest] = first.split(":");
    const path = el("input", { id: "upsert-path", placeholder: "person.name.firstName", required: true });
    const value = el("input", { id: "upsert-value", placeholder: '"Ada" or 42', required: true });
    const dataset = el("select", { id: "upsert-dataset" }, datasets.map((d) => el("option", {}, d.id)));
    const upsert = el("form", { id: "upsert-form", "aria-label": "upsert an attribute", onsubmit: async (e) => {
      e.preventDefault();
      let parsed; try { parsed = JSON.parse(value.value); } catch { parsed = value.value; }
      const attributes = {}; let node = attributes; const parts = path.value.trim().split(".");
      parts.slice(0, -1).forEach((k) => { node = node[k] = {}; }); node[parts.at(-1)] = parsed;
      try {
        await api("/ui/api/upsert", { method: "POST", json: { dataset: dataset.value, entityId: rest.join(":"), entityIdNS: ns, attributes } });
        announce(`Upsert of ${path.value} accepted`); showError("");
      } catch (err) { showError(err.message); }
    } }, field("Attribute path", path), field("Value (JSON)", value), field("Record dataset", dataset), el("button", {}, "Upsert"));
    const dialog = el("dialog", { id: "delete-dialog", "aria-labelledby": "delete-title" },
      el("h3", { id: "delete-title" }, "Delete this profile?"),
      el("p", {}, "Removes the attributes and events of every identity of this profile from the profile store. ",
        el("strong", {}, "Kept: the data lake (every event and record stays in Parquet) and the identity graph"),
        "; a later message for any of its identities starts an empty profile with the same id."),
      el("form", { method: "dialog" },
        el("button", { value: "cancel", class: "secondary" }, "Cancel"),
        el("button", { value: "delete", id: "confirm-delete", class: "danger" }, "Delete profile")));
    dialog.addEventListener("close", async () => {
      if (dialog.returnValue !== "delete") return;
      try {
        await api(`/data/core/ups/access/entities?entityId=${encodeURIComponent(rest.join(":"))}&entityIdNS=${encodeURIComponent(ns)}`, { method: "DELETE" });
        announce("Delete accepted"); $("#delete-result").textContent = "Delete accepted; the profile empties once the worker applies it.";
      } catch (err) { showError(err.message); }
    });
    return el("div", { class: "actions" },
      el("details", {}, el("summary", {}, "Upsert an attribute"), upsert),
      el("button", { type: "button", id: "delete-profile", class: "danger", onclick: () => dialog.showModal() }, "Delete profile…"),
      el("p", { id: "delete-result", role: "status" }), dialog);
  }

  function graph(p) {
    const svg = el("svg", { svg: 1, id: "graph", viewBox: "0 0 400 300", role: "img", "aria-label": `identity graph of ${p.identities.length} identities` });
    const n = p.identities.length, pos = {};
    p.identities.forEach((m, i) => { const a = (2 * Math.PI * i) / n - Math.PI / 2, r = n > 1 ? 105 : 0; pos[m.identity] = [200 + r * Math.cos(a), 140 + r * Math.sin(a)]; });
    for (const l of p.links) {
      const [x1, y1] = pos[l.a] || [0, 0], [x2, y2] = pos[l.b] || [0, 0];
      svg.append(el("line", { svg: 1, class: "edge", x1, y1, x2, y2 }, el("title", { svg: 1 }, `linked by ${l.messageId} at ${new Date(l.timeMs).toLocaleString()}`)));
    }
    for (const m of p.identities) {
      const [x, y] = pos[m.identity], label = m.identity.length > 28 ? m.identity.slice(0, 27) + "…" : m.identity;
      svg.append(el("g", { svg: 1, class: "node" }, el("circle", { svg: 1, cx: x, cy: y, r: 14, fill: COLORS[m.identity.split(":")[0]] || "#555" }),
        el("text", { svg: 1, x, y: y + 28, "text-anchor": "middle" }, label), el("title", { svg: 1 }, m.identity)));
    }
    return svg;
  }

  function identities(p) {
    return el("ul", { id: "identities" }, p.identities.map((m) => {
      const [ns, ...rest] = m.identity.split(":");
      return el("li", {}, `${m.identity} `, p.identities.length > 1 ? el("button", { type: "button", class: "link", "aria-label": `unlink ${m.identity}`,
        onclick: () => api(`/data/core/ups/access/unlink?entityId=${encodeURIComponent(rest.join(":"))}&entityIdNS=${encodeURIComponent(ns)}`, { method: "POST" }) }, "unlink") : null);
    }));
  }

  async function loadEvents(first) {
    const path = first
      ? `/data/core/ups/access/entities?schema.name=_xdm.context.experienceevent&relatedSchema.name=_xdm.context.profile&relatedEntityId=${current.profileId}&limit=20&orderby=-timestamp`
      : nextPage;
    const page = await api(path);
    const rows = $("#events tbody");
    if (first) rows.replaceChildren();
    for (const c of page.children) {
      const e = c.entity, fresh = seen.size && !seen.has(c.entityId);
      seen.add(c.entityId);
      const details = e.commerce?.order?.priceTotal != null ? `${e.commerce.order.priceTotal} ${e.commerce.order.currencyCode || ""}` : (e.web?.webPageDetails?.name || "");
      rows.append(el("tr", fresh ? { class: "fresh" } : {}, el("td", {}, new Date(c.timestamp).toLocaleString()),
        el("td", {}, e.eventType || ""), el("td", { class: "mono" }, c.entityId), el("td", {}, details)));
    }
    if (!rows.children.length) rows.append(el("tr", {}, el("td", { colspan: "4" }, "No events.")));
    const href = page._links?.next?.href;
    nextPage = href ? `/data/core/ups/access${href}` : null;
    $("#more").hidden = !nextPage;
  }

  async function listen(profileId) {
    live = new AbortController();
    const signal = live.signal;
    try {
      const response = await fetch(`/ui/api/live?profileId=${profileId}`, { headers: { Authorization: `Bearer ${token()}`, "x-sandbox-name": state.sandbox }, signal });
      const reader = response.body.getReader(), decoder = new TextDecoder();
      $("#live")?.classList.add("on");
      let buffer = "";
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        buffer += decoder.decode(value, { stream: true });
        if (buffer.includes("event: change")) {
          buffer = "";
          try { await load(); showError(""); } catch (e) { showError(e.message); }  // e.g. deleted: no profile now
        }
        if (buffer.length > 4096) buffer = "";
      }
    } catch (e) { /* aborted, or the connection dropped */ }
    $("#live")?.classList.remove("on");
  }

  await load();
  if (current.profileId !== id) history.replaceState(null, "", `#/profile/${current.profileId}`);
  listen(current.profileId);
  return () => live && live.abort();
}
