"""The web processes' statement_timeout (mwe_site/statement_timeout.py): a query that would run long
is cancelled by PostgreSQL at the timeout and answered with a 503 that says so, JSON under /api/;
only processes that serve the site (gunicorn and `make run`'s runserver load mwe_site/wsgi.py) get
it, never a Celery worker or a management command."""

import os
import subprocess
import sys
import time

import pytest
from django.conf import settings
from django.db import connection
from django.http import HttpResponse
from django.urls import path

from mwe_site.statement_timeout import web_statement_timeout_install, web_statement_timeout_uninstall
from tests.processes import database_url

pytestmark = pytest.mark.postgres

SLEEP_SECONDS = 20


def sleepy(request):
    # Stands for any slow query a request could trigger (a search over every example, a big join).
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_sleep(%s)", [SLEEP_SECONDS])
    return HttpResponse("slept")


def quick(request):
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")
    return HttpResponse("quick")


urlpatterns = [path("slow/", sleepy), path("api/slow/", sleepy), path("quick/", quick)]


@pytest.fixture
def web_process(settings):
    """This test process as a web process: the next connection it opens gets the timeout."""
    settings.MWE_WEB_STATEMENT_TIMEOUT_MS = 500
    web_statement_timeout_install()
    connection.close()
    yield
    web_statement_timeout_uninstall()
    # The session keeps its timeout: later tests must get a connection without it.
    connection.close()


@pytest.mark.urls(__name__)
@pytest.mark.django_db(transaction=True)
def test_a_long_query_is_cancelled_at_the_timeout_with_a_503(client, web_process):
    started = time.monotonic()
    response = client.get("/slow/")
    elapsed = time.monotonic() - started
    assert response.status_code == 503
    assert b"took too long" in response.content
    # Cancelled, not waited out: far less than the query would have taken.
    assert elapsed < SLEEP_SECONDS / 4
    with connection.cursor() as cursor:
        cursor.execute("SHOW statement_timeout")
        assert cursor.fetchone()[0] == "500ms"

    api = client.get("/api/slow/")
    assert api.status_code == 503
    assert "took too long" in api.json()["detail"]
    # The connection survives a cancelled statement: the next request works on it.
    assert client.get("/quick/").content == b"quick"


@pytest.mark.urls(__name__)
@pytest.mark.django_db(transaction=True)
def test_without_the_web_process_mark_nothing_is_cancelled(client, settings):
    settings.MWE_WEB_STATEMENT_TIMEOUT_MS = 500
    connection.close()
    with connection.cursor() as cursor:
        cursor.execute("SHOW statement_timeout")
        assert cursor.fetchone()[0] == "0"


def _statement_timeout_in_process(code: str, **env: str) -> str:
    """SHOW statement_timeout on the first connection of a fresh Python process that runs `code`
    after Django is set up the way that kind of process sets it up."""
    script = (
        f"{code}\n"
        "from django.db import connection\n"
        "with connection.cursor() as cursor:\n"
        "    cursor.execute('SHOW statement_timeout')\n"
        "    print(cursor.fetchone()[0])\n"
    )
    inherited = {k: v for k, v in os.environ.items() if k != "MWE_WEB_STATEMENT_TIMEOUT_MS"}
    environment = {
        **inherited,
        "DJANGO_SETTINGS_MODULE": "mwe_site.settings.test",
        "DATABASE_URL": database_url(),
        **env,
    }
    done = subprocess.run(
        [sys.executable, "-c", script],
        cwd=settings.BASE_DIR,
        env=environment,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout.strip().splitlines()[-1]


GUNICORN = "import mwe_site.wsgi"  # what gunicorn loads (mwe_site.wsgi:application)
RUNSERVER = (  # what `manage.py runserver` (make run's web process) loads: WSGI_APPLICATION
    "import django; django.setup()\n"
    "from django.core.servers.basehttp import get_internal_wsgi_application\n"
    "get_internal_wsgi_application()"
)
WORKER = "import django; django.setup()\nimport mwe_site.celery"  # a Celery worker or a command


@pytest.mark.django_db
def test_only_web_processes_get_the_timeout():
    assert _statement_timeout_in_process(GUNICORN, MWE_WEB_STATEMENT_TIMEOUT_MS="1234") == "1234ms"
    assert _statement_timeout_in_process(RUNSERVER, MWE_WEB_STATEMENT_TIMEOUT_MS="1234") == "1234ms"
    assert _statement_timeout_in_process(WORKER, MWE_WEB_STATEMENT_TIMEOUT_MS="1234") == "0"
    # The default is on; 0 turns it off.
    assert _statement_timeout_in_process(GUNICORN) == "15s"
    assert _statement_timeout_in_process(GUNICORN, MWE_WEB_STATEMENT_TIMEOUT_MS="0") == "0"
