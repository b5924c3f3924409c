// Small DOM helpers. Everything from the API goes in as text nodes, never as HTML, since
// procedures hold whatever agents wrote.

export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs || {})) {
    if (value === null || value === undefined || value === false) continue;
    if (name.startsWith("on")) el.addEventListener(name.slice(2), value);
    else if (name === "class") el.className = value;
    else el.setAttribute(name, value === true ? "" : value);
  }
  append(el, children);
  return el;
}

function append(el, children) {
  for (const child of children.flat(Infinity)) {
    if (child === null || child === undefined || child === false) continue;
    el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
}

export function fmtRate(stats) {
  if (!stats || !stats.uses) return "–";
  return `${Math.round((100 * stats.successes) / stats.uses)}%`;
}

export function fmtDate(iso) {
  if (!iso) return "–";
  const d = new Date(iso);
  return Number.isNaN(d.getTime()) ? iso : d.toISOString().replace("T", " ").slice(0, 19) + " UTC";
}

export function fmtNumber(v) {
  if (typeof v !== "number") return String(v);
  return Number.isInteger(v) ? v.toLocaleString("en") : v.toFixed(3);
}

export function badge(status) {
  return h("span", { class: `badge ${status}` }, status);
}

export function table(headers, rows) {
  // headers: [{label, cls}] or strings; rows: arrays of cell contents (or {cells, cls}).
  const head = h("tr", {}, headers.map((c) => (typeof c === "string"
    ? h("th", { scope: "col" }, c) : h("th", { scope: "col", class: c.cls, "aria-sort": c.sort }, c.label))));
  const body = rows.map((r) => h("tr", {}, r.map((cell, i) =>
    h("td", { class: typeof headers[i] === "string" ? null : headers[i].cls }, cell))));
  return h("div", { class: "table" }, h("table", {}, h("thead", {}, head), h("tbody", {}, body)));
}

export function facts(pairs) {
  return h("dl", { class: "facts" }, pairs.filter(([, v]) => v !== undefined)
    .map(([k, v]) => [h("dt", {}, k), h("dd", {}, v === null || v === "" ? "–" : v)]));
}

export function errorBox(message) {
  return h("div", { class: "error", role: "alert" }, message);
}
