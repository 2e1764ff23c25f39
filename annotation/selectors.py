"""Reads of the annotation app: a worker's project and progress, a project's progress, per-worker
statistics, gold accuracy and the response export."""

from __future__ import annotations

import contextlib
import functools
import hashlib
import statistics
import threading
import time
from collections import defaultdict
from collections.abc import Iterator

from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.models import AbstractBaseUser
from django.db import DEFAULT_DB_ALIAS, connection
from django.db.backends.utils import CursorDebugWrapper, CursorWrapper
from django.db.models import Count, F, Field, Model, Q, QuerySet
from django.db.models.signals import m2m_changed, post_delete, post_save
from django.urls import reverse
from rest_framework.authtoken.models import Token

from annotation.models import AnnotationProject, ProjectItem, Response, Worker

# --- The API's hot reads ----------------------------------------------------------------------------
# Every API request authenticates and most look up the worker's project. Through the ORM each of those
# queries costs more CPU to build than PostgreSQL takes to answer it, so they are written once here
# from the models' own table and column names, and their rows become model instances through the same
# converters the ORM applies.


class _HotDebugCursor(CursorDebugWrapper):
    # Logs the statement as written: once psycopg has prepared a statement it no longer keeps the
    # text that Django's own debug cursor would log.
    def execute(self, sql, params=None):
        with self.debug_sql(sql, params):
            return self._execute_with_wrappers(sql, params, many=False, executor=self._execute)


@contextlib.contextmanager
def hot_cursor():
    """A cursor for the API's hot statements. On PostgreSQL it binds parameters on the server, so that
    psycopg prepares each statement once it has run `prepare_threshold` times on a connection (the
    DATABASE_PREPARE_THRESHOLD setting; off, Django's default, suits a transaction-mode pooler):
    PostgreSQL then stops planning the claim and submit statements anew on every request, which cost
    it as much CPU as running them. Django's own cursors bind on the client and never prepare, so
    the rest of the site is unaffected. Queries run through it are logged and their errors wrapped
    like any other."""
    if connection.vendor != "postgresql":
        with connection.cursor() as cursor:
            yield cursor
        return
    from django.db.backends.postgresql.base import ServerBindingCursor

    # What connection.cursor() does first: drop a persistent connection that fails its health check
    # (CONN_HEALTH_CHECKS), then connect if needed.
    connection.close_if_health_check_failed()
    connection.ensure_connection()
    connection.validate_thread_sharing()
    with connection.wrap_database_errors:
        raw = ServerBindingCursor(connection.connection)
    wrapper = _HotDebugCursor if connection.queries_logged else CursorWrapper
    with wrapper(raw, connection) as cursor:
        yield cursor


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


class _TokenCache:
    """Recent token look-ups of this process, so that a worker's stream of API requests does not pay
    one authentication query each. Safe because:

    - entries live `MWE_API_TOKEN_CACHE_SECONDS` (default 5; 0 turns the cache off), so a token
      deleted or a user deactivated elsewhere stops working within that time; in this process at
      once, as deleting a token or saving a user or worker drops their entries (signals below);
    - only column values are kept, and every request gets model instances of its own;
    - an excluded worker's claims are refused by the claim statement itself, which reads the worker
      row, not this cache (see services.task_claim);
    - keys are SHA-256 digests of the tokens, and unknown tokens are never cached."""

    MAX_ENTRIES = 10_000

    def __init__(self) -> None:
        self._entries: dict[bytes, tuple[float, tuple]] = {}
        self._lock = threading.Lock()

    @staticmethod
    def _digest(key: str) -> bytes:
        return hashlib.sha256(key.encode()).digest()

    def get(self, key: str) -> tuple | None:
        entry = self._entries.get(self._digest(key))
        if entry is None or entry[0] < time.monotonic():
            return None
        return entry[1]

    def put(self, key: str, row: tuple, *, seconds: float) -> None:
        with self._lock:
            if len(self._entries) >= self.MAX_ENTRIES:
                self._entries.clear()
            self._entries[self._digest(key)] = (time.monotonic() + seconds, row)

    def drop(self, *, key: str | None = None, user_id: int | None = None) -> None:
        with self._lock:
            if key is not None:
                self._entries.pop(self._digest(key), None)
            if user_id is not None:
                user_pk = get_user_model()._meta.pk
                user_index = len(_token_fields()) + _user_fields().index(user_pk)
                for digest, (_, row) in list(self._entries.items()):
                    if row[user_index] == user_id:
                        del self._entries[digest]

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()


