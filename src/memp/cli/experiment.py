"""`memp experiment …` and `memp bench …`: the paper's analyses and the benchmark runs."""

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
    LLMModelOpt,
    LLMPriceOpt,
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


SeedsOpt = Annotated[str, typer.Option(help="Comma-separated seeds; LLM-free runs use at least 3.")]
MemoryFromOpt = Annotated[Optional[Path], typer.Option(
    "--memory-from", dir_okay=False, show_default=False,
    help="A memory export (e.g. another run's agent-built-memory.jsonl) played as 'imported memory' in "
         "Figure 5a: a strong model's memory for a weak one. Same embedder on both sides.")]


def _seeds(text: str) -> tuple[int, ...]:
    try:
        seeds = tuple(int(s) for s in text.split(",") if s.strip())
    except ValueError:
        raise InvalidInputError(f"--seeds must be whole numbers separated by commas, got {text!r}") from None
    if not seeds:
        raise InvalidInputError("--seeds needs at least one seed")
    return seeds


@app.command()
def paper(env: Annotated[Env, typer.Option(help="Which benchmark.")] = Env.alfworld,
          agent: Annotated[AgentKind, typer.Option(help="offline (LLM-free) or llm.")] = AgentKind.offline,
          out: Annotated[Path, typer.Option(help="Output folder (resumable).")] = Path("paper-out"),
          seeds: SeedsOpt = "0,1,2",
          n_train: Annotated[Optional[int], typer.Option(help="Train games/queries (default: all).")] = None,
          n_test: Annotated[Optional[int], typer.Option(help="Test games/queries (default: all).")] = None,
          workers: int = 2, llm_base_url: LLMBaseUrlOpt = None, llm_model: LLMModelOpt = None,
          llm_api_key: LLMApiKeyOpt = None, llm_cache: LLMCacheOpt = None, llm_price: LLMPriceOpt = None,
          llm_timeout: LLMTimeoutOpt = 60.0, memory_from: MemoryFromOpt = None,
          ray: Annotated[Optional[str], typer.Option(
              "--ray", help="Play episodes on Ray: 'local', or a cluster address (ALFWorld only).")] = None,
          n_validation: Annotated[Optional[int], typer.Option(
              help="TravelPlanner: validation queries, spread over the file (default: all).")] = None,
          embedder: Annotated[str, typer.Option(
              help="TravelPlanner: minilm (default) or hashing (no torch).")] = "minilm") -> None:
    """Tables 1-2 and Figures 3, 5a, 5b of the paper; writes results.json, report.md, report.html."""
    from memp.experiments.llm import LLMSettings

    price = parse_price(llm_price)
    llm = None
    if agent is AgentKind.llm:
        llm = LLMSettings(base_url=llm_base_url, model=llm_model, api_key=llm_api_key,
                          cache=str(llm_cache) if llm_cache else str(out / "llm-cache.sqlite"), price=price,
                          timeout=llm_timeout,
                          # TravelPlanner's ReAct replies carry tool arguments; ALFWorld's are short.
                          max_tokens=256 if env is Env.travelplanner else 96)
    if env is Env.travelplanner:
        from memp.envs.travelplanner.paper import PaperConfig, run_paper as run_travel

        if memory_from is not None or ray is not None:
            raise InvalidInputError("--memory-from and --ray are for the ALFWorld suite only")
        if any(n is not None and n < 0 for n in (n_train, n_test, n_validation)) or workers < 1:
            raise InvalidInputError("--n-train, --n-test and --n-validation must be ≥ 0, --workers ≥ 1")
        cfg = PaperConfig(seeds=_seeds(seeds), n_train=45 if n_train is None else n_train,
                          n_test=45 if n_test is None else n_test, n_validation=n_validation, embedder=embedder,
                          agent=agent.value, llm=llm)
        results = run_travel(out, cfg, workers=workers)
    else:
        from memp.experiments.paper import run_paper

        results = run_paper(out, seeds=_seeds(seeds), n_train=n_train, n_test=n_test, workers=workers,
                            agent=agent.value, llm=llm, ray_address=ray, memory_from=memory_from)
    console.print(f"wrote {out}/results.json and the report in {results.get('seconds', 0):.0f} s")


@bench_app.command("alfworld")
def bench_alfworld(out: Annotated[Path, typer.Option(help="Output folder (resumable).")] = Path("bench-alfworld"),
                   seeds: SeedsOpt = "0,1,2", n_train: Optional[int] = None, n_test: Optional[int] = None,
                   workers: int = 2, ray: Annotated[Optional[str], typer.Option(
                       "--ray", help="Play episodes on Ray: 'local', or a cluster address.")] = None,
                   memory_from: MemoryFromOpt = None) -> None:
    """The full ALFWorld run: official games when ALFWORLD_DATA is set, else generated ones."""
    from memp.experiments.paper import run_paper

    results = run_paper(out, seeds=_seeds(seeds), n_train=n_train, n_test=n_test, workers=workers,
                        ray_address=ray, memory_from=memory_from)
    console.print(f"wrote {out}/results.json and the report in {results['seconds']:.0f} s")
