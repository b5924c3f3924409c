"""A service over a fresh SQLite store, driven in-process through FastAPI's TestClient."""

from __future__ import annotations

import pytest

pytest.importorskip("fastapi", reason="service tests need the 'service' extra")

from fastapi.testclient import TestClient  # noqa: E402

from memp.embed import HashingEmbedder  # noqa: E402
from memp.server.rest import ServiceConfig, create_app  # noqa: E402
from memp.store import SQLiteStore  # noqa: E402
from tests.pg import pg_database, pg_server, pg_url  # noqa: E402,F401  (fixtures)

TOKEN_A = "token-for-team-a-0123456789"
TOKEN_B = "token-for-team-b-0123456789"
TOKENS = {TOKEN_A: "team-a", TOKEN_B: "team-b"}


def auth(token: str = TOKEN_A) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def make_client(store, max_body_bytes: int = 256 * 1024, **options) -> TestClient:
    config = ServiceConfig(store=store, tokens=TOKENS, embedder=HashingEmbedder(),
                           max_body_bytes=max_body_bytes, **options)
    return TestClient(create_app(config), raise_server_exceptions=False)


@pytest.fixture
def sqlite_store(tmp_path):
    with SQLiteStore(tmp_path / "svc.db") as s:
        yield s


@pytest.fixture
def client(sqlite_store) -> TestClient:
    with make_client(sqlite_store) as c:
        yield c
