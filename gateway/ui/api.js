// What every view shares: the token, the picked sandbox and merge policy, calls to this gateway.
export const $ = (s, root = document) => root.querySelector(s);
export const state = { sandbox: sessionStorage.getItem("inlet.sandbox") || "prod", policy: "", context: null };

export const token = () => sessionStorage.getItem("inlet.token");

export function el(tag, attrs = {}, ...children) {
  const svg = ["svg", "g", "line", "circle", "text", "title", "polyline", "path", "rect"].includes(tag) && attrs.svg;
  const node = document.createElementNS(svg ? "http://www.w3.org/2000/svg" : "http://www.w3.org/1999/xhtml", tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (k === "svg" || v === undefined || v === null || v === false) continue;
    if (k.startsWith("on")) node.addEventListener(k.slice(2), v); else node.setAttribute(k, v === true ? "" : v);
  }
  for (const c of children.flat()) if (c !== null && c !== undefined && c !== false) node.append(c);
  return node;
}

export const showError = (text) => { const e = $("#error"); e.textContent = text || ""; e.hidden = !text; };
export const announce = (text) => { $("#status").textContent = text; };
export const when = (iso) => (iso ? new Date(iso).toLocaleString() : "");

export class Unauthorized extends Error {}

export async function api(path, options = {}) {
  const headers = { Authorization: `Bearer ${token()}`, "x-sandbox-name": state.sandbox, ...(options.headers || {}) };
  if (options.json !== undefined) { headers["Content-Type"] = "application/json"; options = { ...options, body: JSON.stringify(options.json) }; }
  const response = await fetch(path, { ...options, headers });
  if (response.status === 401) {
    sessionStorage.removeItem("inlet.token");
    document.dispatchEvent(new CustomEvent("inlet:signin", { detail: "That token was not accepted." }));
    throw new Unauthorized("unauthorized");
  }
  const text = await response.text();
  const body = text ? JSON.parse(text) : {};
  if (!response.ok) throw new Error(body.detail || body.title || `HTTP ${response.status}`);
  return body;
}

// The merge policy picked in the header, as a query parameter for the profile reads.
export const policyParam = () => (state.policy ? `&mergePolicyId=${encodeURIComponent(state.policy)}` : "");

export function table(headings, rows, caption) {
  return el("table", {}, caption ? el("caption", {}, caption) : null,
    el("thead", {}, el("tr", {}, headings.map((h) => el("th", { scope: "col" }, h)))),
    el("tbody", {}, rows.length ? rows : el("tr", {}, el("td", { colspan: String(headings.length) }, "Nothing yet."))));
}

export function field(label, control, hint) {
  const id = control.id || `f-${Math.random().toString(36).slice(2, 9)}`;
  control.id = id;
  return el("div", { class: "field" }, el("label", { for: id }, label), control, hint ? el("small", {}, hint) : null);
}

export const profileLink = (id, text) => el("a", { href: `#/profile/${id}` }, text || id);
