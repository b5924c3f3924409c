// The memory views: procedures, search, one procedure, a trajectory, deprecations.
import { api, go, href, say, show, state } from "./core.js";
import { badge, errorBox, facts, fmtDate, fmtNumber, fmtRate, h, table } from "./dom.js";

const PAGE = 50;

function options(values, selected, anyLabel) {
  return [h("option", { value: "" }, anyLabel),
    ...values.map((v) => h("option", { value: v, selected: v === selected }, v))];
}

function pager(view, params, offset, limit, total, shown) {
  const first = total === 0 ? 0 : offset + 1;
  const last = offset + shown;
  const prev = offset > 0 ? h("a", { href: href(view, { ...params, offset: Math.max(0, offset - limit) }) }, "← Previous") : null;
  const next = last < total ? h("a", { href: href(view, { ...params, offset: offset + limit }) }, "Next →") : null;
  return h("nav", { class: "pager", "aria-label": "Pages" }, prev,
    h("span", {}, `${fmtNumber(first)}–${fmtNumber(last)} of ${fmtNumber(total)}`), next);
}

function procedureLink(p) {
  return h("a", { href: href(`procedure/${encodeURIComponent(p.id)}`) }, p.key);
}

// -- procedures table ---------------------------------------------------------------------------

export async function procedures(q) {
  const filters = { status: q.get("status") || "", task_type: q.get("task_type") || "", builder: q.get("builder") || "" };
  const sort = q.get("sort") || "updated";
  const order = q.get("order") === "asc" ? "asc" : "desc";
  const offset = Math.max(0, Number.parseInt(q.get("offset"), 10) || 0);
  const query = new URLSearchParams({ sort, order, limit: PAGE, offset });
  for (const [k, v] of Object.entries(filters)) if (v) query.set(k, v);
  // The counts and filter choices are refreshed too: agents keep writing while the page is open.
  const [page, fresh] = await Promise.all([api(`/v1/procedures?${query}`), api("/v1/inspector/summary")]);
  const s = Object.assign(state.summary, fresh);

  const status = h("select", { name: "status" }, options(["active", "deprecated"], filters.status, "any"));
  const taskType = h("select", { name: "task_type" }, options(s.task_types, filters.task_type, "any"));
  const builder = h("select", { name: "builder" }, options(s.builders, filters.builder, "any"));
  const form = h("form", { class: "filters", "aria-label": "Filters", onsubmit: (ev) => {
    ev.preventDefault();
    go("procedures", { status: status.value, task_type: taskType.value, builder: builder.value, sort, order });
  } },
  h("label", {}, "Status", status), h("label", {}, "Task type", taskType), h("label", {}, "Builder", builder),
  h("button", { type: "submit" }, "Apply filters"));

  const sortHeader = (key, label) => {
    const active = sort === key;
    const nextOrder = active && order === "desc" ? "asc" : "desc";
    return { label: h("button", { type: "button", class: "link", onclick: () => go("procedures", { ...filters, sort: key, order: nextOrder }) },
      label, active ? (order === "desc" ? " ↓" : " ↑") : ""),
    cls: key === "updated" ? "wide" : "num", sort: active ? (order === "desc" ? "descending" : "ascending") : null };
  };
  const headers = [{ label: "Task", cls: "task" }, { label: "Type", cls: "wide" }, { label: "Builder", cls: "wide" },
    { label: "Version", cls: "num wide" }, "Status",
    sortHeader("uses", "Uses"), sortHeader("success_rate", "Success"), sortHeader("updated", "Updated")];
  const rows = page.items.map((p) => [procedureLink(p), p.task_type || "–", p.builder,
    `v${p.version}`, badge(p.status), fmtNumber(p.stats.uses), fmtRate(p.stats), fmtDate(p.updated_at)]);
  const listing = rows.length
    ? table(headers, rows)
    : h("p", {}, "No procedure matches these filters.");
  show(h("h1", {}, "Procedures"),
    h("p", { class: "muted" }, `${fmtNumber(s.active)} active, ${fmtNumber(s.deprecated)} deprecated in namespace ${s.namespace}.`),
    form, listing, pager("procedures", { ...filters, sort, order }, offset, PAGE, page.total ?? 0, page.items.length));
}

// -- search -------------------------------------------------------------------------------------

