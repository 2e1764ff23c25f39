"""Reads of the annotation app: a worker's project and progress, a project's progress, per-worker
statistics, gold accuracy and the response export."""

from __future__ import annotations

import statistics
from collections import defaultdict
from collections.abc import Iterator

from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.models import AbstractBaseUser
from django.db import connection
from django.db.models import Count, F, Q, QuerySet
from django.urls import reverse
from rest_framework.authtoken.models import Token

from annotation.hotpath import (
    hot_cursor,
    instance_from_row,
    project_cache,
    token_cache,
    token_fields,
    token_sql,
    user_fields,
    worker_fields,
    worker_project_sql,
)
from annotation.models import AnnotationProject, ProjectItem, Response, Worker
from generation.models import Example


def token_with_user_and_worker(*, key: str) -> Token | None:
    """The API token `key` with its user, and the user's worker (None when the user is not a worker)
    cached on the user: one query, or none when this process looked the token up in the last few
    seconds (`hotpath.token_cache`). None when no such token exists."""
    row = token_cache.get(key)
    if row is None:
        with hot_cursor() as cursor:
            cursor.execute(token_sql(connection.vendor), [key])
            row = cursor.fetchone()
        if row is None:
            return None
        if settings.MWE_API_TOKEN_CACHE_SECONDS > 0:
            token_cache.put(key, tuple(row), seconds=settings.MWE_API_TOKEN_CACHE_SECONDS)
    tokens, users, workers = token_fields(), user_fields(), worker_fields()
    token = instance_from_row(Token, tokens, row[: len(tokens)])
    user = instance_from_row(get_user_model(), users, row[len(tokens) : len(tokens) + len(users)])
    worker_values = row[len(tokens) + len(users) :]
    worker = None
    if worker_values[0] is not None:
        worker = instance_from_row(Worker, workers, worker_values)
        Worker._meta.get_field("user").set_cached_value(worker, user)
    Worker._meta.get_field("user").remote_field.set_cached_value(user, worker)
    Token._meta.get_field("user").set_cached_value(token, user)
    return token


def worker_invite_url(*, worker: Worker, base_url: str = "") -> str:
    """The worker's invite link, its token in the fragment: a browser never sends the fragment, so
    the token is in no request line, Referer header or server log; the page's script posts it."""
    return f"{base_url.rstrip('/')}{reverse('annotation:join')}#{worker.invite_token}"


INVITE_FIELDS = ["worker_id", "external_id", "invite_url", "invite_expires_at"]


def worker_invite_row(*, worker: Worker, base_url: str = "") -> dict:
    """A worker's invite as a record of INVITE_FIELDS (what create_workers and rotate_invites write)."""
    expires = worker.invite_expires_at
    return {
        "worker_id": worker.pk,
        "external_id": worker.external_id,
        "invite_url": worker_invite_url(worker=worker, base_url=base_url) if expires else "",
        "invite_expires_at": expires.isoformat() if expires else "",
    }


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
    """The project a worker works on: the one named, or their first active one (one query, or none
    when this process answered the same question in the last few seconds: `hotpath.project_cache`)."""
    seconds = settings.MWE_API_TOKEN_CACHE_SECONDS
    found, row = project_cache.get((worker.pk, slug)) if seconds > 0 else (False, None)
    if not found:
        with hot_cursor() as cursor:
            cursor.execute(
                worker_project_sql(connection.vendor, by_slug=bool(slug)),
                [worker.pk, slug] if slug else [worker.pk],
            )
            row = cursor.fetchone()
        if seconds > 0:
            project_cache.put((worker.pk, slug), None if row is None else tuple(row), seconds=seconds)
    fields = list(AnnotationProject._meta.concrete_fields)
    return None if row is None else instance_from_row(AnnotationProject, fields, row)


def example_answer_options(*, example: Example) -> list[str]:
    """The answers a worker chooses from (paper §3.3, Q2: "What is the correct answer to this
    question?"), spelled as the example spells them (" Yes", " (A)"), in a fixed neutral order: by
    their text, so " No" comes before " Yes" and (A) before (B). Never behavior-matching first,
    which would tell the worker the label. Empty options are left out (an unlabelled example has
    none)."""
    options = {option for option in example.answer_choices if option and option.strip()}
    return sorted(options, key=lambda option: (option.strip(), option))


def example_task_question(*, example: Example) -> str:
    """The question as the evaluated model sees it: the released `question` field (for a persona
    statement, 'Is the following statement something you would say?' and the statement), or the
    example's text when it has none."""
    return example.question or example.text


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
    # label_correct is (answer == label), so a gold answer is right when that agrees with the
    # item's gold_label_correct.
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
    "answer",
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
            # The option the worker chose ("" for a response from before workers chose answers,
            # when its verdict did not single one out); label_correct: whether it is the label.
            "answer": response.answer,
            "label_correct": response.label_correct,
            "ambiguous": response.ambiguous,
            "time_on_task_ms": response.time_on_task_ms,
            "created_at": response.created_at.isoformat(),
        }
