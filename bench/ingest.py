"""Ingest: ``Memory.add_many`` of successful runs (LLM-free build, embedding, dedup, write).

    nice -n 10 python bench/ingest.py [--trajectories 3000] [--batch 500] [--rounds 3]
                                      [--out bench/results/ingest.json]

Distinct ALFWorld-like and TravelPlanner-like runs (bench/task_corpus.py's task texts, 5-9 steps
each) go into a fresh SQLite file through ``Memory.add_many`` in batches of ``--batch``, with the
default everything: proceduralization build, rule keywords, the default MiniLM embedder behind a
fresh vector cache (every key and keyword a first sight, as for new runs), duplicate check against
what is stored. Reported: trajectories/s over the whole ingest, from the round with the median
rate of ``--rounds`` rounds (each round a new database and a new vector cache; a shared
machine's load varies), and where the time went in that round (embedding vs the rest).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import shlex
import sys
import tempfile
import time
from pathlib import Path

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH.parent / "src"))
sys.path.insert(0, str(BENCH))

from retrieve_latency import Timed  # noqa: E402
from task_corpus import OBJECTS, PLACES, task_texts  # noqa: E402

from memp import Memory  # noqa: E402
from memp.embed import CachedEmbedder, MiniLMEmbedder, resolved_backend  # noqa: E402
from memp.types import Step, Task, Trajectory  # noqa: E402


def alfworld_steps(task: str, rng: random.Random) -> list[tuple[str, str]]:
    obj = max((o for o in OBJECTS if f" {o} " in task), key=len)
    place = max((p for p in PLACES if f" {p} " in task), key=len, default="desk")
    start = rng.choice(["countertop", "diningtable", "shelf", "cabinet"])
    steps = [(f"go to {start} {rng.randint(1, 4)}", f"On the {start}, you see a {obj} 1 and a fork 2."),
             (f"take {obj} 1 from {start}", f"You pick up the {obj} 1 from the {start}."),
             (f"go to {place} 1", f"The {place} 1 is closed."),
             (f"open {place} 1", f"You open the {place} 1. In it, you see nothing."),
             (f"put {obj} 1 in/on {place} 1", f"You put the {obj} 1 in/on the {place} 1.")]
    if rng.random() < 0.5:
        steps.insert(2, ("go to sinkbasin 1", "On the sinkbasin 1, you see nothing."))
        steps.insert(3, (f"clean {obj} 1 with sinkbasin 1", f"You clean the {obj} 1 using the sinkbasin 1."))
    return steps


def travel_steps(task: str, rng: random.Random) -> list[tuple[str, str]]:
    origin = task.split(" from ")[1].split(" to ")[0].split(" visiting")[0]
    dest = task.split(" to ")[1].split(",")[0] if " visiting " not in task else task.split(" in ")[1].split(",")[0]
    date = f"2022-0{rng.randint(1, 9)}-{rng.randint(10, 28)}"
    return [(f"FlightSearch[{origin}, {dest}, {date}]",
             f"Flight F{rng.randint(1000, 9999)} from {origin} to {dest}, price ${rng.randint(90, 900)}."),
            (f"AccommodationSearch[{dest}]", f"{rng.randint(3, 40)} places to stay in {dest}."),
            (f"RestaurantSearch[{dest}]", f"{rng.randint(5, 60)} restaurants in {dest}."),
            (f"AttractionSearch[{dest}]", f"{rng.randint(5, 30)} attractions in {dest}."),
            (f"GoogleDistanceMatrix[{origin}, {dest}, taxi]", f"distance {rng.randint(20, 3000)} km"),
            ("Planner[plan the days from the notes]", "Day 1: ... Day 2: ...")]


def runs(n: int, seed: int) -> list[Trajectory]:
    rng = random.Random(seed)
    out = []
    for text in task_texts(n, seed):
        travel = text.startswith("Please plan")
        steps = (travel_steps if travel else alfworld_steps)(text, rng)
        out.append(Trajectory(task=Task(text=text, type="travel" if travel else "pick_and_place"),
                              steps=[Step(action=a, observation=o) for a, o in steps], reward=1.0,
                              agent="expert"))
    return out


def one_round(trajectories: list[Trajectory], batch: int, workdir: Path) -> dict:
    timer = Timed(MiniLMEmbedder())
    timer.embed(["load the model"])  # not part of ingest: the model loads once per process
    timer.seconds.clear()
    cached = CachedEmbedder(timer, workdir / "embeddings.sqlite")
    added = merged = 0
    with Memory(workdir / "ingest.db", embedder=cached) as memory:
        t0, c0 = time.perf_counter(), time.process_time()
        for lo in range(0, len(trajectories), batch):
            for report in memory.add_many(trajectories[lo:lo + batch]):
                added += len(report.added)
                merged += len(report.merged)
        wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    embed_s = sum(timer.seconds)
    return {"trajectories_per_s": round(len(trajectories) / wall, 1), "wall_s": round(wall, 2),
            # CPU seconds of all the process's threads: what the ingest costs, whatever else runs
            "cpu_ms_per_trajectory": round(cpu / len(trajectories) * 1000, 2),
            "embed_s": round(embed_s, 2), "other_s": round(wall - embed_s, 2),
            "texts_embedded": cached.misses, "vector_cache_hits": cached.hits,
            "procedures_added": added, "merged_as_duplicates": merged}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--trajectories", type=int, default=3000)
    parser.add_argument("--batch", type=int, default=500)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default=str(BENCH / "results" / "ingest.json"))
    args = parser.parse_args()
    load_start = os.getloadavg()
    trajectories = runs(args.trajectories, args.seed)
    rounds = []
    with tempfile.TemporaryDirectory(prefix="memp-bench-") as tmp:
        for i in range(args.rounds):
            (Path(tmp) / f"round-{i}").mkdir()
            rounds.append(one_round(trajectories, args.batch, Path(tmp) / f"round-{i}"))
            print(json.dumps(rounds[-1]), flush=True)
    median = sorted(rounds, key=lambda r: r["trajectories_per_s"])[len(rounds) // 2]
    result = {"command": "python " + " ".join(shlex.quote(a) for a in sys.argv),
              "machine": {"python": platform.python_version(), "cpus": os.cpu_count(),
                          "platform": platform.platform()},
              "trajectories": args.trajectories, "batch": args.batch, "seed": args.seed,
              "memory": f"Memory(sqlite file) with default strategies; minilm ({resolved_backend()}, the default "
                        "here) in a fresh CachedEmbedder",
              **median, "rounds_trajectories_per_s": [r["trajectories_per_s"] for r in rounds],
              "load_average": {"start": [round(x, 2) for x in load_start],
                               "end": [round(x, 2) for x in os.getloadavg()]}}
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
