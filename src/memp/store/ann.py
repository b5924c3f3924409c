"""An approximate nearest-neighbour index for the embedded store's key vectors.

Exact numpy scans cost about 25 ms per query at 100k procedures (384 dimensions) and 74 ms at 1M;
an HNSW graph answers in well under a millisecond. The graph is usearch's, holding the vectors as
float16 (``ANNConfig.dtype``): at 1M procedures of 384 dimensions that is 0.77 GB of vectors where
hnswlib's float32 needs 1.5 GB, too much for a serving process to stay under 2 GB. The candidates:

- **usearch** (chosen): float16 and int8 storage, ``remove``, multi-threaded ``add``, one wheel.
- hnswlib (the previous choice): float32 only; in a probe on 50,000 synthetic vectors it built
  1.4x and answered 1.7x faster than usearch at the same recall.
- faiss-cpu: a large dependency whose HNSW index cannot delete vectors, so a deprecation or a new
  version would force a rebuild.

The index holds only what it needs: the graph, and each label's lineage, version and lineage
position. It is filled straight from the database in chunks of ``ANNConfig.chunk`` rows, never
from the store's cached float32 matrix (which is then never loaded), and follows the store by its
generation counter: after the store's own writes it re-reads just the lineages they changed;
after another process's write it walks the active heads once more and adds or removes only what
differs. Scores come back from the float16 graph, within about 1e-3 of the exact ones.

A built index of at least ``ANNConfig.save_min`` vectors is saved beside the database file
(memp.store.ann_saved), so the next process loads it and catches up with the database instead of
building it again (at a million vectors: loaded in 1.7 s, built in 3 minutes on two idle cores
and 26 on busy ones).
"""

from __future__ import annotations

import contextlib
import logging
import threading
from array import array
from dataclasses import dataclass, fields
from typing import TYPE_CHECKING, Any

import numpy as np

from memp._errors import InvalidInputError, StoreError
from memp.store.base import Ref

if TYPE_CHECKING:
    from memp.store.ann_saved import SavedIndexes

log = logging.getLogger(__name__)

_DTYPES = ("f16", "f32", "i8")


@dataclass(frozen=True)
class ANNConfig:
    """How the HNSW index is built and searched (``SQLiteStore(path, ann=ANNConfig(...))``).

    The defaults reach recall@10 0.998 at 0.21 ms p50 over 70,000 MiniLM task vectors, and 0.981
    at 0.29 ms over a million in a serving process of 1.5 GB, on two cores
    (bench/results/store_scale*.json); raise ``ef_search`` for recall, lower it for speed.
    """

    m: int = 16  # graph degree: memory and build time grow with it, recall too
    ef_construction: int = 128  # candidates kept while inserting: build time against graph quality
    ef_search: int = 64  # candidates kept while searching (at least k): latency against recall
    dtype: str = "f16"  # how vectors are held: "f16" (half the memory of "f32"), "f32", or "i8"
    threads: int = 0  # threads that build the graph; 0 = every core
    chunk: int = 50_000  # rows read from the database and added at a time
    # Indexes of at least this many vectors are saved beside the database file for the next process
    # to load (below it, building is about as fast as loading); 0 = never save nor load one.
    save_min: int = 20_000

    def __post_init__(self) -> None:
        if self.dtype not in _DTYPES:
            raise InvalidInputError(f"ann dtype {self.dtype!r} is not one of {', '.join(_DTYPES)}")
        for name in ("m", "ef_construction", "ef_search", "chunk"):
            if not isinstance(getattr(self, name), int) or getattr(self, name) < 1:
                raise InvalidInputError(f"ann {name} must be a positive integer, not {getattr(self, name)!r}")
        for name, zero in (("threads", "every core"), ("save_min", "never save")):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 0:
                raise InvalidInputError(f"ann {name} must be 0 ({zero}) or more, not {value!r}")

    @classmethod
    def of(cls, value: bool | dict[str, Any] | ANNConfig) -> ANNConfig:
        """The configuration from ``ann=True``, a dict of its fields, or itself."""
        if isinstance(value, ANNConfig):
            return value
        if value is True:
            return cls()
        if isinstance(value, dict):
            unknown = set(value) - {f.name for f in fields(cls)}
            if unknown:
                raise InvalidInputError(
                    f"unknown ann option(s) {', '.join(sorted(unknown))}; "
                    f"choose from {', '.join(f.name for f in fields(cls))}")
            return cls(**value)
        raise InvalidInputError(f"ann must be True, a dict of options or an ANNConfig, not {value!r}")


