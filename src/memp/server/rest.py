"""The REST service: one shared procedural memory for many agents, over HTTP.

    serve("postgresql://…/memp", tokens={"<token>": "team-a"}, port=8080)

Every endpoint except ``/v1/health`` needs ``Authorization: Bearer <token>``; the token decides the
namespace, so no request can name another one. Errors are JSON, always shaped
``{"error": {"type": "...", "message": "..."}}``, with the status that fits the cause:

    400 bad_request          (the body is not what the endpoint reads, e.g. bad JSON lines)
    401 unauthorized         missing or unknown token
    404 not_found            no such procedure, version or route
    409 conflict             a trajectory id already stored with other content (nothing replaced)
    413 payload_too_large    body above the configured limit
    422 invalid_input        memp refused the data (validation, strategy names, versions)
    500 internal_error       a bug: the message says to report it
    503 store_unavailable    the database could not serve the request
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from fastapi import Depends, FastAPI, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response, StreamingResponse
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator
from starlette.exceptions import HTTPException as StarletteHTTPException

import memp
from memp._errors import (
    EmbeddingError,
    InvalidInputError,
    MempError,
    ProcedureNotFoundError,
    StoreError,
    TrajectoryConflictError,
)
from memp.embed import Embedder, make_embedder
from memp.memory import Memory
from memp.retrieve import RETRIEVERS, Retriever, make_retriever
from memp.server import inspector
from memp.storable import MAX_EXPORT_DEPTH, NotJSONError, loads_storable
from memp.server.auth import TokenMap
from memp.store import Store, open_store
from memp.store.base import Order, Sort
from memp.types import Procedure, RetrievalHit, Task, Trajectory, UpdateReport

log = logging.getLogger("memp.server")

DEFAULT_MAX_BODY = 4 * 1024 * 1024
MAX_K = 100
MAX_USED = 50


# -- configuration ---------------------------------------------------------------------------


@dataclass
class ServiceConfig:
    """What a running service needs; built by the CLI, or directly in tests."""

    store: Store
    tokens: dict[str, str]
    embedder: Embedder
    build: str = "proceduralization"
    retrieve: str = "query"
    update: str = "adjustment"
    k: int = 3
    max_body_bytes: int = DEFAULT_MAX_BODY
    memory_options: dict[str, Any] = field(default_factory=dict)
    experiments: Path | None = None  # folder of experiment outputs the inspector page shows


# -- request and response bodies --------------------------------------------------------------


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class RetrieveRequest(_Body):
    task: str | Task = Field(description="The task description, or a Task with type and keywords.")
    k: int | None = Field(default=None, ge=0, le=MAX_K, description="How many procedures; default is the service's k.")
    strategy: Literal["query", "avefact", "hybrid", "random"] | None = Field(
        default=None, description="Retrieval strategy; default is the service's.")

    @field_validator("task")
    @classmethod
    def _task(cls, v: str | Task) -> str | Task:
        # A bare string must pass Task's checks here, so a blank one is a 422 and not a crash later.
        if isinstance(v, str):
            try:
                return Task(text=v)
            except ValidationError as err:
                raise ValueError(err.errors()[0]["msg"].removeprefix("Value error, ")) from None
        return v


class HitOut(BaseModel):
    ref: str = Field(description="id@vN: pass it back in report_outcome's `used`.")
    score: float
    retriever: str
    rendered: str = Field(description="The text to put in the agent's prompt.")
    procedure: dict[str, Any]


class RetrieveResponse(BaseModel):
    hits: list[HitOut]


class OutcomeRequest(_Body):
    trajectory: Trajectory
    used: list[str] = Field(default_factory=list, max_length=MAX_USED,
                            description="Refs (id@vN, or id for the newest version) of the procedures the run was given.")


class StatusRequest(_Body):
    reason: str = Field(min_length=1, max_length=2000)


class ProcedurePage(BaseModel):
    items: list[dict[str, Any]]
    total: int = Field(description="All procedures matching the filters, across pages.")
    limit: int
    offset: int


class ImportResult(BaseModel):
    trajectories: int
    procedures: int
    events: int


class Health(BaseModel):
    status: Literal["ok"]
    version: str
    store: str


class ErrorDetail(BaseModel):
    type: str
    message: str


class ErrorBody(BaseModel):
    error: ErrorDetail


def _view(p: Procedure) -> dict[str, Any]:
    """A procedure as the API shows it: everything but the raw vectors."""
    return p.model_dump(mode="json", exclude={"embedding", "keyword_embeddings"})


def _error(status: int, kind: str, message: str) -> JSONResponse:
    return JSONResponse({"error": {"type": kind, "message": message}}, status_code=status)


def _describe_validation(err: RequestValidationError) -> str:
    parts = []
    for e in err.errors()[:5]:
        loc = ".".join(str(p) for p in e.get("loc", ()) if p != "body") or "body"
        parts.append(f"{loc}: {e.get('msg', 'invalid')}")
    more = len(err.errors()) - 5
    return "; ".join(parts) + (f"; and {more} more" if more > 0 else "")


# -- request bodies ---------------------------------------------------------------------------


def _too_large_message(limit: int) -> str:
    return f"request body larger than {limit:,} bytes; send fewer or shorter trajectories per request"


class BodyLimit:
    """Reads each request body whole before any endpoint sees it.

    Above ``limit`` bytes it is 413, with or without Content-Length (a chunked body is counted as
    it arrives, so the endpoint never meets a half-read body). A JSON body that memp could not
    store (see ``memp.storable``) is 422 here, before any endpoint starts a write.
    """

    def __init__(self, app, limit: int) -> None:
        self.app = app
        self.limit = limit

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        headers = dict(scope.get("headers") or [])
        length = headers.get(b"content-length")
        if length is not None and length.isdigit() and int(length) > self.limit:
            return await _error(413, "payload_too_large", _too_large_message(self.limit))(scope, receive, send)
        body = bytearray()
        while True:
            msg = await receive()
            if msg["type"] != "http.request":
                return  # the client went away before sending its body
            body += msg.get("body", b"")
            if len(body) > self.limit:
                return await _error(413, "payload_too_large", _too_large_message(self.limit))(scope, receive, send)
            if not msg.get("more_body", False):
                break
        if body and _is_json(headers.get(b"content-type")):
            try:
                loads_storable(bytes(body), "the request body")
            except NotJSONError:
                pass  # not JSON at all: the endpoint says what it expected (JSON lines, say)
            except InvalidInputError as err:
                return await _error(422, "invalid_input", str(err))(scope, receive, send)
        replayed = False

        async def replay():
            nonlocal replayed
            if replayed:
                return await receive()
            replayed = True
            return {"type": "http.request", "body": bytes(body), "more_body": False}

        await self.app(scope, replay, send)


def _is_json(content_type: bytes | None) -> bool:
    # FastAPI reads a body without a content type as JSON too.
    if not content_type:
        return True
    kind = content_type.split(b";")[0].strip().lower()
    return kind == b"application/json" or kind.endswith(b"+json")


# -- the application --------------------------------------------------------------------------


class _Service:
    """Per-namespace Memory objects over one shared store and embedder."""

    def __init__(self, config: ServiceConfig) -> None:
        self.config = config
        self.tokens = TokenMap(config.tokens)
        self._memories: dict[str, Memory] = {}
        self._retrievers: dict[str, Retriever] = {}
        self._lock = threading.Lock()

    def memory(self, namespace: str) -> Memory:
        with self._lock:
            mem = self._memories.get(namespace)
            if mem is None:
                c = self.config
                mem = Memory(c.store, namespace=namespace, build=c.build, retrieve=c.retrieve,
                             update=c.update, embedder=c.embedder, k=c.k, **c.memory_options)
                self._memories[namespace] = mem
            return mem

    def retriever(self, name: str) -> Retriever:
        with self._lock:
            if name not in self._retrievers:
                self._retrievers[name] = make_retriever(name, embedder=self.config.embedder)
            return self._retrievers[name]


_bearer = HTTPBearer(auto_error=False, description="A token from the service's token list.")


class _Unauthorized(Exception):
    pass


def create_app(config: ServiceConfig) -> FastAPI:
    """The FastAPI application for a configured service."""
    service = _Service(config)
    app = FastAPI(
        title="memp",
        version=memp.__version__,
        description="Procedural memory for LLM agents: record runs, retrieve procedures, report outcomes.",
        responses={code: {"model": ErrorBody} for code in (401, 404, 409, 413, 422, 500, 503)},
    )
    app.state.service = service
    # Outermost, so no endpoint or exception handler ever meets an over-limit or unstorable body.
    app.add_middleware(BodyLimit, limit=config.max_body_bytes)

    # async: it only looks a token up, and a plain function would cost every request a hop to
    # the thread pool and back before the endpoint's own.
    async def namespace(credentials: HTTPAuthorizationCredentials | None = Depends(_bearer)) -> str:
        ns = service.tokens.namespace(credentials.credentials if credentials else None)
        if ns is None:
            raise _Unauthorized
        return ns

    # -- errors

    @app.exception_handler(_Unauthorized)
    async def _unauthorized(request: Request, exc: _Unauthorized) -> JSONResponse:
        response = _error(401, "unauthorized",
                          "missing or unknown bearer token; send 'Authorization: Bearer <token>' "
                          "with a token the service was configured with")
        response.headers["WWW-Authenticate"] = "Bearer"
        return response

    @app.exception_handler(RequestValidationError)
    async def _invalid_request(request: Request, exc: RequestValidationError) -> JSONResponse:
        return _error(422, "invalid_input", _describe_validation(exc))

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        kind = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "http_error")
        message = str(exc.detail)
        if exc.status_code in (404, 405) and message in ("Not Found", "Method Not Allowed"):
            message = f"no route {request.method} {request.url.path[:200]}; the API is listed at /docs"
        return _error(exc.status_code, kind, message)

    @app.exception_handler(MempError)
    async def _memp(request: Request, exc: MempError) -> JSONResponse:
        if isinstance(exc, ProcedureNotFoundError):
            return _error(404, "not_found", str(exc))
        if isinstance(exc, TrajectoryConflictError):
            return _error(409, "conflict", str(exc))
        if isinstance(exc, InvalidInputError):
            return _error(422, "invalid_input", str(exc))
        if isinstance(exc, (StoreError, EmbeddingError)):
            log.error("store or embedder failure: %s", exc)
            return _error(503, "store_unavailable", str(exc))
        return _error(500, "internal_error", str(exc))

    @app.exception_handler(Exception)
    async def _bug(request: Request, exc: Exception) -> JSONResponse:
        log.exception("unhandled error on %s %s", request.method, request.url.path)
        return _error(500, "internal_error",
                      f"{type(exc).__name__} inside memp; this is a bug, please report it with the request")

    # -- endpoints

    @app.get("/v1/health", response_model=Health, tags=["service"])
    def health() -> Health:
        """Liveness: the service answers and its store is reachable."""
        config.store.generation()
        return Health(status="ok", version=memp.__version__, store=type(config.store).__name__)

    @app.post("/v1/trajectories", response_model=UpdateReport, status_code=201, tags=["learn"])
    def record_trajectory(trajectory: Trajectory,
                          mode: Literal["update", "add"] = Query(
                              "update", description="update: apply the service's update strategy "
                              "(e.g. keep only successes); add: build and store whatever the outcome."),
                          ns: str = Depends(namespace)) -> UpdateReport:
        """Record a finished run; memory builds a procedure from it."""
        mem = service.memory(ns)
        return mem.update(trajectory) if mode == "update" else mem.add(trajectory)

    @app.post("/v1/retrieve", response_model=RetrieveResponse, tags=["use"])
    def retrieve(body: RetrieveRequest, ns: str = Depends(namespace)) -> Response:
        """The procedures most relevant to a task, best first."""
        mem = service.memory(ns)
        task = body.task if isinstance(body.task, Task) else Task(text=body.task)
        k = config.k if body.k is None else body.k
        if body.strategy is None:
            hits = mem.retrieve(task, k=k)
        else:
            hits = service.retriever(body.strategy).retrieve(task, config.store, ns, k)
        found = RetrieveResponse(hits=[HitOut(ref=h.procedure.ref, score=h.score, retriever=h.retriever,
                                              rendered=h.procedure.render(), procedure=_view(h.procedure))
                                       for h in hits])
        # Serialized here, by pydantic, rather than validated again and encoded by FastAPI: the
        # hits carry whole procedures, and that second pass cost about 0.5 ms of a read's CPU.
        return Response(found.model_dump_json(), media_type="application/json")

    @app.post("/v1/outcomes", response_model=UpdateReport, status_code=201, tags=["learn"])
    def report_outcome(body: OutcomeRequest, ns: str = Depends(namespace)) -> UpdateReport:
        """The result of a run that was given procedures: counts their use, revises or deprecates."""
        mem = service.memory(ns)
        # Resolve every ref before writing anything: an unknown ref leaves memory unchanged.
        used = [RetrievalHit(procedure=_resolve(config.store, ns, ref), score=0.0) for ref in body.used]
        return mem.update(body.trajectory, used=used)

    @app.get("/v1/procedures", response_model=ProcedurePage, tags=["curate"])
    def list_procedures(status: Literal["active", "deprecated"] | None = None,
                        task_type: str | None = Query(None, max_length=200),
                        limit: int = Query(50, ge=1, le=500), offset: int = Query(0, ge=0, le=10**9),
                        # -- inspector: sorting and the builder filter (see server/inspector.py)
                        sort: Sort | None = Query(
                            None, description="Order by last update, uses or success rate; "
                            "default: last update."),
                        order: Order = "desc",
                        builder: str | None = Query(None, max_length=200),
                        ns: str = Depends(namespace)) -> ProcedurePage:
        """Newest version of each procedure, newest first (or as `sort` says)."""
        filters = {"status": status, "task_type": task_type, "builder": builder}
        items = config.store.list(ns, **filters, sort=sort or "updated", order=order, limit=limit,
                                  offset=offset)
        total = config.store.count(ns, **filters)
        return ProcedurePage(items=[_view(p) for p in items], total=total, limit=limit, offset=offset)

    @app.get("/v1/procedures/{procedure_id}", tags=["curate"])
    def show_procedure(procedure_id: str, version: int | None = Query(None, ge=1, le=10**9),
                       ns: str = Depends(namespace)) -> dict[str, Any]:
        """One procedure: its newest version, or the version asked for."""
        return _view(config.store.get(ns, procedure_id, version))

    @app.get("/v1/procedures/{procedure_id}/history", tags=["curate"])
    def procedure_history(procedure_id: str, ns: str = Depends(namespace)) -> dict[str, Any]:
        """Every version of a procedure, and the events that made them."""
        versions = config.store.history(ns, procedure_id)
        events = config.store.events(ns, procedure_id)
        return {"versions": [_view(p) for p in versions],
                "events": [e.model_dump(mode="json") for e in events]}

    @app.post("/v1/procedures/{procedure_id}/deprecate", tags=["curate"])
    def deprecate(procedure_id: str, body: StatusRequest, ns: str = Depends(namespace)) -> dict[str, Any]:
        """Stop retrieving a procedure (reversible)."""
        return _view(config.store.set_status(ns, procedure_id, "deprecated", reason=body.reason))

    @app.post("/v1/procedures/{procedure_id}/restore", tags=["curate"])
    def restore(procedure_id: str, body: StatusRequest, ns: str = Depends(namespace)) -> dict[str, Any]:
        """Retrieve a deprecated procedure again, with fresh statistics."""
        return _view(config.store.set_status(ns, procedure_id, "active", reason=body.reason))

    @app.get("/v1/export", tags=["move"], response_class=StreamingResponse,
             responses={200: {"content": {"application/x-ndjson": {}}}})
    def export(ns: str = Depends(namespace)) -> StreamingResponse:
        """The namespace as JSON lines (the format `memp memory export` writes)."""
        records = list(config.store.export_records(ns))  # read now, so a later failure is a clean 503

        def lines() -> Iterator[bytes]:
            for record in records:
                yield (json.dumps(record, sort_keys=True) + "\n").encode()

        return StreamingResponse(lines(), media_type="application/x-ndjson")

    @app.post("/v1/import", response_model=ImportResult, status_code=201, tags=["move"],
              openapi_extra={"requestBody": {"required": True, "content": {
                  "application/x-ndjson": {"schema": {"type": "string"}}}}})
    async def import_(request: Request, ns: str = Depends(namespace)) -> ImportResult:
        """JSON lines from an export, written into this token's namespace: all or nothing."""
        records = _json_lines(await request.body())
        _check_vectors(records, config.embedder.dim)
        from starlette.concurrency import run_in_threadpool

        counts = await run_in_threadpool(config.store.import_records, records, namespace=ns)
        return ImportResult(**counts)

    inspector.install(app, config, namespace)  # the web page at / and the endpoints it reads
    return app


