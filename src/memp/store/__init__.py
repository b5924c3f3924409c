"""Procedure stores: the Store protocol and its backends."""

from __future__ import annotations

from pathlib import Path

from memp._errors import StoreError
from memp.store.base import Ref, Store, VectorTable, check_namespace
from memp.store.sqlite import SQLiteStore


def open_store(location: str | Path) -> Store:
    """A store from a path (SQLite) or a ``postgresql://`` URL."""
    text = str(location)
    if text.startswith(("postgresql://", "postgres://")):
        try:
            from memp.store.postgres import PostgresStore
        except ImportError:
            raise StoreError(
                "PostgreSQL support is not installed; pip install 'memp[postgres]'"
            ) from None
        return PostgresStore(text)
    return SQLiteStore(text)


__all__ = ["Ref", "SQLiteStore", "Store", "VectorTable", "check_namespace", "open_store"]
