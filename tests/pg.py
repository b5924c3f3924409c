"""A real PostgreSQL (with pgvector) for the tests, started by the `pgserver` package.

One server per test session, in a temporary folder, reached over a Unix socket (nothing listens
on TCP). Each test gets a database of its own, ``test_<uuid>``, dropped afterwards.
"""

from __future__ import annotations

import tempfile
import uuid
from collections.abc import Callable, Iterator

import pytest


@pytest.fixture(scope="session")
def pg_server() -> Iterator[str]:
    """The admin URL of a PostgreSQL server that lives for the whole session."""
    pgserver = pytest.importorskip("pgserver", reason="PostgreSQL tests need the 'postgres' extra")
    pytest.importorskip("psycopg", reason="PostgreSQL tests need the 'postgres' extra")
    # Not under pytest's tmp_path: concurrent pytest runs prune old basetemp folders, which would
    # delete the data directory and socket of a server still in use.
    data = tempfile.mkdtemp(prefix="memp-pg-")
    server = pgserver.get_server(data, cleanup_mode="delete")
    yield server.get_uri()
    server.cleanup()


def _with_database(admin_url: str, name: str) -> str:
    # pgserver's URI is postgresql://postgres:@/postgres?host=/socket/dir
    before, _, query = admin_url.partition("?")
    return f"{before.rsplit('/', 1)[0]}/{name}?{query}"


@pytest.fixture
def pg_database(pg_server) -> Iterator[Callable[[], str]]:
    """A factory of fresh, empty databases; each is dropped at the end of the test."""
    import psycopg

    created: list[str] = []

    def make() -> str:
        name = f"test_{uuid.uuid4().hex}"
        with psycopg.connect(pg_server, autocommit=True) as admin:
            admin.execute(f'CREATE DATABASE "{name}"')
        created.append(name)
        return _with_database(pg_server, name)

    yield make
    with psycopg.connect(pg_server, autocommit=True) as admin:
        for name in created:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def pg_url(pg_database) -> str:
    return pg_database()
