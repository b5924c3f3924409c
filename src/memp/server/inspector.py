"""The memory inspector: a web page at ``/`` and the read endpoints it needs beyond the core API.

rest.py installs all of it with ``inspector.install(app, config, namespace)``. The page is static
(``static/``) and talks only to the REST API with the service's bearer token, so everything it
shows is also scriptable:

    GET /v1/inspector/summary                 the token's namespace, counts, task types, builders
    GET /v1/procedures/{id}/diff?a=1&b=2      line diff of script, steps and notes between versions
    GET /v1/trajectories/{id}                 a source trajectory (provenance links)
    GET /v1/deprecations                      deprecation events, newest first, with their evidence
    GET /v1/experiments[/{name}[/files/{f}]]  results.json, report.md and plots from --experiments

Everything here goes through the Store protocol (``list``, ``count``, ``facets``, ``events``), so
paged views never load a whole namespace: a SQL store sorts, filters and counts in the database.
"""

from __future__ import annotations

import difflib
import json
import re
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any, Literal

from fastapi import APIRouter, Depends, FastAPI, Query
from fastapi.responses import FileResponse, HTMLResponse
from fastapi.staticfiles import StaticFiles
from pydantic import BaseModel, Field

from memp._errors import InvalidInputError, ProcedureNotFoundError
from memp.store import Store
from memp.store.base import Facets
from memp.types import Procedure

STATIC = Path(__file__).parent / "static"

MAX_FACETS = 200


# -- version diffs -------------------------------------------------------------------------------


def _lines(p: Procedure, field: str) -> list[str]:
    if field == "steps":
        out = []
        for s in p.steps:
            out.append(f"> {s.action}")
            if s.observation:
                out.append(f"  {s.observation}")
        return out
    if field == "summary":
        return p.summary.splitlines()
    return list(getattr(p, field))


def line_diff(old: list[str], new: list[str]) -> list[dict[str, str]]:
    """Every line of both sides, tagged same / removed / added, in reading order."""
    out: list[dict[str, str]] = []
    for tag, i1, i2, j1, j2 in difflib.SequenceMatcher(a=old, b=new, autojunk=False).get_opcodes():
        if tag == "equal":
            out += [{"op": "same", "text": line} for line in old[i1:i2]]
            continue
        out += [{"op": "removed", "text": line} for line in old[i1:i2]]
        out += [{"op": "added", "text": line} for line in new[j1:j2]]
    return out


DIFF_FIELDS = ("summary", "script", "steps", "notes")


# -- experiments folder --------------------------------------------------------------------------

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,199}$")
_PLOT = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,199}\.png$")


def _experiment_dirs(root: Path) -> dict[str, Path]:
    """The folder itself when it holds one experiment, else its subfolders that hold one."""
    def holds(d: Path) -> bool:
        return (d / "results.json").is_file() or (d / "report.md").is_file()

    found = {root.name or "experiment": root} if holds(root) else {}
    for d in sorted(root.iterdir()) if root.is_dir() else []:
        if d.is_dir() and _NAME.match(d.name) and holds(d):
            found[d.name] = d
    return found


def _experiment(root: Path | None, name: str) -> Path:
    if root is None:
        raise ProcedureNotFoundError("no experiments folder configured; start the service with "
                                     "`memp serve --experiments DIR`")
    found = _experiment_dirs(root).get(name)
    if found is None:
        raise ProcedureNotFoundError(f"no experiment {name!r} in {root}")
    return found


# -- response bodies -----------------------------------------------------------------------------


class Summary(BaseModel):
    namespace: str
    active: int
    deprecated: int
    task_types: list[str]
    builders: list[str]
    experiments: bool = Field(description="Whether the service was given an experiments folder.")


class DiffLine(BaseModel):
    op: Literal["same", "removed", "added"]
    text: str


class VersionDiff(BaseModel):
    procedure_id: str
    a: int
    b: int
    fields: dict[str, list[DiffLine]]


class Deprecation(BaseModel):
    seq: int | None
    procedure_id: str
    version: int
    at: datetime
    reason: str | None
    evidence: dict[str, Any] = Field(description="What the store recorded: uses, successes, and more.")
    key: str | None = Field(description="The procedure's task, if it still exists.")
    status_now: str | None


class DeprecationPage(BaseModel):
    items: list[Deprecation]
    total: int
    limit: int
    offset: int


class ExperimentInfo(BaseModel):
    name: str
    has_results: bool
    has_report: bool
    plots: list[str]


class Experiment(ExperimentInfo):
    results: Any = None
    report: str | None = None


def _info(name: str, d: Path) -> ExperimentInfo:
    plots = sorted(p.name for p in d.iterdir() if p.is_file() and _PLOT.match(p.name))
    return ExperimentInfo(name=name, has_results=(d / "results.json").is_file(),
                          has_report=(d / "report.md").is_file(), plots=plots)


# -- routes ---------------------------------------------------------------------------------------


