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

Each reply is counted valid when memp accepted it as it was (no re-ask needed): its parser found
JSON in it and memp's own checks passed; and schema-valid when the whole reply is one JSON
document of the prompt's pydantic model (the stricter count, what constrained decoding promises).
Printed and written per prompt: both counts, prompt and completion tokens and seconds per call,
and the wire form used. Unconstrained calls are capped at 1024 tokens (memp sets no cap; see
``Recorder``). Without
``--base-url`` the bundled SmolLM2-135M is served by llama.cpp for the run (as ``memp llm serve``).
Every operation's calls are appended to a JSONL file (``--calls``, default next to ``--out``) as it
finishes; a rerun skips what is there and continues, and the report is rebuilt from the file after
each operation, so an interrupted benchmark leaves its figures and resumes. Several processes may
share the file (say one per mode, each with its own server).
"""

from __future__ import annotations

import argparse
import fcntl
import json
import os
import platform
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from pydantic import BaseModel  # noqa: E402

from memp import prompts  # noqa: E402
from memp._errors import LLMError  # noqa: E402
from memp.build import ScriptBuilder  # noqa: E402
from memp.keywords import LLMKeywordExtractor  # noqa: E402
from memp.llm import schemas  # noqa: E402
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
    # memp sets no max_tokens on these calls; unconstrained (mode off), SmolLM2 may ramble until the
    # context is full, minutes per call here. A cap for that mode only; above any reply the fixed
    # schemas allow (~600 tokens), though a two-stage events reply for a long run may need more.
    off_max_tokens: int = 1024

    @property
    def model(self) -> str:
        return self.client.model

    def complete(self, messages, *, temperature=None, max_tokens=None, stop=None, constraint=None) -> str:
        started = time.perf_counter()
        done = self.client.chat(messages, temperature=temperature, max_tokens=max_tokens or self._cap(),
                                stop=stop, constraint=constraint)
        self.calls.append(Call(_prompt_of(messages), time.perf_counter() - started, done.prompt_tokens,
                               done.completion_tokens, done.structured, done.text))
        return done.text

    def _cap(self) -> int | None:
        return self.off_max_tokens if self.client.structured == "off" else None


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


def run_one(recorder: Recorder, name: str, trajectory: Trajectory) -> dict[str, Any]:
    """One operation on one run: its outcome, its calls (each judged valid or not) and its result."""
    first = len(recorder.calls)
    started = time.perf_counter()
    error = None
    try:
        result = operations(recorder, trajectory)[name]()
        ok = True
    except LLMError as err:  # no usable reply; or, unconstrained, a reply that filled the context
        result, ok, error = None, False, f"{type(err).__name__}: {str(err)[:200]}"
    if name == "build_two_stage":  # two complete_json calls: each stage ends with its accepted reply
        _judge_stages(recorder, first, ok)
    else:
        _judge(recorder, first, ok)
    record: dict[str, Any] = {
        "operation": name, "task": trajectory.task.text, "ok": ok,
        "seconds": round(time.perf_counter() - started, 2),
        "calls": [asdict(c) for c in recorder.calls[first:]],
    }
    if error is not None:
        record["error"] = error
    if ok and name != "keywords":
        record["result"] = {"script": result.script, "summary": result.summary, "notes": result.notes[-1:]}
    return record


def _judge_stages(recorder: Recorder, first: int, ok: bool) -> None:
    made = recorder.calls[first:]
    events = [c for c in made if c.prompt == "script_events"]
    critical = [c for c in made if c.prompt == "script_critical"]
    if critical:  # the events stage succeeded with its last reply
        events[-1].valid = True
        critical[-1].valid = ok


def reply_model(prompt: str, n_steps: int) -> type[BaseModel]:
    """The pydantic model a prompt's reply is declared as (``memp.llm.schemas``)."""
    fixed = {"keywords": schemas.Keywords, "script_direct": schemas.DirectScript, "adjust": schemas.Adjustment}
    if prompt in fixed:
        return fixed[prompt]
    return (schemas.events_reply if prompt == "script_events" else schemas.critical_reply)(n_steps)


