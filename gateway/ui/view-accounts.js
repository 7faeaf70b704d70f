// Business accounts: search by key or name; an account with its attributes and people (paged).
import { api, el, field, policyParam, profileLink, table, when } from "./api.js";

export async function render(main, rest, name) {
  if (name === "account") return account(main, rest[0]);
  const search = el("input", { id: "account-search", type: "search", placeholder: "acme" });
  const out = el("div", { id: "account-results" });
  async function load() {
    const page = await api(`/ui/api/accounts?search=${encodeURIComponent(search.value.trim())}`);
    out.replaceChildren(table(["account", "key", "last updated"], page.accounts.map((a) => el("tr", {},
      el("td", {}, el("a", { href: `#/account/${encodeURIComponent(a.accountKey)}` }, a.name || a.accountKey)),
      el("td", { class: "mono" }, a.accountKey), el("td", {}, when(a.lastModifiedAt))))));
  }
  main.append(el("section", { class: "card wide" }, el("h2", {}, "Accounts"),
    el("form", { role: "search", "aria-label": "find accounts", onsubmit: (e) => { e.preventDefault(); load(); } }, field("Account key or name", search), el("button", {}, "Search")), out));
  await load();
}

async function account(main, key) {
  const card = el("section", { class: "card wide", id: "account" });
  const people = el("div", { id: "account-people" });
  const more = el("button", { type: "button", id: "people-more", hidden: true }, "More people");
  let start = "";
  async function page(first) {
    const body = await api(`/data/core/ups/access/entities?schema.name=_xdm.context.account&entityId=${encodeURIComponent(key)}&limit=10${start ? `&start=${start}` : ""}${policyParam()}`);
    const a = Object.values(body)[0];
    if (first) {
      const leaves = [];
      const walk = (node, prefix) => { for (const [k, v] of Object.entries(node)) { const p = prefix ? `${prefix}.${k}` : k; if (v && typeof v === "object" && !Array.isArray(v)) walk(v, p); else leaves.push(el("tr", {}, el("td", { class: "mono" }, p), el("td", {}, JSON.stringify(v)))); } };
      walk(a.entity, "");
      card.replaceChildren(el("h2", {}, a.entity.accountName || a.accountKey, " ", el("code", {}, a.accountKey)),
        el("p", { class: "muted" }, `merge policy ${a.mergePolicy.id} · sources ${a.sources.join(", ")} · last modified ${when(a.lastModifiedAt)} · ${a.people._page.totalCount} people`),
        table(["attribute", "value"], leaves), el("h3", {}, "People"), people, more);
      people.replaceChildren(table(["profile", "name", "linked by"], []));
    }
    const tbody = people.querySelector("tbody");
    if (first) tbody.replaceChildren();
    tbody.append(...a.people.children.map((p) => el("tr", {}, el("td", { class: "mono" }, profileLink(p.entityId)),
        el("td", {}, [p.entity.person?.name?.firstName, p.entity.person?.name?.lastName].filter(Boolean).join(" ") || p.entity.workEmail?.address || ""),
        el("td", {}, p.links.map((l) => `${l.identity} (${l.via}, ${l.dataset})`).join("; ")))));
    start = a.people._page.next; more.hidden = !start;
  }
  more.addEventListener("click", () => page(false));
  main.append(card);
  await page(true);
}