def router(config, namespace: Callable[..., str]) -> APIRouter:
    """The inspector's endpoints; ``namespace`` is the service's bearer-token dependency."""
    store: Store = config.store
    experiments: Path | None = getattr(config, "experiments", None)
    api = APIRouter(tags=["inspect"])
    facets: dict[str, tuple[int, Facets]] = {}  # namespace -> (generation, facets)

    def cached_facets(ns: str) -> Facets:
        # The distinct builders scan every head's body (~0.5 s at 100k); reuse until a write.
        generation = store.generation()
        if ns not in facets or facets[ns][0] != generation:
            facets[ns] = (generation, store.facets(ns, MAX_FACETS))
        return facets[ns][1]

    @api.get("/v1/inspector/summary", response_model=Summary)
    def summary(ns: str = Depends(namespace)) -> Summary:
        """Who this token is (its namespace) and what the filters can choose from."""
        found = cached_facets(ns)
        return Summary(namespace=ns, active=store.count(ns, status="active"),
                       deprecated=store.count(ns, status="deprecated"), task_types=found.task_types,
                       builders=found.builders, experiments=experiments is not None)

    @api.get("/v1/procedures/{procedure_id}/diff", response_model=VersionDiff)
    def diff(procedure_id: str, a: int = Query(ge=1, le=10**9, description="The older version."),
             b: int = Query(ge=1, le=10**9, description="The newer version."),
             ns: str = Depends(namespace)) -> VersionDiff:
        """What changed between two versions, line by line, for summary, script, steps and notes."""
        old, new = store.get(ns, procedure_id, a), store.get(ns, procedure_id, b)
        return VersionDiff(procedure_id=procedure_id, a=a, b=b, fields={
            f: [DiffLine(**d) for d in line_diff(_lines(old, f), _lines(new, f))] for f in DIFF_FIELDS})

    @api.get("/v1/trajectories/{trajectory_id}")
    def trajectory(trajectory_id: str, ns: str = Depends(namespace)) -> dict[str, Any]:
        """A recorded run, e.g. one a procedure was built from."""
        return store.get_trajectory(ns, trajectory_id).model_dump(mode="json")

    @api.get("/v1/deprecations", response_model=DeprecationPage)
    def deprecations(limit: int = Query(50, ge=1, le=500), offset: int = Query(0, ge=0, le=10**9),
                     ns: str = Depends(namespace)) -> DeprecationPage:
        """Every deprecation, newest first: which version, when, why, and its status now."""
        events = store.events(ns, kind="deprecated", newest_first=True, limit=limit, offset=offset)
        items = []
        for e in events:
            try:
                head = store.get(ns, e.procedure_id)
                key, status_now = head.key, head.status
            except ProcedureNotFoundError:
                key = status_now = None
            detail = dict(e.detail)
            items.append(Deprecation(seq=e.seq, procedure_id=e.procedure_id, version=e.version, at=e.at,
                                     reason=detail.pop("reason", None), evidence=detail, key=key,
                                     status_now=status_now))
        return DeprecationPage(items=items, total=store.count_events(ns, kind="deprecated"),
                               limit=limit, offset=offset)

    @api.get("/v1/experiments", response_model=list[ExperimentInfo])
    def list_experiments(ns: str = Depends(namespace)) -> list[ExperimentInfo]:
        """Experiment folders under --experiments (empty when none was given)."""
        if experiments is None:
            return []
        return [_info(name, d) for name, d in _experiment_dirs(experiments).items()]

    @api.get("/v1/experiments/{name}", response_model=Experiment)
    def show_experiment(name: str, ns: str = Depends(namespace)) -> Experiment:
        """An experiment's results.json (parsed), report.md (as text) and plot names."""
        d = _experiment(experiments, name)
        info = _info(name, d)
        results = report = None
        if info.has_results:
            try:
                results = json.loads((d / "results.json").read_text(encoding="utf-8"))
            except (json.JSONDecodeError, UnicodeDecodeError) as err:
                raise InvalidInputError(f"{d / 'results.json'} is not readable JSON: {err}") from None
        if info.has_report:
            report = (d / "report.md").read_text(encoding="utf-8", errors="replace")
        return Experiment(**info.model_dump(), results=results, report=report)

    @api.get("/v1/experiments/{name}/files/{filename}", response_class=FileResponse,
             responses={200: {"content": {"image/png": {}}}})
    def experiment_file(name: str, filename: str, ns: str = Depends(namespace)) -> FileResponse:
        """A PNG plot of an experiment (only .png files directly in its folder)."""
        d = _experiment(experiments, name)
        path = d / filename
        if not _PLOT.match(filename) or not path.is_file():
            raise ProcedureNotFoundError(f"experiment {name!r} has no plot {filename!r}")
        return FileResponse(path, media_type="image/png")

    return api


def _page() -> HTMLResponse:
    return HTMLResponse((STATIC / "index.html").read_text(encoding="utf-8"))


def install(app: FastAPI, config, namespace: Callable[..., str]) -> None:
    """Add the inspector's endpoints, the page at ``/`` and its assets at ``/static``."""
    app.include_router(router(config, namespace))
    app.add_api_route("/", _page, methods=["GET"], include_in_schema=False, response_class=HTMLResponse)
    app.mount("/static", StaticFiles(directory=STATIC), name="inspector-static")
