"""The rules the explorer's build model names: which builds draw which map, and which succeeded."""

from __future__ import annotations

import pytest

from analysis.models import ExplorerBuild
from tests.builders import DatasetFactory

pytestmark = pytest.mark.django_db


def _build(*, dataset=None, status: str = ExplorerBuild.Status.SUCCEEDED) -> ExplorerBuild:
    scope = ExplorerBuild.Scope.DATASET if dataset else ExplorerBuild.Scope.GLOBAL
    return ExplorerBuild.objects.create(scope=scope, dataset=dataset, status=status)


def test_of_map_tells_the_global_map_from_each_dataset_map():
    first, second = DatasetFactory(), DatasetFactory()
    global_map, first_map, second_map = _build(), _build(dataset=first), _build(dataset=second)

    assert list(ExplorerBuild.objects.of_map(dataset=None)) == [global_map]
    assert list(ExplorerBuild.objects.of_map(dataset=first)) == [first_map]
    assert list(ExplorerBuild.objects.of_map(dataset=second)) == [second_map]


def test_succeeded_leaves_out_running_and_failed_builds():
    done = _build()
    _build(status=ExplorerBuild.Status.RUNNING)
    _build(status=ExplorerBuild.Status.FAILED)

    assert list(ExplorerBuild.objects.succeeded()) == [done]
    assert list(ExplorerBuild.objects.of_map(dataset=None).succeeded()) == [done]
