"""`memp experiment paper`, `memp bench alfworld` and `memp travelplanner bench`: presets of the suite runner."""

from __future__ import annotations

from enum import Enum
from pathlib import Path
from typing import Annotated, Optional

import typer

from memp._errors import InvalidInputError
from memp.cli._common import console, typer_app
from memp.llm.options import (
    LLMApiKeyOpt,
    LLMBaseUrlOpt,
    LLMCacheOpt,
    LLMConstrainActionsOpt,
    LLMModelOpt,
    LLMPriceOpt,
    LLMStructuredOpt,
    LLMTimeoutOpt,
    parse_price,
)

app = typer_app("Reproduce the Memp paper's analyses.")
bench_app = typer_app("Full benchmark runs (longer than the demo).")


class Env(str, Enum):
    alfworld = "alfworld"
    travelplanner = "travelplanner"


class AgentKind(str, Enum):
    offline = "offline"
    llm = "llm"


OutOpt = Annotated[Path, typer.Option(help="Output folder (resumable).")]
SeedsOpt = Annotated[str, typer.Option(help="Comma-separated seeds; LLM-free runs use at least 3.")]
NTrainOpt = Annotated[Optional[int], typer.Option(
    help="Train tasks: ALFWorld games (default: all) or generated TravelPlanner queries beside the 45 gold (45).")]
NTestOpt = Annotated[Optional[int], typer.Option(help="Held-out tasks (default: all games; 45 generated queries).")]
NValidationOpt = Annotated[Optional[int], typer.Option(
    help="TravelPlanner: validation queries, spread over the file (default: all).")]
WorkersOpt = Annotated[int, typer.Option(help="Processes playing episodes (the numbers do not depend on it).")]
RayOpt = Annotated[Optional[str], typer.Option(
    "--ray", help="Play episodes on Ray: 'local', or a cluster address; every node needs memp and the data.")]
EmbedderOpt = Annotated[str, typer.Option(help="minilm (default), minilm-torch (same vectors, on torch) or hashing (no model).")]
MemoryFromOpt = Annotated[Optional[Path], typer.Option(
    "--memory-from", dir_okay=False, show_default=False,
    help="A memory export (e.g. another run's agent-built-memory.jsonl) played as 'imported memory' in "
         "Figure 5a: a strong model's memory for a weak one. Same embedder on both sides.")]
SelfTaughtOpt = Annotated[bool, typer.Option(
    "--self-taught", help="Add the self-taught conditions: memory learned from empty on the training tasks "
                          "(vanilla, validation, adjustment), then frozen on the held-out tasks.")]
PassesOpt = Annotated[int, typer.Option(help="Self-taught: passes over the training tasks.")]
OnlyOpt = Annotated[Optional[str], typer.Option(
    help="Run only these conditions (comma-separated names, as in the report; e.g. 'no memory,self-taught "
         "adjustment'); the folder keeps others recorded before.")]
TrainStepsOpt = Annotated[int, typer.Option(
    help="Self-taught: step budget of a training episode (ALFWorld at most 50; held-out episodes keep 30).")]


def _seeds(text: str) -> tuple[int, ...]:
    try:
        seeds = tuple(int(s) for s in text.split(",") if s.strip())
    except ValueError:
        raise InvalidInputError(f"--seeds must be whole numbers separated by commas, got {text!r}") from None
    if not seeds:
        raise InvalidInputError("--seeds needs at least one seed")
    return seeds


def _run(env: Env, out: Path, workers: int, ray: Optional[str], memory_from: Optional[Path], **options) -> None:
    from memp.experiments.paper import PaperConfig, run_paper

    cfg = PaperConfig.for_env(env.value, **options)
    results = run_paper(env.value, out, cfg, workers=workers, ray=ray, memory_from=memory_from)
    console.print(f"wrote {out}/results.json and the report in {results['seconds']:.0f} s")


