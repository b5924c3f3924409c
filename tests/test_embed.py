"""The embedders: the ONNX MiniLM path against sentence-transformers, and its export cache."""

from __future__ import annotations

import importlib.util
import multiprocessing
import random
import shutil
from pathlib import Path

import numpy as np
import pytest

import memp.embed as embed
from memp._errors import EmbeddingError, UnknownStrategyError
from memp.embed import (CachedEmbedder, HashingEmbedder, MiniLMEmbedder, TorchMiniLMEmbedder,
                        make_embedder)

pytest.importorskip("onnxruntime", reason="the ONNX MiniLM embedder needs the 'embed' extra")
pytest.importorskip("sentence_transformers", reason="the reference embedder needs the 'embed' extra")

# The inference backends installed here: each must give sentence-transformers' vectors.
BACKENDS = ["onnxruntime"] + (["openvino"] if importlib.util.find_spec("openvino") else [])

WORDS = ("put a clean hot cool mug apple egg in on the fridge microwave sinkbasin countertop 1 2 "
         "plan trip from Seattle to Denver budget $1,500 hotel flights 3-day museum Café naïve "
         "Zürich São Paulo Kraków 東京 大阪 ä ß Ω 🙂 — … «quoted» don't e-mail U.S.A. x86_64").split()


def varied_texts(n: int = 300, seed: int = 0) -> list[str]:
    """Empty-ish, short, long past the 256-token cut, unicode and mixed case."""
    rng = random.Random(seed)
    texts = ["", " ", "\n\t ", "!!!", ".", "a", "A", "ÄÖÜ ß", "東京から大阪まで", "🙂🙂🙂", "\u200b",
             "PUT A CLEAN MUG IN FRIDGE.", "   leading and trailing spaces   "]
    while len(texts) < n:
        # Mostly task-sized texts; one in twenty past the cut (they cost the most to embed).
        length = rng.choice([1, 3, 8, 15, 30, 60] * 3 + [350])
        text = " ".join(rng.choice(WORDS) for _ in range(rng.randint(1, length)))
        texts.append(text.upper() if rng.random() < 0.1 else text)
    return texts


@pytest.fixture(scope="module")
def export_dir(tmp_path_factory) -> Path:
    """A cache dir holding one export, made once for this module."""
    cache = tmp_path_factory.mktemp("onnx-cache")
    MiniLMEmbedder(cache_dir=cache).embed(["warm up"])
    return cache


@pytest.fixture
def exports(monkeypatch) -> list[Path]:
    """Counts exports: each call to embed._export appends its target."""
    calls: list[Path] = []
    real = embed._export

    def counted(model_dir, target):
        calls.append(target)
        real(model_dir, target)

    monkeypatch.setattr(embed, "_export", counted)
    return calls


@pytest.mark.parametrize("backend", BACKENDS)
def test_onnx_vectors_match_sentence_transformers(export_dir, backend):
    texts = varied_texts()
    assert any(len(t.split()) > 256 for t in texts)  # the truncation is exercised
    onnx = MiniLMEmbedder(cache_dir=export_dir, backend=backend)
    reference = TorchMiniLMEmbedder().embed(texts)
    batched = onnx.embed(texts)
    one_by_one = np.stack([onnx.embed([t])[0] for t in texts[:60]])
    assert batched.shape == (len(texts), 384) and batched.dtype == np.float32
    assert np.allclose(np.linalg.norm(batched, axis=1), 1.0, atol=1e-5)
    cosines = (batched * reference).sum(axis=1)
    assert cosines.min() >= 0.999, texts[int(cosines.argmin())]
    assert (one_by_one * reference[:60]).sum(axis=1).min() >= 0.999
    assert onnx.backend == backend


def test_text_past_256_tokens_is_cut_like_sentence_transformers(export_dir):
    head = " ".join(["mug"] * 300)  # [CLS] + 300 tokens: already past the cut
    onnx = MiniLMEmbedder(cache_dir=export_dir).embed([head, head + " fridge microwave"])
    assert np.array_equal(onnx[0], onnx[1])
    short = MiniLMEmbedder(cache_dir=export_dir).embed(["mug mug", "mug mug fridge microwave"])
    assert float(short[0] @ short[1]) < 0.99  # the same words count below the cut


