"""Fixtures for the ALFWorld tests: a few generated games, and the official sample when present."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import SHARED

OFFICIAL = SHARED / "alfworld"
NEEDS_OFFICIAL = "needs ../shared/alfworld (official ALFWorld games)"


def engine_available() -> bool:
    try:
        import alfworld.agents.expert  # noqa: F401
        import textworld.envs  # noqa: F401
    except ImportError:
        return False
    return True


needs_engine = pytest.mark.skipif(
    not engine_available(), reason="needs the ALFWorld engine: pip install -e '.[alfworld]'"
)


@pytest.fixture(scope="session")
def official_root() -> Path:
    if not (OFFICIAL / "json_2.1.1").is_dir():
        pytest.skip(NEEDS_OFFICIAL)
    return OFFICIAL


@pytest.fixture(scope="session")
def generated(tmp_path_factory) -> list[Path]:
    """One generated train game of each of the six task types (about half a minute)."""
    if not engine_available():
        pytest.skip("needs the ALFWorld engine: pip install -e '.[alfworld]'")
    from memp.envs.alfworld import generate_games

    return generate_games("train", 6, 7, tmp_path_factory.mktemp("games"))
