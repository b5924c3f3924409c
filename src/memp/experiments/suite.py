"""The suite runner: conditions × held-out sets × seeds, for any ``Benchmark``; seeded and resumable.

A *condition* says how memory is used: where it starts (nothing, the expert's runs, the agent's
own runs, an imported export, or empty), which build, retrieve and update strategies, how many
procedures (k). Three kinds:

- *frozen*: memory is built, then only read while the held-out tasks are played;
- *online*: after every ``update_every`` tasks the agent's own runs update memory (within such a
  batch memory is frozen, so its episodes play in parallel; then the trajectories update it one
  by one, in task order, so a run does not depend on which worker finished first);
- *self-taught*: from empty memory the agent plays the training tasks, ``train_passes`` times,
  updating memory after every episode; then memory is frozen and the held-out tasks are played.
  The training stream's records are its learning curve. The self-taught conditions' training
  streams play side by side, an episode of each per round, so that the workers stay busy.

Every finished episode is one line of ``<folder>/episodes.jsonl``, written after its batch; a rerun
plays only what is missing (an online memory's database is kept while its part is unfinished).
``suite.json`` holds the settings that change the numbers: a folder made with other settings is
refused, never mixed.
"""

from __future__ import annotations

import fcntl
import json
import os
import random
import shutil
import sqlite3
from collections.abc import Iterator, Sequence
from contextlib import contextmanager, nullcontext
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any, Protocol

from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from memp._errors import InvalidInputError
from memp.embed import Embedder
from memp.experiments.workers import Players
from memp.memory import Memory
from memp.types import RetrievalHit, Task, Trajectory

TRAIN = "train"  # the set name of episodes played on the training tasks
OWN = "agent on train"  # the condition whose winning runs make the agent-built memory
FROZEN_BATCH = 32  # episodes played between two writes when memory does not change
ORDERS = ("shuffled", "learning", "file")


@dataclass(frozen=True)
class Condition:
    """One way of running the agent; ``memory=None`` means no memory."""

    name: str
    memory: str | None = None  # None, "expert", "own", "imported" or "empty"
    build: str = "proceduralization"
    retrieve: str = "query"
    k: int = 3
    update: str | None = None  # set: memory learns from the agent's runs (online, or while self-taught)
    train_passes: int = 0  # > 0: self-taught, that many passes over the training tasks, then frozen

    @property
    def self_taught(self) -> bool:
        return self.train_passes > 0


@dataclass(frozen=True)
class EpisodeTask:
    """A task to play: an id, its description, the agent's seed and what the benchmark needs to play it."""

    id: str
    task: Task
    seed: int = 0
    payload: Any = None  # e.g. a TravelQuery; None when the id says it all (an ALFWorld game path)
    explore: int | None = None  # a self-taught training episode: the seed of the agent's exploration


@dataclass
class EpisodeRecord:
    """One finished episode: one line of ``episodes.jsonl``."""

    condition: str
    set: str
    task_id: str
    seed: int
    group: int
    success: bool
    steps: int
    reward: float
    error: str | None
    trajectory_id: str
    task_type: str | None = None
    retrieved: list[str] = field(default_factory=list)
    tokens: int = 0
    cost_usd: float = 0.0  # only what was fetched from the network, at the configured price
    scores: dict[str, Any] = field(default_factory=dict)  # the benchmark's own per-episode scores
    memory: dict[str, int] | None = None  # after this episode's batch updated memory (learning conditions)


@dataclass
class SeedData:
    """What one seed plays: training tasks, held-out sets (in file order) and the expert's runs."""

    train: list[EpisodeTask]
    held_out: dict[str, list[EpisodeTask]]
    expert: list[Trajectory]
    train_key: str  # folder of the agent's own runs on ``train``: seeds with the same train set share it
    info: dict[str, Any] = field(default_factory=dict)


