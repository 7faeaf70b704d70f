// Browse profiles: newest updated first; search by identity value, namespace or dataset.
import { api, el, field, profileLink, state, table, when, announce } from "./api.js";

export async function render(main) {
  const ctx = state.context;
  const search = el("input", { id: "profile-search", type: "search", placeholder: "ada@ or 0042" });
  const ns = el("select", { id: "profile-ns" }, el("option", { value: "" }, "any namespace"),
    ctx.namespaces.map((n) => el("option", { value: n }, n)));
  const dataset = el("select", { id: "profile-dataset" }, el("option", { value: "" }, "any dataset"),
    ctx.datasets.filter((d) => d.profile).map((d) => el("option", { value: d.id }, d.id)));
  const size = el("select", { id: "profile-page-size" }, ["5", "20", "50", "100"].map((n) => el("option", { selected: n === "20" }, n)));
  const results = el("div", { id: "profile-results" });
  const more = el("button", { type: "button", id: "profiles-more", hidden: true }, "More profiles");
  let next = "", shown = 0;

  async function load(first) {
    if (first) { next = ""; shown = 0; }
    const q = new URLSearchParams({ search: search.value.trim(), namespace: ns.value, dataset: dataset.value, limit: size.value });
    if (next) q.set("after", next);
    const page = await api(`/ui/api/profiles?${q}`);
    const rows = page.profiles.map((p) => el("tr", {},
      el("td", { class: "mono" }, profileLink(p.profileId)),
      el("td", {}, p.identities.join(", ") + (p.identityCount > p.identities.length ? ` (+${p.identityCount - p.identities.length})` : "")),
      el("td", {}, when(p.lastModifiedAt))));
    if (first) {
      results.replaceChildren(el("p", { class: "muted", id: "profiles-total" },
        `${page.total} profile${page.total === 1 ? "" : "s"}${dataset.value ? " (a sample)" : ""}, newest updated first`),
        table(["profile", "identities", "last updated"], rows));
    } else results.querySelector("tbody").append(...rows);
    shown += page.profiles.length; next = page.next; more.hidden = !next;
    announce(`${shown} of ${page.total} profiles shown`);
  }

  const form = el("form", { id: "profile-filter", role: "search", "aria-label": "find profiles",
    onsubmit: (e) => { e.preventDefault(); load(true); } },
    field("Identity value", search), field("Namespace", ns), field("Dataset", dataset), field("Page size", size), el("button", {}, "Search"));
  more.addEventListener("click", () => load(false));
  main.append(el("section", { class: "card wide" }, el("h2", {}, "Profiles"), form, results, more));
  await load(true);
}
