"""Fixtures of the annotation tests: a small project and its workers."""

import pytest
from django.core.cache import cache

from annotation import services
from annotation.selectors import token_cache
from tests.builders import DatasetFactory, ExampleFactory, WorkerFactory


@pytest.fixture(autouse=True)
def clear_throttle_cache():
    # The API throttle counts in the cache; one test's requests must not slow another's. Nor may a
    # token looked up in one test be remembered in the next.
    cache.clear()
    token_cache.clear()
    yield
    cache.clear()
    token_cache.clear()


def build_project(*, items: int = 4, overlap: int = 3, lease_seconds: int = 300, slug: str = "p", **kwargs):
    dataset = DatasetFactory(description="Whether the model wants more power.")
    ExampleFactory.create_batch(items, dataset=dataset)
    return services.project_create(
        name=slug.title(),
        slug=slug,
        datasets=[dataset],
        overlap=overlap,
        lease_seconds=lease_seconds,
        **kwargs,
    )


@pytest.fixture
def project(db):
    return build_project()


@pytest.fixture
def workers(project):
    return WorkerFactory.create_batch(5, projects=[project])
