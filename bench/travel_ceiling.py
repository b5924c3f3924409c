"""What memory can do for the LLM-free TravelPlanner planner: its ceiling on the official queries.

    python bench/travel_ceiling.py [--split validation|train] [--without "Filter[accommodation, occupancy]"]

Memory only chooses which checks of the planner's fixed repertoire it makes, so the best memory
can do on a query is the best of those choices. This plans every query of the split with the
whole repertoire named (and again without the checks given to ``--without``), then, for each
query that still fails, prints the failed constraints and whether the query generator's
constructor (``construct_plan``, which reads the database directly and tries a few city orders)
finds a plan passing everything: a cost means the planner, not the data, is the limit; "no
passing plan found" means the data may not allow one (a first leg with no flight and no road).
Needs the official data (``$MEMP_TRAVELPLANNER_DATA`` or ../shared/travelplanner).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from memp.agents.offline_travel import OfflineTravelPlanner  # noqa: E402
from memp.envs.travelplanner import load_database, load_queries  # noqa: E402
from memp.envs.travelplanner.env import TravelEnv  # noqa: E402
from memp.envs.travelplanner.generator import construct_plan, plan_cost  # noqa: E402
from memp.envs.travelplanner.procedures import CHECKS, parse_check  # noqa: E402
from memp.types import Procedure, RetrievalHit  # noqa: E402


def plan_with(checks, query, db):
    """The planner's run when memory names exactly ``checks``."""
    named = Procedure(key="checks", script=sorted(c.line for c in checks))
    return OfflineTravelPlanner().run(TravelEnv(query, db), [RetrievalHit(procedure=named, score=1.0)])


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--split", default="validation", choices=("validation", "train"))
    parser.add_argument("--without", action="append", default=[], help="a check line left out in the second pass")
    args = parser.parse_args(argv)
    left_out = {parse_check(line) for line in args.without}
    if None in left_out:
        parser.error(f"--without takes check lines such as 'Filter[accommodation, occupancy]', got {args.without}")
    db = load_database()
    queries = load_queries(db.root / "queries" / f"{args.split}.jsonl")
    every = set(CHECKS)
    for name, checks in (("every check", every), (f"every check but {', '.join(args.without)}", every - left_out)):
        if checks == every and name != "every check":
            continue
        runs = [plan_with(checks, q, db) for q in queries]
        print(f"{name}: {sum(r.success for r in runs)} / {len(queries)} pass")
    for q, run in zip(queries, runs):
        if run.success:
            continue
        feasible = construct_plan(q, db)
        found = f"a passing plan costs {plan_cost(q, feasible, db):.0f}" if feasible else "no passing plan found"
        failed = ", ".join(f["constraint"] for f in run.metadata["failures"])
        print(f"  {q.idx}: {q.days} days, {q.visiting_city_number} cities, {q.people_number} people, "
              f"budget {q.budget}; planner ${plan_cost(q, run.metadata['plan'], db):.0f} fails {failed}; {found}")


if __name__ == "__main__":
    main(sys.argv[1:])
