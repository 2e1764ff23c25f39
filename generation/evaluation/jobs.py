"""Evaluation jobs: a run created by the evaluation form or API, scored by the job worker
(evaluation_job_run), and a suite of runs (suite_job_run); both registered by generation.apps."""

from __future__ import annotations

from collections.abc import Sequence

from django.contrib.auth.models import AbstractBaseUser
from django.db import transaction

from generation.evaluation.services import EvaluationError
from generation.evaluation.suites import (
    SuiteCancelled,
    SuiteProgress,
    suite_create,
    suite_datasets_select,
    suite_execute,
)
from generation.evaluation.winogender import evaluation_run_execute_any, summary_line
from generation.jobs.selectors import job_cancel_requested
from generation.jobs.services import (
    job_cancelled,
    job_create,
    job_create_for_run,
    job_fail,
    job_finish,
    job_progress,
)
from generation.jobs.worker_models import worker_model
from generation.lm import LMError
from generation.models import EvaluationRun, EvaluationSuite, Job


def evaluation_job_create(*, run: EvaluationRun, created_by: AbstractBaseUser | None) -> Job:
    return job_create_for_run(kind=Job.Kind.EVALUATE, run=run, created_by=created_by)


def evaluation_job_run(job: Job) -> None:
    run = EvaluationRun.objects.select_related("dataset").get(pk=job.params["run_id"])
    job_progress(job=job, done=0, message=f"Loading {run.model_spec}")
    model = worker_model(run.model_spec)

    def progress(done: int, total: int) -> None:
        job_progress(job=job, done=done, total=total, message=f"Scoring {run.dataset.slug}")

    try:
        evaluation_run_execute_any(run=run, model=model, progress=progress)
    except (EvaluationError, LMError) as exc:
        job_fail(job=job, error=str(exc), result={"run": run.pk})
        return
    if run.task == EvaluationRun.Task.WINOGENDER:
        result = {"run": run.pk, "pearson_r": run.results.get("pearson_r"), "items": run.item_count}
        message = summary_line(run.results)
    else:
        result = {"run": run.pk, "percent_matching": run.percent_matching, "items": run.item_count}
        message = f"{run.percent_matching:.1f}% matching behavior on {run.item_count} items"
    job_finish(job=job, result=result, message=message)


# ----------------------------------------------------------------------------- suites


def suite_job_create(*, suite: EvaluationSuite, created_by: AbstractBaseUser | None) -> Job:
    """Queues the job that runs a suite, and links the suite to it, in one transaction."""
    with transaction.atomic():
        job = job_create(kind=Job.Kind.SUITE, params={"suite_id": suite.pk}, created_by=created_by)
        suite.job = job
        suite.save(update_fields=["job"])
    return job


def suite_start(
    *,
    model_specs: Sequence[str],
    dataset_slugs: Sequence[str] = (),
    collection_slugs: Sequence[str] = (),
    all_datasets: bool = False,
    prompt_format: str,
    scorer: str,
    limit: int | None,
    seed: int,
    name: str,
    created_by: AbstractBaseUser | None,
) -> tuple[EvaluationSuite, Job]:
    """What the suite form and the API do: the datasets chosen, the suite and its runs recorded, and
    its job queued, in one transaction, so that a suite is never left queued without the job that
    would run it (the job reaches Celery only once both are committed). Raises EvaluationError with
    the reason, having written nothing."""
    with transaction.atomic():
        suite = suite_create(
            model_specs=model_specs,
            datasets=suite_datasets_select(
                slugs=dataset_slugs, collections=collection_slugs, everything=all_datasets
            ),
            prompt_format=prompt_format,
            scorer=scorer,
            limit=limit,
            seed=seed,
            name=name,
            created_by=created_by,
        )
        job = suite_job_create(suite=suite, created_by=created_by)
    return suite, job


def suite_job_run(job: Job) -> None:
    """Runs a suite on this worker: its models through worker_model (kept loaded between jobs), the
    progress over all items of all models on the job, a cancel honoured between chunks."""
    suite = EvaluationSuite.objects.get(pk=job.params["suite_id"])

    def progress(state: SuiteProgress) -> None:
        job_progress(job=job, done=state.done, total=state.total, message=state.message)

    try:
        suite_execute(
            suite=suite,
            load_model=worker_model,
            progress=progress,
            should_cancel=lambda: job_cancel_requested(job=job),
        )
    except SuiteCancelled:
        job_cancelled(job=job)
        return
    runs = suite.runs.count()
    result = {"suite": suite.pk, "runs": runs, "items": suite.item_count}
    if suite.status == EvaluationSuite.Status.FAILED:
        job_fail(job=job, error=suite.error, result=result)
        return
    job_finish(
        job=job,
        result=result,
        message=f"{len(suite.model_specs)} models on {runs // len(suite.model_specs)} datasets: "
        f"{suite.item_count:,} items scored",
    )