@pytest.mark.parametrize("backend", BACKENDS)
def test_same_input_gives_identical_vectors(export_dir, backend):
    texts = varied_texts(60, seed=1)
    first = MiniLMEmbedder(cache_dir=export_dir, backend=backend).embed(texts)
    again = MiniLMEmbedder(cache_dir=export_dir, backend=backend).embed(texts)
    assert np.array_equal(first, again)


def test_auto_runs_openvino_where_the_cpu_multiplies_bfloat16(export_dir):
    ov = pytest.importorskip("openvino", reason="the openvino backend is in the 'embed' extra")
    bf16 = "BF16" in ov.Core().get_property("CPU", "OPTIMIZATION_CAPABILITIES")
    auto = MiniLMEmbedder(cache_dir=export_dir, backend="auto")
    auto.embed(["put a mug in the fridge"])
    assert auto.backend == ("openvino" if bf16 else "onnxruntime")


def test_unknown_backend_is_refused_before_anything_loads(monkeypatch):
    with pytest.raises(EmbeddingError, match="onnxruntime"):
        MiniLMEmbedder(backend="tensorrt")
    monkeypatch.setenv("MEMP_EMBED_BACKEND", "gpu")
    with pytest.raises(EmbeddingError, match="MEMP_EMBED_BACKEND"):
        MiniLMEmbedder()


def test_second_construction_reuses_the_export(export_dir, tmp_path, exports):
    shutil.copytree(export_dir, tmp_path / "cache")
    (path,) = (tmp_path / "cache" / "onnx").glob("*.onnx")
    before = path.stat().st_mtime_ns
    for _ in range(2):
        MiniLMEmbedder(cache_dir=tmp_path / "cache").embed(["put a mug in the fridge"])
    assert exports == []
    assert path.stat().st_mtime_ns == before


def test_missing_export_is_made_once(tmp_path, exports, export_dir):
    vec = MiniLMEmbedder(cache_dir=tmp_path).embed(["put a mug in the fridge"])
    vec2 = MiniLMEmbedder(cache_dir=tmp_path).embed(["put a mug in the fridge"])
    assert len(exports) == 1
    assert [p.name for p in (tmp_path / "onnx").iterdir()] == [exports[0].name.split(".")[0] + ".onnx"]
    assert np.array_equal(vec, vec2)
    assert np.allclose(vec, MiniLMEmbedder(cache_dir=export_dir).embed(["put a mug in the fridge"]),
                       atol=1e-6)


