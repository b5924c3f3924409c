"""What every experiment report shares: package versions, and the self-contained HTML page."""

from __future__ import annotations

import base64
import html
import re
from importlib import metadata
from pathlib import Path
from typing import Any

PACKAGES = ("memp", "alfworld", "textworld", "sentence-transformers", "torch", "numpy")


def versions(packages=PACKAGES) -> dict[str, str]:
    """The installed versions of ``packages``; those not installed are left out."""
    out = {}
    for name in packages:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            pass
    return out


def html_page(out: Path, md: str, title: str = "memp paper report") -> str:
    """A self-contained page from a report's Markdown, with its plots inlined as data URIs.

    Only the Markdown the reports write is understood: headings, paragraphs, pipe tables and
    ``![](file.png)`` images found in ``out``.
    """
    body: list[str] = []
    rows: list[str] = []
    for line in md.splitlines() + [""]:
        if line.startswith("|"):
            if not set(line) <= {"|", "-", " ", ":"}:
                tag = "th" if not rows else "td"
                rows.append("<tr>" + "".join(f"<{tag}>{html.escape(c.strip())}</{tag}>"
                                             for c in line.strip("|").split("|")) + "</tr>")
            continue
        if rows:
            body.append("<table>" + "".join(rows) + "</table>")
            rows = []
        m = re.match(r"!\[\]\((.+\.png)\)", line)
        if m:
            data = base64.b64encode((out / m.group(1)).read_bytes()).decode()
            body.append(f'<img alt="{m.group(1)}" src="data:image/png;base64,{data}">')
        elif line.startswith("#"):
            level = len(line) - len(line.lstrip("#"))
            body.append(f"<h{level}>{html.escape(line.lstrip('# '))}</h{level}>")
        elif line.strip():
            body.append(f"<p>{html.escape(line)}</p>")
    style = ("body{font-family:sans-serif;max-width:60em;margin:auto}table{border-collapse:collapse}"
             "td,th{border:1px solid #ccc;padding:2px 6px}img{max-width:100%}")
    return (f"<!doctype html><meta charset=utf-8><title>{html.escape(title)}</title><style>{style}</style>"
            + "\n".join(body))


# --- the paper suite's report (one writer for every benchmark) ------------------------------


def _pct(x: float) -> str:
    return f"{100 * x:.1f}"


def _per_seed(row: dict[str, Any]) -> list[float]:
    return list(row.get("per_seed") or (row.get("final_pass_by_seed") or {}).values())


def markdown_table(rows: dict[str, dict[str, Any]], bench) -> str:
    """Conditions as rows: the benchmark's rates in percent, the main one's 95 % interval, steps, per seed."""
    seeds = any(len(_per_seed(s)) > 1 for s in rows.values())
    head = ["condition", "n", *bench.columns.values(), "95% CI", "steps", *(["per seed"] if seeds else [])]
    lines = ["| " + " | ".join(head) + " |", "|---|" + "---:|" * (len(head) - 1)]
    for name, s in rows.items():
        lo, hi = s[bench.ci]
        cells = [name, str(s["n"]), *(_pct(s[c]) for c in bench.columns), f"{_pct(lo)}–{_pct(hi)}",
                 f"{s[bench.steps]:.1f}", *([" / ".join(_pct(v) for v in _per_seed(s))] if seeds else [])]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def _bars(rows: dict[str, dict[str, Any]], bench) -> dict[str, dict[str, Any]]:
    """``plots.bars`` reads success_rate / success_ci95 / avg_steps: the benchmark's main rate and steps."""
    return {name: {"success_rate": s[bench.rate], "success_ci95": s[bench.ci], "avg_steps": s[bench.steps]}
            for name, s in rows.items()}