class Benchmark(Protocol):
    """What an environment gives the runner (``memp.experiments.alfworld``, ``.travelplanner``)."""

    name: str
    sets: tuple[str, ...]  # the held-out sets, in report order
    keep_trajectories: bool  # held-out trajectories written to trajectories.jsonl too
    tie_break: bool  # rank retrieval ties by procedure key (see ``stable_top``), not the store's order
    prewarm: bool  # embed every task's text and keywords in one batch first (see ``prewarm``)
    # For the tables and the report: the summary keys of the main rate, its interval and the steps,
    # the rate columns shown, the curves' panels, the paper's own numbers (and which of ours they
    # stand beside), the sets' names.
    rate: str
    ci: str
    steps: str
    columns: dict[str, str]
    curve_metrics: list[tuple[str, str, bool]]
    paper: dict[str, Any]
    paper_keys: tuple[str, ...]
    labels: dict[str, str]

    def fingerprint(self) -> dict[str, Any]:
        """The benchmark's settings that change the numbers."""

    def prepare(self, seed: int) -> SeedData:
        """Train, held-out and expert data for a seed."""

    def open_memory(self, path: Path, condition: Condition, seed: int, embedder: Embedder) -> Memory:
        """A memory at ``path`` set up for the condition."""

    def player(self):
        """A picklable callable ``(EpisodeTask, hits, max_steps) -> (Trajectory, scores)``."""

    def keeps(self, trajectory: Trajectory) -> bool:
        """Whether an own run on the training tasks goes into the agent-built memory."""

    def summarise(self, records: Sequence[EpisodeRecord], seeds: Sequence[int] = ()) -> dict[str, Any]:
        """Pooled scores of records (with each seed's main rate when ``seeds`` are given)."""

    def agent_name(self) -> str:
        """The agent, as the report names it."""


@dataclass(frozen=True)
class Settings:
    """How the runner plays, besides the conditions."""

    seeds: tuple[int, ...] = (0,)
    group_size: int = 10  # records' group: a point of the learning curves
    update_every: int = 10  # episodes between memory updates in online conditions
    # Which parts play their tasks in an order drawn by the seed (``arrival_order``): "shuffled" (all),
    # "learning" (only those whose memory learns while playing; frozen ones keep file order, which
    # matters only to the random retriever's draws) or "file" (none).
    order: str = "shuffled"
    max_steps: int = 30
    train_max_steps: int = 30  # step budget of self-taught training episodes
    workers: int = 1
    ray: str | None = None

    def fingerprint(self) -> dict[str, Any]:
        keep = ("group_size", "update_every", "order", "max_steps", "train_max_steps")
        # Self-taught training updates memory after every episode (folders made before updated per batch).
        return {key: getattr(self, key) for key in keep} | {"train_update_every": 1}


@dataclass
class Part:
    """One condition played on one list of tasks, recorded in ``folder``."""

    folder: Path
    set: str
    condition: Condition
    tasks: list[EpisodeTask]
    seed: int
    learns: bool  # memory.update after each batch
    max_steps: int


@dataclass
class SuiteRun:
    """What a finished suite gives the tables: every record, and each seed's data."""

    records: list[EpisodeRecord]
    data: dict[int, SeedData]
    own: dict[str, list[Trajectory]]  # train_key -> the agent's runs on the training tasks


def arrival_order(tasks: Sequence, seed: int) -> list:
    """The tasks shuffled by the seed.

    Game folders sort by task type, so in file order each group would hold one type and a curve
    would trace the types' difficulty, not what memory learned. Shuffled, every group mixes types,
    as an agent's stream of work would, and each seed sees another stream.
    """
    shuffled = list(tasks)
    random.Random(seed).shuffle(shuffled)
    return shuffled


# --- records --------------------------------------------------------------------------------


def load_records(path: Path) -> list[EpisodeRecord]:
    """Every record of an ``episodes.jsonl``; a line cut short by a crash is skipped."""
    if not path.exists():
        return []
    records = []
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            records.append(EpisodeRecord(**json.loads(line)))
        except (json.JSONDecodeError, TypeError):
            continue  # a line cut short by a crash: that episode is simply played again
    return records


def append_lines(path: Path, lines: Sequence[str]) -> None:
    """Lines at the end of the file in one write, on a line of their own even after a line cut short."""
    if not lines:
        return
    with path.open("a+b") as fh:
        fh.seek(0, os.SEEK_END)
        head = b""
        if fh.tell():
            fh.seek(-1, os.SEEK_END)
            head = b"" if fh.read(1) == b"\n" else b"\n"
        fh.write(head + "".join(line + "\n" for line in lines).encode("utf-8"))