@app.command()
def paper(env: Annotated[Env, typer.Option(help="Which benchmark.")] = Env.alfworld,
          agent: Annotated[AgentKind, typer.Option(help="offline (LLM-free) or llm.")] = AgentKind.offline,
          out: OutOpt = Path("paper-out"), seeds: SeedsOpt = "0,1,2", n_train: NTrainOpt = None,
          n_test: NTestOpt = None, n_validation: NValidationOpt = None, workers: WorkersOpt = 2,
          llm_base_url: LLMBaseUrlOpt = None, llm_model: LLMModelOpt = None, llm_api_key: LLMApiKeyOpt = None,
          llm_cache: LLMCacheOpt = None, llm_price: LLMPriceOpt = None, memory_from: MemoryFromOpt = None,
          ray: RayOpt = None, embedder: EmbedderOpt = "minilm", self_taught: SelfTaughtOpt = False,
          passes: PassesOpt = 1, train_max_steps: TrainStepsOpt = 30,
          llm_timeout: LLMTimeoutOpt = 60.0, llm_structured: LLMStructuredOpt = None,
          llm_constrain_actions: LLMConstrainActionsOpt = False, only: OnlyOpt = None) -> None:
    """Tables 1-2 and Figures 3, 5a, 5b of the paper; writes results.json, report.md, report.html."""
    from memp.experiments.llm import LLMSettings

    if llm_constrain_actions and (agent is not AgentKind.llm or env is not Env.alfworld):
        raise InvalidInputError("--llm-constrain-actions applies to the ALFWorld LLM agent only "
                                "(--env alfworld --agent llm): TravelPlanner's actions are free text")
    llm = None
    if agent is AgentKind.llm:
        llm = LLMSettings(base_url=llm_base_url, model=llm_model, api_key=llm_api_key,
                          cache=str(llm_cache) if llm_cache else str(out / "llm-cache.sqlite"),
                          price=parse_price(llm_price), timeout=llm_timeout, structured=llm_structured,
                          constrain_actions=llm_constrain_actions,
                          # TravelPlanner's ReAct replies carry tool arguments; ALFWorld's are short.
                          max_tokens=256 if env is Env.travelplanner else 96)
    _run(env, out, workers, ray, memory_from, seeds=_seeds(seeds), n_train=n_train, n_test=n_test,
         n_validation=n_validation, embedder=embedder, agent=agent.value, llm=llm, self_taught=self_taught,
         passes=passes, train_max_steps=train_max_steps,
         only=tuple(n.strip() for n in only.split(",") if n.strip()) if only is not None else None)


@bench_app.command("alfworld")
def bench_alfworld(out: OutOpt = Path("bench-alfworld"), seeds: SeedsOpt = "0,1,2", n_train: NTrainOpt = None,
                   n_test: NTestOpt = None, workers: WorkersOpt = 2, ray: RayOpt = None,
                   memory_from: MemoryFromOpt = None, self_taught: SelfTaughtOpt = False) -> None:
    """The full ALFWorld run: official games when ALFWORLD_DATA is set, else generated ones."""
    _run(Env.alfworld, out, workers, ray, memory_from, seeds=_seeds(seeds), n_train=n_train, n_test=n_test,
         self_taught=self_taught)


def travelplanner_bench(
        out: Annotated[Path, typer.Option(help="Output folder (resumable).")] = Path("bench/results/travelplanner"),
        seed: Annotated[int, typer.Option(help="Seed of the generated train and test queries.")] = 0,
        n_train: Annotated[int, typer.Option(help="Generated train queries (besides the 45 gold).")] = 45,
        n_test: Annotated[int, typer.Option(help="Held-out generated test queries.")] = 45,
        n_validation: NValidationOpt = None, embedder: EmbedderOpt = "minilm",
        retrieve: Annotated[str, typer.Option(help="Retrieval strategy of the build conditions.")] = "avefact",
        k: Annotated[int, typer.Option(help="Procedures retrieved per query.")] = 3,
        data: Annotated[Optional[Path], typer.Option(
            "--data", help="TravelPlanner data directory (default: $MEMP_TRAVELPLANNER_DATA).")] = None,
        workers: WorkersOpt = 1) -> None:
    """One seed of the LLM-free planner: no memory, each build, retrieval, online from expert memory."""
    from memp.experiments.tables import BUILDS, RETRIEVERS, UPDATES

    only = ("no memory", *BUILDS, *(f"retrieve {r}" for r in RETRIEVERS if r != retrieve),
            *(f"expert+online {u}" for u in UPDATES))  # the build rows use `retrieve`: no row of its own
    _run(Env.travelplanner, out, workers, None, None, seeds=(seed,), n_train=n_train, n_test=n_test,
         n_validation=n_validation, embedder=embedder, retrieve=retrieve, k=k, ks=(0, k),
         data=str(data) if data else None, only=only)
