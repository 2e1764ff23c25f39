"""Fixtures of the annotation tests: a small project and its workers, and the lease paths."""

import pytest
from django.core.cache import cache
from django.db import connection

from annotation.hotpath import token_cache
from tests.annotation.builders import build_project
from tests.builders import WorkerFactory


@pytest.fixture(autouse=True)
def clear_throttle_cache():
    # The API throttle counts in the cache; one test's requests must not slow another's. Nor may a
    # token looked up in one test be remembered in the next.
    cache.clear()
    token_cache.clear()
    yield
    cache.clear()
    token_cache.clear()


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def lease_path(request) -> str:
    """Runs a lease test once per path of annotation.services.leases: the ORM steps, which SQLite
    runs, and the single statements of services/postgres.py, which PostgreSQL runs. The postgresql
    run is marked `postgres`, so the PostgreSQL pass (`-m postgres`) includes it; each run is
    skipped on the other database."""
    if connection.vendor != request.param:
        pytest.skip(f"the {request.param} path of the leases runs on {request.param}")
    return request.param


@pytest.fixture
def project(db):
    return build_project()


@pytest.fixture
def workers(project):
    return WorkerFactory.create_batch(5, projects=[project])
