"""Reads of the annotation app: a worker's project and progress, a project's progress, per-worker
statistics, gold accuracy and the response export."""

from __future__ import annotations

import functools
import statistics
from collections import defaultdict
from collections.abc import Iterator

from django.contrib.auth import get_user_model
from django.contrib.auth.models import AbstractBaseUser
from django.db import DEFAULT_DB_ALIAS, connection
from django.db.models import Count, F, Field, Model, Q, QuerySet
from rest_framework.authtoken.models import Token

from annotation.models import AnnotationProject, ProjectItem, Response, Worker

# --- The API's hot reads ----------------------------------------------------------------------------
# Every API request authenticates and most look up the worker's project. Through the ORM each of those
# queries costs more CPU to build than PostgreSQL takes to answer it, so they are written once here
# from the models' own table and column names, and their rows become model instances through the same
# converters the ORM applies.


def _columns(alias: str, fields: list[Field]) -> str:
    return ", ".join(f"{alias}.{connection.ops.quote_name(field.column)}" for field in fields)


@functools.cache
def _loaders(vendor: str, model: type[Model], fields: tuple[Field, ...]) -> tuple[list[str], list[tuple]]:
    """The attribute names of `fields` and, per field, its column and the backend's and the field's
    converters (what the ORM's compiler would apply)."""
    converters = []
    for field in fields:
        col = field.get_col(model._meta.db_table)
        converters.append((col, connection.ops.get_db_converters(col) + field.get_db_converters(connection)))
    return [field.attname for field in fields], converters


def instance_from_row(model: type[Model], fields: list[Field], values) -> Model:
    """A model instance, as the ORM would load it, from raw column values of `fields` (the others
    are deferred)."""
    names, converters = _loaders(connection.vendor, model, tuple(fields))
    converted = []
    for (col, functions), value in zip(converters, values, strict=True):
        for function in functions:
            value = function(value, col, connection)
        converted.append(value)
    return model.from_db(DEFAULT_DB_ALIAS, names, converted)


# Only names from the models' metadata go into these statements; values are bound parameters.


@functools.cache
def _token_sql(vendor: str) -> str:
    q = connection.ops.quote_name
    user_model = get_user_model()
    user_pk = q(user_model._meta.pk.column)
    return (
        f"SELECT {_columns('t', _token_fields())}, {_columns('u', _user_fields())}, "  # noqa: S608
        f"{_columns('w', _worker_fields())} "
        f"FROM {q(Token._meta.db_table)} t "
        f"JOIN {q(user_model._meta.db_table)} u ON u.{user_pk} = t.{q(Token._meta.get_field('user').column)} "
        f"LEFT JOIN {q(Worker._meta.db_table)} w ON w.{q(Worker._meta.get_field('user').column)} = u.{user_pk} "
        f"WHERE t.{q(Token._meta.pk.column)} = %s"
    )


def _token_fields() -> list[Field]:
    return list(Token._meta.concrete_fields)


def _user_fields() -> list[Field]:
    return list(get_user_model()._meta.concrete_fields)


def _worker_fields() -> list[Field]:
    return list(Worker._meta.concrete_fields)


def token_with_user_and_worker(*, key: str) -> Token | None:
    """The API token `key` with its user, and the user's worker (None when the user is not a worker)
    cached on the user: one query. None when no such token exists."""
    with connection.cursor() as cursor:
        cursor.execute(_token_sql(connection.vendor), [key])
        row = cursor.fetchone()
    if row is None:
        return None
    token_fields, user_fields, worker_fields = _token_fields(), _user_fields(), _worker_fields()
    token = instance_from_row(Token, token_fields, row[: len(token_fields)])
    user_values = row[len(token_fields) : len(token_fields) + len(user_fields)]
    user = instance_from_row(get_user_model(), user_fields, user_values)
    worker_values = row[len(token_fields) + len(user_fields) :]
    worker = None
    if worker_values[0] is not None:
        worker = instance_from_row(Worker, worker_fields, worker_values)
        Worker._meta.get_field("user").set_cached_value(worker, user)
    Worker._meta.get_field("user").remote_field.set_cached_value(user, worker)
    Token._meta.get_field("user").set_cached_value(token, user)
    return token


def worker_for_user(*, user: AbstractBaseUser) -> Worker | None:
    """The user's worker; no query when it was loaded with the user (the API's token
    authentication does that)."""
    if not user.is_authenticated:
        return None
    try:
        return user.annotation_worker
    except Worker.DoesNotExist:
        return None


@functools.cache
def _worker_project_sql(vendor: str, *, by_slug: bool) -> str:
    q = connection.ops.quote_name
    membership = Worker.projects.through._meta
    project_pk = q(AnnotationProject._meta.pk.column)
    return (
        f"SELECT {_columns('p', list(AnnotationProject._meta.concrete_fields))} "  # noqa: S608
        f"FROM {q(AnnotationProject._meta.db_table)} p "
        f"JOIN {q(membership.db_table)} m ON m.{q(membership.get_field('annotationproject').column)} = "
        f"p.{project_pk} "
        f"WHERE m.{q(membership.get_field('worker').column)} = %s AND p.{q('is_active')}"
        + (f" AND p.{q('slug')} = %s" if by_slug else "")
        + f" ORDER BY p.{project_pk} LIMIT 1"
    )


def worker_project(*, worker: Worker, slug: str | None = None) -> AnnotationProject | None:
    """The project a worker works on: the one named, or their first active one (one query)."""
    with connection.cursor() as cursor:
        cursor.execute(
            _worker_project_sql(connection.vendor, by_slug=bool(slug)),
            [worker.pk, slug] if slug else [worker.pk],
        )
        row = cursor.fetchone()
    fields = list(AnnotationProject._meta.concrete_fields)
    return None if row is None else instance_from_row(AnnotationProject, fields, row)


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