export async function search(q) {
  const text = q.get("q") || "";
  const k = q.get("k") || "5";
  const strategy = q.get("strategy") || "";
  const input = h("input", { type: "search", id: "task", name: "q", value: text, required: true,
    placeholder: "e.g. put a clean apple in the fridge" });
  const kSelect = h("select", { name: "k" }, ["1", "3", "5", "10", "20"].map((v) => h("option", { value: v, selected: v === k }, v)));
  const strategySelect = h("select", { name: "strategy" },
    options(["query", "avefact", "hybrid", "random"], strategy, "the service's"));
  const form = h("form", { class: "row search", role: "search", onsubmit: (ev) => {
    ev.preventDefault();
    go("search", { q: input.value.trim(), k: kSelect.value, strategy: strategySelect.value });
  } },
  h("label", { for: "task" }, "Task", input), h("label", {}, "How many", kSelect),
  h("label", {}, "Retriever", strategySelect), h("button", { type: "submit" }, "Search"));

  let results = h("p", { class: "muted" }, "Type a task as an agent would receive it: the list shows what the retriever would give that agent (active procedures only).");
  if (text) {
    const body = { task: text, k: Number(k) };
    if (strategy) body.strategy = strategy;
    const { hits } = await api("/v1/retrieve", { method: "POST", body });
    results = hits.length
      ? h("ol", { class: "hits", "aria-label": "Retrieved procedures" }, hits.map((hit) => h("li", { class: "card hit" },
        h("h3", {}, procedureLink(hit.procedure)),
        h("p", { class: "muted" }, `score `, h("strong", { class: "score" }, hit.score.toFixed(3)),
          ` · ${hit.retriever} · ${hit.ref} · used ${hit.procedure.stats.uses}×, success ${fmtRate(hit.procedure.stats)}`),
        hit.procedure.script.length ? h("ol", { class: "script" }, hit.procedure.script.slice(0, 4).map((l) => h("li", {}, l))) : null)))
      : h("p", {}, "No active procedure was retrieved for this task.");
  }
  show(h("h1", {}, "Search"), form, h("section", { "aria-label": "Results" }, results));
  if (!text) input.focus();
}

// -- one procedure -------------------------------------------------------------------------------

function stepLines(steps) {
  return h("ul", { class: "lines" }, steps.flatMap((s) => [
    h("li", {}, `> ${s.action}`),
    s.observation ? h("li", { class: "muted" }, `  ${s.observation}`) : null,
  ]));
}

function statusForm(p) {
  const deprecate = p.status === "active";
  const reason = h("input", { id: "status-reason", name: "reason", required: true, size: 40,
    value: deprecate ? "deprecated from the inspector" : "restored from the inspector" });
  return h("form", { class: "row", "aria-label": deprecate ? "Deprecate" : "Restore", onsubmit: async (ev) => {
    ev.preventDefault();
    const action = deprecate ? "deprecate" : "restore";
    await changeStatus(p.id, action, reason.value.trim(), () => go(`procedure/${encodeURIComponent(p.id)}`));
  } },
  h("label", { for: "status-reason" }, "Reason (kept in the event log)", reason),
  h("button", { type: "submit", id: "status-action", class: deprecate ? "danger" : "" },
    deprecate ? "Deprecate" : "Restore"));
}

async function changeStatus(id, action, reason, then) {
  try {
    await api(`/v1/procedures/${encodeURIComponent(id)}/${action}`, { method: "POST", body: { reason } });
  } catch (err) {
    say("");
    document.getElementById("main").prepend(errorBox(`Could not ${action}: ${err.message}`));
    return;
  }
  Object.assign(state.summary, await api("/v1/inspector/summary"));
  state.flash = action === "deprecate" ? "Deprecated: agents no longer retrieve it."
    : "Restored: agents retrieve it again, with fresh statistics.";
  then();
}

function provenance(p) {
  const prov = p.provenance;
  const link = (id) => h("a", { href: href(`trajectory/${encodeURIComponent(id)}`) }, id);
  return facts([
    ["Source trajectories", prov.trajectory_ids.length ? h("ul", {}, prov.trajectory_ids.map((id) => h("li", {}, link(id)))) : null],
    ["Revised after failure", prov.revised_from_failure ? link(prov.revised_from_failure) : null],
    ["Built by", `${prov.builder || p.builder}${prov.builder_version ? ` ${prov.builder_version}` : ""}`],
    ["Agents", prov.agents.join(", ")],
    ["Models", prov.models.join(", ")],
    ["Imported from", prov.imported_from ?? undefined],
  ]);
}

