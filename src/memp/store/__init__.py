"""Procedure stores: the Store protocol and its backends."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from memp._errors import InvalidInputError, StoreError
from memp.store.base import Ref, Store, VectorTable, check_namespace
from memp.store.sqlite import SQLiteStore


def open_store(location: str | Path, *, read_only: bool = False, ann: Any = None) -> Store:
    """A store from a path (SQLite) or a ``postgresql://`` URL.

    ``read_only=True`` opens an existing memp store and never writes to it: a missing file, or
    one that is not a memp database, is an error (a plain open creates a new database).
    ``ann``: the SQLite store's HNSW index (True, an ``ANNConfig`` or a dict of its fields); by
    default from ``MEMP_ANN`` ("1", or the fields as JSON), off when that is unset. PostgreSQL
    searches through pgvector's own index.
    """
    text = str(location)
    if text.startswith(("postgresql://", "postgres://")):
        try:
            from memp.store.postgres import PostgresStore
        except ImportError:
            raise StoreError(
                "PostgreSQL support is not installed; pip install 'memp[postgres]'"
            ) from None
        return PostgresStore(text, read_only=read_only)
    return SQLiteStore(text, read_only=read_only, ann=ann_from_env() if ann is None else ann)


def ann_from_env() -> Any:
    """``MEMP_ANN``: unset, "" or "0" = no index, "1" = the default ANNConfig, JSON = its fields."""
    value = os.environ.get("MEMP_ANN", "").strip()
    if value in ("", "0"):
        return False
    if value == "1":
        return True
    try:
        options = json.loads(value)
    except json.JSONDecodeError:
        options = None
    if not isinstance(options, dict):
        raise InvalidInputError(
            f"MEMP_ANN={value!r} is not understood; use 1, 0, or JSON options such as "
            '{"ef_search": 96}')
    return options


__all__ = ["Ref", "SQLiteStore", "Store", "VectorTable", "check_namespace", "open_store"]
