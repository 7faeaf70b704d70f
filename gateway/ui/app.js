// The profile workspace: plain ES modules, one per view, talking to this gateway only
// (gateway/endpoints/ui.py, workspace.py and the Platform APIs).
import { $, api, el, showError, state, token } from "./api.js";
import * as profiles from "./view-profiles.js";
import * as profile from "./view-profile.js";
import * as accounts from "./view-accounts.js";
import * as policies from "./view-policies.js";
import * as schema from "./view-schema.js";
import * as computed from "./view-computed.js";
import * as ingestion from "./view-ingestion.js";

const ROUTES = { profiles, profile, accounts, account: accounts, policies, schema, computed, ingestion };
let leave = null;

function askToken(message) {
  $("#login").hidden = false; $("#view").hidden = true;
  showError(message || ""); $("#token").focus();
}

async function loadPickers() {
  const context = await api("/ui/api/context");
  state.context = context;
  $("#sandbox").replaceChildren(...context.sandboxes.map((s) => el("option", { selected: s === state.sandbox }, s)));
  const list = await api("/data/core/ups/config/mergePolicies?limit=100");
  const chosen = list.children.some((p) => p.id === state.policy) ? state.policy : "";
  state.policy = chosen;
  $("#policy").replaceChildren(el("option", { value: "" }, "sandbox default"),
    ...list.children.map((p) => el("option", { value: p.id, selected: p.id === chosen }, `${p.name || p.id}${p.default ? " (default)" : ""}`)));
}

export async function route(moveFocus = false) {
  if (!token()) return askToken();
  $("#login").hidden = true; $("#view").hidden = false;
  if (leave) { leave(); leave = null; }
  const [name, ...rest] = (location.hash.replace(/^#\//, "") || "profiles").split("/");
  const view = ROUTES[name] || profiles;
  for (const a of document.querySelectorAll("nav a")) a.toggleAttribute("aria-current", a.getAttribute("href") === `#/${name}`);
  const main = $("#view");
  main.replaceChildren();
  main.dataset.view = name;
  delete main.dataset.ready;
  try {
    if (!state.context) await loadPickers();
    showError("");
    leave = (await view.render(main, rest.map(decodeURIComponent), name)) || null;
    main.dataset.ready = "1";  // the view has loaded what it shows first
    if (moveFocus) main.focus();  // keyboard and screen reader users start at the new view
  } catch (e) { if (e.message !== "unauthorized") showError(e.message); }
}

export const refreshPickers = () => loadPickers().catch((e) => showError(e.message));

document.addEventListener("inlet:signin", (e) => askToken(e.detail));
document.addEventListener("inlet:policies-changed", refreshPickers);
$("#token-form").addEventListener("submit", (e) => {
  e.preventDefault(); sessionStorage.setItem("inlet.token", $("#token").value); $("#token").value = "";
  state.context = null; route(true);
});
$("#sandbox").addEventListener("change", () => {
  state.sandbox = $("#sandbox").value; sessionStorage.setItem("inlet.sandbox", state.sandbox);
  state.context = null; state.policy = ""; route();
});
$("#policy").addEventListener("change", () => { state.policy = $("#policy").value; route(); });
window.addEventListener("hashchange", () => route(true));
route();