def _usearch():
    # onnxruntime (the default embedder) segfaults when it is first imported after a usearch Index
    # exists (usearch 2.26.6, onnxruntime 1.31.1); imported first, both work. tests/store/test_ann.py.
    with contextlib.suppress(ImportError):
        import onnxruntime  # noqa: F401
    try:
        from usearch.index import Index
    except ImportError:
        raise StoreError(
            "the approximate index needs usearch: pip install 'memp[ann]', "
            "or open the store without ann=True"
        ) from None
    return Index


class HNSWIndex:
    """An HNSW graph over one namespace's key vectors, one label per indexed lineage head."""

    def __init__(self, dim: int, config: ANNConfig | None = None) -> None:
        self.dim = dim
        self.config = config or ANNConfig()
        self._graph = _usearch()(ndim=dim, metric="ip", dtype=self.config.dtype,
                                 connectivity=self.config.m, expansion_add=self.config.ef_construction,
                                 expansion_search=self.config.ef_search)
        self._label: dict[str, int] = {}  # lineage id -> the label of its indexed head
        # label -> (lineage id, version, lineage position): three flat columns, not a million tuples
        self._ids: list[str | None] = []
        self._versions = array("q")
        self._positions = array("q")
        self.unsaved = 0  # labels added or removed since the index last matched its saved copy

    @classmethod
    def restore(cls, dim: int, config: ANNConfig, graph_path: str, ids: list[str | None],
                versions: array, positions: array) -> HNSWIndex:
        """An index from a graph file and its label columns (``columns()`` of the index saved)."""
        index = cls(dim, config)
        index._graph.load(graph_path)
        index._ids, index._versions, index._positions = ids, versions, positions
        index._label = {pid: label for label, pid in enumerate(ids) if pid is not None}
        # usearch loads whatever the file holds, whatever the Index was made for: check it fits.
        if not (index._graph.ndim == dim and len(index._graph) == len(index._label)
                and len(ids) == len(versions) == len(positions)):
            raise ValueError(f"the graph ({index._graph.ndim} dimensions, {len(index._graph)} vectors) "
                             f"does not fit its labels ({dim} dimensions, {len(index._label)} lineages)")
        return index

    def save_graph(self, path: str) -> None:
        self._graph.save(path)

    def columns(self) -> tuple[list[str | None], array, array]:
        """Each label's lineage id (None once removed), version and lineage position."""
        return self._ids, self._versions, self._positions

    @property
    def size(self) -> int:
        return len(self._label)

    def lineages(self) -> list[str]:
        return list(self._label)

    def indexed(self, procedure_id: str) -> int | None:
        """The version of this lineage in the index, None if it has none."""
        label = self._label.get(procedure_id)
        return None if label is None else self._versions[label]

    def add(self, ids: list[str], versions: list[int], positions: list[int], matrix: np.ndarray) -> None:
        """Index these heads (lineages not in the index yet)."""
        if not ids:
            return
        labels = np.arange(len(self._ids), len(self._ids) + len(ids), dtype=np.uint64)
        self._graph.add(labels, np.asarray(matrix, dtype=np.float32), threads=self.config.threads)
        for pid, label in zip(ids, labels.tolist()):
            self._label[pid] = label
        self._ids += ids
        self._versions.extend(versions)
        self._positions.extend(positions)
        self.unsaved += len(ids)

    def remove(self, procedure_ids) -> None:
        """Drop these lineages' heads from the index (those it does not hold are ignored)."""
        labels = [self._label.pop(pid) for pid in procedure_ids if pid in self._label]
        if labels:
            self._graph.remove(np.asarray(labels, dtype=np.uint64))
            for label in labels:
                self._ids[label] = None  # the string goes; the label is never reused
            self.unsaved += len(labels)

    def top(self, query: Any, k: int) -> list[tuple[Ref, float]]:
        k = min(k, self.size)
        if k <= 0:
            return []
        self._graph.expansion_search = max(self.config.ef_search, k)
        found = self._graph.search(np.asarray(query, dtype=np.float32), k)
        # "ip" distance is 1 - dot product. Ties break on lineage position, like VectorTable.top,
        # never on the random ids, so a seeded run retrieves the same procedures every time.
        hits = sorted(zip(found.distances.tolist(), found.keys.tolist()),
                      key=lambda dl: (dl[0], self._positions[dl[1]]))
        return [((self._ids[label], self._versions[label]), 1.0 - d) for d, label in hits]


