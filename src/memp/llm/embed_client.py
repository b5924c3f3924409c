"""``OpenAIEmbedder``: embeddings from an OpenAI-compatible ``/v1/embeddings`` endpoint.

An alternative to the local MiniLM with the same shape (``name``, ``dim``, ``embed``). Failures
surface as ``EmbeddingError`` (what the memory code expects from any embedder), carrying the
endpoint error's message and chained to it.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any

import numpy as np
import openai

from memp._errors import EmbeddingError
from memp.llm.endpoint import (
    ENV_EMBED_MODEL,
    Endpoint,
    RetryPolicy,
    describe_transient,
    retry_after_of,
    translate,
)
from memp.llm.errors import LLMConfigError
from memp.llm.usage import Usage, UsageMeter


class OpenAIEmbedder:
    """Unit-length float32 vectors; ``dim`` is asked of the server on first use unless given.

    Serving a chat GGUF with llama-cpp-python's ``embedding: true`` (no pooling) gives per-token
    vectors, which are mean-pooled here; use ``batch_size=1`` with it, as its server (0.3.36)
    returns wrong vectors for all but the first text of a batch.
    """

    def __init__(
        self,
        model: str | None = None,
        base_url: str | None = None,
        api_key: str | None = None,
        *,
        dim: int | None = None,
        batch_size: int = 64,
        timeout: float = 60.0,
        max_retries: int = 4,
        backoff_base: float = 0.5,
        retry_seed: int | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        try:
            self.endpoint = Endpoint.resolve(base_url, model, api_key, model_env=ENV_EMBED_MODEL)
        except LLMConfigError as err:
            raise EmbeddingError(str(err)) from err
        if batch_size < 1:
            raise EmbeddingError(f"batch_size must be at least 1, got {batch_size}")
        self.model: str = self.endpoint.model  # type: ignore[assignment]
        self.name = f"openai:{self.model}"
        self.batch_size = batch_size
        self.retry = RetryPolicy(max_retries=max_retries, base_delay=backoff_base, seed=retry_seed)
        self.meter = UsageMeter()
        self._dim = dim
        self._sleep = sleep
        self._client = openai.OpenAI(
            base_url=self.endpoint.base_url, api_key=self.endpoint.api_key, timeout=timeout, max_retries=0
        )

    @property
    def dim(self) -> int:
        if self._dim is None:
            self._dim = int(self._embed_batch(["dimension probe"]).shape[1])
        return self._dim

    def embed(self, texts: list[str]) -> np.ndarray:
        """Return float32 array (len(texts), dim), each row L2-normalised."""
        texts = list(texts)
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        parts = [
            self._embed_batch(texts[i : i + self.batch_size]) for i in range(0, len(texts), self.batch_size)
        ]
        vectors = np.concatenate(parts, axis=0)
        if self._dim is None:
            self._dim = int(vectors.shape[1])
        elif vectors.shape[1] != self._dim:
            raise EmbeddingError(
                f"{self.name} returned {vectors.shape[1]}-dimensional vectors, expected {self._dim}; "
                "the server may be serving a different model than before"
            )
        return vectors

    def _embed_batch(self, texts: list[str]) -> np.ndarray:
        # Empty strings are rejected by some servers; a single space embeds as "nothing" everywhere.
        inputs = [text if text.strip() else " " for text in texts]
        for attempt in range(1, self.retry.max_retries + 2):
            try:
                response = self._client.embeddings.create(model=self.model, input=inputs)
                vectors = _vectors(response, len(inputs))
                break
            except (openai.OpenAIError, json.JSONDecodeError, ValueError, TypeError, AttributeError) as err:
                failure = (
                    translate(err, self.endpoint, self.model) if isinstance(err, openai.OpenAIError) else None
                )
                if failure is not None:
                    raise EmbeddingError(str(failure)) from failure
                if attempt > self.retry.max_retries:
                    where = f"{self.endpoint.base_url} (embedding model {self.model!r})"
                    raise EmbeddingError(
                        f"{where} {describe_transient(err)}, still after {attempt} attempts; "
                        "check that the server is up and serves embeddings (llama.cpp needs --embedding)"
                    ) from err
                self._sleep(self.retry.delay(attempt - 1, retry_after_of(err)))
        usage = getattr(response, "usage", None)
        prompt = int(getattr(usage, "prompt_tokens", 0) or 0)
        self.meter.record(Usage(calls=1, network_calls=1, retries=attempt - 1, prompt_tokens=prompt))
        norms = np.linalg.norm(vectors, axis=1, keepdims=True)
        if np.any(norms == 0):
            raise EmbeddingError(f"{self.name} returned an all-zero vector; it cannot be normalised")
        return (vectors / norms).astype(np.float32)


def _vectors(response: object, expected: int) -> np.ndarray:
    data = getattr(response, "data", None)
    if not data or len(data) != expected:
        raise ValueError(f"expected {expected} embeddings, got {len(data) if data else 0}")
    # The API may return items out of order; each carries its index.
    ordered = sorted(data, key=lambda item: getattr(item, "index", 0))
    rows: list[Any] = [getattr(item, "embedding", None) for item in ordered]
    if any(not isinstance(row, list) or not row for row in rows):
        raise ValueError("an embedding is missing or not a list of floats")
    # llama.cpp without pooling answers one vector per token; callers need one per text.
    if isinstance(rows[0][0], list):
        rows = [np.mean(np.asarray(row, dtype=np.float64), axis=0).tolist() for row in rows]
    matrix = np.asarray(rows, dtype=np.float64)
    if matrix.ndim != 2 or not np.all(np.isfinite(matrix)):
        raise ValueError("embeddings are ragged or contain NaN/inf")
    return matrix


__all__ = ["OpenAIEmbedder"]
