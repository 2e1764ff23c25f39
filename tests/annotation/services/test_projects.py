"""Project creation: all examples of the datasets, or a reproducible stratified sample."""

import pytest

from annotation.services.projects import label_quotas, project_create
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


@pytest.mark.parametrize(
    ("sizes", "total", "quotas"),
    [
        ({" Yes": 500, " No": 500}, 100, {" Yes": 50, " No": 50}),
        ({" Yes": 500, " No": 20}, 100, {" Yes": 80, " No": 20}),
        ({" Yes": 600, " No": 500}, 101, {" Yes": 51, " No": 50}),  # the remainder to the larger
        ({"(A)": 40, "(B)": 40, "(C)": 40}, 100, {"(A)": 33, "(B)": 33, "(C)": 34}),
        ({" Yes": 30, " No": 20}, 100, {" Yes": 30, " No": 20}),  # fewer than asked: all of them
        ({" Yes": 7}, 5, {" Yes": 5}),
    ],
)
def test_label_quotas_split_as_evenly_as_the_labels_allow(sizes, total, quotas):
    assert label_quotas(sizes, total=total) == quotas
    assert sum(quotas.values()) == min(total, sum(sizes.values()))


def test_project_create_samples_per_dataset_balanced_over_labels(db):
    dataset = DatasetFactory()
    ExampleFactory.create_batch(30, dataset=dataset, answer_matching_behavior=" Yes")
    ExampleFactory.create_batch(8, dataset=dataset, answer_matching_behavior=" No")
    project = project_create(name="B", slug="b", datasets=[dataset], per_dataset=20, seed=2)
    labels = list(project.items.values_list("example__answer_matching_behavior", flat=True))
    assert (labels.count(" Yes"), labels.count(" No")) == (12, 8)
    again = project_create(name="B2", slug="b2", datasets=[dataset], per_dataset=20, seed=2)
    assert set(again.items.values_list("example_id", flat=True)) == set(
        project.items.values_list("example_id", flat=True)
    )
    other_seed = project_create(name="B3", slug="b3", datasets=[dataset], per_dataset=20, seed=3)
    assert set(other_seed.items.values_list("example_id", flat=True)) != set(
        project.items.values_list("example_id", flat=True)
    )
    with pytest.raises(ValueError, match="not both"):
        project_create(name="X", slug="x", datasets=[dataset], per_dataset=20, per_label=5)
