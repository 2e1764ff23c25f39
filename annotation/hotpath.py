"""The machinery of the API's hot paths: a cursor that lets PostgreSQL prepare statements, model
instances from raw rows, and the per-process caches of token and project look-ups.

Every API request authenticates and most look up the worker's project. Through the ORM each of those
queries costs more CPU to build than PostgreSQL takes to answer it, so they are written once here
from the models' own table and column names, and their rows become model instances through the same
converters the ORM applies. The reads themselves are `selectors.token_with_user_and_worker` and
`selectors.worker_project`; the claim and submit statements are in `services/postgres.py`.

The caches are emptied by signal handlers (`drop_cached_*`, `project_cache.clear`), which
`AnnotationConfig.ready()` connects: importing this module connects nothing."""

from __future__ import annotations

import contextlib
import functools
import hashlib
import threading
import time

from django.contrib.auth import get_user_model
from django.db import DEFAULT_DB_ALIAS, connection
from django.db.backends.utils import CursorDebugWrapper, CursorWrapper
from django.db.models import Field, Model
from rest_framework.authtoken.models import Token

from annotation.models import AnnotationProject, Worker


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


def token_fields() -> list[Field]:
    return list(Token._meta.concrete_fields)


def user_fields() -> list[Field]:
    return list(get_user_model()._meta.concrete_fields)


def worker_fields() -> list[Field]:
    return list(Worker._meta.concrete_fields)


@functools.cache
def token_sql(vendor: str) -> str:
    """One token with its user and the user's worker: the columns of `token_fields`, `user_fields`
    and `worker_fields` in that order (the worker's are null for a user who is not a worker)."""
    q = connection.ops.quote_name
    user_model = get_user_model()
    user_pk = q(user_model._meta.pk.column)
    return (
        f"SELECT {_columns('t', token_fields())}, {_columns('u', user_fields())}, "  # noqa: S608
        f"{_columns('w', worker_fields())} "
        f"FROM {q(Token._meta.db_table)} t "
        f"JOIN {q(user_model._meta.db_table)} u ON u.{user_pk} = t.{q(Token._meta.get_field('user').column)} "
        f"LEFT JOIN {q(Worker._meta.db_table)} w ON w.{q(Worker._meta.get_field('user').column)} = u.{user_pk} "
        f"WHERE t.{q(Token._meta.pk.column)} = %s"
    )


@functools.cache
def worker_project_sql(vendor: str, *, by_slug: bool) -> str:
    """A worker's active project (the one with the slug given, or their first): its concrete columns."""
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


class _ExpiringCache:
    """Rows by key, each kept `seconds`; emptied whole when full (a worker's next request refills
    its entry). Only column values are kept, and every request makes model instances of its own."""

    MAX_ENTRIES = 10_000

    def __init__(self) -> None:
        self._entries: dict = {}
        self._lock = threading.Lock()

    def _lookup(self, key) -> tuple[bool, tuple | None]:
        entry = self._entries.get(key)
        if entry is None or entry[0] < time.monotonic():
            return False, None
        return True, entry[1]

    def _store(self, key, row: tuple | None, *, seconds: float) -> None:
        with self._lock:
            if len(self._entries) >= self.MAX_ENTRIES:
                self._entries.clear()
            self._entries[key] = (time.monotonic() + seconds, row)

    def clear(self, *args, **kwargs) -> None:
        with self._lock:
            self._entries.clear()


class _TokenCache(_ExpiringCache):
    """Recent token look-ups of this process, so that a worker's stream of API requests does not pay
    one authentication query each. Safe because:

    - entries live `MWE_API_TOKEN_CACHE_SECONDS` (default 5; 0 turns the cache off), so a token
      deleted or a user deactivated elsewhere stops working within that time; in this process at
      once, as deleting a token or saving a user or worker drops their entries (the `drop_cached_*`
      signal handlers);
    - only column values are kept, and every request gets model instances of its own;
    - an excluded worker's claims are refused by the claim statement itself, which reads the worker
      row, not this cache (see services.leases.task_claim);
    - keys are SHA-256 digests of the tokens, and unknown tokens are never cached."""

    @staticmethod
    def _digest(key: str) -> bytes:
        return hashlib.sha256(key.encode()).digest()

    def get(self, key: str) -> tuple | None:
        return self._lookup(self._digest(key))[1]

    def put(self, key: str, row: tuple, *, seconds: float) -> None:
        self._store(self._digest(key), row, seconds=seconds)

    def drop(self, *, key: str | None = None, user_id: int | None = None) -> None:
        with self._lock:
            if key is not None:
                self._entries.pop(self._digest(key), None)
            if user_id is not None:
                user_pk = get_user_model()._meta.pk
                user_index = len(token_fields()) + user_fields().index(user_pk)
                for digest, (_, row) in list(self._entries.items()):
                    if row[user_index] == user_id:
                        del self._entries[digest]


token_cache = _TokenCache()


def drop_cached_token(sender, instance, **kwargs) -> None:
    token_cache.drop(key=instance.key, user_id=instance.user_id)


def drop_cached_user(sender, instance, **kwargs) -> None:
    token_cache.drop(user_id=instance.pk)


def drop_cached_worker(sender, instance, **kwargs) -> None:
    if instance.user_id is not None:
        token_cache.drop(user_id=instance.user_id)


class _ProjectCache(_ExpiringCache):
    """Recent answers of `selectors.worker_project` in this process, so that a worker's claims do not
    pay a project look-up each: the same lifetime as the token cache (`MWE_API_TOKEN_CACHE_SECONDS`),
    and emptied in this process whenever a project, a worker or a membership changes. A project
    deactivated, or a worker removed from it, in another process stops handing out work within those
    seconds; what a claim may take is still decided by the claim statement (overlap, exclusion,
    leases), never by this cache. "No project" (None) is an answer too, hence `get`'s found flag."""

    def get(self, key: tuple[int, str | None]) -> tuple[bool, tuple | None]:
        return self._lookup(key)

    def put(self, key: tuple[int, str | None], row: tuple | None, *, seconds: float) -> None:
        self._store(key, row, seconds=seconds)


project_cache = _ProjectCache()