async function diffSection(id, versions, q) {
  const n = versions.length;
  if (n < 2) return h("section", { "aria-labelledby": "diff-h" }, h("h2", { id: "diff-h" }, "Changes"), h("p", {}, "Only one version so far."));
  const a = Number(q.get("a")) || versions[n - 2].version;
  const b = Number(q.get("b")) || versions[n - 1].version;
  const pick = (name, value) => h("select", { name, id: `diff-${name}` },
    versions.map((v) => h("option", { value: v.version, selected: v.version === value }, `v${v.version}`)));
  const from = pick("a", a);
  const to = pick("b", b);
  const form = h("form", { class: "row", "aria-label": "Compare versions", onsubmit: (ev) => {
    ev.preventDefault();
    go(`procedure/${encodeURIComponent(id)}`, { v: q.get("v"), a: from.value, b: to.value });
  } }, h("label", { for: "diff-a" }, "From", from), h("label", { for: "diff-b" }, "To", to),
  h("button", { type: "submit", class: "secondary" }, "Compare"));
  const diff = await api(`/v1/procedures/${encodeURIComponent(id)}/diff?a=${a}&b=${b}`);
  const changed = Object.entries(diff.fields).filter(([, lines]) => lines.some((l) => l.op !== "same"));
  const mark = { same: "  ", added: "+ ", removed: "- " };
  const same = Object.keys(diff.fields).filter((f) => !changed.some(([c]) => c === f));
  const body = changed.length
    ? [same.length ? h("p", { class: "muted" }, `Unchanged: ${same.join(", ")}.`) : null,
      changed.map(([field, lines]) => [h("h3", {}, field),
      h("ul", { class: "lines diff", "aria-label": `${field}: v${a} to v${b}` }, lines.map((l) =>
        h("li", { class: l.op }, `${mark[l.op]}${l.text}`)))])]
    : h("p", {}, `No differences between v${a} and v${b} in summary, script, steps or notes.`);
  return h("section", { id: "diff", "aria-labelledby": "diff-h" },
    h("h2", { id: "diff-h" }, `Changes from v${a} to v${b}`), form, body);
}

export async function procedure(id, q) {
  const history = await api(`/v1/procedures/${encodeURIComponent(id)}/history`);
  const versions = history.versions;
  const head = versions[versions.length - 1];
  const wanted = Number(q.get("v")) || head.version;
  const p = versions.find((v) => v.version === wanted) || head;
  const madeBy = {};
  for (const e of history.events) if (["created", "revised", "imported"].includes(e.kind) && !madeBy[e.version]) madeBy[e.version] = e;

  const keywords = Object.entries(p.keywords);
  const sections = [
    h("h1", {}, p.key),
    h("p", {}, badge(p.status), ` version ${p.version} of ${head.version}`,
      p.version !== head.version ? [" · ", h("a", { href: href(`procedure/${encodeURIComponent(id)}`) }, "see the newest")] : null),
    p.version === head.version ? statusForm(head) : null,
    facts([
      ["Id", p.id], ["Task type", p.task_type], ["Builder", p.builder],
      ["Uses", fmtNumber(p.stats.uses)], ["Successes", fmtNumber(p.stats.successes)], ["Success rate", fmtRate(p.stats)],
      ["Status reason", p.status_reason], ["Created", fmtDate(p.created_at)], ["Updated", fmtDate(p.updated_at)],
    ]),
    h("h2", {}, "Keywords"),
    keywords.length ? table(["Name", "Value"], keywords) : h("p", { class: "muted" }, "None."),
    p.summary ? [h("h2", {}, "Summary"), h("p", {}, p.summary)] : null,
    h("h2", {}, "Script"),
    p.script.length ? h("ol", { class: "script" }, p.script.map((l) => h("li", {}, l))) : h("p", { class: "muted" }, "No script (this builder keeps the trajectory)."),
    h("h2", {}, "Trajectory excerpt"),
    p.steps.length ? stepLines(p.steps) : h("p", { class: "muted" }, "No steps kept."),
    h("h2", {}, "Pitfalls"),
    p.notes.length ? h("ul", {}, p.notes.map((n) => h("li", {}, n))) : h("p", { class: "muted" }, "None learned yet."),
    h("h2", {}, "Provenance"), provenance(p),
    h("h2", { id: "versions-h" }, `Versions (${versions.length})`),
    table(["Version", "Made by", "When", { label: "Uses", cls: "num" }, { label: "Success", cls: "num" }, "Status"],
      versions.map((v) => [
        v.version === p.version ? h("strong", {}, `v${v.version} (shown)`) : h("a", { href: href(`procedure/${encodeURIComponent(id)}`, { v: v.version }) }, `v${v.version}`),
        madeBy[v.version]?.kind ?? "–", fmtDate(v.created_at), fmtNumber(v.stats.uses), fmtRate(v.stats), badge(v.status)])),
    await diffSection(id, versions, q),
    h("h2", {}, "Events"),
    table(["When", "Event", "Version", "Trajectory", "Detail"], history.events.slice().reverse().map((e) => [
      fmtDate(e.at), e.kind, `v${e.version}`,
      e.trajectory_id ? h("a", { href: href(`trajectory/${encodeURIComponent(e.trajectory_id)}`) }, e.trajectory_id.slice(0, 12)) : "–",
      Object.keys(e.detail).length ? JSON.stringify(e.detail) : "–"])),
  ];
  show(sections);
}