def schema_valid(call: dict[str, Any], n_steps: int) -> bool:
    """Stricter than ``valid``: the whole reply is one JSON document of the declared schema.

    memp's parser also digs JSON out of chatter and fills some gaps; this counts only replies that
    needed neither, which is what a constrained decoder promises.
    """
    try:
        reply_model(call["prompt"], n_steps).model_validate(json.loads(call["text"].strip()))
    except (ValueError, TypeError):  # JSONDecodeError and ValidationError are ValueErrors
        return False
    return True


def summarise(calls: list[dict[str, Any]]) -> dict[str, Any]:
    """Per prompt: calls, valid replies, validity rate, tokens and seconds per call, wire forms."""
    out = {}
    for name in PROMPTS:
        mine = [c for c in calls if c["prompt"] == name]
        if not mine:
            continue
        n = len(mine)
        valid = sum(c["valid"] for c in mine)
        out[name] = {
            "calls": n,
            "valid": valid,
            "validity_rate": round(valid / n, 4),
            "schema_valid": sum(c["schema_valid"] for c in mine),
            "prompt_tokens_per_call": round(sum(c["prompt_tokens"] for c in mine) / n, 1),
            "completion_tokens_per_call": round(sum(c["completion_tokens"] for c in mine) / n, 1),
            "seconds_per_call": round(sum(c["seconds"] for c in mine) / n, 2),
            "forms": sorted({c["form"] or "none" for c in mine}),
        }
    return out


# ---- the results file: one JSON line per (mode, operation, run), appended as each finishes ----------


def load_records(path: Path) -> list[dict[str, Any]]:
    """Every finished record, once; a torn last line (a process killed mid-write) is ignored."""
    if not path.exists():
        return []
    records: dict[tuple[str, str, int], dict[str, Any]] = {}
    for line in path.read_text().splitlines():
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            continue
        # Two processes may finish the same item; the first record counts.
        records.setdefault((record["mode"], record["operation"], record["run"]), record)
    return list(records.values())


def _done(path: Path) -> set[tuple[str, str, int]]:
    return {(r["mode"], r["operation"], r["run"]) for r in load_records(path)}


def append_record(path: Path, record: dict[str, Any]) -> None:
    """One line, one write, under an exclusive lock: safe with several benchmark processes."""
    path.parent.mkdir(parents=True, exist_ok=True)
    data = (json.dumps(record) + "\n").encode()
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        os.write(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)  # closing releases the lock


def mode_report(records: list[dict[str, Any]], runs: list[Trajectory]) -> dict[str, Any]:
    """The figures of one mode's records."""
    calls = [{**c, "schema_valid": schema_valid(c, len(runs[r["run"]].steps))} for r in records for c in r["calls"]]
    ops: dict[str, dict[str, int]] = {}
    for r in records:
        row = ops.setdefault(r["operation"], {"done": 0, "succeeded": 0})
        row["done"] += 1
        row["succeeded"] += r["ok"]
    examples = [
        {"operation": r["operation"], "run": r["run"], "task": r["task"], **r["result"]}
        for name in OPERATIONS
        for r in sorted((r for r in records if r["operation"] == name and r.get("result")),
                        key=lambda r: r["run"])[:2]
    ]
    return {
        "runs_reached": len({r["run"] for r in records}),
        "per_prompt": summarise(calls),
        "replies": len(calls),
        "valid_replies": sum(c["valid"] for c in calls),
        "operations": ops,
        "refused_forms": sorted({f for r in records for f in r.get("refused", [])}),
        "examples": examples,
    }


def write_report(calls_file: Path, out: Path, header: dict[str, Any], runs: list[Trajectory]) -> dict[str, Any]:
    """Recompute the report from every record so far; replaced atomically (several writers)."""
    records = load_records(calls_file)
    modes = sorted({r["mode"] for r in records})
    report = {**header, "modes": {m: mode_report([r for r in records if r["mode"] == m], runs) for m in modes}}
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.{os.getpid()}")
    tmp.write_text(json.dumps(report, indent=2) + "\n")
    os.replace(tmp, out)
    return report


def print_report(report: dict[str, Any]) -> None:
    for mode, figures in report["modes"].items():
        print(f"\n{mode} ({figures['runs_reached']} runs): prompt, valid/calls, rate, schema-valid, "
              "tokens in/out per call, seconds per call, form")
        for name, row in figures["per_prompt"].items():
            print(f"  {name:16} {row['valid']:3}/{row['calls']:<3} {row['validity_rate']:7.1%} {row['schema_valid']:4} "
                  f"{row['prompt_tokens_per_call']:7.0f} {row['completion_tokens_per_call']:6.0f} "
                  f"{row['seconds_per_call']:7.1f}  {','.join(row['forms'])}")