token_cache = _TokenCache()


def _drop_cached_token(sender, instance, **kwargs) -> None:
    token_cache.drop(key=instance.key, user_id=instance.user_id)


def _drop_cached_user(sender, instance, **kwargs) -> None:
    token_cache.drop(user_id=instance.pk)


def _drop_cached_worker(sender, instance, **kwargs) -> None:
    if instance.user_id is not None:
        token_cache.drop(user_id=instance.user_id)


post_delete.connect(_drop_cached_token, sender=Token, dispatch_uid="annotation_token_cache_token")
post_save.connect(_drop_cached_token, sender=Token, dispatch_uid="annotation_token_cache_token_save")
post_save.connect(
    _drop_cached_user, sender=settings.AUTH_USER_MODEL, dispatch_uid="annotation_token_cache_user"
)
post_delete.connect(
    _drop_cached_user, sender=settings.AUTH_USER_MODEL, dispatch_uid="annotation_token_cache_user_d"
)
post_save.connect(_drop_cached_worker, sender=Worker, dispatch_uid="annotation_token_cache_worker")


def token_with_user_and_worker(*, key: str) -> Token | None:
    """The API token `key` with its user, and the user's worker (None when the user is not a worker)
    cached on the user: one query, or none when this process looked the token up in the last few
    seconds (`token_cache`). None when no such token exists."""
    row = token_cache.get(key)
    if row is None:
        with hot_cursor() as cursor:
            cursor.execute(_token_sql(connection.vendor), [key])
            row = cursor.fetchone()
        if row is None:
            return None
        if settings.MWE_API_TOKEN_CACHE_SECONDS > 0:
            token_cache.put(key, tuple(row), seconds=settings.MWE_API_TOKEN_CACHE_SECONDS)
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


class _ProjectCache:
    """Recent answers of `worker_project` in this process, so that a worker's claims do not pay a
    project look-up each: the same lifetime as the token cache (`MWE_API_TOKEN_CACHE_SECONDS`), and
    emptied in this process whenever a project, a worker or a membership changes. A project
    deactivated, or a worker removed from it, in another process stops handing out work within those
    seconds; what a claim may take is still decided by the claim statement (overlap, exclusion,
    leases), never by this cache. Only column values are kept; every request gets its own instance."""

    MAX_ENTRIES = 10_000

    def __init__(self) -> None:
        self._entries: dict[tuple[int, str | None], tuple[float, tuple | None]] = {}
        self._lock = threading.Lock()

    def get(self, key: tuple[int, str | None]) -> tuple[bool, tuple | None]:
        entry = self._entries.get(key)
        if entry is None or entry[0] < time.monotonic():
            return False, None
        return True, entry[1]

    def put(self, key: tuple[int, str | None], row: tuple | None, *, seconds: float) -> None:
        with self._lock:
            if len(self._entries) >= self.MAX_ENTRIES:
                self._entries.clear()
            self._entries[key] = (time.monotonic() + seconds, row)

    def clear(self, *args, **kwargs) -> None:
        with self._lock:
            self._entries.clear()


project_cache = _ProjectCache()
post_save.connect(project_cache.clear, sender=AnnotationProject, dispatch_uid="annotation_project_cache")
post_delete.connect(project_cache.clear, sender=AnnotationProject, dispatch_uid="annotation_project_cache_d")
post_save.connect(project_cache.clear, sender=Worker, dispatch_uid="annotation_project_cache_worker")
m2m_changed.connect(
    project_cache.clear, sender=Worker.projects.through, dispatch_uid="annotation_project_cache_m2m"
)


def worker_project(*, worker: Worker, slug: str | None = None) -> AnnotationProject | None:
    """The project a worker works on: the one named, or their first active one (one query, or none
    when this process answered the same question in the last few seconds: `project_cache`)."""
    seconds = settings.MWE_API_TOKEN_CACHE_SECONDS
    found, row = project_cache.get((worker.pk, slug)) if seconds > 0 else (False, None)
    if not found:
        with hot_cursor() as cursor:
            cursor.execute(
                _worker_project_sql(connection.vendor, by_slug=bool(slug)),
                [worker.pk, slug] if slug else [worker.pk],
            )
            row = cursor.fetchone()
        if seconds > 0:
            project_cache.put((worker.pk, slug), None if row is None else tuple(row), seconds=seconds)
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
