// Merge policies: list, create, edit (dataset order by drag or by move buttons), delete, and
// one profile under two policies side by side. All through /data/core/ups/config/mergePolicies.
import { api, announce, el, field, showError, state, table } from "./api.js";

const BASE = "/data/core/ups/config/mergePolicies";

export async function render(main) {
  const list = el("div", { id: "policy-list" });
  const editor = el("section", { class: "card", id: "policy-editor", hidden: true });
  const compare = el("section", { class: "card wide", id: "policy-compare" });
  main.append(el("div", { class: "grid" }, el("section", { class: "card" }, el("h2", {}, "Merge policies"), list,
    el("button", { type: "button", id: "new-policy", onclick: () => edit(null) }, "New merge policy")), editor, compare));

  let policies = [];
  async function load() {
    policies = (await api(`${BASE}?limit=100`)).children;
    list.replaceChildren(table(["id", "name", "attributes", "stitching", "default", ""], policies.map((p) => el("tr", {},
      el("td", { class: "mono nowrap" }, p.id), el("td", {}, p.name || ""),
      el("td", {}, p.attributeMerge.type === "dataSetPrecedence" ? `dataset precedence: ${p.attributeMerge.order.join(" › ")}` : "newest write wins"),
      el("td", {}, p.identityGraph.type === "pdg" ? "on" : "off"), el("td", {}, p.default ? "yes" : ""),
      el("td", {}, el("button", { type: "button", class: "link", "aria-label": `edit ${p.id}`, onclick: () => edit(p) }, "edit"),
        el("button", { type: "button", class: "link", "aria-label": `delete ${p.id}`, onclick: () => remove(p) }, "delete"))))));
    drawCompare();
  }

  async function remove(p) {
    if (!confirm(`Delete merge policy ${p.id}? Profiles read with it fall back to the sandbox default.`)) return;
    try { await api(`${BASE}/${encodeURIComponent(p.id)}`, { method: "DELETE" }); announce(`Deleted ${p.id}`); await load(); document.dispatchEvent(new Event("inlet:policies-changed")); }
    catch (e) { showError(e.message); }
  }

  function edit(p) {
    const datasets = state.context.datasets.filter((d) => d.profile && d.class === "profile").map((d) => d.id);
    const chosen = p ? [...p.attributeMerge.order] : [];
    let order = [...chosen, ...datasets.filter((d) => !chosen.includes(d))];
    const included = new Set(chosen.length ? chosen : datasets);
    const id = el("input", { id: "policy-id", required: true, pattern: "[A-Za-z0-9_\\-]{1,128}", value: p?.id || "", readonly: Boolean(p) });
    const name = el("input", { id: "policy-name", value: p?.name || "" });
    const type = el("select", { id: "policy-type" }, el("option", { value: "timestampOrdered" }, "Timestamp ordered (newest write wins)"),
      el("option", { value: "dataSetPrecedence" }, "Dataset precedence"));
    type.value = p?.attributeMerge.type || "timestampOrdered";
    const stitching = el("input", { type: "checkbox", id: "policy-stitching", checked: !p || p.identityGraph.type === "pdg" });
    const isDefault = el("input", { type: "checkbox", id: "policy-default", checked: Boolean(p?.default) });
    const ol = el("ol", { id: "policy-order", "aria-label": "dataset precedence, first wins" });
    let dragged = null;
    const move = (i, by) => { const j = i + by; if (j < 0 || j >= order.length) return; [order[i], order[j]] = [order[j], order[i]]; drawOrder(); ol.querySelectorAll("li")[j].querySelector(by < 0 ? ".up" : ".down")?.focus(); announce(`${order[j]} is now number ${j + 1}`); };
    function drawOrder() {
      ol.replaceChildren(...order.map((d, i) => el("li", { draggable: "true", "data-dataset": d,
        ondragstart: () => { dragged = i; }, ondragover: (e) => e.preventDefault(),
        ondrop: (e) => { e.preventDefault(); if (dragged === null) return; const [x] = order.splice(dragged, 1); order.splice(i, 0, x); dragged = null; drawOrder(); } },
        el("input", { type: "checkbox", id: `use-${d}`, checked: included.has(d), onchange: (e) => { e.target.checked ? included.add(d) : included.delete(d); } }),
        el("label", { for: `use-${d}` }, d),
        el("button", { type: "button", class: "link up", "aria-label": `move ${d} up`, disabled: i === 0, onclick: () => move(i, -1) }, "↑"),
        el("button", { type: "button", class: "link down", "aria-label": `move ${d} down`, disabled: i === order.length - 1, onclick: () => move(i, 1) }, "↓"))));
      ol.closest(".field")?.toggleAttribute("hidden", type.value !== "dataSetPrecedence");
    }
    type.addEventListener("change", drawOrder);
    const form = el("form", { id: "policy-form", onsubmit: async (e) => {
      e.preventDefault();
      const body = { id: id.value, name: name.value, schema: { name: "_xdm.context.profile" },
        identityGraph: { type: stitching.checked ? "pdg" : "none" },
        attributeMerge: type.value === "dataSetPrecedence" ? { type: type.value, order: order.filter((d) => included.has(d)) } : { type: type.value },
        default: isDefault.checked };
      try {
        if (p) await api(`${BASE}/${encodeURIComponent(p.id)}`, { method: "PUT", json: body });
        else await api(BASE, { method: "POST", json: body });
        announce(`Saved merge policy ${body.id}`); showError(""); editor.replaceChildren(); editor.hidden = true; await load();
        document.dispatchEvent(new Event("inlet:policies-changed"));
      } catch (err) { showError(err.message); }
    } },
      field("Id", id), field("Name", name), field("Attribute merge", type),
      el("div", { class: "field" }, el("span", { class: "label", id: "order-label" }, "Dataset order (first wins; drag, or use the arrows)"), ol),
      el("div", { class: "check" }, stitching, el("label", { for: "policy-stitching" }, "Identity stitching (read across the identity graph)")),
      el("div", { class: "check" }, isDefault, el("label", { for: "policy-default" }, "Default policy of this sandbox")),
      el("button", {}, p ? "Save changes" : "Create merge policy"));
    editor.replaceChildren(el("h2", {}, p ? `Edit ${p.id}` : "New merge policy"), form);
    editor.hidden = false;
    drawOrder();
    (p ? name : id).focus();
  }

  function drawCompare() {
    const ns = el("select", { id: "compare-ns" }, el("option", { value: "" }, "profile id"), state.context.namespaces.map((n) => el("option", { selected: n === "Email" }, n)));
    const value = el("input", { id: "compare-value", required: true });
    const picks = [0, 1].map((i) => el("select", { id: `compare-${i}` }, policies.map((p, j) => el("option", { value: p.id, selected: j === Math.min(i, policies.length - 1) }, p.id))));
    const out = el("div", { id: "compare-result", class: "columns" });
    const form = el("form", { id: "compare-form", onsubmit: async (e) => {
      e.preventDefault();
      const q = ns.value ? `entityId=${encodeURIComponent(value.value)}&entityIdNS=${encodeURIComponent(ns.value)}` : `entityId=${encodeURIComponent(value.value)}`;
      try {
        const views = await Promise.all(picks.map((s) => api(`/ui/api/profile?${q}&mergePolicyId=${encodeURIComponent(s.value)}`)));
        const flat = views.map((v) => Object.fromEntries(Object.entries(v.provenance).map(([k, src]) => [k, [lookup(v.entity, k), src.dataset]])));
        const keys = [...new Set(flat.flatMap(Object.keys))].sort();
        out.replaceChildren(table(["attribute", ...picks.map((s) => s.value)], keys.map((k) => el("tr", { class: JSON.stringify(flat[0][k]) !== JSON.stringify(flat[1][k]) ? "differs" : "" },
          el("td", { class: "mono" }, k), ...flat.map((f) => el("td", {}, f[k] ? `${JSON.stringify(f[k][0])} (${f[k][1]})` : "—"))))));
      } catch (err) { showError(err.message); }
    } }, field("Namespace", ns), field("Identity", value), field("Left policy", picks[0]), field("Right policy", picks[1]), el("button", {}, "Compare"));
    compare.replaceChildren(el("h2", {}, "One profile under two policies"), form, out);
  }
  await load();
}

function lookup(entity, path) { return path.split(".").reduce((o, k) => (o == null ? undefined : o[k]), entity); }
