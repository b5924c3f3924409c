"""How often a small local model's JSON replies are usable, with and without structured output.

    python bench/structured_outputs.py --runs gold.jsonl [--n 50] [--modes auto off] \\
        [--base-url http://127.0.0.1:8080/v1 --model smollm2] [--out bench/results/structured_outputs.json]

``gold.jsonl`` holds expert ALFWorld runs (``memp alfworld expert GAMES --out gold.jsonl``). For
each run and each mode (``--llm-structured``), memp's own LLM paths are called exactly as
``memp memory add`` calls them:

- ``keywords``: AveFact keyword extraction of the run's task (``LLMKeywordExtractor``);
- ``script_direct``: the direct script build (``ScriptBuilder(mode="direct")``);
- ``script_events`` and ``script_critical``: the paper's two-stage build (``mode="two_stage"``);
- ``adjust``: the adjustment reflection (``LLMAdjuster``), on a made-up failure: the run cut to
  its first half, marked failed, with the rule-built procedure of the whole run as the one that
  was followed.

Each reply is counted valid when memp accepted it as it was (no re-ask needed): it parsed, and
passed the reply's pydantic schema and memp's own checks. Printed and written per prompt: the
validity rate, prompt and completion tokens and seconds per call, and the wire form used. Without
``--base-url`` the bundled SmolLM2-135M is served by llama.cpp for the run (as ``memp llm serve``).
Results are written after every run, so an interrupted benchmark still leaves its figures.
"""

from __future__ import annotations

import argparse
import json
import platform
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from memp import prompts  # noqa: E402
from memp._errors import LLMOutputError  # noqa: E402
from memp.build import ScriptBuilder  # noqa: E402
from memp.keywords import LLMKeywordExtractor  # noqa: E402
from memp.llm.client import OpenAIClient  # noqa: E402
from memp.types import Task, Trajectory, trajectory_from_json  # noqa: E402
from memp.update import LLMAdjuster  # noqa: E402

PROMPTS = ("keywords", "script_direct", "script_events", "script_critical", "adjust")
OPERATIONS = ("keywords", "build_direct", "adjustment", "build_two_stage")


@dataclass
class Call:
    prompt: str
    seconds: float
    prompt_tokens: int
    completion_tokens: int
    form: str | None
    text: str
    valid: bool = False


@dataclass
class Recorder:
    """An LLM that asks the client and notes every call, for the benchmark's bookkeeping."""

    client: OpenAIClient
    calls: list[Call] = field(default_factory=list)

    @property
    def model(self) -> str:
        return self.client.model

    def complete(self, messages, *, temperature=None, max_tokens=None, stop=None, constraint=None) -> str:
        started = time.perf_counter()
        done = self.client.chat(messages, temperature=temperature, max_tokens=max_tokens, stop=stop,
                                constraint=constraint)
        self.calls.append(Call(_prompt_of(messages), time.perf_counter() - started, done.prompt_tokens,
                               done.completion_tokens, done.structured, done.text))
        return done.text


def _prompt_of(messages: list[dict[str, str]]) -> str:
    system = messages[0]["content"] if messages and messages[0]["role"] == "system" else ""
    for name in PROMPTS:
        if prompts.load(name)["system"].strip().splitlines()[0] in system:
            return name
    return "other"


def _judge(recorder: Recorder, first: int, ok: bool) -> None:
    """complete_json returns on the first accepted reply: so only the last can be valid, if any."""
    made = recorder.calls[first:]
    if ok and made:
        made[-1].valid = True


