"""Two workers executing the same suite at once, each thread with its own PostgreSQL connection: both
find every item still to score, both score and store all of them, and the database keeps each item
once (the unique (run, example) constraint); the figures are those of one execution."""

import threading

import pytest
from django.db import connection

from generation.evaluation import suites
from generation.evaluation.suites import suite_create, suite_execute
from generation.models import EvaluationItem, EvaluationSuite
from tests.generation.evaluation.fakes import FakeLoader, FunctionModel
from tests.generation.evaluation.test_suites import SMOL, hashed, labelled

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]


class MeetingModel(FunctionModel):
    """Waits at its first call until the other worker's model is at its own first call too: by then
    both workers have read which items are stored (none), so both store every item."""

    def __init__(self, barrier: threading.Barrier) -> None:
        super().__init__(hashed)
        self.barrier = barrier

    def score_choices(self, requests, *, progress=None):
        if not self.calls:
            self.barrier.wait(timeout=60)
        return super().score_choices(requests, progress=progress)


def test_two_workers_on_one_suite_store_each_item_once(monkeypatch):
    monkeypatch.setattr(suites, "CHUNK_ITEMS", 4)
    datasets = [labelled("first", 9), labelled("second", 6)]
    suite = suite_create(model_specs=[SMOL], datasets=datasets, prompt_format="paper")
    barrier = threading.Barrier(2)
    models = [MeetingModel(barrier), MeetingModel(barrier)]
    errors = []

    def work(index: int) -> None:
        try:
            mine = EvaluationSuite.objects.get(pk=suite.pk)
            suite_execute(suite=mine, load_model=FakeLoader({SMOL: models[index]}))
        except BaseException as exc:  # noqa: BLE001 - reported by the main thread
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=work, args=(i,)) for i in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert not any(thread.is_alive() for thread in threads), "a worker thread hung"
    assert not errors, errors

    # Both scored everything: neither saw the other's items before it began.
    assert [len(model.requests) for model in models] == [15, 15]
    assert EvaluationItem.objects.filter(run__suite=suite).count() == 15
    suite.refresh_from_db()
    assert suite.status == EvaluationSuite.Status.SUCCEEDED, suite.error
    for run, size in zip(suite.runs.order_by("id"), (9, 6), strict=True):
        assert run.status == "succeeded" and run.item_count == size
        assert run.items.values("example").distinct().count() == size
