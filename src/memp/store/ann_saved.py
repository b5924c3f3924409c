"""HNSW indexes saved beside a SQLite file, so a new process loads its index instead of building it.

``<db path>.ann/`` holds, per namespace (files named by a digest of it, never by the raw name):

- ``<digest>-<token>.usearch``: the graph, in usearch's format;
- ``<digest>-<token>.npz``: its labels' columns: lineage ids, versions and lineage positions;
- ``<digest>.json``: the manifest, written last, under a temporary name and moved into place.

The manifest names the token of one save, so a graph is never paired with another save's labels,
and a process that dies mid-save, or two saving at once, leave the previous manifest or one whole
new one. It records what the index may be applied to: the database's identity (a random number in
its ``meta`` table, so a database recreated or restored at the same path is not mistaken for this
one), the generation the index reflects, the dimensions and the options that shape the graph (m,
ef_construction, dtype); and each file's size and CRC32, so a torn or damaged file is never
loaded. Anything that does not fit or fails to read is ignored: the index is built from the
database as without a saved one.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import re
import secrets
import time
import zipfile
import zlib
from array import array
from pathlib import Path

import numpy as np

from memp.store.ann import ANNConfig, HNSWIndex

log = logging.getLogger(__name__)

FORMAT = 1  # of the manifest and the columns file; another number is ignored
_SHAPE = ("m", "ef_construction", "dtype")  # the ANNConfig fields that shape the graph
_ORPHAN_AGE_S = 3600  # files of an unfinished save (a process died) are swept after this long


class _Unfit(ValueError):
    """A saved file that is damaged, or made for another database, namespace or configuration."""


def _crc(path: Path) -> int:
    crc = 0
    with open(path, "rb") as f:
        while block := f.read(1 << 23):
            crc = zlib.crc32(block, crc)
    return crc


class SavedIndexes:
    """The saved indexes of one database file, in ``folder``; only a writable store saves."""

    def __init__(self, folder: str | Path, *, writable: bool = True) -> None:
        self.folder = Path(folder)
        self.writable = writable

    def _stem(self, namespace: str) -> str:
        return hashlib.sha256(namespace.encode("utf-8", "surrogatepass")).hexdigest()[:32]

    def _manifest_path(self, namespace: str) -> Path:
        return self.folder / f"{self._stem(namespace)}.json"

    # -- loading ---------------------------------------------------------------------------

    def load(self, identity: int | None, namespace: str, config: ANNConfig, generation: int
             ) -> tuple[int, HNSWIndex] | None:
        """The saved index of this namespace and the generation it reflects, if one fits this
        database (``identity``) at ``generation`` and this configuration; None otherwise."""
        if identity is None:
            return None  # the database never had an index saved
        for attempt in range(3):
            try:
                manifest = json.loads(self._manifest_path(namespace).read_text())
                self._check(manifest, identity, namespace, config, generation)
                return manifest["generation"], self._read(manifest, config)
            except FileNotFoundError:
                if attempt == 0 and not self._manifest_path(namespace).exists():
                    return None  # none saved
                continue  # another process saved a newer index and removed these files: read its manifest
            except _Unfit as err:
                log.debug("saved index of namespace %r in %s not used: %s", namespace, self.folder, err)
                return None
            except (OSError, ValueError, KeyError, TypeError, RuntimeError, zipfile.BadZipFile) as err:
                log.warning("saved index of namespace %r in %s is unreadable (%s); building it from "
                            "the database", namespace, self.folder, err)
                return None
        return None

    def _check(self, manifest: dict, identity: int, namespace: str, config: ANNConfig, generation: int) -> None:
        if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
            raise _Unfit(f"format {manifest.get('format')!r}, this memp reads {FORMAT}")
        if manifest["identity"] != identity or manifest["namespace"] != namespace:
            raise _Unfit("made for another database or namespace at this path")
        if manifest["generation"] > generation:
            # The database went back in time (restored from a backup): what the index holds may
            # never have been in this database.
            raise _Unfit(f"made at generation {manifest['generation']}, the database is at {generation}")
        shape = {name: getattr(config, name) for name in _SHAPE}
        if manifest["shape"] != shape:
            raise _Unfit(f"made with {manifest['shape']}, the store uses {shape}")

    def _files(self, manifest: dict) -> tuple[Path, Path]:
        """The graph and columns files a manifest names: only ever files of this namespace's saves,
        so neither loading nor the removal of a previous save can reach another file."""
        stem = self._stem(manifest["namespace"])
        for name, suffix in ((manifest["graph"], "usearch"), (manifest["columns"], "npz")):
            if not re.fullmatch(rf"{stem}-[0-9a-f]{{16}}\.{suffix}", str(name)):
                raise _Unfit(f"names the file {name!r}, not one of its own")
        return self.folder / manifest["graph"], self.folder / manifest["columns"]

    def _read(self, manifest: dict, config: ANNConfig) -> HNSWIndex:
        graph, columns = self._files(manifest)
        for path, (size, crc) in ((graph, manifest["graph_check"]), (columns, manifest["columns_check"])):
            if path.stat().st_size != size or _crc(path) != crc:
                raise ValueError(f"{path.name} is not the file that was saved (torn or damaged)")
        with np.load(columns, allow_pickle=False) as saved:
            lengths, text = saved["id_lengths"], saved["ids"].tobytes().decode("utf-8", "surrogatepass")
            versions, positions = array("q", saved["versions"].tobytes()), array("q", saved["positions"].tobytes())
        ends = np.cumsum(np.maximum(lengths, 0)).tolist()
        ids = [None if n < 0 else text[end - n:end] for n, end in zip(lengths.tolist(), ends)]
        try:
            return HNSWIndex.restore(manifest["dim"], config, str(graph), ids, versions, positions)
        except RuntimeError:
            if not graph.exists():  # a newer save removed it since it was checked
                raise FileNotFoundError(graph) from None
            raise

    # -- saving ----------------------------------------------------------------------------

    def save(self, identity: int, namespace: str, generation: int, index: HNSWIndex) -> None:
        """Save the index as of ``generation``; the namespace's previous save is removed."""
        if not self.writable:
            return
        self.folder.mkdir(exist_ok=True)
        stem, token = self._stem(namespace), secrets.token_hex(8)
        graph, columns = self.folder / f"{stem}-{token}.usearch", self.folder / f"{stem}-{token}.npz"
        started = time.perf_counter()
        try:
            index.save_graph(str(graph))
            self._write_columns(columns, index)
            manifest = {"format": FORMAT, "identity": identity, "namespace": namespace,
                        "generation": generation, "dim": index.dim, "size": index.size,
                        "shape": {name: getattr(index.config, name) for name in _SHAPE},
                        "graph": graph.name, "graph_check": [graph.stat().st_size, _crc(graph)],
                        "columns": columns.name, "columns_check": [columns.stat().st_size, _crc(columns)]}
            previous = self._previous_files(namespace)
            pending = self.folder / f"{stem}-{token}.json.tmp"
            pending.write_text(json.dumps(manifest))
            os.replace(pending, self._manifest_path(namespace))
        except BaseException:
            for path in (graph, columns, self.folder / f"{stem}-{token}.json.tmp"):
                path.unlink(missing_ok=True)
            raise
        for path in previous:
            path.unlink(missing_ok=True)
        self._sweep(stem, token)
        log.debug("saved the index of namespace %r (%d vectors, generation %d) in %s in %.1f s",
                  namespace, index.size, generation, self.folder, time.perf_counter() - started)

    def _write_columns(self, path: Path, index: HNSWIndex) -> None:
        ids, versions, positions = index.columns()
        # The ids as one UTF-8 string and each one's length in characters (-1: a removed label), not
        # an object array: the file then loads without pickle, and a million ids decode at once.
        lengths = np.fromiter((-1 if pid is None else len(pid) for pid in ids), dtype=np.int64, count=len(ids))
        text = "".join(pid for pid in ids if pid is not None).encode("utf-8", "surrogatepass")
        with open(path, "wb") as f:
            np.savez(f, ids=np.frombuffer(text, dtype=np.uint8), id_lengths=lengths,
                     versions=np.frombuffer(versions, dtype=np.int64),
                     positions=np.frombuffer(positions, dtype=np.int64))

    def _previous_files(self, namespace: str) -> list[Path]:
        with contextlib.suppress(OSError, ValueError, KeyError, TypeError):
            manifest = json.loads(self._manifest_path(namespace).read_text())
            if isinstance(manifest, dict) and manifest.get("namespace") == namespace:
                return list(self._files(manifest))
        return []

    def _sweep(self, stem: str, token: str) -> None:
        """Remove this namespace's files of saves that never finished (or lost a race to finish)."""
        now = time.time()
        for path in self.folder.glob(f"{stem}-*"):
            with contextlib.suppress(OSError):
                if not path.name.startswith(f"{stem}-{token}.") and now - path.stat().st_mtime > _ORPHAN_AGE_S:
                    path.unlink()
