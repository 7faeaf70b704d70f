// Computed attributes: list with status and backfill progress; a form that builds the PQL
// expression, previews the value on one profile before saving, and saves through the API.
import { api, announce, el, field, showError, state, table, when } from "./api.js";

const BASE = "/data/core/ca/attributes";
const UNITS = { HOURS: "hours", DAYS: "days", WEEKS: "weeks", MONTHS: "months" };
const OPS = { eq: "=", ne: "!=", gt: ">", gte: ">=", lt: "<", lte: "<=" };
const quote = (s) => JSON.stringify(s);
const literal = (v) => (v.trim() !== "" && !Number.isNaN(Number(v)) ? v.trim() : ["true", "false"].includes(v.trim()) ? v.trim() : quote(v));

// The PQL text inlet/pql.py compiles back to {function, field, filter, duration}.
export function pql({ fn, path, types, cond, count, unit }) {
  const clauses = [];
  if (types.length) clauses.push(types.length === 1 ? `eventType = ${quote(types[0])}` : `(${types.map((t) => `eventType = ${quote(t)}`).join(" or ")})`);
  if (cond.field && cond.value !== "") clauses.push(`${cond.field} ${OPS[cond.op]} ${literal(cond.value)}`);
  clauses.push(`timestamp occurs <= ${count} ${UNITS[unit]} before now`);
  const head = `xEvent[${clauses.join(" and ")}]`;
  if (fn === "COUNT") return `${head}.count()`;
  if (fn === "MOST_RECENT" || fn === "FIRST") return `${head}.${fn === "FIRST" ? "bottomN" : "topN"}(timestamp, 1).map({"timestamp": timestamp, "value": ${path}}).head()`;
  return `${head}.${fn.toLowerCase()}(${path})`;
}

export async function render(main) {
  const list = el("div", { id: "computed-list" });
  let timer = null;
  async function load() {
    const body = await api(`${BASE}?limit=40`);
    list.replaceChildren(table(["name", "definition", "status", "backfill", "changed", ""], body.computedAttributes.map((c) => el("tr", { "data-name": c.name },
      el("td", { class: "mono" }, c.name), el("td", {}, `${c.function}${c.field ? `(${c.field})` : ""} · ${c.duration.count} ${UNITS[c.duration.unit]}`),
      el("td", { class: "status" }, c.status),
      el("td", {}, el("progress", { max: String(c.backfill.total || 1), value: String(c.backfill.status === "done" ? (c.backfill.total || 1) : c.backfill.processed), "aria-label": `backfill of ${c.name}` }),
        ` ${c.backfill.status} ${c.backfill.processed}/${c.backfill.total}`),
      el("td", {}, when(c.updateEpoch ? c.updateEpoch * 1000 : null)),
      el("td", {}, el("button", { type: "button", class: "link", "aria-label": `delete ${c.name}`, onclick: async () => { await api(`${BASE}/${encodeURIComponent(c.name)}`, { method: "DELETE" }); load(); } }, "delete"))))));
    clearTimeout(timer);
    if (body.computedAttributes.some((c) => c.backfill.status !== "done" && c.status !== "DRAFT" && c.status !== "DISABLED")) timer = setTimeout(load, 1500);
  }

  const name = el("input", { id: "ca-name", required: true, pattern: "[A-Za-z0-9_]+", placeholder: "purchases7d" });
  const fn = el("select", { id: "ca-function" }, ["SUM", "COUNT", "MIN", "MAX", "MOST_RECENT", "FIRST"].map((f) => el("option", {}, f)));
  const path = el("input", { id: "ca-field", placeholder: "commerce.order.priceTotal", value: "commerce.order.priceTotal" });
  const types = el("input", { id: "ca-types", placeholder: "commerce.purchases", value: "commerce.purchases" });
  const condField = el("input", { id: "ca-cond-field", placeholder: "commerce.order.currencyCode" });
  const condOp = el("select", { id: "ca-cond-op" }, Object.keys(OPS).map((o) => el("option", { value: o }, OPS[o])));
  const condValue = el("input", { id: "ca-cond-value", placeholder: "EUR" });
  const count = el("input", { id: "ca-count", type: "number", min: "1", value: "30", required: true });
  const unit = el("select", { id: "ca-unit" }, Object.keys(UNITS).map((u) => el("option", { value: u, selected: u === "DAYS" }, UNITS[u])));
  const expression = el("output", { id: "ca-expression", for: "ca-function ca-field ca-types ca-count ca-unit", class: "mono" });
  const previewNs = el("select", { id: "ca-preview-ns" }, state.context.namespaces.map((n) => el("option", { selected: n === "Email" }, n)));
  const previewId = el("input", { id: "ca-preview-id", placeholder: "ada@shop.example" });
  const previewOut = el("p", { id: "ca-preview", role: "status" });

  const spec = () => ({ fn: fn.value, path: path.value.trim(), types: types.value.split(",").map((t) => t.trim()).filter(Boolean),
    cond: { field: condField.value.trim(), op: condOp.value, value: condValue.value }, count: Number(count.value), unit: unit.value });
  const body = () => ({ name: name.value.trim() || "preview", expression: { type: "PQL", format: "pql/text", value: pql(spec()) },
    duration: { count: Number(count.value), unit: unit.value } });
  const update = () => { path.closest(".field").hidden = fn.value === "COUNT"; expression.value = pql(spec()); };

  async function preview() {
    try {
      const r = await api("/ui/api/computed-preview", { method: "POST", json: { ...body(), entityId: previewId.value.trim(), entityIdNS: previewNs.value } });
      previewOut.textContent = r.value === null ? `No value: nothing counted (${r.scanned} events in the window).`
        : `Value now: ${JSON.stringify(r.value)} (${r.counted} of ${r.scanned} events counted)`;
      showError("");
    } catch (e) { previewOut.textContent = ""; showError(e.message); }
  }
  const form = el("form", { id: "ca-form", oninput: update, onchange: update, onsubmit: async (e) => {
    e.preventDefault();
    try { await api(BASE, { method: "POST", json: body() }); announce(`Saved ${name.value}`); showError(""); await load(); }
    catch (err) { showError(err.message); }
  } },
    field("Name", name), field("Function", fn), field("Event field", path), field("Event types (comma separated)", types),
    el("fieldset", {}, el("legend", {}, "Only events where (optional)"), field("Field", condField), field("Operator", condOp), field("Value", condValue)),
    el("fieldset", {}, el("legend", {}, "Lookback"), field("Count", count), field("Unit", unit)),
    el("div", { class: "field wide" }, el("span", { class: "label" }, "Expression (PQL)"), expression),
    el("fieldset", {}, el("legend", {}, "Preview on a profile"), field("Namespace", previewNs), field("Identity", previewId),
      el("button", { type: "button", id: "ca-preview-button", onclick: preview }, "Preview value"), previewOut),
    el("button", { id: "ca-save" }, "Save computed attribute"));
  main.append(el("div", { class: "grid" }, el("section", { class: "card wide" }, el("h2", {}, "Computed attributes"),
    el("p", { class: "muted" }, "Values are evaluated as events arrive; a new or changed definition is backfilled from the stored events."), list),
    el("section", { class: "card wide" }, el("h2", {}, "New computed attribute"), form)));
  update();
  await load();
  return () => clearTimeout(timer);
}
