// The union schema: every field of a class as a tree, with its types and source datasets.
import { api, el, field, announce, state } from "./api.js";

export async function render(main) {
  const cls = el("select", { id: "schema-class" }, ["profile", "experienceevent", "account", "account-person"].map((c) => el("option", {}, c)));
  const filter = el("input", { id: "schema-filter", type: "search", placeholder: "priceTotal" });
  const tree = el("div", { id: "schema-tree" });
  const meta = el("p", { class: "muted", id: "schema-meta" });
  let fields = [];
  const schemaOf = Object.fromEntries(state.context.datasets.map((d) => [d.id, d.schema]));

  async function load() {
    const u = await api(`/data/core/ups/config/unionSchema?class=${cls.value}`);
    fields = u.fields;
    meta.textContent = `datasets: ${u.datasets.join(", ") || "none"}${u.schemas?.length ? ` · schemas: ${u.schemas.map((s) => s.title || s.id || s).join(", ")}` : ""}`;
    draw();
  }

  function draw() {
    const needle = filter.value.trim().toLowerCase();
    const shown = fields.filter((f) => !needle || f.path.toLowerCase().includes(needle));
    const root = {};
    for (const f of shown) {
      let node = root;
      for (const part of f.path.split(".")) node = (node[part] ||= {});
      node["\0"] = f;
    }
    const branch = (node) => el("ul", { role: "group" }, Object.keys(node).filter((k) => k !== "\0").sort().map((k) => {
      const leaf = node[k]["\0"], children = Object.keys(node[k]).some((c) => c !== "\0");
      const schemas = leaf ? [...new Set(leaf.datasets.map((d) => schemaOf[d]).filter(Boolean))] : [];
      const label = el("span", {}, el("code", {}, k), leaf ? el("small", {}, ` ${leaf.types.join(" | ")} · ${leaf.datasets.join(", ") || "declared"}${schemas.length ? ` · schema ${schemas.join(", ")}` : ""}`) : null);
      return el("li", { role: "treeitem", "data-path": leaf?.path || "" }, children ? el("details", { open: needle !== "" || undefined }, el("summary", {}, label), branch(node[k])) : label);
    }));
    tree.replaceChildren(shown.length ? el("div", { role: "tree", "aria-label": `${cls.value} union schema` }, branch(root)) : el("p", {}, "No fields match."));
    announce(`${shown.length} fields`);
  }
  cls.addEventListener("change", load);
  filter.addEventListener("input", draw);
  main.append(el("section", { class: "card wide" }, el("h2", {}, "Union schema"),
    el("form", { role: "search", "aria-label": "filter fields", onsubmit: (e) => e.preventDefault() }, field("Class", cls), field("Find a field", filter)), meta, tree));
  await load();
}
