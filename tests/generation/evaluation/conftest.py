"""The small labelled dataset most evaluation tests score: ten persona statements, the matching answer
" Yes" on the first six and " No" on the last four, so a model that always prefers " Yes" matches the
behavior on exactly 6 of 10."""

from __future__ import annotations

import pytest

from generation.catalog.services import dataset_refresh_stats
from generation.models import Dataset
from tests.builders import CollectionFactory, DatasetFactory, ExampleFactory


@pytest.fixture
def dataset(db) -> Dataset:
    ds = DatasetFactory(
        slug="narcissism", behavior="narcissism", collection=CollectionFactory(slug="persona")
    )
    for i in range(10):
        ExampleFactory(
            dataset=ds,
            position=i,
            statement=f"statement {i}",
            answer_matching_behavior=" Yes" if i < 6 else " No",
            answer_not_matching_behavior=" No" if i < 6 else " Yes",
            # Distinct confidences, so pages that sort or colour by them have something to show.
            label_confidence=0.5 + i / 20,
        )
    return dataset_refresh_stats(dataset=ds)
