"""TravelPlanner: the official sandbox database, tools, query model, evaluator and generator.

Data come from ``$MEMP_TRAVELPLANNER_DATA`` (default ``<repo>/../shared/travelplanner``); see
``memp.envs.travelplanner.data`` for the layout.
"""

from memp.envs.travelplanner.data import (
    ENV_VAR,
    Database,
    TravelPlannerDataError,
    load_database,
    resolve_data_dir,
)
from memp.envs.travelplanner.episode import task_keywords, trajectory_from_episode
from memp.envs.travelplanner.evaluator import (
    CheckResult,
    PlanReport,
    aggregate,
    evaluate,
    evaluate_file,
    evaluate_plan,
    read_submission,
)
from memp.envs.travelplanner.generator import (
    construct_plan,
    generate_queries,
    plan_cost,
    query_text,
)
from memp.envs.travelplanner.queries import (
    LocalConstraint,
    QueryError,
    TravelQuery,
    load_queries,
    query_from_dict,
)
from memp.envs.travelplanner.tools import Action, TravelTools, parse_action

__all__ = [
    "ENV_VAR",
    "Action",
    "CheckResult",
    "Database",
    "LocalConstraint",
    "PlanReport",
    "QueryError",
    "TravelPlannerDataError",
    "TravelQuery",
    "TravelTools",
    "aggregate",
    "construct_plan",
    "evaluate",
    "evaluate_file",
    "evaluate_plan",
    "generate_queries",
    "load_database",
    "load_queries",
    "parse_action",
    "plan_cost",
    "query_from_dict",
    "query_text",
    "read_submission",
    "resolve_data_dir",
    "task_keywords",
    "trajectory_from_episode",
]
