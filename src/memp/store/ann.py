"""An approximate nearest-neighbour index for the embedded store's key vectors.

Exact numpy scans cost about 25 ms per query at 100k procedures (384 dimensions); an HNSW graph
answers in well under a millisecond with recall@10 above 0.95. Among the three candidates:

- **hnswlib** (chosen): on this workload (100k hashed task descriptions, 2 CPU cores) it built
  the graph 2.5× faster than usearch (55 s vs 136 s) and answered faster (p50 0.28 ms vs 0.45 ms)
  at the same recall (0.977 vs 0.973); it supports ``mark_deleted`` and ``resize_index``, which is
  all an incremental index over "active heads" needs; one small wheel, no BLAS.
- usearch: similar quality and quantisation options memp does not need; slower to build here.
- faiss-cpu: a large dependency whose HNSW index cannot delete vectors, so a deprecation or a new
  version would force a rebuild.

The index follows the store: on each search it compares the store's generation with the one it
last saw, and when they differ it diffs the active refs, adds the new vectors and marks the gone
ones deleted, so a write costs a diff of the store's (patched, not reloaded) matrix, not a rebuild.
"""

from __future__ import annotations

import threading
from typing import Any

import numpy as np

from memp._errors import StoreError
from memp.store.base import Ref, VectorTable


def _hnswlib():
    try:
        import hnswlib
    except ImportError:
        raise StoreError(
            "the approximate index needs hnswlib: pip install 'memp[ann]', "
            "or open the store without ann=True"
        ) from None
    return hnswlib


class HNSWIndex:
    """An HNSW graph over one namespace's key vectors, labels mapped to refs."""

    def __init__(self, dim: int, *, m: int = 16, ef_construction: int = 128, ef_search: int = 100,
                 threads: int = 1) -> None:
        self.dim = dim
        self.ef_search = ef_search
        self._graph = _hnswlib().Index(space="ip", dim=dim)
        self._graph.init_index(max_elements=1024, M=m, ef_construction=ef_construction,
                               allow_replace_deleted=False)
        self._graph.set_num_threads(threads)
        self._labels: dict[Ref, int] = {}
        self._refs: list[Ref] = []  # label -> ref
        self.size = 0

    def sync(self, table: VectorTable) -> None:
        """Make the index hold exactly the table's rows."""
        wanted = {ref: i for i, ref in enumerate(table.refs)}
        for ref in [r for r in self._labels if r not in wanted]:
            self._graph.mark_deleted(self._labels.pop(ref))
        new = [(ref, i) for ref, i in wanted.items() if ref not in self._labels]
        if new:
            needed = len(self._refs) + len(new)
            if needed > self._graph.get_max_elements():
                self._graph.resize_index(max(needed, 2 * self._graph.get_max_elements()))
            labels = np.arange(len(self._refs), needed)
            self._graph.add_items(table.matrix[[i for _, i in new]], labels)
            for (ref, _), label in zip(new, labels):
                self._labels[ref] = int(label)
                self._refs.append(ref)
        self.size = len(self._labels)

    def top(self, query: Any, k: int) -> list[tuple[Ref, float]]:
        k = min(k, self.size)
        if k <= 0:
            return []
        self._graph.set_ef(max(self.ef_search, k))
        labels, distances = self._graph.knn_query(np.asarray(query, dtype=np.float32), k=k)
        # hnswlib's "ip" distance is 1 - dot product.
        # Ties break on label order, which follows the store's lineage order, like VectorTable.top.
        found = sorted(zip(labels[0], distances[0]), key=lambda ld: (float(ld[1]), int(ld[0])))
        return [(self._refs[int(lab)], 1.0 - float(d)) for lab, d in found]


class ANNSearch:
    """Per-namespace HNSW indexes kept in step with a store through its generation counter."""

    def __init__(self, **options: Any) -> None:
        self.options = options
        self._lock = threading.Lock()
        self._indexes: dict[str, tuple[int, HNSWIndex]] = {}

    def search(self, store: Any, namespace: str, query: Any, k: int) -> list[tuple[Ref, float]]:
        with self._lock:
            gen = store.generation()
            seen = self._indexes.get(namespace)
            if seen is None or seen[0] != gen:
                table = store.vectors(namespace, "key")
                if not table.refs:
                    return []
                index = seen[1] if seen and seen[1].dim == table.matrix.shape[1] else None
                index = index or HNSWIndex(table.matrix.shape[1], **self.options)
                index.sync(table)
                self._indexes[namespace] = (gen, index)
            return self._indexes[namespace][1].top(query, k)
