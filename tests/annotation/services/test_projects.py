"""Project creation: all examples of the datasets, or a reproducible stratified sample."""

import pytest

from annotation.services.projects import project_create
from tests.builders import DatasetFactory, ExampleFactory

pytestmark = pytest.mark.django_db


def test_project_create_samples_per_dataset_and_label(db):
    datasets = DatasetFactory.create_batch(2)
    for dataset in datasets:
        ExampleFactory.create_batch(7, dataset=dataset, answer_matching_behavior=" Yes")
        ExampleFactory.create_batch(3, dataset=dataset, answer_matching_behavior=" No")
    project = project_create(name="S", slug="s", datasets=datasets, per_label=5, seed=1)
    counts = {}
    for item in project.items.select_related("example"):
        key = (item.example.dataset_id, item.example.answer_matching_behavior)
        counts[key] = counts.get(key, 0) + 1
    assert sorted(counts.values()) == [3, 3, 5, 5]
    again = project_create(name="S2", slug="s2", datasets=datasets, per_label=5, seed=1)
    assert sorted(again.items.values_list("example_id", flat=True)) == sorted(
        project.items.values_list("example_id", flat=True)
    )
    everything = project_create(name="All", slug="all", datasets=datasets)
    assert everything.items.count() == 20