def read_trajectories(folder: Path, condition: str, ids: Sequence[str]) -> list[Trajectory]:
    """The trajectories of ``ids`` from ``folder/trajectories.jsonl``, in that order."""
    wanted, found = set(ids), {}
    path = folder / "trajectories.jsonl"
    for line in path.read_text(encoding="utf-8").splitlines() if path.exists() else []:
        try:
            row = json.loads(line)
        except json.JSONDecodeError:
            continue
        if row.get("condition") == condition and row.get("id") in wanted:
            found[row["id"]] = Trajectory.model_validate({k: v for k, v in row.items()
                                                          if k not in ("condition", "set")})
    missing = [i for i in ids if i not in found]
    if missing:
        raise InvalidInputError(f"{path} lacks {len(missing)} trajectories of {condition!r} that episodes.jsonl "
                                "records; delete that folder's episodes.jsonl to play them again")
    return [found[i] for i in ids]


def memory_state(memory: Memory) -> dict[str, int]:
    """Memory size: active and deprecated procedures, and revisions made so far."""
    store, ns = memory.store, memory.namespace
    return {"active": store.count(ns, status="active"), "deprecated": store.count(ns, status="deprecated"),
            "revisions": sum(1 for e in store.events(ns) if e.kind == "revised")}


# --- the folder: one run at a time, one set of settings --------------------------------------


@contextmanager
def claim_folder(out: Path, fingerprint: dict[str, Any]) -> Iterator[None]:
    """Hold ``out`` for this run; refuse (leaving it as it was) a folder of other settings or another run."""
    wanted = json.loads(json.dumps(fingerprint))
    if out.is_dir():
        _check_settings(out, wanted, write=False)
    out.mkdir(parents=True, exist_ok=True)
    with (out / ".lock").open("w") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise InvalidInputError(f"another run is writing into {out}; wait for it or use another --out") from None
        _check_settings(out, wanted, write=True)
        yield


def _check_settings(out: Path, wanted: dict[str, Any], write: bool) -> None:
    path = out / "suite.json"
    if path.exists():
        found = json.loads(path.read_text(encoding="utf-8"))
        if found != wanted:
            changed = sorted(k for k in {*wanted, *found} if found.get(k) != wanted.get(k))
            raise InvalidInputError(f"{out} holds a run with other settings ({', '.join(changed)}); "
                                    "use another --out folder or delete that one")
        return
    old = [p.name for p in out.iterdir() if p.name.startswith("seed-") or p.name == "agent-train"]
    if old:
        raise InvalidInputError(
            f"{out} holds results of an earlier memp (before suite.json recorded the settings), which "
            "cannot be checked against these settings; use another --out folder, or delete "
            f"{', '.join(sorted(old))} to play everything again")
    if not write:
        return
    partial = path.with_name("suite.json.partial")
    partial.write_text(json.dumps(wanted, indent=2) + "\n", encoding="utf-8")
    partial.replace(path)


# --- the runner -----------------------------------------------------------------------------


