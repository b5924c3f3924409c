"""The `memp` app: one group per area, each in its own module."""

from __future__ import annotations

import importlib

from memp._errors import InvalidInputError
from memp.cli import experiment, memory
from memp.cli._common import run, typer_app
from memp.server import cli as server

app = typer_app("memp: procedural memory for LLM agents.")
app.add_typer(memory.app, name="memory")
app.add_typer(experiment.app, name="experiment")
app.add_typer(experiment.bench_app, name="bench")
# The service commands import their heavy dependencies only when they run.
app.command()(server.serve)
app.command()(server.mcp)

# Areas whose dependencies are optional extras: mounted only when they import.
_OPTIONAL = {
    "llm": ("memp.llm.cli", "Check and configure the OpenAI-compatible LLM endpoint."),
    "alfworld": ("memp.envs.alfworld.cli", "ALFWorld games: generate, play, record experts."),
    "travelplanner": ("memp.envs.travelplanner.cli", "TravelPlanner: evaluate plans, generate queries."),
}
for _name, (_module, _help) in _OPTIONAL.items():
    try:
        _group = importlib.import_module(_module).app
    except ImportError:
        continue
    if _name == "travelplanner":  # environments know nothing of experiments: the preset is mounted here
        _group.command("bench")(experiment.travelplanner_bench)
    app.add_typer(_group, name=_name, help=_help)


@app.command()
def demo(out: str = "demo-out", seed: int = 0, n_train: int = 30, n_test: int = 48, workers: int = 2) -> None:
    """The offline demo on generated ALFWorld games: memory built, used and updated, no LLM."""
    from memp.demo import run_demo

    if min(n_train, n_test, workers) < 1:
        raise InvalidInputError("--n-train, --n-test and --workers must be at least 1")
    run_demo(out, seed=seed, n_train=n_train, n_test=n_test, workers=workers)


def main() -> None:
    run(app)