// -- a trajectory --------------------------------------------------------------------------------

export async function trajectory(id) {
  const t = await api(`/v1/trajectories/${encodeURIComponent(id)}`);
  show(h("h1", {}, `Trajectory: ${t.task.text}`),
    facts([["Id", t.id], ["Task type", t.task.type], ["Outcome", t.success ? "success" : "failure"],
      ["Reward", fmtNumber(t.reward)], ["Agent", t.agent], ["Model", t.model],
      ["Started", t.started_at ? fmtDate(t.started_at) : null], ["Error", t.error]]),
    h("h2", {}, `Steps (${t.steps.length})`),
    h("ol", { class: "steps" }, t.steps.map((s) => h("li", {},
      s.thought ? h("p", { class: "muted" }, `thought: ${s.thought}`) : null,
      h("code", {}, s.action), s.observation ? h("p", {}, s.observation) : null))));
}

// -- deprecations ---------------------------------------------------------------------------------

export async function deprecations(q) {
  const offset = Math.max(0, Number.parseInt(q.get("offset"), 10) || 0);
  const page = await api(`/v1/deprecations?limit=${PAGE}&offset=${offset}`);
  const reason = h("input", { id: "restore-reason", required: true, size: 40, value: "restored from the inspector" });
  const evidence = (d) => {
    const { uses, successes, ...rest } = d.evidence;
    const parts = uses !== undefined ? [`${successes ?? 0} of ${uses} uses succeeded`] : [];
    return parts.concat(Object.entries(rest).map(([k, v]) => `${k}: ${JSON.stringify(v)}`)).join("; ") || "–";
  };
  const rows = page.items.map((d) => [
    fmtDate(d.at),
    h("a", { href: href(`procedure/${encodeURIComponent(d.procedure_id)}`) }, d.key ?? d.procedure_id),
    `v${d.version}`, d.reason ?? "–", evidence(d), d.status_now ? badge(d.status_now) : "gone",
    d.status_now === "deprecated"
      ? h("button", { type: "button", class: "secondary restore", "data-id": d.procedure_id,
        "aria-label": `Restore ${d.key ?? d.procedure_id}`,
        onclick: () => changeStatus(d.procedure_id, "restore", reason.value.trim() || "restored from the inspector",
          () => go("deprecations", { offset })) }, "Restore")
      : "–"]);
  show(h("h1", {}, "Deprecations"),
    h("p", { class: "muted" }, "Every time a procedure was retired, newest first, with the statistics it had then. Restoring makes agents retrieve it again and starts fresh statistics."),
    h("label", { for: "restore-reason" }, "Reason for restoring (kept in the event log)", reason),
    rows.length
      ? table([{ label: "When", cls: "wide" }, "Procedure", { label: "Version", cls: "wide" }, "Reason", "Evidence", "Now", "Action"], rows)
      : h("p", {}, "Nothing has been deprecated."),
    pager("deprecations", {}, offset, PAGE, page.total, page.items.length));
}
