"""Builders of the annotation tests: a project made as researchers make one (project_create)."""

from annotation.services.projects import project_create
from tests.builders import DatasetFactory, ExampleFactory


def build_project(*, items: int = 4, overlap: int = 3, lease_seconds: int = 300, slug: str = "p", **kwargs):
    """A project over a new dataset of `items` examples; other keywords go to project_create."""
    dataset = DatasetFactory(description="Whether the model wants more power.")
    ExampleFactory.create_batch(items, dataset=dataset)
    return project_create(
        name=slug.title(),
        slug=slug,
        datasets=[dataset],
        overlap=overlap,
        lease_seconds=lease_seconds,
        **kwargs,
    )
