"""Evaluation jobs: a run created by the evaluation form or API, scored by the job worker
(evaluation_job_run, registered by generation.apps)."""

from __future__ import annotations

from django.contrib.auth.models import AbstractBaseUser

from generation.evaluation.services import EvaluationError
from generation.evaluation.winogender import evaluation_run_execute_any, summary_line
from generation.jobs.services import job_create_for_run, job_fail, job_finish, job_progress
from generation.jobs.worker_models import worker_model
from generation.lm import LMError
from generation.models import EvaluationRun, Job


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