def _failed_half(trajectory: Trajectory) -> Trajectory:
    steps = trajectory.steps[: max(1, len(trajectory.steps) // 2)]
    return trajectory.model_copy(update={"steps": steps, "success": False, "reward": 0.0})


def operations(recorder: Recorder, trajectory: Trajectory) -> dict[str, Callable[[], Any]]:
    """memp's four LLM paths on one run, as ``memp memory add`` and retrieval call them."""
    task = Task(text=trajectory.task.text, type=trajectory.task.type, env=trajectory.task.env)
    bare = trajectory.model_copy(update={"task": task})  # no stored keywords: the model must give them
    return {
        "keywords": lambda: LLMKeywordExtractor(recorder).extract(task),
        "build_direct": lambda: ScriptBuilder(llm=recorder, mode="direct").build(bare),
        "adjustment": lambda: LLMAdjuster(recorder).revise(ScriptBuilder().build(bare), _failed_half(bare)),
        "build_two_stage": lambda: ScriptBuilder(llm=recorder, mode="two_stage").build(bare),
    }


def run_one(recorder: Recorder, name: str, trajectory: Trajectory, examples: list[dict[str, Any]]) -> bool:
    first = len(recorder.calls)
    try:
        result = operations(recorder, trajectory)[name]()
        ok = True
    except LLMOutputError:
        result, ok = None, False
    if name == "build_two_stage":  # two complete_json calls: each stage ends with its accepted reply
        _judge_stages(recorder, first, ok)
    else:
        _judge(recorder, first, ok)
    if ok and name != "keywords" and sum(e["operation"] == name for e in examples) < 3:
        examples.append({"operation": name, "task": trajectory.task.text, "script": result.script,
                         "summary": result.summary, "notes": result.notes[-1:]})
    return ok


def _operation_of(prompt: str) -> str:
    return {"keywords": "keywords", "script_direct": "build_direct", "adjust": "adjustment"}.get(
        prompt, "build_two_stage")


def _judge_stages(recorder: Recorder, first: int, ok: bool) -> None:
    made = recorder.calls[first:]
    events = [c for c in made if c.prompt == "script_events"]
    critical = [c for c in made if c.prompt == "script_critical"]
    if critical:  # the events stage succeeded with its last reply
        events[-1].valid = True
        critical[-1].valid = ok


def summarise(calls: list[Call]) -> dict[str, Any]:
    out = {}
    for name in PROMPTS:
        mine = [c for c in calls if c.prompt == name]
        if not mine:
            continue
        n = len(mine)
        out[name] = {
            "calls": n,
            "valid": sum(c.valid for c in mine),
            "validity_rate": round(sum(c.valid for c in mine) / n, 4),
            "prompt_tokens_per_call": round(sum(c.prompt_tokens for c in mine) / n, 1),
            "completion_tokens_per_call": round(sum(c.completion_tokens for c in mine) / n, 1),
            "seconds_per_call": round(sum(c.seconds for c in mine) / n, 2),
            "forms": sorted({c.form or "none" for c in mine}),
        }
    return out


def serve_bundled(workdir: Path) -> tuple[subprocess.Popen, str]:
    from memp.llm.local import llama_server_command, llama_server_config

    with __import__("socket").socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    command = llama_server_command(llama_server_config(port, n_ctx=4096), workdir / "config.json")
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    base = f"http://127.0.0.1:{port}/v1"
    for _ in range(600):
        try:
            with urllib.request.urlopen(f"{base}/models", timeout=2):  # noqa: S310 - loopback only
                return process, base
        except OSError:
            if process.poll() is not None:
                raise SystemExit(f"the llama.cpp server exited with {process.returncode}") from None
            time.sleep(0.5)
    process.terminate()
    raise SystemExit("the llama.cpp server did not answer within 5 minutes")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=Path, required=True, help="expert trajectories, JSONL")
    parser.add_argument("--n", type=int, default=50, help="how many runs (the first N)")
    parser.add_argument("--modes", nargs="+", default=["auto", "off"],
                        choices=["auto", "json_schema", "grammar", "off"])
    parser.add_argument("--n-off", type=int, default=None, help="runs for the 'off' mode (default: --n)")
    parser.add_argument("--operations", nargs="+", default=list(OPERATIONS), choices=OPERATIONS)
    parser.add_argument("--base-url", default=None)
    parser.add_argument("--model", default="smollm2")
    parser.add_argument("--timeout", type=float, default=900.0)
    parser.add_argument("--out", type=Path, default=Path("bench/results/structured_outputs.json"))
    args = parser.parse_args()

    lines = [ln for ln in args.runs.read_text().splitlines() if ln.strip()][: args.n]
    runs = [trajectory_from_json(ln) for ln in lines]
    server = None
    base_url = args.base_url
    if base_url is None:
        server, base_url = serve_bundled(Path(tempfile.mkdtemp(prefix="memp-bench-")))
    report: dict[str, Any] = {
        "command": " ".join(sys.argv), "model": args.model, "runs_file": str(args.runs),
        "machine": {"python": platform.python_version(), "cpus": __import__("os").cpu_count()},
        "modes": {},
    }
    try:
        for mode in args.modes:
            client = OpenAIClient(args.model, base_url, seed=0, timeout=args.timeout, structured=mode,
                                  max_retries=1)
            recorder = Recorder(client)
            outcomes: dict[str, list[bool]] = {}
            examples: list[dict[str, Any]] = []
            limit = args.n_off if (mode == "off" and args.n_off is not None) else len(runs)
            started = time.perf_counter()
            # Operation by operation over all runs: an interrupted benchmark still covers every run
            # for the operations it finished.
            for name in args.operations:
                for i, trajectory in enumerate(runs[:limit], 1):
                    outcomes.setdefault(name, []).append(run_one(recorder, name, trajectory, examples))
                    report["modes"][mode] = {
                        "runs": limit,
                        "seconds": round(time.perf_counter() - started, 1),
                        "per_prompt": summarise(recorder.calls),
                        "replies": len(recorder.calls),
                        "valid_replies": sum(c.valid for c in recorder.calls),
                        "operations": {k: {"done": len(v), "succeeded": sum(v)} for k, v in outcomes.items()},
                        "refused_forms": sorted(client.refused),
                        "examples": examples,
                    }
                    args.out.parent.mkdir(parents=True, exist_ok=True)
                    args.out.write_text(json.dumps(report, indent=2) + "\n")
                    valid = sum(c.valid for c in recorder.calls if _operation_of(c.prompt) == name)
                    made = sum(1 for c in recorder.calls if _operation_of(c.prompt) == name)
                    print(f"[{mode}] {name} {i}/{limit}: {valid}/{made} replies valid", flush=True)
            print(f"\n{mode}: prompt, validity, tokens in/out per call, seconds per call, form")
            for name, row in report["modes"][mode]["per_prompt"].items():
                print(f"  {name:16} {row['valid']:3}/{row['calls']:<3} {row['validity_rate']:7.1%} "
                      f"{row['prompt_tokens_per_call']:7.0f} {row['completion_tokens_per_call']:6.0f} "
                      f"{row['seconds_per_call']:7.1f}  {','.join(row['forms'])}")
    finally:
        if server is not None:
            server.terminate()
            server.wait(timeout=30)


if __name__ == "__main__":
    main()