@pytest.mark.parametrize("damage", ["truncate", "garbage", "other_probe"])
def test_damaged_export_is_detected_and_rebuilt(export_dir, tmp_path, exports, damage):
    shutil.copytree(export_dir, tmp_path / "cache")
    (path,) = (tmp_path / "cache" / "onnx").glob("*.onnx")
    data = path.read_bytes()
    if damage == "truncate":  # as if a copy or a disk stopped halfway
        path.write_bytes(data[: len(data) // 2])
    elif damage == "garbage":
        path.write_bytes(b"not an onnx file")
    else:  # a readable graph whose weights no longer give the stored probe vector
        import onnx
        graph = onnx.load(str(path))
        weights = next(t for t in graph.graph.initializer if len(t.raw_data) > 100_000)
        raw = np.frombuffer(weights.raw_data, dtype=np.float32).copy()
        raw[: len(raw) // 2] *= -1.0
        weights.raw_data = raw.tobytes()
        onnx.save(graph, str(path))
    text = ["heat an egg in the microwave"]
    vec = MiniLMEmbedder(cache_dir=tmp_path / "cache").embed(text)
    assert len(exports) == 1
    assert np.allclose(vec, MiniLMEmbedder(cache_dir=export_dir).embed(text), atol=1e-6)
    assert path.stat().st_size == (export_dir / "onnx" / path.name).stat().st_size
    assert list((tmp_path / "cache" / "onnx").glob("*.tmp")) == []


def test_export_is_keyed_by_the_model_files(tmp_path):
    model_dir = embed._offline_model_dir()
    copy = tmp_path / "model"
    copy.mkdir()
    (copy / "model.safetensors").symlink_to(model_dir / "model.safetensors")
    config = (model_dir / "config.json").read_text()
    (copy / "config.json").write_text(config)

    def key(d: Path) -> str:
        return embed._model_key(d, (str(d), (d / "config.json").stat().st_mtime_ns))

    assert key(copy) == key(model_dir)  # same bytes, same export
    (copy / "config.json").write_text(config.replace('"hidden_act": "gelu"', '"hidden_act": "relu"'))
    assert key(copy) != key(model_dir)


def _export_into(cache_dir: str) -> str:
    model_dir = embed._offline_model_dir()
    return str(embed.onnx_model(model_dir, Path(cache_dir), force=True))


@pytest.mark.slow
def test_two_processes_exporting_at_once_leave_one_good_file(tmp_path):
    ctx = multiprocessing.get_context("spawn")
    with ctx.Pool(2) as pool:
        paths = pool.map(_export_into, [str(tmp_path)] * 2)
    assert len(set(paths)) == 1
    assert [p.suffix for p in (tmp_path / "onnx").iterdir()] == [".onnx"]  # no temp file left
    tokenizer = embed._tokenizer(embed._offline_model_dir())
    assert embed._open_session(Path(paths[0]), 1, tokenizer) is not None


def test_bad_thread_count_is_refused(monkeypatch):
    monkeypatch.setenv("MEMP_EMBED_THREADS", "two")
    with pytest.raises(EmbeddingError, match="MEMP_EMBED_THREADS"):
        MiniLMEmbedder()


def test_make_embedder_names():
    assert isinstance(make_embedder("minilm", cache=False), MiniLMEmbedder)
    assert isinstance(make_embedder("minilm-torch", cache=False), TorchMiniLMEmbedder)
    assert isinstance(make_embedder("hashing", cache=False), HashingEmbedder)
    # Both MiniLM backends share one name, so they share cached vectors and stored procedures.
    assert make_embedder("minilm", cache=False).name == make_embedder("minilm-torch", cache=False).name
    with pytest.raises(UnknownStrategyError, match="minilm-torch"):
        make_embedder("minilm-onnx")


def test_cached_embedder_counts_misses_for_new_texts(export_dir, tmp_path):
    cached = CachedEmbedder(MiniLMEmbedder(cache_dir=export_dir), tmp_path / "emb.sqlite")
    first = cached.embed(["a", "b", "a"])
    assert (cached.misses, cached.hits) == (2, 1)
    assert np.array_equal(cached.embed(["b"])[0], first[1])
    assert (cached.misses, cached.hits) == (2, 2)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("concurrent", [False, True], ids=["agent", "service"])
def test_concurrent_callers_each_get_their_own_vectors(export_dir, concurrent, backend):
    from concurrent.futures import ThreadPoolExecutor

    onnx = MiniLMEmbedder(cache_dir=export_dir, threads=2, concurrent=concurrent, backend=backend)
    texts = varied_texts(40, seed=2)
    alone = [onnx.embed([t])[0] for t in texts]
    pairs = [(i, len(texts) - 1 - i) for i in range(len(texts))]
    with ThreadPoolExecutor(8) as pool:  # each caller asks for two texts: its rows, in its order
        together = list(pool.map(lambda pair: onnx.embed([texts[pair[0]], texts[pair[1]]]), pairs))
    for (i, j), rows in zip(pairs, together):
        assert float(alone[i] @ rows[0]) > 0.99999 and float(alone[j] @ rows[1]) > 0.99999


def test_a_failed_pass_raises_in_its_caller(export_dir, monkeypatch):
    onnx = MiniLMEmbedder(cache_dir=export_dir)
    onnx.embed(["load"])

    def broken(session, encodings):
        raise RuntimeError("inference failed")

    monkeypatch.setattr(embed, "_run", broken)
    with pytest.raises(RuntimeError, match="inference failed"):
        onnx.embed(["put a mug in the fridge"])
    monkeypatch.undo()
    assert onnx.embed(["put a mug in the fridge"]).shape == (1, 384)  # the next pass works


def test_unwritable_cache_dir_is_a_clear_error(tmp_path):
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("a file where the cache folder should be")
    with pytest.raises(EmbeddingError, match="MEMP_CACHE_DIR"):
        MiniLMEmbedder(cache_dir=blocker).embed(["put a mug in the fridge"])
    assert blocker.read_text() == "a file where the cache folder should be"


def test_a_service_pool_never_spins_and_an_agents_spins_within_a_pass(export_dir, monkeypatch):
    from memp.server.rest import build_app

    monkeypatch.setenv("MEMP_CACHE_DIR", str(export_dir))
    monkeypatch.setenv("MEMP_EMBED_BACKEND", "onnxruntime")

    def spinning(embedder) -> str:
        inner = getattr(embedder, "inner", embedder)
        inner.embed(["load"])
        return inner._session.get_session_options().get_session_config_entry("session.intra_op.allow_spinning")

    assert spinning(make_embedder("minilm", cache=False)) == "1"
    app = build_app(str(export_dir / "served.db"), tokens={}, embedder="minilm")
    served = app.state.service.config.embedder
    assert spinning(served) == "0"
    # Serving, passes run side by side on one core each rather than one pass on a pool.
    assert getattr(served, "inner", served)._session.get_session_options().intra_op_num_threads == 1


def test_a_service_keeps_numpy_blas_on_one_thread(tmp_path):
    from threadpoolctl import threadpool_info, threadpool_limits

    from memp.server.rest import build_app

    before = {p["filepath"]: p["num_threads"] for p in threadpool_info() if p["user_api"] == "blas"}
    try:
        build_app(str(tmp_path / "served.db"), tokens={}, embedder="hashing")
        after = [p["num_threads"] for p in threadpool_info() if p["user_api"] == "blas"]
        assert after and set(after) == {1}
    finally:
        threadpool_limits(limits=max(before.values(), default=None), user_api="blas")


def test_a_service_runs_an_openvino_stream_per_core(export_dir, monkeypatch):
    pytest.importorskip("openvino", reason="the openvino backend is in the 'embed' extra")
    from memp.server.rest import build_app

    monkeypatch.setenv("MEMP_CACHE_DIR", str(export_dir))
    monkeypatch.setenv("MEMP_EMBED_BACKEND", "openvino")
    monkeypatch.setenv("MEMP_EMBED_THREADS", "2")

    def compiled(embedder):
        inner = getattr(embedder, "inner", embedder)
        inner.embed(["load"])
        return inner._session.compiled

    alone = compiled(make_embedder("minilm", cache=False))
    assert str(alone.get_property("PERFORMANCE_HINT")) == "LATENCY"
    assert alone.get_property("INFERENCE_NUM_THREADS") == 2
    served = compiled(build_app(str(export_dir / "ov-served.db"), tokens={}).state.service.config.embedder)
    assert served.get_property("NUM_STREAMS") == 2


def test_experiments_run_float32_unless_told_otherwise(monkeypatch):
    monkeypatch.delenv("MEMP_EMBED_BACKEND", raising=False)
    assert embed.experiment_backend() == "onnxruntime"
    assert make_embedder("minilm", cache=False, backend=embed.experiment_backend()).requested_backend == "onnxruntime"
    monkeypatch.setenv("MEMP_EMBED_BACKEND", "openvino")
    assert embed.experiment_backend() == "openvino"
    monkeypatch.setenv("MEMP_EMBED_BACKEND", "fp8")
    with pytest.raises(EmbeddingError, match="MEMP_EMBED_BACKEND"):
        embed.experiment_backend()
