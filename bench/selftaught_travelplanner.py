"""TravelPlanner from the planner's own experience: self-taught memory, no expert runs.

    nice -n 10 python bench/selftaught_travelplanner.py [--seeds 0] [--passes 3] [--rate 0.5]
        [--deprecation posterior|USES,RATE] [--updaters vanilla,validation,adjustment]
        [--n-train 45] [--k 3] [--embedder minilm|hashing] [--workers 2] [--dev]
        [--out bench/results/selftaught_travelplanner.json]

The protocol, per seed and updater: memory starts empty; the LLM-free planner plays the training
queries (the 45 official train queries and ``--n-train`` generated ones, queries only: their gold
plans are never read) for ``--passes`` passes, each in a seeded shuffled order, exploring checks
(``Exploration(rate, seed)``), and memory is updated after every episode from the evaluator's
verdicts on that training query. Then memory is frozen and the same planner, without exploration,
plays the 120 validation queries; "no memory" is that planner with memory off. Validation
outcomes never reach memory.

``--deprecation posterior`` uses ``PosteriorDeprecation()`` instead of the paper's rule. ``--dev``
chooses settings without the validation queries: it learns on the 45 official train queries
only and tests on the generated train queries of each seed. ``--rate 0.5,0.25`` gives one rate
per pass (the last one repeats).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
os.environ.setdefault("OMP_NUM_THREADS", "1")  # two workers on two cores: one thread each

from memp.agents.offline_travel import Exploration, OfflineTravelPlanner  # noqa: E402
from memp.embed import make_embedder  # noqa: E402
from memp.envs.travelplanner.adjust import PosteriorDeprecation, travel_memory  # noqa: E402
from memp.envs.travelplanner.data import load_database  # noqa: E402
from memp.envs.travelplanner.env import TravelEnv  # noqa: E402
from memp.envs.travelplanner.episode import task_for  # noqa: E402
from memp.envs.travelplanner.experiment import BenchConfig, datasets, retrieve_stable, score  # noqa: E402
from memp.update import DeprecationRule  # noqa: E402

NAMESPACE = "travelplanner"


def _memory_state(memory) -> dict[str, int]:
    store = memory.store
    return {"active": store.count(NAMESPACE, status="active"),
            "deprecated": store.count(NAMESPACE, status="deprecated"),
            "revisions": sum(1 for e in store.events(NAMESPACE) if e.kind == "revised")}


def test(memory, queries, db) -> dict:
    """The planner without exploration on ``queries``, memory frozen: official scores."""
    tester = OfflineTravelPlanner()
    runs = [tester.run(TravelEnv(q, db), retrieve_stable(memory, task_for(q), memory.k)) for q in queries]
    result = score(queries, runs, db)
    failed: dict[str, int] = {}
    for t in runs:
        for f in t.metadata["failures"]:
            failed[f["constraint"]] = failed.get(f["constraint"], 0) + 1
    result["failed_constraints"] = dict(sorted(failed.items(), key=lambda kv: -kv[1]))
    return result


def run_one(seed: int, updater: str, args: dict) -> dict:
    """Train one memory from empty with ``updater``, then test it frozen on validation."""
    started = time.time()
    db = load_database()
    sets = datasets(BenchConfig(seed=seed, n_train=args["n_train"], n_test=0), db)
    train = sets["train_gold"] + sets["train_generated"]
    validation = sets["validation"]
    if args.get("dev"):  # choosing settings without validation: learn on gold train, test on generated
        train, validation = sets["train_gold"], sets["train_generated"]
    embedder = make_embedder(args["embedder"])
    with tempfile.TemporaryDirectory() as tmp:
        extra = {}
        if args.get("deprecation") == "posterior":
            extra = {"deprecation": PosteriorDeprecation()}
        elif args.get("deprecation"):
            uses, rate = args["deprecation"].split(",")
            extra = {"deprecation": DeprecationRule(min_uses=int(uses), min_success_rate=float(rate))}
        memory = travel_memory(Path(tmp) / "m.db", update=updater, embedder=embedder, k=args["k"],
                               seed=seed, namespace=NAMESPACE, **extra)
        learner = OfflineTravelPlanner(explore=Exploration(rate=float(str(args["rate"]).split(",")[0]), seed=seed))
        passes, curve, episodes = [], [], 0
        rates = [float(r) for r in str(args["rate"]).split(",")]
        for p in range(args["passes"]):
            learner.explore.rate = rates[min(p, len(rates) - 1)]
            order = list(train)
            random.Random(seed * 1000 + p).shuffle(order)
            runs = []
            for q in order:
                hits = retrieve_stable(memory, task_for(q), memory.k)
                trajectory = learner.run(TravelEnv(q, db), hits)
                memory.update(trajectory, hits)
                runs.append(trajectory)
                episodes += 1
                if args.get("curve_every") and episodes % args["curve_every"] == 0:
                    tested = test(memory, validation, db)
                    curve.append({"episodes": episodes, "test_final_pass": tested["final_pass_rate"]})
            passes.append({"pass": p + 1, "train_final_pass": round(sum(t.success for t in runs) / len(runs), 4),
                           **_memory_state(memory)})
            # The memory so far, frozen, on the test set: the learning curve (nothing is updated).
            result = test(memory, validation, db)
            passes[-1]["test_final_pass"] = result["final_pass_rate"]
        memory.close()
    return {"seed": seed, "updater": updater, "passes": passes, "curve": curve, "validation": result,
            "seconds": round(time.time() - started, 1)}


def no_memory(args: dict, seed: int) -> dict:
    """The same planner with memory off, on the test set (with ``dev``, the first seed's)."""
    db = load_database()
    sets = datasets(BenchConfig(seed=seed, n_train=args["n_train"], n_test=0), db)
    validation = sets["train_generated"] if args.get("dev") else sets["validation"]
    runs = [OfflineTravelPlanner().run(TravelEnv(q, db)) for q in validation]
    return {"updater": "no memory", "validation": score(validation, runs, db)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seeds", default="0")
    ap.add_argument("--passes", type=int, default=3)
    ap.add_argument("--rate", default="0.5", help="exploration rate, or one per pass (0.5,0.25,0)")
    ap.add_argument("--updaters", default="vanilla,validation,adjustment")
    ap.add_argument("--n-train", type=int, default=45)
    ap.add_argument("--k", type=int, default=3)
    ap.add_argument("--embedder", default="minilm")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--deprecation", default=None, help="min uses,min success rate (default: memp's 3,0.5)")
    ap.add_argument("--curve-every", type=int, default=0,
                    help="also test the frozen memory after every N training episodes (a learning curve)")
    ap.add_argument("--dev", action="store_true",
                    help="train on the 45 official train queries, test on the generated ones (no validation)")
    ap.add_argument("--out", default="bench/results/selftaught_travelplanner.json")
    a = ap.parse_args()
    args = {"passes": a.passes, "rate": a.rate, "n_train": a.n_train, "k": a.k, "embedder": a.embedder,
            "deprecation": a.deprecation, "dev": a.dev, "curve_every": a.curve_every}
    jobs = [(int(s), u) for s in a.seeds.split(",") for u in a.updaters.split(",")]
    started = time.time()
    with ProcessPoolExecutor(max_workers=max(1, min(a.workers, 2))) as pool:
        futures = [pool.submit(run_one, s, u, args) for s, u in jobs]
        base = pool.submit(no_memory, args, jobs[0][0])
        results = [f.result() for f in futures]
        baseline = base.result()
    summary = {}
    for u in a.updaters.split(","):
        rows = [r for r in results if r["updater"] == u]
        rates = [r["validation"]["final_pass_rate"] for r in rows]
        summary[u] = {"final_pass_mean": round(sum(rates) / len(rates), 4), "final_pass_by_seed": rates,
                      "commonsense_micro_mean": round(sum(r["validation"]["commonsense_micro"] for r in rows)
                                                      / len(rows), 4),
                      "hard_micro_mean": round(sum(r["validation"]["hard_micro"] for r in rows) / len(rows), 4),
                      "steps_mean": round(sum(r["validation"]["steps"] for r in rows) / len(rows), 2),
                      "test_final_pass_by_pass": [round(sum(r["passes"][p]["test_final_pass"] for r in rows)
                                                        / len(rows), 4) for p in range(a.passes)]}
        if a.curve_every:
            summary[u]["curve_mean"] = [
                {"episodes": point["episodes"],
                 "test_final_pass": round(sum(r["curve"][i]["test_final_pass"] for r in rows) / len(rows), 4)}
                for i, point in enumerate(rows[0]["curve"])]
    summary["no memory"] = {"final_pass_mean": baseline["validation"]["final_pass_rate"],
                            "commonsense_micro_mean": baseline["validation"]["commonsense_micro"],
                            "hard_micro_mean": baseline["validation"]["hard_micro"],
                            "steps_mean": baseline["validation"]["steps"]}
    out = {"command": "python " + " ".join(sys.argv), "config": {**args, "seeds": a.seeds},
           "summary": summary, "runs": results, "no_memory": baseline,
           "seconds": round(time.time() - started, 1)}
    Path(a.out).parent.mkdir(parents=True, exist_ok=True)
    Path(a.out).write_text(json.dumps(out, indent=2) + "\n", encoding="utf-8")
    for name, row in summary.items():
        curve = " / ".join(f"{100 * v:.1f}" for v in row.get("test_final_pass_by_pass", []))
        print(f"{name:12s} final pass {100 * row['final_pass_mean']:5.1f} %  "
              f"#CS {100 * row['commonsense_micro_mean']:5.1f}  #HC {100 * row['hard_micro_mean']:5.1f}  "
              f"steps {row['steps_mean']:.1f}" + (f"  after each pass: {curve}" if curve else ""), flush=True)
    for u in a.updaters.split(",") if a.curve_every else ():
        print(u, "after N episodes:", " ".join(f"{p['episodes']}:{100 * p['test_final_pass']:.1f}"
                                              for p in summary[u]["curve_mean"]))
    for r in results:
        print(r["seed"], r["updater"], "per pass (train pass, test pass, active, deprecated, revisions):",
              [(p["train_final_pass"], p["test_final_pass"], p["active"], p["deprecated"], p["revisions"])
               for p in r["passes"]], r["seconds"], "s")


if __name__ == "__main__":
    main()
