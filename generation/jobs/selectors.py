"""Reads of a job's state: what its handler needs while it runs, and what its pages show (where it
stands in its queue, its progress as the pages poll it)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from django.db.models import Case, Q, When
from django.urls import reverse

from generation.jobs.services import job_queue
from generation.models import Job
from generation.models.base import RunBase


def job_cancel_requested(*, job: Job) -> bool:
    """Whether someone asked this job to stop (generation.jobs.services.job_cancel): read from the
    database at each checkpoint, since the request comes from another process."""
    return Job.objects.filter(pk=job.pk, cancel_requested=True).exists()


# ----------------------------------------------------------------------------- what a page shows

# What a worker loads before a job of each kind reports its first progress.
_LOADS = {
    Job.Kind.EVALUATE: "the model",
    Job.Kind.SUITE: "the models",
    Job.Kind.GENERATE: "the models",
    Job.Kind.EXPLORE: "the embedding model",
}


@dataclass(frozen=True)
class QueuePlace:
    """Where a queued job stands: the job it waits for first (the running one of its queue, else the
    oldest queued before it) and how many in all are ahead of it."""

    first: Job | None
    ahead: int


def job_queue_place(*, job: Job) -> QueuePlace:
    """The unfinished jobs of the same Celery queue that a worker takes before this one: a queue's
    worker takes its jobs one at a time in the order they were sent. Two bounded queries."""
    if job.status != Job.Status.QUEUED:
        return QueuePlace(first=None, ahead=0)
    queue = job_queue(job.kind)
    kinds = [kind for kind in Job.Kind.values if job_queue(kind) == queue]
    ahead = (
        Job.objects.filter(kind__in=kinds)
        .in_progress()
        .exclude(pk=job.pk)
        .filter(
            Q(status=Job.Status.RUNNING)
            | Q(created_at__lt=job.created_at)
            | Q(created_at=job.created_at, pk__lt=job.pk)
        )
    )
    first = ahead.order_by(
        Case(When(status=Job.Status.RUNNING, then=0), default=1), "created_at", "pk"
    ).first()
    return QueuePlace(first=first, ahead=ahead.count() if first else 0)


def job_waiting_text(*, job: Job, place: QueuePlace | None = None) -> str:
    """Why a job shows no progress yet, or "" once it does: queued behind another job, or next in
    line (or started) while a worker loads its models."""
    if job.is_finished or job.progress_total:
        return ""
    place = place or job_queue_place(job=job)
    if place.first is not None:
        more = f" and {place.ahead - 1} more" if place.ahead > 1 else ""
        return f"Queued behind {place.first.get_kind_display().lower()} #{place.first.pk}{more}."
    loads = _LOADS.get(job.kind)
    if job.status == Job.Status.QUEUED:
        return f"Waiting for a worker to load {loads}." if loads else "Waiting for a worker."
    return f"A worker is loading {loads}." if loads else "Starting."


def _progress(job: Job | None, *, status: str, status_display: str, finished: bool) -> dict[str, Any]:
    place = job_queue_place(job=job) if job is not None and not finished else QueuePlace(None, 0)
    return {
        "status": status,
        "status_display": status_display,
        "finished": finished,
        "done": job.progress_done if job is not None else 0,
        "total": job.progress_total if job is not None else None,
        "message": job.message if job is not None else "",
        "waiting": job_waiting_text(job=job, place=place) if job is not None and not finished else "",
        "cancel_requested": bool(job is not None and job.cancel_requested),
    }


def job_progress(*, job: Job) -> dict[str, Any]:
    """What a job's page shows of its progress, as its progress endpoint sends it (JSON)."""
    data = _progress(
        job, status=job.status, status_display=job.get_status_display(), finished=job.is_finished
    )
    data["result"] = _job_result(job) if job.is_finished else None
    return data


def run_progress(*, run: RunBase) -> dict[str, Any]:
    """What a run's page (an evaluation's, a generation's) shows of its progress: the run's own
    status, its job's counts. A stalled run (its job ended first) is finished for the page too. Once
    finished, the result is the run's page itself, whose results are then complete."""
    finished = not run.is_in_progress or run.is_stalled
    data = _progress(run.job, status=run.status, status_display=run.get_status_display(), finished=finished)
    data["result"] = {"url": run.get_absolute_url(), "label": "Show the results"} if finished else None
    return data


def _job_result(job: Job) -> dict[str, str]:
    """The page a finished job's outcome is on (the job page's own links, in job_detail.html)."""
    result, params = job.result or {}, job.params or {}
    links = {
        Job.Kind.EVALUATE: (
            "generation:run-detail",
            result.get("run") or params.get("run_id"),
            "Evaluation run",
        ),
        Job.Kind.SUITE: ("generation:suite-detail", result.get("suite") or params.get("suite_id"), "Suite"),
        Job.Kind.GENERATE: (
            "generation:generation-detail",
            result.get("generation_run") or params.get("run_id"),
            "Generation run",
        ),
    }
    if job.kind in links:
        name, pk, label = links[job.kind]
        if pk:
            return {"url": reverse(name, args=[pk]), "label": f"{label} #{pk}"}
    if job.kind == Job.Kind.EXPLORE:
        return {"url": reverse("explorer:explorer"), "label": "The explorer"}
    # An import's outcome (its files) is listed on the job's own page.
    return {"url": job.get_absolute_url(), "label": "Show the outcome"}