class ANNSearch:
    """Per-namespace HNSW indexes kept in step with a store through its generation counter.

    The store provides ``generation()``, ``key_rows(namespace, ids, chunk)`` (the active heads'
    key vectors in chunks: all of them, or those of some lineages), ``changed_since(generation,
    now)`` (the lineages its own commits changed in between, per namespace; None when it cannot
    tell, e.g. another process wrote) and, to save indexes (``saved``), ``identity(create)``.
    """

    def __init__(self, config: bool | dict[str, Any] | ANNConfig = True, saved: SavedIndexes | None = None) -> None:
        self.config = ANNConfig.of(config)
        self._saved = saved if self.config.save_min else None
        self._lock = threading.Lock()
        self._indexes: dict[str, tuple[int, HNSWIndex | None]] = {}

    def search(self, store: Any, namespace: str, query: Any, k: int) -> list[tuple[Ref, float]]:
        with self._lock:
            index = self.index(store, namespace, len(query))
            return index.top(query, k) if index is not None else []

    def index(self, store: Any, namespace: str, dim: int | None = None) -> HNSWIndex | None:
        """The namespace's index as of the store's generation now (None when it holds no vectors)."""
        generation = store.generation()
        if namespace not in self._indexes and self._saved is not None:
            # First use in this process: start from the saved index, if there is one for this database.
            loaded = self._saved.load(store.identity(), namespace, self.config, generation)
            if loaded is not None:
                self._indexes[namespace] = loaded
        seen_generation, index = self._indexes.get(namespace, (None, None))
        if seen_generation != generation:
            if index is not None and seen_generation is not None:
                changed = store.changed_since(seen_generation, generation)
                if changed is not None:
                    self._refresh(store, namespace, index, changed.get(namespace, set()))
                else:
                    index = self._walk(store, namespace, index)
            else:
                index = self._walk(store, namespace, None)
            self._indexes[namespace] = (generation, index)
        if index is not None and dim is not None and index.dim != dim:
            raise InvalidInputError(f"query has {dim} dimensions, the namespace's vectors {index.dim}")
        if index is not None and self._saved is not None and self._worth_saving(index):
            self._save(store, namespace, generation, index)
        return index

    def _worth_saving(self, index: HNSWIndex) -> bool:
        """Large enough that loading beats building, and a tenth or more differs from the saved copy
        (all of it when just built): saving a million vectors takes seconds, not for every write."""
        return index.size >= self.config.save_min and index.unsaved >= max(1, index.size // 10)

    def _save(self, store: Any, namespace: str, generation: int, index: HNSWIndex) -> None:
        # Saving only spares the next process a build: whatever fails (a full disk, a read-only
        # folder or database, a writer holding the lock too long), this search goes on.
        try:
            identity = store.identity(create=True)
            if identity is None:
                return  # the store cannot write its identity now (inside a write transaction): later
            self._saved.save(identity, namespace, generation, index)
        except Exception as err:  # noqa: BLE001 - see above
            log.warning("could not save the index of namespace %r in %s (%s); the next process will "
                        "build it again", namespace, self._saved.folder, err)
        index.unsaved = 0  # saved, or not worth retrying on every search

    def _refresh(self, store: Any, namespace: str, index: HNSWIndex, lineages: set[str]) -> None:
        """Re-read the lineages the store's own writes changed."""
        if not lineages:
            return
        index.remove(lineages)
        for rows in store.key_rows(namespace, sorted(lineages), self.config.chunk):
            index.add(*rows)

    def _walk(self, store: Any, namespace: str, index: HNSWIndex | None) -> HNSWIndex | None:
        """Walk every active head once: add the ones the index lacks, remove the ones it should not hold."""
        seen: set[str] = set()
        for ids, versions, positions, matrix in store.key_rows(namespace, None, self.config.chunk):
            if index is None or index.dim != matrix.shape[1]:
                index = HNSWIndex(matrix.shape[1], self.config)
            stale = [pid for pid, v in zip(ids, versions) if index.indexed(pid) not in (None, v)]
            index.remove(stale)
            new = [i for i, pid in enumerate(ids) if index.indexed(pid) is None]
            seen.update(ids)
            if len(new) == len(ids):
                index.add(ids, versions, positions, matrix)
            elif new:
                index.add([ids[i] for i in new], [versions[i] for i in new], [positions[i] for i in new],
                          matrix[new])
        if index is not None:
            index.remove([pid for pid in index.lineages() if pid not in seen])
        return index if index is not None and index.size else None