def _resolve(store: Store, namespace: str, ref: str) -> Procedure:
    pid, sep, version = ref.partition("@v")
    # ASCII digits only ("²".isdigit() is true), and few enough for the database's integers.
    if not pid or (sep and not (version.isascii() and version.isdigit() and len(version) <= 9)):
        raise InvalidInputError(f"bad procedure ref {ref[:80]!r}; use id@vN (as retrieve returns) or id")
    return store.get(namespace, pid, int(version) if sep else None)


def _check_vectors(records: list[dict[str, Any]], dim: int) -> None:
    """Every imported vector must have the service embedder's shape, or retrieval breaks later."""
    for n, record in enumerate(records, 1):
        procedure = record.get("procedure") if record.get("type") == "procedure" else None
        if not isinstance(procedure, dict):
            continue
        vectors = {"embedding": procedure.get("embedding")}
        keyword_vectors = procedure.get("keyword_embeddings")
        if isinstance(keyword_vectors, dict):
            vectors |= {f"keyword_embeddings.{k}": v for k, v in keyword_vectors.items()}
        for name, vector in vectors.items():
            if vector is None and name == "embedding":
                continue
            if not (isinstance(vector, list) and len(vector) == dim
                    and all(isinstance(x, (int, float)) and not isinstance(x, bool) for x in vector)):
                shape = f"{len(vector)} values" if isinstance(vector, list) else type(vector).__name__
                raise InvalidInputError(
                    f"import record {n}: procedure {name} has {shape}, not the {dim} numbers of this "
                    "service's embedder; export from a memory built with the same embedder")


