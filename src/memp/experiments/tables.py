"""The paper's tables and figures, pooled from a suite's records, and its five claims judged on them.

Tables are per held-out set: ``{table: {set: {row: summary}}}``, summaries by the benchmark's
``summarise`` (success rate for ALFWorld, the official metrics for TravelPlanner).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import replace
from typing import Any

from memp.experiments.suite import TRAIN, EpisodeRecord

BUILDS = ("trajectory", "script", "proceduralization")
RETRIEVERS = ("random", "query", "avefact", "hybrid")
UPDATES = ("vanilla", "validation", "adjustment")
KS = (0, 1, 2, 3, 5, 10, 15, 20)
# (condition prefix, table key): online from empty memory (Figure 3), from the expert's memory
# (its supplement), and self-taught: memory learned on the training tasks, then frozen.
LEARNING = (("online", "figure3"), ("expert+online", "figure3_from_expert"), ("self-taught", "self_taught"))

Summarise = Callable[..., dict[str, Any]]


def wilson(successes: int, n: int, z: float = 1.96) -> tuple[float, float]:
    """95 % Wilson score interval of a success rate."""
    if n == 0:
        return (0.0, 0.0)
    p = successes / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return (round(max(0.0, centre - half), 4), round(min(1.0, centre + half), 4))


def by_group(records: Sequence[EpisodeRecord], summarise: Summarise) -> list[dict[str, Any]]:
    """Per group of tasks (pooled over seeds), in playing order."""
    groups = sorted({r.group for r in records})
    return [{"group": g, **summarise([r for r in records if r.group == g])} for g in groups]


def same_tasks_without_memory(curve_records: Sequence[EpisodeRecord], no_memory: Sequence[EpisodeRecord],
                              summarise: Summarise) -> list[dict[str, Any]]:
    """``by_group`` of the memory-off episodes of the very tasks each group of a stream played.

    A stream's groups hold different tasks, some harder than others: the memory-off rate of the
    same tasks tells a group's difficulty apart from what memory learned by then."""
    group_of = {(r.seed, r.task_id): r.group for r in curve_records}
    matched = [replace(r, group=group_of[(r.seed, r.task_id)]) for r in no_memory
               if (r.seed, r.task_id) in group_of]
    return by_group(matched, summarise) if len(matched) == len(curve_records) else []


def learning_curve(records: Sequence[EpisodeRecord], summarise: Summarise) -> list[dict[str, Any]]:
    """``by_group`` with the memory's size after each group (averaged over seeds)."""
    curve = by_group(records, summarise)
    for point in curve:
        last: dict[int, dict[str, int]] = {}
        for r in records:
            if r.group == point["group"] and r.memory is not None:
                last[r.seed] = r.memory
        for key in ("active", "deprecated", "revisions"):
            point[key] = round(sum(m[key] for m in last.values()) / len(last), 2) if last else 0
    return curve


def final_memory(records: Sequence[EpisodeRecord], seeds: Sequence[int]) -> list[dict[str, int]]:
    """Each seed's memory size at the end of a learning condition."""
    out = []
    for seed in seeds:
        states = [r.memory for r in records if r.seed == seed and r.memory is not None]
        if states:
            out.append({"seed": seed, **states[-1]})
    return out


