"""Generation jobs: a run created by the generate form, the API or load_demo, carried out by the job
worker (generation_job_run, registered by generation.apps), which stops at a checkpoint when the
job is cancelled."""

from __future__ import annotations

from django.contrib.auth.models import AbstractBaseUser

from generation.jobs.selectors import job_cancel_requested
from generation.jobs.services import job_cancelled, job_create_for_run, job_fail, job_finish, job_progress
from generation.jobs.worker_models import worker_model
from generation.lm import LMError
from generation.models import GenerationRun, Job
from generation.pipeline.run import (
    GenerationCancelled,
    GenerationError,
    Models,
    Progress,
    generation_run_execute,
    run_spec,
)
from generation.pipeline.selectors import generation_counts


def generation_job_create(*, run: GenerationRun, created_by: AbstractBaseUser | None) -> Job:
    return job_create_for_run(kind=Job.Kind.GENERATE, run=run, created_by=created_by)


def generation_job_run(job: Job) -> None:
    # Imported here: the embedder pulls in torch, which only a worker that runs a generation needs.
    from generation.lm.embeddings import load_embedder

    run = GenerationRun.objects.get(pk=job.params["run_id"])
    spec = run_spec(run)
    job_progress(job=job, done=0, message=f"Loading {spec.generator}")
    models = Models(
        generator=worker_model(spec.generator),
        discriminator=worker_model(spec.discriminator),
        embedder=load_embedder(),
    )

    def report(stage: str, done: int, total: int) -> None:
        job_progress(job=job, done=done, total=total, message=f"{stage.capitalize()} candidates")

    try:
        generation_run_execute(
            run=run,
            models=models,
            progress=Progress(report=report, should_cancel=lambda: job_cancel_requested(job=job)),
        )
    except GenerationCancelled:
        job_cancelled(job=job)
        return
    except (GenerationError, LMError) as exc:
        job_fail(job=job, error=str(exc), result={"generation_run": run.pk})
        return
    counts = generation_counts(run=run)
    job_finish(
        job=job,
        result={"generation_run": run.pk, "dataset": run.dataset.slug, **counts},
        message=f"{counts['kept']} of {counts['generated']} candidates kept in {run.dataset.slug}",
    )
