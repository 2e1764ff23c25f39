"""Shared fixtures. Tests that need PostgreSQL are marked `postgres` and skipped on SQLite; `make test`
runs them in a second pass with DATABASE_URL pointing at the server."""

import os
from pathlib import Path

import pytest
from django.conf import settings
from django.db import connection

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")


def pytest_collection_modifyitems(config, items):
    on_postgres = settings.DATABASES["default"]["ENGINE"].endswith("postgresql")
    if os.environ.get("MWE_REQUIRE_POSTGRES") == "1" and not on_postgres:
        # `make test-postgres` sets this, so a missing DATABASE_URL fails instead of skipping everything.
        raise pytest.UsageError("MWE_REQUIRE_POSTGRES=1 but DATABASE_URL does not point at PostgreSQL")
    skip_pg = pytest.mark.skip(
        reason="needs PostgreSQL: run with DATABASE_URL=postgres://... (make test does)"
    )
    for item in items:
        if "postgres" in item.keywords and not on_postgres:
            item.add_marker(skip_pg)


@pytest.fixture(scope="session")
def evals_data() -> Path:
    """The released data shipped beside the repository (never copied into it)."""
    path = Path(settings.MWE_EVALS_DATA)
    if not path.is_dir():
        pytest.fail(f"released data not found at {path}; set MWE_EVALS_DATA")
    return path


@pytest.fixture
def on_postgres() -> bool:
    return connection.vendor == "postgresql"


@pytest.fixture(autouse=True)
def isolated_var_dir(settings, tmp_path):
    """Uploads and other files under VAR_DIR go to a per-test folder, never the developer's var/."""
    settings.VAR_DIR = tmp_path / "var"
    settings.VAR_DIR.mkdir()
    return settings.VAR_DIR


@pytest.fixture(scope="session")
def smollm2():
    """The embedded default model, loaded once per test session (about 15 s)."""
    from generation.lm import load_model

    model = load_model("smollm2-135m")
    yield model
    model.close()


@pytest.fixture(scope="session")
def minilm():
    """The MiniLM sentence embedder, loaded once per test session."""
    from generation.lm.embeddings import load_embedder

    return load_embedder()
