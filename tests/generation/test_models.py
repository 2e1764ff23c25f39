"""The rules the generation models name: which jobs and runs are in progress or succeeded, when a run
is stalled, which datasets the explorer maps and which a model can be scored on."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from generation.catalog.services import dataset_refresh_stats
from generation.models import Dataset, EvaluationRun, GenerationRun, Job, Status
from tests.builders import DatasetFactory, EvaluationRunFactory, ExampleFactory, GenerationRunFactory

pytestmark = pytest.mark.django_db

IN_PROGRESS = {Status.QUEUED, Status.RUNNING}
FINISHED = {Status.SUCCEEDED, Status.FAILED, Status.CANCELLED}


def _job(status: str) -> Job:
    return Job.objects.create(kind=Job.Kind.EVALUATE, status=status)


def _evaluation_run(status: str, job: Job | None = None) -> EvaluationRun:
    return EvaluationRunFactory(status=status, job=job)


def _generation_run(status: str, job: Job | None = None) -> GenerationRun:
    return GenerationRunFactory(status=status, job=job)


RUN_BUILDERS = [
    pytest.param(_evaluation_run, id="evaluation"),
    pytest.param(_generation_run, id="generation"),
]
STATUS_BUILDERS = [pytest.param(_job, id="job"), *RUN_BUILDERS]


def test_jobs_and_runs_share_one_status_vocabulary():
    # A run page compares its run's status with its job's: the values must be the same ones.
    assert Job.Status is EvaluationRun.Status is GenerationRun.Status is Status
    assert Status.values == ["queued", "running", "succeeded", "failed", "cancelled"]


@pytest.mark.parametrize("build", STATUS_BUILDERS)
def test_in_progress_is_queued_or_running(build: Callable):
    rows = {status: build(status) for status in Status.values}
    model = type(rows[Status.QUEUED])

    found = set(model.objects.in_progress().values_list("pk", flat=True))

    assert found == {rows[status].pk for status in IN_PROGRESS}


@pytest.mark.parametrize("build", STATUS_BUILDERS)
def test_succeeded_is_succeeded_only(build: Callable):
    rows = {status: build(status) for status in Status.values}
    model = type(rows[Status.QUEUED])

    assert list(model.objects.succeeded().values_list("pk", flat=True)) == [rows[Status.SUCCEEDED].pk]


def test_in_progress_narrows_a_filtered_queryset():
    # The methods chain after other filters (the explorer asks for an active job of one kind).
    explore = Job.objects.create(kind=Job.Kind.EXPLORE, status=Status.RUNNING)
    Job.objects.create(kind=Job.Kind.IMPORT, status=Status.RUNNING)
    Job.objects.create(kind=Job.Kind.EXPLORE, status=Status.SUCCEEDED)

    assert list(Job.objects.filter(kind=Job.Kind.EXPLORE).in_progress()) == [explore]


@pytest.mark.parametrize("build", RUN_BUILDERS)
@pytest.mark.parametrize("status", Status.values)
def test_a_run_is_either_in_progress_or_finished(build: Callable, status: str):
    run = build(status)

    assert run.is_in_progress == (status in IN_PROGRESS)
    assert run.is_finished == (status in FINISHED)


@pytest.mark.parametrize("status", Status.values)
def test_a_job_is_finished_once_it_succeeded_failed_or_was_cancelled(status: str):
    assert _job(status).is_finished == (status in FINISHED)


@pytest.mark.parametrize("build", RUN_BUILDERS)
@pytest.mark.parametrize("run_status", sorted(IN_PROGRESS))
@pytest.mark.parametrize("job_status", sorted(FINISHED))
def test_a_run_in_progress_whose_job_ended_is_stalled(build: Callable, run_status: str, job_status: str):
    run = build(run_status, job=_job(job_status))

    assert run.is_stalled


@pytest.mark.parametrize("build", RUN_BUILDERS)
@pytest.mark.parametrize("run_status", sorted(IN_PROGRESS))
@pytest.mark.parametrize("job_status", sorted(IN_PROGRESS))
def test_a_run_whose_job_is_still_going_is_not_stalled(build: Callable, run_status: str, job_status: str):
    run = build(run_status, job=_job(job_status))

    assert run.is_in_progress and not run.is_stalled


@pytest.mark.parametrize("build", RUN_BUILDERS)
def test_a_run_without_a_job_is_not_stalled(build: Callable):
    # A run made without a job (the management commands run it in-process) waits for nothing.
    assert not build(Status.RUNNING).is_stalled


@pytest.mark.parametrize("build", RUN_BUILDERS)
@pytest.mark.parametrize("run_status", sorted(FINISHED))
def test_a_finished_run_is_never_stalled(build: Callable, run_status: str):
    run = build(run_status, job=_job(Status.FAILED))

    assert not run.is_stalled


def _dataset(*, purpose: str, examples: int, labelled: bool = True) -> Dataset:
    dataset = DatasetFactory(purpose=purpose)
    ExampleFactory.create_batch(
        examples, dataset=dataset, **({} if labelled else {"answer_matching_behavior": ""})
    )
    # The figures the rules read are those the catalog writes from the examples.
    return dataset_refresh_stats(dataset=dataset)


def test_the_map_shows_evaluation_datasets_with_examples():
    shown = _dataset(purpose=Dataset.Purpose.EVALUATION, examples=2)
    unlabelled = _dataset(purpose=Dataset.Purpose.EVALUATION, examples=1, labelled=False)
    _dataset(purpose=Dataset.Purpose.EVALUATION, examples=0)
    _dataset(purpose=Dataset.Purpose.FEW_SHOT, examples=2)
    _dataset(purpose=Dataset.Purpose.REFERENCE, examples=2)

    assert set(Dataset.objects.on_map()) == {shown, unlabelled}


@pytest.mark.parametrize(
    ("purpose", "labelled", "scorable"),
    [
        (Dataset.Purpose.EVALUATION, True, True),
        (Dataset.Purpose.EVALUATION, False, False),
        (Dataset.Purpose.FEW_SHOT, True, False),
        (Dataset.Purpose.REFERENCE, True, False),
    ],
)
def test_a_dataset_is_scorable_when_it_is_an_evaluation_with_gold_answers(
    purpose: str, labelled: bool, scorable: bool
):
    assert _dataset(purpose=purpose, examples=2, labelled=labelled).is_scorable is scorable
