// Experiments from `memp serve --experiments DIR`: results.json as tables, report.md, PNG plots.
import { api, href, show } from "./core.js";
import { facts, fmtNumber, h, table } from "./dom.js";

export async function list() {
  const found = await api("/v1/experiments");
  const intro = found.length ? null : h("p", {},
    "No experiments to show. Start the service with `memp serve --experiments DIR`, where DIR holds an "
    + "experiment's results.json, report.md and plots (or one folder per experiment).");
  show(h("h1", {}, "Experiments"), intro,
    found.length ? h("ul", {}, found.map((e) => h("li", {},
      h("a", { href: href(`experiments/${encodeURIComponent(e.name)}`) }, e.name),
      h("span", { class: "muted" }, ` — ${[e.has_results && "results", e.has_report && "report",
        e.plots.length && `${e.plots.length} plot(s)`].filter(Boolean).join(", ")}`)))) : null);
}

export async function experiment(name) {
  const e = await api(`/v1/experiments/${encodeURIComponent(name)}`);
  const plotUrl = (file) => `/v1/experiments/${encodeURIComponent(name)}/files/${encodeURIComponent(file)}`;
  const used = new Set();
  const image = (file, alt) => {
    // <img src> cannot send the bearer token, so the plot is fetched and shown from a blob.
    const img = h("img", { class: "plot", alt: alt || file });
    if (e.plots.includes(file)) {
      used.add(file);
      api(plotUrl(file), { raw: true }).then((r) => r.blob()).then((b) => { img.src = URL.createObjectURL(b); })
        .catch(() => { img.alt = `${file} (could not be loaded)`; });
    }
    return img;
  };
  const report = e.report ? markdown(e.report, image) : [];
  const rest = e.plots.filter((p) => !used.has(p));
  show(h("h1", {}, `Experiment: ${e.name}`),
    e.report ? h("section", { "aria-label": "Report" }, report) : null,
    rest.length ? [h("h2", {}, "Plots"), rest.map((p) => h("figure", {}, image(p, p), h("figcaption", {}, p)))] : null,
    e.results !== null ? [h("h2", {}, "results.json"), renderValue(e.results, 0)] : null);
}

// -- results.json: nested objects become tables where they look like rows ------------------------

const isScalar = (v) => v === null || ["string", "number", "boolean"].includes(typeof v)
  || (Array.isArray(v) && v.length <= 4 && v.every((x) => typeof x === "number"));
const isPlain = (v) => v !== null && typeof v === "object" && !Array.isArray(v);

function cell(v) {
  if (v === null) return "–";
  if (Array.isArray(v)) return v.map(fmtNumber).join(" – ");
  return fmtNumber(v);
}

function renderValue(value, depth) {
  if (isScalar(value)) return cell(value);
  if (depth > 4) return h("pre", {}, JSON.stringify(value, null, 2));
  if (Array.isArray(value)) {
    if (value.every(isPlain) && value.every((r) => Object.values(r).every(isScalar))) return rowsTable(value.map((r, i) => [String(i + 1), r]));
    return h("pre", {}, JSON.stringify(value, null, 2));
  }
  const entries = Object.entries(value);
  // {condition: {metric: number, ...}, ...} is a table with one row per condition.
  if (entries.length && entries.every(([, v]) => isPlain(v) && Object.values(v).every(isScalar))) return rowsTable(entries);
  const scalars = entries.filter(([, v]) => isScalar(v));
  const nested = entries.filter(([, v]) => !isScalar(v));
  return h("div", {}, scalars.length ? facts(scalars.map(([k, v]) => [k, cell(v)])) : null,
    nested.map(([k, v]) => h("section", {}, h(depth ? "h4" : "h3", {}, k), renderValue(v, depth + 1))));
}

function rowsTable(entries) {
  const columns = [...new Set(entries.flatMap(([, r]) => Object.keys(r)))];
  return table(["", ...columns.map((c) => ({ label: c, cls: "num" }))],
    entries.map(([name, r]) => [name, ...columns.map((c) => cell(r[c] ?? null))]));
}

// -- report.md: headings, paragraphs, lists, pipe tables, code blocks and images ---------------------

function inline(text, image) {
  const out = [];
  const pattern = /!\[([^\]]*)\]\(([^)\s]+)\)|`([^`]+)`|\*\*([^*]+)\*\*/g;
  let at = 0;
  for (const m of text.matchAll(pattern)) {
    out.push(text.slice(at, m.index));
    if (m[2] !== undefined) out.push(image(m[2], m[1]));
    else if (m[3] !== undefined) out.push(h("code", {}, m[3]));
    else out.push(h("strong", {}, m[4]));
    at = m.index + m[0].length;
  }
  out.push(text.slice(at));
  return out;
}

function markdown(text, image) {
  const lines = text.split(/\r?\n/);
  const blocks = [];
  let i = 0;
  const cells = (line) => line.trim().replace(/^\||\|$/g, "").split("|").map((c) => c.trim());
  while (i < lines.length) {
    const line = lines[i];
    if (!line.trim()) { i += 1; continue; }
    const heading = line.match(/^(#{1,4})\s+(.*)$/);
    if (heading) {
      // The page already has an h1; report headings start one level lower.
      blocks.push(h(`h${Math.min(heading[1].length + 1, 5)}`, {}, inline(heading[2], image)));
      i += 1;
    } else if (line.startsWith("```")) {
      const code = [];
      for (i += 1; i < lines.length && !lines[i].startsWith("```"); i += 1) code.push(lines[i]);
      blocks.push(h("pre", {}, code.join("\n")));
      i += 1;
    } else if (line.trim().startsWith("|")) {
      const rows = [];
      for (; i < lines.length && lines[i].trim().startsWith("|"); i += 1) {
        if (!/^\s*\|[\s:|-]+\|\s*$/.test(lines[i])) rows.push(cells(lines[i]));
      }
      blocks.push(table(rows[0], rows.slice(1).map((r) => r.map((c) => inline(c, image)))));
    } else if (/^\s*[-*]\s+/.test(line)) {
      const items = [];
      for (; i < lines.length && /^\s*[-*]\s+/.test(lines[i]); i += 1) items.push(h("li", {}, inline(lines[i].replace(/^\s*[-*]\s+/, ""), image)));
      blocks.push(h("ul", {}, items));
    } else {
      const para = [];
      for (; i < lines.length && lines[i].trim() && !/^(#|```|\s*\||\s*[-*]\s)/.test(lines[i]); i += 1) para.push(lines[i]);
      blocks.push(h("p", {}, inline(para.join(" "), image)));
    }
  }
  return blocks;
}
