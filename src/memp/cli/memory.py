"""`memp memory …`: look at, move and curate a procedural memory."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.table import Table

from memp._errors import (
    InvalidInputError,
    InvalidTrajectoryError,
    MempError,
    TrajectoryConflictError,
)
from memp.cli._common import (
    DbOpt,
    EmbedderOpt,
    FormatOpt,
    NamespaceOpt,
    OutputFormat,
    check_strategies,
    console,
    err_console,
    existing_db,
    is_url,
    open_existing,
    open_for_reading,
    print_json,
    redact,
    typer_app,
)
from memp.llm.options import (
    LLMApiKeyOpt,
    LLMBaseUrlOpt,
    LLMCacheOpt,
    LLMModelOpt,
    LLMStructuredOpt,
    LLMTimeoutOpt,
)
from memp.storable import MAX_DEPTH, MAX_EXPORT_DEPTH, loads_storable
from memp.store import Store, check_namespace, open_store
from memp.store.base import parse_export, text_lines, write_export
from memp.types import Procedure, Trajectory, trajectory_from_dict

app = typer_app("Look at, move and curate a procedural memory.")

DEFAULT_DB = "memp.db"


def _rate(p: Procedure) -> str:
    rate = p.stats.success_rate
    return "-" if rate is None else f"{rate:.2f}"


def _summary(p: Procedure) -> dict:
    return {"id": p.id, "version": p.version, "status": p.status, "task_type": p.task_type,
            "builder": p.builder, "key": p.key, "uses": p.stats.uses, "successes": p.stats.successes}


@app.command("list")
def list_(db: DbOpt = DEFAULT_DB, namespace: NamespaceOpt = "default",
          status: Annotated[Optional[str], typer.Option(help="active or deprecated.")] = None,
          task_type: Annotated[Optional[str], typer.Option("--type", help="Only this task type.")] = None,
          limit: int = 50, offset: int = 0, format: FormatOpt = OutputFormat.table) -> None:
    """List procedures (newest version of each), newest first."""
    if status not in (None, "active", "deprecated"):
        raise InvalidInputError(f"--status must be 'active' or 'deprecated', got {status!r}")
    with open_for_reading(db) as store:
        procedures = store.list(namespace, status=status, task_type=task_type, limit=limit, offset=offset)
        total = store.count(namespace, status=status)
    if format is OutputFormat.json:
        return print_json([_summary(p) for p in procedures])
    table = Table(title=f"{namespace}: {len(procedures)} of {total} procedures")
    for col in ("id", "v", "status", "type", "builder", "uses", "rate", "task"):
        table.add_column(col, overflow="fold" if col == "task" else "ellipsis")
    for p in procedures:
        table.add_row(p.id[:12], str(p.version), p.status, p.task_type or "-", p.builder,
                      str(p.stats.uses), _rate(p), p.key)
    console.print(table)


@app.command()
def show(procedure_id: str, db: DbOpt = DEFAULT_DB, namespace: NamespaceOpt = "default",
         version: Annotated[Optional[int], typer.Option(help="A past version.")] = None,
         format: FormatOpt = OutputFormat.table) -> None:
    """Show one procedure: script, steps, pitfalls, statistics, provenance."""
    with open_for_reading(db) as store:
        p = store.get(namespace, _resolve(store, namespace, procedure_id), version)
    if format is OutputFormat.json:
        return print_json(p.model_dump(mode="json", exclude={"embedding", "keyword_embeddings"}))
    console.print(f"[bold]{p.ref}[/] {p.status} · builder {p.builder} · "
                  f"{p.stats.uses} uses, {p.stats.successes} successes", highlight=False)
    if p.status_reason:
        console.print(f"status reason: {p.status_reason}", highlight=False)
    console.print(f"keywords: {json.dumps(p.keywords)}", highlight=False)
    console.print(p.render(include_steps=True), highlight=False, markup=False)
    console.print(f"provenance: trajectories {', '.join(p.provenance.trajectory_ids)}; "
                  f"builder {p.provenance.builder}", highlight=False)


@app.command()
def history(procedure_id: str, db: DbOpt = DEFAULT_DB, namespace: NamespaceOpt = "default",
            format: FormatOpt = OutputFormat.table) -> None:
    """Every version and event of a procedure, oldest first."""
    with open_for_reading(db) as store:
        pid = _resolve(store, namespace, procedure_id)
        versions = store.history(namespace, pid)
        events = store.events(namespace, pid)
    if format is OutputFormat.json:
        return print_json({"versions": [_summary(v) | {"parent_version": v.parent_version,
                                                       "revised_from_failure": v.provenance.revised_from_failure}
                                        for v in versions],
                           "events": [e.model_dump(mode="json") for e in events]})
    table = Table(title=f"history of {pid}")
    for col in ("#", "at", "version", "event", "trajectory", "detail"):
        table.add_column(col)
    for e in events:
        table.add_row(str(e.seq), e.at.strftime("%Y-%m-%d %H:%M:%S"), str(e.version), e.kind,
                      (e.trajectory_id or "-")[:12], json.dumps(e.detail) if e.detail else "")
    console.print(table)


@app.command()
def stats(db: DbOpt = DEFAULT_DB, namespace: NamespaceOpt = "default",
          format: FormatOpt = OutputFormat.table) -> None:
    """Counts of procedures, uses and events in a namespace."""
    with open_for_reading(db) as store:
        events = store.events(namespace)
        data = {
            "namespace": namespace,
            "namespaces": store.namespaces(),
            "procedures": store.count(namespace),
            "active": store.count(namespace, status="active"),
            "deprecated": store.count(namespace, status="deprecated"),
            "versions": sum(1 for e in events if e.kind in ("created", "revised")),
            "uses": sum(1 for e in events if e.kind == "used"),
            "successful_uses": sum(1 for e in events if e.kind == "used" and e.detail.get("success")),
            "merged_duplicates": sum(1 for e in events if e.kind == "merged"),
        }
    if format is OutputFormat.json:
        return print_json(data)
    table = Table(title=f"memory {redact(db)} · namespace {namespace}")
    table.add_column("what")
    table.add_column("count", justify="right")
    for key, value in data.items():
        table.add_row(key, ", ".join(value) if isinstance(value, list) else str(value))
    console.print(table)


@app.command()
def deprecate(procedure_id: str, db: DbOpt = DEFAULT_DB, namespace: NamespaceOpt = "default",
              reason: Annotated[str, typer.Option(help="Why, for the record.")] = "deprecated by hand") -> None:
    """Stop retrieving a procedure (it is kept, and can be restored)."""
    with open_existing(db) as store:
        p = store.set_status(namespace, _resolve(store, namespace, procedure_id), "deprecated", reason=reason)
    console.print(f"deprecated {p.ref}", highlight=False)


@app.command()
def restore(procedure_id: str, db: DbOpt = DEFAULT_DB, namespace: NamespaceOpt = "default",
            reason: Annotated[str, typer.Option(help="Why, for the record.")] = "restored by hand") -> None:
    """Make a deprecated procedure retrievable again, with a fresh record of uses."""
    with open_existing(db) as store:
        p = store.set_status(namespace, _resolve(store, namespace, procedure_id), "active", reason=reason)
    console.print(f"restored {p.ref}", highlight=False)


@app.command("export")
def export(db: DbOpt = DEFAULT_DB,
           namespace: Annotated[Optional[str], typer.Option("--namespace", "-n",
                                                            help="Only this namespace (default: all).")] = None,
           out: Annotated[Path, typer.Option("--out", "-o", help="JSONL file, or - for stdout.")] = Path("-")) -> None:
    """Write the memory, with versions, provenance and events, as JSON Lines."""
    with open_for_reading(db) as store:
        if str(out) == "-":
            sys.stdout.writelines(json.dumps(r, sort_keys=True) + "\n" for r in store.export_records(namespace))
            return
        write_export(store, out, namespace)
    console.print(f"exported to {out}", highlight=False)


@app.command("import")
def import_(source: Annotated[Path, typer.Argument(help="A JSONL file written by `memp memory export`.")],
            db: DbOpt = DEFAULT_DB,
            namespace: Annotated[Optional[str], typer.Option("--namespace", "-n",
                                                             help="Import everything into this namespace.")] = None) -> None:
    """Load an export: all records are checked first, then written in one transaction."""
    records = [_json_line(source, n, line, max_depth=MAX_EXPORT_DEPTH)
               for n, line in enumerate(text_lines(source), 1)]
    parse_export(records, namespace)  # checked before the database is opened: a bad file creates none
    with _open_for_writing(db) as store:
        counts = store.import_records(records, namespace=namespace)
    console.print(f"imported {counts['procedures']} procedure versions, {counts['trajectories']} "
                  f"trajectories, {counts['events']} events into {redact(db)}", highlight=False)


@app.command()
def add(source: Annotated[Path, typer.Argument(help="Trajectories, one JSON object per line.")],
        db: DbOpt = DEFAULT_DB, namespace: NamespaceOpt = "default",
        build: Annotated[str, typer.Option(help="trajectory, script or proceduralization.")] = "proceduralization",
        update: Annotated[str, typer.Option(help="vanilla, validation or adjustment.")] = "validation",
        embedder: EmbedderOpt = "minilm", llm_base_url: LLMBaseUrlOpt = None, llm_model: LLMModelOpt = None,
        llm_api_key: LLMApiKeyOpt = None, llm_cache: LLMCacheOpt = None,
        llm_timeout: LLMTimeoutOpt = 60.0, llm_structured: LLMStructuredOpt = None) -> None:
    """Learn from recorded trajectories: every line is stored, or none (one transaction).

    With --llm-model (or MEMP_LLM_MODEL), scripts, keywords and adjustments come from the model."""
    from memp.embed import make_embedder
    from memp.memory import Memory

    # Everything that can be checked is checked before the database is opened (or created).
    check_namespace(namespace)
    check_strategies(build=build, update=update)
    trajectories = _read_trajectories(source)
    llm = _llm(llm_base_url, llm_model, llm_api_key, llm_cache, llm_timeout, llm_structured)
    with Memory.open(_writable_location(db), namespace=namespace, build=build, update=update,
                     embedder=make_embedder(embedder), llm=llm) as mem:
        _refuse_conflicts(mem.store, namespace, trajectories, source)
        # One transaction for the whole file, so a model or database failure mid-way stores
        # nothing. Other writers wait while it runs: split a very large file with an LLM build.
        with mem.store.atomic():
            reports = [mem.update(t) for t in trajectories]
    added = sum(len(r.added) for r in reports)
    merged = sum(len(r.merged) for r in reports)
    skipped = sum(1 for r in reports if r.skipped)
    console.print(f"{len(trajectories)} trajectories: {added} procedures added, {merged} merged "
                  f"into existing ones, {skipped} skipped", highlight=False)


def _json_line(source: Path, n: int, line: str, max_depth: int = MAX_DEPTH):
    return loads_storable(line, f"{source} line {n}", max_depth=max_depth)


def _read_trajectories(source: Path) -> list[Trajectory]:
    """Every line parsed and validated, and no id twice with different content; or an error."""
    trajectories: list[Trajectory] = []
    seen: dict[str, int] = {}
    for n, line in enumerate(text_lines(source), 1):
        try:
            t = trajectory_from_dict(_json_line(source, n, line))
        except InvalidTrajectoryError as err:
            raise InvalidTrajectoryError(f"{source} line {n}: {err}") from None
        if t.id in seen and _content(trajectories[seen[t.id]]) != _content(t):
            raise TrajectoryConflictError(
                f"{source} line {n}: trajectory id {t.id!r} is also on line {seen[t.id] + 1} with other "
                "content; give each run its own id")
        seen.setdefault(t.id, len(trajectories))
        trajectories.append(t)
    return trajectories


def _refuse_conflicts(store: Store, namespace: str, trajectories: list[Trajectory], source: Path) -> None:
    """A stored run is never replaced: an id already stored with other content stops the whole file."""
    from memp._errors import ProcedureNotFoundError

    for n, t in enumerate(trajectories, 1):
        try:
            stored = store.get_trajectory(namespace, t.id)
        except ProcedureNotFoundError:
            continue
        if _content(stored) != _content(t):
            raise TrajectoryConflictError(
                f"{source} line {n}: trajectory id {t.id!r} is already stored in namespace "
                f"{namespace!r} with other content; nothing was added (give the run a new id)")


def _content(t: Trajectory) -> dict:
    return t.model_dump(mode="json")


def _writable_location(db: str) -> str:
    if not is_url(db) and Path(db).is_dir():
        existing_db(db)  # raises its "is a directory" message
    return db


def _open_for_writing(db: str) -> Store:
    """The memory at ``db``, created if it is a new file: opened exactly as ``Memory.open`` does."""
    return open_store(_writable_location(db))


@app.command()
def retrieve(task: Annotated[str, typer.Argument(help="The task description.")],
             db: DbOpt = DEFAULT_DB, namespace: NamespaceOpt = "default",
             strategy: Annotated[str, typer.Option("--retrieve", help="random, query, avefact or hybrid.")] = "query",
             k: int = 3, embedder: EmbedderOpt = "minilm", format: FormatOpt = OutputFormat.table,
             llm_base_url: LLMBaseUrlOpt = None, llm_model: LLMModelOpt = None,
             llm_api_key: LLMApiKeyOpt = None, llm_cache: LLMCacheOpt = None,
             llm_timeout: LLMTimeoutOpt = 60.0, llm_structured: LLMStructuredOpt = None) -> None:
    """Show the procedures memory would give an agent for a task (--llm-model: keywords by the model)."""
    from memp.embed import make_embedder
    from memp.memory import Memory

    check_namespace(namespace)
    check_strategies(retrieve=strategy)
    llm = _llm(llm_base_url, llm_model, llm_api_key, llm_cache, llm_timeout, llm_structured)
    with Memory(open_for_reading(db), namespace=namespace, retrieve=strategy,
                embedder=make_embedder(embedder), llm=llm) as mem:
        hits = mem.retrieve(task, k=k)
    if format is OutputFormat.json:
        return print_json([{"score": h.score, **_summary(h.procedure)} for h in hits])
    for h in hits:
        console.print(f"[bold]{h.procedure.ref}[/] score {h.score:.3f}", highlight=False)
        console.print(h.procedure.render(), highlight=False, markup=False)
        console.print()


def _llm(base_url, model, api_key, cache, timeout, structured=None):
    """A client when a model is named (option or MEMP_LLM_MODEL); None keeps memp LLM-free."""
    import os

    if not (model or os.environ.get("MEMP_LLM_MODEL")):
        return None
    from memp.llm.options import client_from_options

    return client_from_options(base_url, model, api_key, cache=cache, timeout=timeout,
                               structured=structured)


def _resolve(store: Store, namespace: str, prefix: str) -> str:
    """Accept a unique prefix of an id, as git does for commits."""
    ids = store.ids_with_prefix(namespace, prefix, limit=2)
    if len(ids) > 1:
        raise InvalidInputError(f"id prefix {prefix!r} is ambiguous; give more characters")
    return ids[0] if ids else prefix  # let the store raise its not-found error
