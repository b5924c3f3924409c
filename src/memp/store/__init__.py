"""Procedure stores: the Store protocol and its backends."""

from __future__ import annotations

from pathlib import Path

from memp._errors import StoreError
from memp.store.base import Ref, Store, VectorTable, check_namespace
from memp.store.sqlite import SQLiteStore


def open_store(location: str | Path, *, read_only: bool = False) -> Store:
    """A store from a path (SQLite) or a ``postgresql://`` URL.

    ``read_only=True`` opens an existing memp store and never writes to it: a missing file, or
    one that is not a memp database, is an error (a plain open creates a new database).
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
    return SQLiteStore(text, read_only=read_only)


__all__ = ["Ref", "SQLiteStore", "Store", "VectorTable", "check_namespace", "open_store"]