class Runner:
    """Plays parts: retrieval and updates here, episodes on ``Players`` (processes or Ray)."""

    def __init__(self, benchmark: Benchmark, out: Path, settings: Settings, embedder: Embedder,
                 imported: list[dict] | None = None, progress: Progress | None = None) -> None:
        self.benchmark = benchmark
        self.out = out
        self.settings = settings
        self.embedder = embedder
        self.imported = imported
        self.progress = progress
        self.whole = None
        self.starts: dict[tuple[int, str], list[Trajectory]] = {}  # (seed, memory) -> runs it is built from
        self._records: dict[Path, dict[tuple[str, str], list[EpisodeRecord]]] = {}

    def recorded(self, part: Part) -> list[EpisodeRecord]:
        """The part's records when this run started (each folder's file read once)."""
        if part.folder not in self._records:
            found: dict[tuple[str, str], list[EpisodeRecord]] = {}
            for r in load_records(part.folder / "episodes.jsonl"):
                found.setdefault((r.set, r.condition), []).append(r)
            self._records[part.folder] = found
        return self._records[part.folder].get((part.set, part.condition.name), [])

    # memories

    def _open(self, path: Path, condition: Condition, seed: int) -> Memory:
        return self.benchmark.open_memory(path, condition, seed, self.embedder)

    def _template(self, folder: Path, condition: Condition, seed: int) -> Path:
        """The starting memory of a kind and build, built once per seed; every part copies it.

        What ``add_many`` stores depends on the build only, not on retrieval, update or k.
        """
        path = folder / "memories" / f"{condition.memory}-{condition.build}.template"
        if not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True)
            building = path.with_name(f"{path.name}.{os.getpid()}.building")
            _remove(building)
            memory = self._open(building, condition, seed)
            if condition.memory == "imported":
                memory.store.import_records(self.imported, namespace=memory.namespace)
            else:
                memory.add_many(self.starts[(seed, condition.memory)])
            memory.store.close()  # not memory.close(): the embedder and its disk cache are shared
            os.replace(building, path)
        return path

    def open_part_memory(self, part: Part, resuming: bool) -> Memory | None:
        cond = part.condition
        if cond.memory is None:
            return None
        path = self.memory_path(part)
        if part.learns and resuming and path.exists():
            return self._open(path, cond, part.seed)  # the memory the recorded batches built
        path.parent.mkdir(parents=True, exist_ok=True)
        _remove(path)
        if cond.self_taught and not part.learns:
            source = self.memory_path(replace(part, set=TRAIN, learns=True))
        elif cond.memory == "empty":
            return self._open(path, cond, part.seed)
        else:
            source = self._template(part.folder, cond, part.seed)
        with sqlite3.connect(source) as src, sqlite3.connect(path) as copy:
            src.backup(copy)
        src.close()
        copy.close()
        return self._open(path, cond, part.seed)

    def memory_path(self, part: Part) -> Path:
        if part.condition.self_taught and part.learns:  # kept: the memory the agent taught itself
            return part.folder / "self-taught" / f"{_slug(part.condition.name)}.db"
        return part.folder / "memories" / part.set / f"{_slug(part.condition.name)}.db"

    # playing

    def run_part(self, part: Part, play: Players, memory: Memory | None = None) -> list[EpisodeRecord]:
        """Play what is missing of one part; returns its records, old and new.

        ``memory``: the caller's memory instead of the condition's (left open).
        """
        part.folder.mkdir(parents=True, exist_ok=True)
        done = self.recorded(part)
        _check_resumed(part, done)
        if len(done) >= len(part.tasks):
            return done[:len(part.tasks)]
        bar = None
        if self.progress is not None:
            bar = self.progress.add_task(f"{part.condition.name} ({part.set})"[:28], total=len(part.tasks),
                                         completed=len(done))
        given = memory is not None
        memory = memory if given else self.open_part_memory(part, resuming=bool(done))
        records = list(done)
        size = self.settings.update_every if part.learns else FROZEN_BATCH
        try:
            for start in range(len(done), len(part.tasks), size):
                records += self._batch(part, start, part.tasks[start:start + size], memory, play)
                if bar is not None:
                    self.progress.advance(bar, len(part.tasks[start:start + size]))
                    self.progress.advance(self.whole, len(part.tasks[start:start + size]))
        finally:
            if memory is not None and not given:
                memory.store.close()
        if bar is not None:
            self.progress.remove_task(bar)
        if not part.learns or not part.condition.self_taught:
            _remove(self.memory_path(part))
        return records

    def run_together(self, parts: Sequence[Part], play: Players) -> None:
        """Self-taught training parts, one episode of each per round, memory updated after every episode.

        Their memories are independent, so side by side they learn exactly what they would one after
        another, while a round's episodes keep every worker busy.
        """
        if len({p.max_steps for p in parts}) > 1:
            raise ValueError("parts played together share one step budget")
        state = []  # [part, tasks played, its memory] of each unfinished part
        for part in parts:
            part.folder.mkdir(parents=True, exist_ok=True)
            done = self.recorded(part)
            _check_resumed(part, done)
            if len(done) < len(part.tasks):
                state.append([part, len(done), self.open_part_memory(part, resuming=bool(done))])
        try:
            while state:
                batch = [(p.tasks[at], retrieve(m, p.condition, p.tasks[at].task, self.benchmark.tie_break))
                         for p, at, m in state]
                for (part, at, memory), pair, result in zip(state, batch, play(batch, parts[0].max_steps)):
                    self._record(part, at, [(pair, result)], memory)
                if self.whole is not None:
                    self.progress.advance(self.whole, len(state))
                for entry in state:
                    entry[1] += 1
                    if entry[1] == len(entry[0].tasks):
                        entry[2].store.close()
                state = [e for e in state if e[1] < len(e[0].tasks)]
        finally:
            for _, _, memory in state:
                memory.store.close()

    def _batch(self, part: Part, start: int, tasks: list[EpisodeTask], memory: Memory | None,
               play: Players) -> list[EpisodeRecord]:
        batch = [(t, retrieve(memory, part.condition, t.task, self.benchmark.tie_break)) for t in tasks]
        return self._record(part, start, list(zip(batch, play(batch, part.max_steps))), memory)

    def _record(self, part: Part, start: int, played: list, memory: Memory | None) -> list[EpisodeRecord]:
        """Memory updated by the batch's runs in task order (if the part learns), then the records written.

        ``played``: ((task, hits), (trajectory, scores)) per episode.
        """
        cond = part.condition
        state = None
        if part.learns:
            for (_, hits), (trajectory, _) in played:
                memory.update(trajectory, used=hits)
            state = memory_state(memory)
        records = [EpisodeRecord(
            condition=cond.name, set=part.set, task_id=task.id, seed=task.seed,
            group=(start + i) // self.settings.group_size, success=bool(trajectory.success),
            steps=len(trajectory.steps), reward=trajectory.reward, error=trajectory.error,
            trajectory_id=trajectory.id, task_type=task.task.type, retrieved=[h.procedure.ref for h in hits],
            tokens=int(trajectory.metadata.get("tokens", 0) or 0),
            cost_usd=float((trajectory.metadata.get("usage") or {}).get("cost_usd", 0.0) or 0.0),
            scores=scores, memory=state)
            for i, ((task, hits), (trajectory, scores)) in enumerate(played)]
        if part.set == TRAIN or self.benchmark.keep_trajectories:
            append_lines(part.folder / "trajectories.jsonl", [
                json.dumps({"condition": cond.name, "set": part.set, **t.model_dump(mode="json")})
                for _, (t, _) in played])
        append_lines(part.folder / "episodes.jsonl", [json.dumps(asdict(r)) for r in records])
        return records


