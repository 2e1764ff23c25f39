"""The explorer's background job: queued from the page's staff button (or load_demo), run by the
job worker (explorer_job_run, registered by analysis.apps), building maps through
analysis.explorer.builds and reporting progress on the job."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser
from django.db import transaction

from analysis.explorer.builds import explorer_maps_build
from analysis.explorer.errors import ExplorerError
from analysis.explorer.points import explorer_datasets
from generation.jobs.services import job_create, job_fail, job_finish, job_progress
from generation.lm import LMError
from generation.models import Job


def summary_model_spec() -> str:
    """The model that writes cluster summaries, from MWE_EXPLORER_SUMMARY_MODEL; "" means none."""
    return (getattr(settings, "MWE_EXPLORER_SUMMARY_MODEL", "") or "").strip()


def explorer_job_active() -> Job | None:
    return Job.objects.filter(kind=Job.Kind.EXPLORE).in_progress().first()


def explorer_job_create(
    *,
    created_by: AbstractBaseUser | None,
    datasets: Sequence[str] | None = None,
    include_global: bool = True,
    include_datasets: bool = True,
    summaries: bool = True,
    force: bool = False,
) -> Job:
    """Queues a build, or returns the one already queued or running: two builds at once would
    compute the same maps twice."""
    if datasets is not None:
        explorer_datasets(slugs=datasets)  # unknown slugs fail here, not later on the worker
    with transaction.atomic():
        active = explorer_job_active()
        if active is not None:
            return active
        return job_create(
            kind=Job.Kind.EXPLORE,
            params={
                "datasets": list(datasets) if datasets is not None else None,
                "global": include_global,
                "per_dataset": include_datasets,
                "summaries": summaries,
                "force": force,
            },
            created_by=created_by,
        )


def _job_params(params: dict[str, Any]) -> dict[str, Any]:
    """A job's parameters, checked: an older or hand-made job with bad ones fails with the reason.
    Absent keys take the defaults, so `{}` builds every map."""
    datasets = params.get("datasets")
    if datasets is not None and not (
        isinstance(datasets, list) and all(isinstance(s, str) for s in datasets)
    ):
        raise ExplorerError("job parameter 'datasets' must be a list of slugs or null")
    flags = {}
    for name, default in (("global", True), ("per_dataset", True), ("summaries", True), ("force", False)):
        value = params.get(name, default)
        if not isinstance(value, bool):
            raise ExplorerError(f"job parameter {name!r} must be true or false")
        flags[name] = value
    return {"datasets": datasets, **flags}


def explorer_job_run(job: Job) -> None:
    """The explorer job's handler (registered by analysis.apps): builds the maps and reports
    progress on the job, so its page shows how far the build got."""
    from generation.lm import load_model
    from generation.lm.embeddings import load_embedder

    try:
        params = _job_params(job.params)
    except ExplorerError as exc:
        job_fail(job=job, error=str(exc))
        return
    job_progress(job=job, done=0, total=1, message="Loading the embedding model")
    embedder = load_embedder()
    spec = summary_model_spec() if params["summaries"] else ""
    summary_model = None
    if spec:
        job_progress(job=job, done=0, message=f"Loading {spec} for cluster summaries")
        summary_model = load_model(spec)

    def report(stage: str, done: int, total: int) -> None:
        label = "Embedding new texts" if stage == "embedding" else "Drawing maps"
        job_progress(job=job, done=done, total=total, message=label)

    try:
        result = explorer_maps_build(
            embedder=embedder,
            datasets=params["datasets"],
            include_global=params["global"],
            include_datasets=params["per_dataset"],
            summary_model=summary_model,
            force=params["force"],
            job=job,
            progress=report,
        )
    except (ExplorerError, LMError) as exc:
        job_fail(job=job, error=str(exc))
        return
    finally:
        if summary_model is not None:
            summary_model.close()
    if result.failed:
        job_fail(
            job=job,
            error="\n".join(f"{m.scope}: {m.message}" for m in result.failed),
            result=result.as_dict(),
        )
        return
    job_finish(job=job, result=result.as_dict(), message=result.summary())