def _curve_table(curves: dict[str, list[dict[str, Any]]], bench, memory: dict[str, list] | None = None,
                 memory_off: list[dict[str, Any]] | None = None) -> str:
    size = memory is None  # a learning curve carries the memory's size per group
    head = ["update", f"{bench.columns[bench.rate]} per group", "steps per group",
            "memory per group (active / deprecated / revisions)" if size else
            "memory at the end (active / deprecated / revisions, per seed)"]
    lines = ["| " + " | ".join(head) + " |", "|---|---|---|---|"]
    for u, groups in curves.items():
        if size:
            states = " → ".join(f"{g['active']:g}/{g['deprecated']:g}/{g['revisions']:g}" for g in groups)
        else:
            states = ", ".join(f"{m['active']}/{m['deprecated']}/{m['revisions']}" for m in memory.get(u, [])) or "-"
        lines.append(f"| {u} | {' → '.join(_pct(g[bench.rate]) for g in groups)} | "
                     f"{' → '.join(format(g[bench.steps], '.1f') for g in groups)} | {states or '-'} |")
    if memory_off:  # the same tasks without memory: how hard each group was
        lines.append(f"| memory off, same tasks | {' → '.join(_pct(g[bench.rate]) for g in memory_off)} | "
                     f"{' → '.join(format(g[bench.steps], '.1f') for g in memory_off)} | - |")
    return "\n".join(lines) + "\n"


def _paper_table(models: dict[str, dict[str, tuple]], ours: dict[str, dict[str, Any]], bench, labels) -> str:
    keys = bench.paper_keys
    head = ["strategy", *(f"paper {m}" for m in models), *(f"memp {labels.get(s, s)}" for s in ours)]
    lines = ["| " + " | ".join(head) + " |", "|---|" + "---|" * (len(head) - 1)]
    for n in next(iter(models.values())):
        paper = [" / ".join(f"{v:.2f}" for v in rows[n]) if n in rows else "-" for rows in models.values()]
        mine = [" / ".join(_pct(row[n][k]) if k != "steps" and k != "avg_steps" else f"{row[n][k]:.2f}"
                           for k in keys) if row.get(n, {}).get("n") else "not run" for row in ours.values()]
        lines.append("| " + " | ".join([n, *paper, *mine]) + " |")
    return "\n".join(lines) + "\n"


CURVES = {"figure3_update": ("figure3", "online"), "figure3_from_expert": ("figure3_from_expert", "expert+online")}
SECTIONS = (  # (table key, heading, kind)
    ("table1_build", "Table 1 — build strategies", "bars"),
    ("claims", "The paper's headline claims, judged on this run", "claims"),
    ("table2_retrieve", "Table 2 — retrieval strategies (proceduralization memory)", "bars"),
    ("figure3_update", "Figure 3 — online update from empty memory, per group of {group} tasks", "curves"),
    ("figure3_from_expert", "Figure 3, supplement — the same updaters starting from the expert memory", "curves"),
    ("self_taught_overall", "Self-taught memory — learned from empty on the training tasks, then frozen", "bars"),
    ("figure5a_transfer", "Figure 5a — transfer: whose experience the memory holds", "bars"),
    ("figure5b_k", "Figure 5b — number of retrieved procedures (k = 0 is no memory)", "bars"),
)


def write_report(out: Path, results: dict[str, Any], tables: dict[str, Any], bench, cfg) -> None:
    """report.md and the self-contained report.html, with the PNGs."""
    from memp.experiments import plots

    labels = bench.labels
    one = len([s for s in bench.sets if s in tables.get("table1_build", {})]) == 1
    md = [f"# The Memp paper's analyses on {bench.title}, reproduced with memp\n", _about(results, cfg), ""]
    for key, heading, kind in SECTIONS:
        if not tables.get(key):
            continue
        md.append(f"## {heading.format(group=cfg.group_size)}\n")
        if key == "self_taught_overall":
            md.append(_self_taught(out, tables["self_taught_training"], bench, cfg) if "self_taught_training"
                      in tables else "")
        for name, rows in tables[key].items():
            if not one:
                md.append(f"### {labels.get(name, name)}\n")
            stem = f"{key}_{name}"
            if key == "self_taught_overall":  # beside no memory and the expert's memory, for scale
                t1 = tables["table1_build"][name]
                rows = {"no memory": t1["no memory"], **{f"self-taught {u}": s for u, s in rows.items()},
                        "expert-built memory": t1["proceduralization"]}
            if kind == "bars":  # what this run played (--only leaves the other conditions empty)
                rows = {name: row for name, row in rows.items() if row.get("n")}
            if kind == "claims":
                md.append("\n".join(f"- {'yes' if c['holds'] else 'no'}: {c['claim']} ({c['evidence']})"
                                    for c in rows) + "\n")
            elif kind == "bars":
                md.append(markdown_table(rows, bench))
                plots.bars(_bars(rows, bench), out / f"{stem}.png",
                           f"{heading.split(' —')[0]} — {labels.get(name, name)}")
                md.append(f"![]({stem}.png)\n")
            else:
                base, prefix = CURVES[key]
                overall = tables[f"{base}_overall"][name]
                md.append(markdown_table({f"{prefix} {u}": s for u, s in overall.items()}, bench))
                md.append(_curve_table(rows, bench, tables[f"{base}_memory"][name],
                                       tables.get(f"{base}_memory_off", {}).get(name)))
                plots.panels(rows, out / f"{stem}.png", f"{heading.split(',')[0]} — {labels.get(name, name)}",
                             bench.curve_metrics)
                md.append(f"![]({stem}.png)\n")
        if key == "table1_build" and "table1_build" in bench.paper:
            md.append("The paper's numbers beside this run's (its agents are LLMs on the official data; compare "
                      "the direction of the effects, not the values):\n")
            md.append(_paper_table(bench.paper["table1_build"], tables["table1_build"], bench, labels))
        if key == "table2_retrieve" and "table2_retrieve" in bench.paper:
            md.append(_paper_table(bench.paper["table2_retrieve"], tables["table2_retrieve"], bench, labels))
    text = "\n".join(md)
    (out / "report.md").write_text(text, encoding="utf-8")
    (out / "report.html").write_text(html_page(out, text, f"memp {bench.name} paper report"), encoding="utf-8")


