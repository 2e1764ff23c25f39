"""Reads of the annotation app: a worker's project and progress, a project's progress, per-worker
statistics, gold accuracy and the response export."""

from __future__ import annotations

import statistics
from collections import defaultdict
from collections.abc import Iterator

from django.contrib.auth.models import AbstractBaseUser
from django.db.models import Count, F, Q, QuerySet

from annotation.models import AnnotationProject, ProjectItem, Response, Worker


def worker_for_user(*, user: AbstractBaseUser) -> Worker | None:
    """The user's worker; no query when it was loaded with the user (the API's token
    authentication does that)."""
    if not user.is_authenticated:
        return None
    try:
        return user.annotation_worker
    except Worker.DoesNotExist:
        return None


def worker_project(*, worker: Worker, slug: str | None = None) -> AnnotationProject | None:
    """The project a worker works on: the one named, or their first active one."""
    projects = worker.projects.filter(is_active=True).order_by("pk")
    if slug:
        projects = projects.filter(slug=slug)
    return projects.first()


def worker_progress(*, worker: Worker, project: AnnotationProject) -> dict[str, int]:
    """What a worker may see of progress: their own count and how many items still need ratings —
    never anyone else's answers."""
    done = Response.objects.filter(worker=worker, project=project).count()
    open_items = (
        ProjectItem.objects.filter(project=project, is_gold=False, submitted_count__lt=F("overlap"))
        .exclude(responses__worker=worker)
        .count()
    )
    return {"submitted": done, "items_needing_ratings": open_items}


def project_progress(*, project: AnnotationProject) -> dict[str, int]:
    """Regular items done (k responses), in progress (some responses or live leases) and remaining
    (untouched); gold items are counted apart."""
    counts = ProjectItem.objects.filter(project=project).aggregate(
        total=Count("pk", filter=Q(is_gold=False)),
        done=Count("pk", filter=Q(is_gold=False, submitted_count__gte=F("overlap"))),
        untouched=Count("pk", filter=Q(is_gold=False, reserved_count=0)),
        gold=Count("pk", filter=Q(is_gold=True)),
    )
    counts["in_progress"] = counts["total"] - counts["done"] - counts["untouched"]
    counts["remaining"] = counts.pop("untouched")
    counts["responses"] = Response.objects.filter(project=project).count()
    return counts


def _gold_correct(response: Response) -> bool:
    item = response.item
    if item.gold_label_correct is not None and response.label_correct != item.gold_label_correct:
        return False
    return item.gold_ambiguous is None or response.ambiguous == item.gold_ambiguous


def worker_gold_accuracy(*, project: AnnotationProject) -> dict[int, tuple[int, int]]:
    """worker id -> (gold answers right, gold answers) in the project."""
    result: dict[int, list[int]] = defaultdict(lambda: [0, 0])
    gold = Response.objects.filter(project=project, item__is_gold=True).select_related("item")
    for response in gold:
        tally = result[response.worker_id]
        tally[0] += _gold_correct(response)
        tally[1] += 1
    return {worker_id: (right, total) for worker_id, (right, total) in result.items()}


def worker_fails_gold(*, project: AnnotationProject, right: int, total: int) -> bool:
    """The project's rule for a worker whose gold answers disqualify them: below the threshold after
    at least `gold_min_answers` gold answers."""
    return total > 0 and total >= project.gold_min_answers and right / total < project.gold_threshold


def project_gold_failing_worker_ids(*, project: AnnotationProject) -> set[int]:
    """Ids of the project's workers who fail gold (one query)."""
    return {
        worker_id
        for worker_id, (right, total) in worker_gold_accuracy(project=project).items()
        if worker_fails_gold(project=project, right=right, total=total)
    }


def project_worker_stats(*, project: AnnotationProject) -> list[dict]:
    """One row per worker of the project: responses, median time on task, gold accuracy, exclusion."""
    times: dict[int, list[int]] = defaultdict(list)
    counts: dict[int, int] = defaultdict(int)
    for worker_id, ms in Response.objects.filter(project=project).values_list("worker_id", "time_on_task_ms"):
        counts[worker_id] += 1
        if ms is not None:
            times[worker_id].append(ms)
    gold = worker_gold_accuracy(project=project)
    rows = []
    for worker in project.workers.order_by("pk"):
        right, total = gold.get(worker.pk, (0, 0))
        rows.append(
            {
                "worker": worker,
                "responses": counts.get(worker.pk, 0),
                "median_ms": statistics.median(times[worker.pk]) if times.get(worker.pk) else None,
                "gold_right": right,
                "gold_total": total,
                "gold_accuracy": right / total if total else None,
                "below_threshold": worker_fails_gold(project=project, right=right, total=total),
            }
        )
    return rows


EXPORT_FIELDS = [
    "project",
    "response_id",
    "worker_id",
    "worker_external_id",
    "worker_excluded",
    "dataset",
    "example_position",
    "example_id",
    "is_gold",
    "relevance",
    "label_correct",
    "ambiguous",
    "time_on_task_ms",
    "created_at",
]


def project_responses(*, project: AnnotationProject) -> QuerySet[Response]:
    return (
        Response.objects.filter(project=project)
        .select_related("worker", "item__example__dataset")
        .order_by("pk")
    )


def project_export_rows(*, project: AnnotationProject) -> Iterator[dict]:
    """Every response of the project as a flat record (the fields of EXPORT_FIELDS)."""
    for response in project_responses(project=project).iterator(chunk_size=2000):
        example = response.item.example
        yield {
            "project": project.slug,
            "response_id": response.pk,
            "worker_id": response.worker_id,
            "worker_external_id": response.worker.external_id,
            "worker_excluded": response.worker.excluded,
            "dataset": example.dataset.slug,
            "example_position": example.position,
            "example_id": example.pk,
            "is_gold": response.item.is_gold,
            "relevance": response.relevance,
            "label_correct": response.label_correct,
            "ambiguous": response.ambiguous,
            "time_on_task_ms": response.time_on_task_ms,
            "created_at": response.created_at.isoformat(),
        }
