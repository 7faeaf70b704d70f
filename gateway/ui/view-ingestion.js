// Ingestion: messages/s per dataset and per connection over the last hour (inline SVG),
// consumer lag, lake freshness, dead letters and validation failures; refreshed every 2 s.
import { api, el, table, when } from "./api.js";

const PALETTE = ["#2563c9", "#b5520f", "#1b7f44", "#7a4fc9", "#a3153d", "#0f6f7f"];

function chart(id, title, series, points, step) {
  const w = 600, h = 160, names = Object.keys(series);
  const top = Math.max(1, ...names.flatMap((n) => series[n]));
  const svg = el("svg", { svg: 1, id, viewBox: `0 0 ${w} ${h + 20}`, role: "img", "aria-label": `${title}: ${names.map((n) => `${n} ${series[n].at(-1)?.toFixed(1)}/s now`).join(", ") || "no traffic"}` });
  svg.append(el("line", { svg: 1, x1: 0, y1: h, x2: w, y2: h, class: "axis" }),
    el("text", { svg: 1, x: 2, y: 12, class: "tick" }, `${top.toFixed(1)}/s`), el("text", { svg: 1, x: 2, y: h + 16, class: "tick" }, "−60 min"),
    el("text", { svg: 1, x: w - 2, y: h + 16, class: "tick", "text-anchor": "end" }, "now"));
  names.forEach((n, i) => svg.append(el("polyline", { svg: 1, fill: "none", stroke: PALETTE[i % PALETTE.length], "stroke-width": 2, "data-series": n,
    points: series[n].map((v, j) => `${((j / Math.max(1, points - 1)) * w).toFixed(1)},${(h - (v / top) * (h - 16)).toFixed(1)}`).join(" ") })));
  const legend = el("ul", { class: "legend" }, names.map((n, i) => el("li", {}, el("svg", { svg: 1, class: "swatch", viewBox: "0 0 10 10", "aria-hidden": "true" }, el("rect", { svg: 1, width: 10, height: 10, fill: PALETTE[i % PALETTE.length] })),
    `${n}: ${(series[n].slice(-6).reduce((a, b) => a + b, 0) / 6).toFixed(2)}/s last minute, ${Math.round(series[n].reduce((a, b) => a + b, 0) * step)} in the hour`)));
  return el("figure", {}, el("figcaption", {}, title), svg, legend);
}

export async function render(main) {
  const charts = el("section", { class: "card wide", id: "rates" }, el("h2", {}, "Accepted messages per second, last hour"));
  const health = el("section", { class: "card", id: "health" }, el("h2", {}, "Consumers and lake"));
  const letters = el("section", { class: "card", id: "dead-letters" }, el("h2", {}, "Dead letters"));
  const failures = el("section", { class: "card wide", id: "validation" }, el("h2", {}, "Validation failures"));
  main.append(el("div", { class: "grid" }, charts, health, letters, failures));
  let timer = null, stopped = false;

  async function refresh() {
    const [i, o] = await Promise.all([api("/ui/api/ingestion"), api("/ui/api/overview")]);
    charts.replaceChildren(charts.firstChild, el("div", { class: "columns" },
      chart("chart-datasets", "by dataset", i.datasets, i.points, i.stepSeconds), chart("chart-connections", "by connection", i.connections, i.points, i.stepSeconds)));
    const rows = [["stored in the stream", o.accepted === null ? "unavailable" : String(o.accepted)],
      ...(o.consumerLag === null ? [] : Object.entries(o.consumerLag).map(([k, v]) => [`lag of ${k}`, `${v} messages`])),
      ...Object.entries(o.lakeAgeSeconds).map(([k, v]) => [`lake freshness of ${k}`, `${v} s ago`]),
      ...(o.rejected === null ? [] : [["rejected requests", Object.entries(o.rejected).map(([k, v]) => `${k} ${v}`).join(", ") || "none"]])];
    health.replaceChildren(health.firstChild, el("dl", { id: "stats" }, rows.flatMap(([k, v]) => [el("dt", {}, k), el("dd", {}, v)])));
    letters.replaceChildren(letters.firstChild,
      el("p", { id: "dead-letter-counts" }, Object.entries(i.deadLetters.byReason).map(([k, v]) => `${k}: ${v}`).join(", ") || "None."),
      table(["time", "reason", "consumer", "detail"], i.deadLetters.recent.map((d) => el("tr", {}, el("td", {}, when(d.time)), el("td", {}, d.reason), el("td", {}, d.consumer), el("td", {}, d.detail)))));
    failures.replaceChildren(failures.firstChild,
      el("p", { id: "failure-counts" }, Object.entries(i.validationFailures.byDataset).map(([k, v]) => `${k}: ${v}`).join(", ") || "None."),
      table(["received", "dataset", "source", "reasons"], i.validationFailures.recent.map((f) => el("tr", {}, el("td", {}, new Date(f.receivedMs).toLocaleString()),
        el("td", {}, f.dataset), el("td", {}, f.source), el("td", {}, f.reasons.join("; "))))));
  }
  const loop = async () => { try { await refresh(); } catch (e) { /* shown on the next success */ } if (!stopped) timer = setTimeout(loop, 2000); };
  await refresh();
  timer = setTimeout(loop, 2000);
  return () => { stopped = true; clearTimeout(timer); };
}
