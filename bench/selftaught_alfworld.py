"""Self-taught memory on official ALFWorld: the development harness for issue 15.

The protocol: the LLM-free agent plays a stream of training games (the 200-game official train
sample, in a seeded order, ``--passes`` times) from empty memory, and memory is updated after
every episode by the chosen updater. Then memory is frozen and the agent plays the valid_seen
games. No expert trajectory is used anywhere. Beside every self-taught row the same agent runs
with memory off (``none``). ``online-<update>`` is the paper's Figure 3 protocol instead: from
empty memory on the test stream itself (groups of 10 in a seeded order, memory updated after each
group, 30 steps).

    ALFWORLD_DATA=../shared/alfworld nice -n 10 python bench/selftaught_alfworld.py \\
        --jobs adjustment@0,none@0,online-adjustment@0 --n-train 60 --n-test 30 --out /tmp/selftaught

``--workers`` processes take the (condition, seed) jobs in the order given, each keeping one
engine with every game it parsed (all jobs play the same games, and parsing costs more than
playing). Results: ``results.jsonl`` in ``--out``, a line per job as it ends, and
``results.json`` at the end (training curve per block of 50 episodes, test success and steps).
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import random
import sys
import time
from pathlib import Path


def make_memory(path: Path, update: str, credit_weight: float, embedder_name: str):
    from memp.embed import experiment_backend, make_embedder
    from memp.memory import Memory
    from memp.store import SQLiteStore

    for suffix in ("", "-wal", "-shm"):  # a fresh, empty memory for every job
        Path(str(path) + suffix).unlink(missing_ok=True)
    return Memory(SQLiteStore(path), embedder=make_embedder(embedder_name, backend=experiment_backend()), build="proceduralization",
                  retrieve="query", update=update, k=3, credit_weight=credit_weight)


def play(env, game, seed: int, hits):
    from memp.agents.offline_alfworld import OfflineAlfworldAgent

    env.load(game)
    return OfflineAlfworldAgent(seed=seed).run(env, hits)


def summary(runs: list[tuple[bool, int]]) -> dict:
    n = len(runs)
    return {"n": n, "success": round(sum(s for s, _ in runs) / n, 4) if n else 0.0,
            "steps": round(sum(k for _, k in runs) / n, 2) if n else 0.0}


_ENV = None


def engine(max_steps: int):
    """This process's engine: one for every condition, so that each game is parsed only once."""
    global _ENV
    from memp.envs.alfworld.env import AlfworldEnv

    if _ENV is None:
        _ENV = AlfworldEnv(max_steps=max_steps, keep_games=400)
    _ENV.max_steps = max_steps
    return _ENV


def job(args: dict) -> dict:
    """One (condition, seed): train from empty memory (if any), then test frozen memory."""
    from memp.envs.alfworld.games import official_games
    from memp.experiments.alfworld import task_of_game

    started = time.time()
    seed, update, out = args["seed"], args["update"], Path(args["out"])
    train = official_games("train")
    train = train[:: max(1, len(train) // args["n_train"])][: args["n_train"]]  # all task types
    every = official_games("valid_seen")
    test = every[:: max(1, len(every) // args["n_test"])][: args["n_test"]]  # all task types
    out.mkdir(parents=True, exist_ok=True)
    result: dict = {"condition": update, "seed": seed}
    if update == "none":
        env = engine(args["test_steps"])
        runs = [(t.success, len(t.steps)) for t in (play(env, g, seed, []) for g in test)]
        result["test"] = summary(runs)
    elif update.startswith("online-"):
        env = engine(args["test_steps"])
        mem = make_memory(out / f"{update}-{seed}.db", update.removeprefix("online-"), args["credit_weight"],
                          args["embedder"])
        order = list(test)
        random.Random(seed).shuffle(order)
        groups = []
        for i in range(0, len(order), 10):
            batch = [(g, mem.retrieve(task_of_game(g))) for g in order[i:i + 10]]
            runs = [(g, hits, play(env, g, seed, hits)) for g, hits in batch]
            for _, hits, t in runs:
                mem.update(t, used=hits)
            groups.append(summary([(t.success, len(t.steps)) for _, _, t in runs]))
            print(f"[{update} seed {seed}] group {len(groups)}: {groups[-1]}", file=sys.stderr, flush=True)
        result["groups"] = groups
        result["memory"] = {"active": mem.store.count("default", status="active")}
        mem.close()
    else:
        mem = make_memory(out / f"selftaught-{update}-{seed}.db", update, args["credit_weight"], args["embedder"])
        env = engine(args["train_steps"])
        curve, block = [], []
        for p in range(args["passes"]):
            order = list(train)
            random.Random(seed * 1000 + p).shuffle(order)
            for game in order:
                hits = mem.retrieve(task_of_game(game))
                t = play(env, game, seed, hits)
                mem.update(t, used=hits)
                block.append((t.success, len(t.steps)))
                if len(block) == 50:
                    curve.append(summary(block))
                    block = []
                    print(f"[{update} seed {seed}] train {len(curve) * 50}: {curve[-1]}", file=sys.stderr, flush=True)
        if block:
            curve.append(summary(block))
        result["train_curve"] = curve
        result["memory"] = {"active": mem.store.count("default", status="active"),
                            "deprecated": mem.store.count("default", status="deprecated"),
                            "revisions": mem.store.count_events("default", kind="revised")}
        env = engine(args["test_steps"])
        runs = []
        for game in test:
            runs.append(play(env, game, seed, mem.retrieve(task_of_game(game))))
        result["test"] = summary([(t.success, len(t.steps)) for t in runs])
        mem.close()
    result["seconds"] = round(time.time() - started, 1)
    print(json.dumps(result), flush=True)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--jobs", default="adjustment@0,none@0,validation@0,vanilla@0",
                        help="condition@seed, in the order they start; a condition is none, vanilla, "
                             "validation, adjustment, or online-<update> (Figure 3 on the test stream)")
    parser.add_argument("--n-test", type=int, default=140)
    parser.add_argument("--n-train", type=int, default=200)
    parser.add_argument("--passes", type=int, default=1)
    parser.add_argument("--train-steps", type=int, default=50)
    parser.add_argument("--test-steps", type=int, default=30)
    parser.add_argument("--credit-weight", type=float, default=0.2)
    parser.add_argument("--embedder", default="minilm")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--out", type=Path, required=True)
    opts = parser.parse_args()
    jobs = [dict(update=c, seed=int(s), out=str(opts.out), n_test=opts.n_test, n_train=opts.n_train,
                 passes=opts.passes, train_steps=opts.train_steps, test_steps=opts.test_steps,
                 credit_weight=opts.credit_weight, embedder=opts.embedder)
            for c, s in (j.split("@") for j in opts.jobs.split(","))]
    opts.out.mkdir(parents=True, exist_ok=True)
    started = time.time()
    results = []
    # Pool processes live on between jobs, so each keeps its engine and the games it parsed.
    with mp.get_context("spawn").Pool(min(opts.workers, len(jobs))) as pool:
        for result in pool.imap_unordered(job, jobs, chunksize=1):
            results.append(result)
            with (opts.out / "results.jsonl").open("a") as fh:  # each job as it ends
                fh.write(json.dumps(result) + "\n")
    report = {"options": {k: str(v) for k, v in vars(opts).items()}, "seconds": round(time.time() - started, 1),
              "results": results}
    (opts.out / "results.json").write_text(json.dumps(report, indent=2))
    for r in results:
        curve = [g["success"] for g in r.get("train_curve", r.get("groups", []))]
        print(r["condition"], r["seed"], r.get("test"), curve)


if __name__ == "__main__":
    main()