def paper_tables(records: Sequence[EpisodeRecord], sets: Sequence[str], seeds: Sequence[int],
                 summarise: Summarise, *, retrieve: str, k: int, ks: Sequence[int]) -> dict[str, Any]:
    """Every table and figure, per held-out set, pooled over the seeds."""
    rows: dict[tuple[str, str], list[EpisodeRecord]] = {}
    for r in records:
        rows.setdefault((r.set, r.condition), []).append(r)
    out: dict[str, Any] = {}

    def put(key: str, name: str, value: Any) -> None:
        out.setdefault(key, {})[name] = value

    for name in sets:
        if not any(s == name for s, _ in rows):
            continue

        def pooled(cond: str, name=name) -> dict[str, Any]:
            return summarise(rows.get((name, cond), []), seeds)

        def has(*conds: str, name=name) -> bool:
            return any((name, c) in rows for c in conds)

        t1 = {"no memory": pooled("no memory"), **{b: pooled(b) for b in BUILDS}}
        main = t1["proceduralization"]
        put("table1_build", name, t1)
        if has(*(f"retrieve {r}" for r in RETRIEVERS)):
            put("table2_retrieve", name, {"none": t1["no memory"], **{
                r: main if r == retrieve else pooled(f"retrieve {r}") for r in RETRIEVERS}})
        for prefix, key in LEARNING:
            if not has(*(f"{prefix} {u}" for u in UPDATES)):
                continue
            conds = {u: rows.get((name, f"{prefix} {u}"), []) for u in UPDATES}
            if key != "self_taught":  # a self-taught memory is frozen on the held-out tasks: no curve there
                put("figure3_update" if key == "figure3" else key, name,
                    {u: by_group(rs, summarise) for u, rs in conds.items()})
                # Every updater plays a seed's tasks in the same order, so one baseline serves them all.
                played = next((rs for rs in conds.values() if rs), [])
                put(f"{key}_memory_off", name,
                    same_tasks_without_memory(played, rows.get((name, "no memory"), []), summarise))
                put(f"{key}_memory", name, {u: final_memory(rs, seeds) for u, rs in conds.items()})
            put(f"{key}_overall", name, {u: pooled(f"{prefix} {u}") for u in UPDATES})
        if has("agent-built memory", "imported memory"):
            fig5a = {"no memory": t1["no memory"], "agent-built memory": pooled("agent-built memory"),
                     "expert-built memory": main}
            if has("imported memory"):
                fig5a["imported memory"] = pooled("imported memory")
            put("figure5a_transfer", name, fig5a)
        if has(*(f"k={n}" for n in ks)):
            put("figure5b_k", name, {f"k={n}": t1["no memory"] if n == 0 else main if n == k else pooled(f"k={n}")
                                     for n in ks})
        if all(name in out.get(key, {}) for key in ("table2_retrieve", "figure5a_transfer", "figure5b_k")):
            put("claims", name, claims({key: out[key][name] for key in out if name in out[key]},
                                       rate_key=_rate_key(main), steps_key=_steps_key(main)))
    stream = {u: [r for r in records if r.set == TRAIN and r.condition == f"self-taught {u}"] for u in UPDATES}
    if any(stream.values()):
        out["self_taught_training"] = {u: learning_curve(rs, summarise) for u, rs in stream.items() if rs}
    out["usage"] = {"tokens": sum(r.tokens for r in records),
                    "cost_usd": round(sum(r.cost_usd for r in records), 6)}
    return out


def _rate_key(row: dict[str, Any]) -> str:
    return "success_rate" if "success_rate" in row else "final_pass_rate"


def _steps_key(row: dict[str, Any]) -> str:
    return "avg_steps" if "avg_steps" in row else "steps"


def claims(r: dict[str, Any], rate_key: str = "success_rate", steps_key: str = "avg_steps") -> list[dict[str, Any]]:
    """The paper's five headline claims (PAPER.md), each judged on one set's pooled rates."""
    def rate(rows: dict, name: str) -> float:
        return rows[name][rate_key]

    t1, t2, upd, tr, ks = (r["table1_build"], r["table2_retrieve"], r.get("figure3_overall"),
                           r["figure5a_transfer"], r["figure5b_k"])
    none = rate(t1, "no memory")
    steps = t1["proceduralization"][steps_key] / max(t1["no memory"][steps_key], 1e-9)
    by_k = [(name, rate(ks, name)) for name in ks]
    best = max(by_k, key=lambda kv: kv[1])
    after = [v for name, v in by_k[by_k.index(best) + 1:]]
    out = [
        {"claim": "any memory beats none, proceduralization is best, steps fall by about a third",
         "holds": min(rate(t1, b) for b in BUILDS) > none and rate(t1, "proceduralization") >= max(
             rate(t1, b) for b in BUILDS) and steps <= 0.75,
         "evidence": ", ".join(f"{b} {rate(t1, b):.3f}" for b in ("no memory", *BUILDS))
                     + f"; steps ×{steps:.2f}"},
        {"claim": "keyed retrieval (query, avefact) beats random",
         "holds": min(rate(t2, "query"), rate(t2, "avefact")) > rate(t2, "random"),
         "evidence": ", ".join(f"{n} {rate(t2, n):.3f}" for n in ("random", "query", "avefact"))}]
    if upd:
        out.append({"claim": "online: adjustment > validation > vanilla",
                    "holds": rate(upd, "adjustment") > rate(upd, "validation") > rate(upd, "vanilla"),
                    "evidence": ", ".join(f"{n} {rate(upd, n):.3f}" for n in UPDATES)})
    return out + [
        {"claim": "memory from a stronger agent lifts a weaker one",
         "holds": rate(tr, "expert-built memory") > rate(tr, "agent-built memory") and (
             "imported memory" not in tr or rate(tr, "imported memory") > rate(tr, "no memory")),
         "evidence": ", ".join(f"{n} {rate(tr, n):.3f}" for n in tr)},
        {"claim": "more retrieved procedures help up to a point, then hurt",
         "holds": best[1] > by_k[0][1] and bool(after) and min(after) < best[1],
         "evidence": ", ".join(f"{n} {v:.3f}" for n, v in by_k)},
    ]
