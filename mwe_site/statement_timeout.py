"""PostgreSQL's statement_timeout for the processes that serve the site, and only for them.

A request must never hold the database for long: one anonymous search over every example ran a
parallel scan on three backends for minutes, still running after its client had gone, and a few such
requests would take every gunicorn thread. With the timeout, PostgreSQL cancels any statement of a
web process that runs past MWE_WEB_STATEMENT_TIMEOUT_MS, and mwe_site.middleware answers 503 ("the
query took too long").

Celery workers and management commands (imports, evaluations, generation, explorer builds, migrations)
run long queries legitimately, so the timeout cannot live in DATABASES for every process. Instead
mwe_site/wsgi.py, which only a web server loads (gunicorn imports it; `manage.py runserver`, make run's
web process, loads it as WSGI_APPLICATION), calls `web_statement_timeout_install`, and from then on
each new connection of the process sets the timeout for its session: one statement per connection,
which persistent connections (CONN_MAX_AGE) make rare. A transaction-mode pooler (PgBouncer) would hand
that session setting to other clients: set statement_timeout on the web role there instead, and
MWE_WEB_STATEMENT_TIMEOUT_MS=0."""

from __future__ import annotations

from typing import TYPE_CHECKING

from django.conf import settings
from django.db.backends.signals import connection_created

if TYPE_CHECKING:
    from django.db.backends.base.base import BaseDatabaseWrapper

DISPATCH_UID = "mwe_site.statement_timeout"


def _statement_timeout_set(sender, connection: BaseDatabaseWrapper, **kwargs) -> None:
    # Read per connection, not at install, so the setting can be changed in tests.
    milliseconds = settings.MWE_WEB_STATEMENT_TIMEOUT_MS
    if connection.vendor != "postgresql" or milliseconds <= 0:
        return
    with connection.cursor() as cursor:
        # set_config takes a bound parameter, where SET does not; false: for the session.
        cursor.execute("SELECT set_config('statement_timeout', %s, false)", [f"{milliseconds}ms"])


def web_statement_timeout_install() -> None:
    """Marks this process as a web process: every database connection it opens from now on has the
    statement timeout. Idempotent."""
    connection_created.connect(_statement_timeout_set, dispatch_uid=DISPATCH_UID)


def web_statement_timeout_uninstall() -> None:
    """Undoes `web_statement_timeout_install` for connections opened later (tests)."""
    connection_created.disconnect(dispatch_uid=DISPATCH_UID)
