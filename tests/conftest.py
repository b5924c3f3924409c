"""Fixtures shared by the core tests: embedders, a known trajectory, a scripted LLM."""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Callable
from pathlib import Path

import pytest

# usearch loads its SIMD library into the process's global symbols, and onnxruntime imported after it
# crashes the process. memp.store.ann imports the two in the safe order; tests that import usearch
# themselves need onnxruntime loaded first.
with contextlib.suppress(ImportError):
    import onnxruntime  # noqa: F401

from memp.embed import CachedEmbedder, HashingEmbedder, MiniLMEmbedder
from memp.types import Step, Task, Trajectory

REPO = Path(__file__).resolve().parents[1]
# MEMP_NO_SHARED=1 runs the tests as on a fresh clone with no ../shared beside it (.ci/run does, after
# `make test`): every lookup of the official data, here and in memp, then finds nothing.
NO_SHARED = bool(os.environ.get("MEMP_NO_SHARED"))
SHARED = REPO.parent / ("shared-hidden-by-MEMP_NO_SHARED" if NO_SHARED else "shared")
if NO_SHARED:
    os.environ["MEMP_TRAVELPLANNER_DATA"] = str(SHARED / "travelplanner")
    os.environ.pop("ALFWORLD_DATA", None)

# Fixtures that read ../shared, or generate data in its place when it is absent.
SHARED_FIXTURES = {"alfworld_game", "official_root", "travel_db", "travel_train"}


def pytest_collection_modifyitems(config, items):
    """Mark `shared` every test that reads ../shared: `-m shared` selects them (.ci/run reruns them
    with MEMP_NO_SHARED=1, as on a machine without the data)."""
    travelplanner = REPO / "tests" / "envs" / "travelplanner"
    for item in items:
        reasons = " ".join(str(m.kwargs.get("reason", "")) for m in item.iter_markers("skipif"))
        if ("../shared" in reasons or SHARED_FIXTURES & set(item.fixturenames)
                or travelplanner in Path(item.path).parents):
            item.add_marker(pytest.mark.shared)


ONE_GAME = (SHARED / "alfworld" / "json_2.1.1" / "train" / "pick_and_place_simple-AlarmClock-None-Desk-307"
            / "trial_T20190907_072317_014092")


@pytest.fixture(scope="module")
def alfworld_game(tmp_path_factory) -> Path:
    """One game: an official train game when ../shared/alfworld is there, else one generated game."""
    pytest.importorskip("alfworld", reason="needs the ALFWorld engine: pip install -e '.[alfworld]'")
    if (ONE_GAME / "game.tw-pddl").is_file():
        return ONE_GAME
    from memp.envs.alfworld import generate_games

    return generate_games("train", 1, 7, tmp_path_factory.mktemp("games"), task_types=["pick_and_place_simple"])[0]


@pytest.fixture(scope="session")
def minilm(tmp_path_factory) -> CachedEmbedder:
    """The real default embedder, loaded once per test session."""
    return CachedEmbedder(MiniLMEmbedder(), tmp_path_factory.mktemp("cache") / "emb.sqlite")


@pytest.fixture
def hashing() -> HashingEmbedder:
    return HashingEmbedder()


def clean_apple_trajectory(obj: str = "apple", target: str = "fridge", success: bool = True,
                           traj_id: str | None = None) -> Trajectory:
    """An ALFWorld-style run with exploration, a refused action and pointless toggles."""
    steps = [
        ("go to countertop 1", "On the countertop 1, you see a knife 1."),
        ("go to countertop 2", f"On the countertop 2, you see a {obj} 1."),
        (f"take {obj} 1 from countertop 2", f"You pick up the {obj} 1 from the countertop 2."),
        ("look", "You are facing the countertop 2."),
        (f"clean {obj} 1 with {target} 1", "Nothing happens."),
        ("go to sinkbasin 1", "On the sinkbasin 1, you see nothing."),
        (f"clean {obj} 1 with sinkbasin 1", f"You clean the {obj} 1 using the sinkbasin 1."),
        ("go to drawer 1", "The drawer 1 is closed."),
        ("open drawer 1", "You open the drawer 1. The drawer 1 is open. In it, you see nothing."),
        (f"go to {target} 1", f"The {target} 1 is closed."),
        (f"open {target} 1", f"You open the {target} 1."),
        (f"put {obj} 1 in/on {target} 1", f"You put the {obj} 1 in/on the {target} 1."),
    ]
    data = dict(task=Task(text=f"put a clean {obj} in {target}.", type="pick_clean_then_place_in_recep"),
                steps=[Step(action=a, observation=o) for a, o in steps], reward=1.0 if success else 0.0,
                agent="expert")
    if traj_id:
        data["id"] = traj_id
    return Trajectory(**data)


@pytest.fixture
def apple_run() -> Trajectory:
    return clean_apple_trajectory()


class ScriptedLLM:
    """A deterministic in-process LLM: replies come from a list or a function of the messages."""

    model = "scripted-test-double"

    def __init__(self, replies: list[str] | Callable[[list[dict]], str]) -> None:
        self.replies = replies
        self.calls: list[list[dict]] = []

    def complete(self, messages, *, temperature=0.0, max_tokens=None, stop=None) -> str:
        self.calls.append(messages)
        if callable(self.replies):
            return self.replies(messages)
        return self.replies[min(len(self.calls), len(self.replies)) - 1]


@pytest.fixture
def scripted_llm() -> type[ScriptedLLM]:
    return ScriptedLLM


def as_json(value) -> str:
    return json.dumps(value)