def retrieve(memory: Memory | None, condition: Condition, task: Task, tie_break: bool = True) -> list[RetrievalHit]:
    """The condition's k procedures for a task (none without memory)."""
    if memory is None or condition.k == 0:
        return []
    if condition.retrieve == "random" or not tie_break:  # sorting a random draw would make it less random
        return memory.retrieve(task, k=condition.k)
    return stable_top(memory, task, condition.k)


def stable_top(memory: Memory, task: Task, k: int) -> list[RetrievalHit]:
    """The top k by (score, key, version): ties broken by the procedure, not by its random id.

    Instead of reading many procedures, it reads a few more than k and widens the cut only while
    a tie at the k-th score could reach past it: large k stays cheap.
    """
    wide = k + 8
    while True:
        hits = memory.retrieve(task, k=wide)
        hits.sort(key=lambda h: (-round(h.score, 6), h.procedure.key, h.procedure.version))
        if len(hits) < wide or len(hits) <= k:
            return hits[:k]  # every procedure there is
        if min(round(h.score, 6) for h in hits) < round(hits[k - 1].score, 6):
            return hits[:k]  # whatever was left out scores below the k-th
        wide *= 2


def prewarm(embedder: Embedder, tasks: Sequence[EpisodeTask]) -> None:
    """Embed every task text and keyword in one batch, in a fixed order, before anything runs.

    One batch is far faster than one text at a time (what retrieval and updates ask for), and
    the vectors (cached by text) no longer depend on which condition needed a text first.
    """
    texts: list[str] = []
    for t in tasks:
        texts += [t.task.text, *t.task.keywords.values()]
    embedder.embed(list(dict.fromkeys(texts)))


def _playing(parts: Sequence[Part], seed: int, name: str) -> list[EpisodeTask]:
    """A held-out set's tasks in the order a seed plays them."""
    return next((p.tasks for p in parts if p.seed == seed and p.set == name), [])


def _check_resumed(part: Part, done: list[EpisodeRecord]) -> None:
    """Recorded episodes must be the first tasks of the part, in order: else the data changed."""
    ids = [t.id for t in part.tasks[:len(done)]]
    if [r.task_id for r in done[:len(ids)]] != ids:
        raise InvalidInputError(
            f"{part.folder / 'episodes.jsonl'} records other tasks for {part.condition.name!r} ({part.set}) than "
            "these settings play (the data changed?); use another --out folder or delete that one")


def _remove(path: Path) -> None:
    for suffix in ("", "-wal", "-shm"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)


def _slug(name: str) -> str:
    return "".join(c if c.isalnum() or c in "-_+=." else "-" for c in name)


def progress_bar() -> Progress:
    return Progress(TextColumn("{task.description:<28}"), BarColumn(), MofNCompleteColumn(),
                    TimeRemainingColumn())


# --- the suite ------------------------------------------------------------------------------