def _self_taught(out: Path, training: dict[str, list[dict[str, Any]]], bench, cfg) -> str:
    """The learning curves of the training stream: rate, steps and memory size per group (all seeds)."""
    from memp.experiments import plots

    metrics = [*bench.curve_metrics[:1], (bench.steps, "steps", False), ("active", "active procedures", False),
               ("deprecated", "deprecated procedures", False), ("revisions", "revisions", False)]
    plots.panels(training, out / "self_taught_training.png",
                 f"Self-taught: learning on the training tasks ({cfg.passes} pass(es))", metrics)
    return (f"Memory starts empty; the agent plays the training tasks ({cfg.passes} pass(es), episodes of at "
            f"most {cfg.train_max_steps} steps) and its runs update memory; then memory is frozen and the "
            f"held-out tasks are played. Learning curves, per group of {cfg.group_size} training episodes:\n\n"
            + _curve_table(training, bench) + "\n![](self_taught_training.png)\n\nHeld out, memory frozen:\n")


def _about(r: dict[str, Any], cfg) -> str:
    versions = ", ".join(f"{k} {v}" for k, v in r["versions"].items())
    data = ""
    if "data" in r:
        rows = list(r["data"].values())
        data = ("\n| " + " | ".join(rows[0]) + " |\n|" + "---|" * len(rows[0]) + "\n"
                + "\n".join("| " + " | ".join(str(v) for v in row.values()) + " |" for row in rows) + "\n")
    else:
        data = (f"Games: {r['source']}; {r['gold_runs']} gold runs from {r['n_train_games']} train games; "
                f"{r['n_test_games']} test games.")
        if cfg.only is None or "agent-built memory" in cfg.only:
            data += (f" Agent-built memory: the agent's {r['agent_built_runs']} winning runs on the train games "
                     "(exported as agent-built-memory.jsonl).")
        if "memory_from" in r:
            data += f" Imported memory: {r['memory_from']['procedures']} procedures from {r['memory_from']['path']}."
    return (f"Agent: {r['agent']}. Seeds {', '.join(str(s) for s in cfg.seeds)}, pooled; unless a row says "
            f"otherwise: proceduralization memory, retrieval {cfg.retrieve}, k = {cfg.k}, memory frozen while "
            f"testing; embedder {cfg.embedder}. Success rates with 95 % Wilson intervals (the seeds replay "
            f"the same tasks, so pooled intervals are narrower than the evidence). "
            f"{r['seconds_all_runs']:.0f} s on {r['machine']['cores']} cores (every run into this folder; this "
            f"one {r['seconds']:.0f} s). Versions: {versions}. Tokens (prompt + completion, every episode): "
            f"{r['usage']['tokens']}; cost ${r['usage']['cost_usd']:.4f} (at `--llm-price`; a cached answer costs "
            f"nothing).\n\n{data}")