def serve_bundled(workdir: Path, threads: int | None) -> tuple[subprocess.Popen, str]:
    from memp.llm.local import llama_server_command, llama_server_config

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    config = llama_server_config(port, n_ctx=4096, threads=threads)
    process = subprocess.Popen(llama_server_command(config, workdir / "config.json"),
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
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
    parser.add_argument("--first", type=int, default=0,
                        help="start at this run (0-based): a second process can work from the far end")
    parser.add_argument("--modes", nargs="+", default=["auto", "off"],
                        choices=["auto", "json_schema", "grammar", "off"])
    parser.add_argument("--operations", nargs="+", default=list(OPERATIONS), choices=OPERATIONS)
    parser.add_argument("--base-url", default=None)
    parser.add_argument("--model", default="smollm2")
    parser.add_argument("--threads", type=int, default=None,
                        help="llama.cpp threads of the bundled server (default: memp llm serve's)")
    parser.add_argument("--timeout", type=float, default=900.0)
    parser.add_argument("--block", type=int, default=10, help="runs per block (see the loop below)")
    parser.add_argument("--out", type=Path, default=Path("bench/results/structured_outputs.json"))
    parser.add_argument("--calls", type=Path, default=None,
                        help="the per-call JSONL to append to and resume from (default: OUT with .calls.jsonl)")
    parser.add_argument("--report-only", action="store_true", help="only rebuild OUT from the calls file")
    args = parser.parse_args()
    # SIGTERM ends the benchmark like Ctrl-C, so the llama.cpp server it started is stopped too.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    calls_file = args.calls or args.out.with_suffix(".calls.jsonl")
    header = {"command": "python bench/structured_outputs.py --runs RUNS [--modes ...] [--operations ...]",
              "model": args.model, "runs_file": args.runs.name,
              "machine": {"python": platform.python_version(), "cpus": os.cpu_count()},
              "calls_file": str(calls_file)}
    lines = [ln for ln in args.runs.read_text().splitlines() if ln.strip()]
    every_run = [trajectory_from_json(ln) for ln in lines]
    runs = every_run[: args.n]
    if args.report_only:
        print_report(write_report(calls_file, args.out, header, every_run))
        return

    done = _done(calls_file)
    # Runs in blocks, one prompt at a time within a block: consecutive calls of one prompt share its
    # long system prompt, which llama.cpp keeps evaluated (a call costs half as much); and an
    # interrupted benchmark has covered about as many runs for every prompt.
    blocks = [range(b, min(b + args.block, len(runs))) for b in range(args.first, len(runs), args.block)]
    todo = [(i, mode, name) for block in blocks for mode in args.modes for name in args.operations
            for i in block if (mode, name, i) not in done]
    print(f"{len(done)} records already in {calls_file}; {len(todo)} to go", flush=True)
    server = None
    base_url = args.base_url
    if base_url is None and todo:
        server, base_url = serve_bundled(Path(tempfile.mkdtemp(prefix="memp-bench-")), args.threads)
    try:
        clients = {mode: OpenAIClient(args.model, base_url, seed=0, timeout=args.timeout, structured=mode,
                                      max_retries=1) for mode in args.modes} if todo else {}
        for i, mode, name in todo:
            if (mode, name, i) in _done(calls_file):  # another process did it meanwhile
                continue
            recorder = Recorder(clients[mode])
            record = {"mode": mode, "run": i, **run_one(recorder, name, runs[i]),
                      "refused": sorted(clients[mode].refused)}
            append_record(calls_file, record)
            valid = sum(c["valid"] for c in record["calls"])
            print(f"[{mode}] run {i + 1}/{len(runs)} {name}: {'ok' if record['ok'] else 'FAILED'}, "
                  f"{valid}/{len(record['calls'])} replies valid, {record['seconds']:.1f} s", flush=True)
            write_report(calls_file, args.out, header, every_run)
    finally:
        if server is not None:
            server.terminate()
            try:
                server.wait(timeout=30)
            except subprocess.TimeoutExpired:  # it finishes the reply in progress first; not that long
                server.kill()
                server.wait()
    print_report(write_report(calls_file, args.out, header, every_run))


if __name__ == "__main__":
    main()