def plan(benchmark: Benchmark, out: Path, settings: Settings, conditions: Sequence[Condition],
         data: dict[int, SeedData]) -> tuple[list[Part], list[Part]]:
    """(training parts, held-out parts) in playing order."""
    s = settings
    if s.order not in ORDERS:
        raise InvalidInputError(f"unknown playing order {s.order!r}; choose one of {', '.join(ORDERS)}")

    def ordered(tasks: list[EpisodeTask], seed: int, learns: bool) -> list[EpisodeTask]:
        return arrival_order(tasks, seed) if s.order == "shuffled" or (s.order == "learning" and learns) else tasks

    train: list[Part] = []
    if any(c.memory == "own" for c in conditions):
        for key in dict.fromkeys(d.train_key for d in data.values()):
            tasks = next(d.train for d in data.values() if d.train_key == key)
            train.append(Part(out / key, TRAIN, Condition(OWN), tasks, -1, False, s.max_steps))
    tests: list[Part] = []
    for seed in s.seeds:
        folder = out / f"seed-{seed}"
        for cond in conditions:
            if cond.self_taught:
                stream = [replace(t, seed=seed) for p in range(cond.train_passes)
                          for t in ordered(data[seed].train, seed * 1000 + p, True)]
                # Each training episode's own exploration seed: replays and worker splits draw alike.
                stream = [replace(t, explore=seed * 1_000_000 + n) for n, t in enumerate(stream)]
                train.append(Part(folder, TRAIN, cond, stream, seed, True, s.train_max_steps))
    for name in benchmark.sets:
        for seed in s.seeds:
            tasks = data[seed].held_out.get(name, [])
            for cond in conditions:
                learns = cond.update is not None and not cond.self_taught
                tests.append(Part(out / f"seed-{seed}", name, cond, ordered(tasks, seed, learns), seed, learns,
                                  s.max_steps))
    return train, [p for p in tests if p.tasks]


def run_suite(benchmark: Benchmark, out: Path, settings: Settings, conditions: Sequence[Condition],
              embedder: Embedder, *, imported: list[dict] | None = None, show_progress: bool = True,
              fingerprint: dict[str, Any] | None = None) -> SuiteRun:
    """Every condition for every seed and held-out set, resuming what is recorded."""
    names = [c.name for c in conditions]
    if len(set(names)) != len(names) or OWN in names:
        raise InvalidInputError(f"condition names must be unique and not {OWN!r}: {names}")
    if any(c.memory == "imported" for c in conditions) and not imported:
        raise InvalidInputError("an 'imported' condition needs a memory export (--memory-from)")
    with claim_folder(out, {"benchmark": benchmark.name, **benchmark.fingerprint(), **settings.fingerprint(),
                            **(fingerprint or {})}):
        data = {seed: benchmark.prepare(seed) for seed in settings.seeds}
        train, tests = plan(benchmark, out, settings, conditions, data)
        if benchmark.prewarm:
            prewarm(embedder, [t for seed in settings.seeds for t in data[seed].train + [
                task for name in benchmark.sets for task in _playing(tests, seed, name)]])
        progress = progress_bar() if show_progress else None
        runner = Runner(benchmark, out, settings, embedder, imported, progress)
        own: dict[str, list[Trajectory]] = {}
        with Players(benchmark.player(), settings.workers, settings.ray) as play, \
                (progress if progress is not None else nullcontext()):
            if progress is not None:
                total = sum(len(p.tasks) for p in train + tests)
                recorded = sum(min(len(runner.recorded(p)), len(p.tasks)) for p in train + tests)
                runner.whole = progress.add_task("whole suite", total=total, completed=recorded)
            for part in train:
                if part.condition.name == OWN:
                    records = runner.run_part(part, play)
                    own[part.folder.name] = read_trajectories(part.folder, OWN, [r.trajectory_id for r in records])
            runner.run_together([p for p in train if p.condition.name != OWN], play)
            for seed, d in data.items():
                runner.starts[(seed, "expert")] = d.expert
                runner.starts[(seed, "own")] = [t for t in own.get(d.train_key, []) if benchmark.keeps(t)]
            for part in tests:
                runner.run_part(part, play)
        for seed in settings.seeds:
            shutil.rmtree(out / f"seed-{seed}" / "memories", ignore_errors=True)
        # Only this run's conditions: a folder may hold others from an earlier run.
        wanted = {(p.set, p.condition.name) for p in train + tests}
        records = [r for folder in dict.fromkeys(p.folder for p in train + tests)
                   for r in load_records(folder / "episodes.jsonl") if (r.set, r.condition) in wanted]
        return SuiteRun(records, data, own)