def _json_lines(body: bytes) -> list[dict[str, Any]]:
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as err:
        raise InvalidInputError(f"import body is not UTF-8 (bad byte at offset {err.start})") from None
    records = []
    for n, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        record = loads_storable(line, f"import line {n}", max_depth=MAX_EXPORT_DEPTH)
        if not isinstance(record, dict):
            raise InvalidInputError(f"import line {n} is not a JSON object")
        records.append(record)
    if not records:
        raise InvalidInputError("import body is empty; send the JSON lines of an export")
    return records


def _one_blas_thread() -> None:
    """numpy's BLAS on one thread in the serving process. Its pool splits each exact-scan product
    over every core, then its threads spin waiting for the next one, taking the cores that other
    requests and the embedder need: a sixth fewer requests/s (bench/service_throughput.py). The
    service's parallelism comes from its concurrent requests instead."""
    from threadpoolctl import threadpool_limits

    threadpool_limits(limits=1, user_api="blas")


def build_app(db: str, *, tokens: dict[str, str], embedder: str | Embedder = "minilm",
              max_body_bytes: int = DEFAULT_MAX_BODY, **options: Any):
    """The app from a database location and settings."""
    _one_blas_thread()
    emb = make_embedder(embedder, concurrent=True) if isinstance(embedder, str) else embedder
    config = ServiceConfig(store=open_store(db), tokens=tokens, embedder=emb,
                           max_body_bytes=max_body_bytes, **options)
    return create_app(config)


def serve(db: str, *, host: str = "127.0.0.1", port: int = 8080, tokens: dict[str, str],
          embedder: str | Embedder = "minilm", max_body_bytes: int = DEFAULT_MAX_BODY,
          **options: Any) -> None:
    """Run the service with uvicorn until interrupted."""
    import uvicorn

    app = build_app(db, tokens=tokens, embedder=embedder, max_body_bytes=max_body_bytes, **options)
    uvicorn.run(app, host=host, port=port, log_level="info")


def app_from_env():
    """An app configured from MEMP_DB, MEMP_TOKENS and MEMP_EMBEDDER (for `uvicorn --factory`)."""
    import os

    from memp.server.auth import load_tokens

    return build_app(os.environ.get("MEMP_DB", "memp.db"), tokens=load_tokens(),
                     embedder=os.environ.get("MEMP_EMBEDDER", "minilm"))


__all__ = ["RETRIEVERS", "ServiceConfig", "app_from_env", "build_app", "create_app", "serve"]
