"""Speed of the ALFWorld engine through memp's adapter, and how often the experts win.

    python bench/alfworld_engine.py [--games 10] [--steps 30] [--experts 0] [--out bench/results/alfworld_engine.json]

- Reset: seconds to load a game and reset it (``load_reset_s``; the first reset reuses the state
  that loading built), and to reset an already loaded game again (``reset_s``).
- Steps/s: a seeded random agent (uniform over admissible commands) plays ``--steps`` steps on each
  game, in three set-ups: memp's default (won + admissible commands, memoised command
  derivation, resets that restore the translated initial state), the engine as shipped
  (``cache_commands=False, restore_reset=False``), and with facts on as the handcoded expert
  needs them.
- Experts (``--experts N``, 0 to skip): win rate of the handcoded expert within 30 and 50 steps on N
  games, and of handcoded-then-planner within 50.
Games: the official valid_seen games when ``$ALFWORLD_DATA`` or ``../shared/alfworld`` has them,
else generated unseen games.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from memp.envs.alfworld import AlfworldEnv, generate_games, official_games  # noqa: E402
from memp.envs.alfworld.errors import GameFileError  # noqa: E402
from memp.envs.alfworld.expert import run_expert, run_handcoded  # noqa: E402

REPO = Path(__file__).resolve().parents[1]


def pick_games(n: int) -> tuple[str, list[Path]]:
    for root in (os.environ.get("ALFWORLD_DATA"), str(REPO.parent / "shared" / "alfworld")):
        if not root:
            continue
        try:
            games = official_games("valid_seen", root)
        except GameFileError:
            continue
        # Every k-th game, so all task types are in the sample.
        step = max(1, len(games) // n)
        return f"official valid_seen ({root})", games[::step][:n]
    out = Path(tempfile.mkdtemp(prefix="alfworld-bench-"))
    return "generated unseen", generate_games("unseen", n, 0, out)


def speed(games: list[Path], steps: int, **env_kwargs: object) -> dict[str, float]:
    env = AlfworldEnv(max_steps=steps, **env_kwargs)
    rng = random.Random(0)
    load_reset, reset, played, step_time = [], [], 0, 0.0
    for game in games:
        t = time.perf_counter()
        env.load(game)
        _, info = env.reset()
        load_reset.append(time.perf_counter() - t)
        done = False
        t = time.perf_counter()
        while not done:
            _, _, done, info = env.step(rng.choice(info["admissible_commands"]))
            played += 1
        step_time += time.perf_counter() - t
        t = time.perf_counter()
        env.reset()
        reset.append(time.perf_counter() - t)
    return {
        "steps": played,
        "steps_per_s": round(played / step_time, 1),
        "load_reset_s": round(statistics.mean(load_reset), 3),
        "reset_s": round(statistics.mean(reset), 3),
    }


def experts(games: list[Path]) -> dict[str, object]:
    out: dict[str, object] = {"games": len(games)}
    for limit in (30, 50):
        env = AlfworldEnv(max_steps=limit, facts=True)
        t = time.perf_counter()
        runs = [run_handcoded(env, g, seed=i) for i, g in enumerate(games)]
        wins = [r for r in runs if r.won]
        out[f"handcoded_win_rate_{limit}"] = round(len(wins) / len(runs), 3)
        out[f"handcoded_avg_steps_won_{limit}"] = round(statistics.mean(len(r.steps) for r in wins), 1) if wins else None
        out[f"handcoded_s_per_game_{limit}"] = round((time.perf_counter() - t) / len(games), 2)
    env = AlfworldEnv(max_steps=50, facts=True)
    t = time.perf_counter()
    runs = [run_expert(env, g, seed=i) for i, g in enumerate(games)]
    out["handcoded_then_planner_win_rate_50"] = round(sum(r.won for r in runs) / len(runs), 3)
    out["handcoded_then_planner_s_per_game"] = round((time.perf_counter() - t) / len(games), 2)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--games", type=int, default=10)
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--experts", type=int, default=0, help="games for the expert win rates (0: skip)")
    parser.add_argument("--out", type=Path, default=REPO / "bench" / "results" / "alfworld_engine.json")
    args = parser.parse_args()

    source, games = pick_games(max(args.games, args.experts))
    sample = games[: args.games]
    result: dict[str, object] = {
        "games": source,
        "n_games": len(sample),
        "steps_per_game": args.steps,
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(), "platform": platform.platform()},
        "default": speed(sample, args.steps),
        "engine_as_shipped": speed(sample, args.steps, cache_commands=False, restore_reset=False),
        "with_facts": speed(sample, args.steps, facts=True),
    }
    if args.experts:
        result["experts"] = experts(games[: args.experts])
        result["experts"]["command"] = f"python bench/alfworld_engine.py --experts {args.experts}"
    elif args.out.exists():
        # The expert figures take half an hour; a speed-only run keeps the last ones measured.
        previous = json.loads(args.out.read_text()).get("experts")
        if previous:
            result["experts"] = previous
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
