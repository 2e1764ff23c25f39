"""mwe_site.middleware: a request whose database went away gets a 503 with Retry-After, JSON under
/api/; other errors are left alone. tests/test_faults_postgres.py drops a real connection mid-request."""

import json
import logging

import pytest
from django.db import DatabaseError, IntegrityError, InterfaceError, OperationalError
from django.test import RequestFactory

from mwe_site.middleware import DatabaseUnavailableMiddleware

middleware = DatabaseUnavailableMiddleware(lambda request: None)


@pytest.mark.parametrize(
    "error", [OperationalError("server closed the connection"), InterfaceError("closed")]
)
def test_a_lost_database_is_a_503_page(error, caplog):
    with caplog.at_level(logging.ERROR, logger="mwe_site.middleware"):
        response = middleware.process_exception(RequestFactory().post("/annotate/projects/new/"), error)
    assert response.status_code == 503
    assert response["Retry-After"] == "5" and response["Cache-Control"] == "no-store"
    assert response["Content-Type"] == "text/html; charset=utf-8"
    assert b"Temporarily unavailable" in response.content
    assert "database unavailable during POST /annotate/projects/new/" in caplog.text


def test_under_the_api_it_is_json():
    response = middleware.process_exception(RequestFactory().get("/api/datasets/"), OperationalError("x"))
    assert response.status_code == 503 and response["Retry-After"] == "5"
    assert response["Content-Type"] == "application/json"
    assert set(json.loads(response.content)) == {"detail"}


@pytest.mark.parametrize("error", [IntegrityError("duplicate key"), DatabaseError("syntax"), ValueError("x")])
def test_other_errors_are_not_its_business(error):
    assert middleware.process_exception(RequestFactory().get("/"), error) is None


def test_it_is_installed(settings):
    assert "mwe_site.middleware.DatabaseUnavailableMiddleware" in settings.MIDDLEWARE


# --- A statement cancelled by statement_timeout (mwe_site/statement_timeout.py) is a 503 that says so.


def _cancelled() -> OperationalError:
    """What Django raises when PostgreSQL cancels a statement: its OperationalError, caused by
    psycopg's QueryCanceled (SQLSTATE 57014). tests/test_statement_timeout_postgres.py gets a real one."""
    from psycopg.errors import QueryCanceled

    error = OperationalError("canceling statement due to statement timeout")
    error.__cause__ = QueryCanceled("canceling statement due to statement timeout")
    return error


def test_a_cancelled_query_is_a_503_that_says_it_took_too_long(caplog):
    with caplog.at_level(logging.WARNING, logger="mwe_site.middleware"):
        response = middleware.process_exception(RequestFactory().get("/datasets/x/"), _cancelled())
    assert response.status_code == 503
    assert response["Content-Type"] == "text/html; charset=utf-8"
    assert b"took too long" in response.content
    assert b"Temporarily unavailable" not in response.content
    assert response["Cache-Control"] == "no-store"
    # Asking again at once would be cancelled again: no Retry-After invites a retry loop.
    assert "Retry-After" not in response
    assert "query cancelled during GET /datasets/x/" in caplog.text


def test_a_cancelled_query_under_the_api_is_json():
    response = middleware.process_exception(RequestFactory().get("/api/examples/"), _cancelled())
    assert response.status_code == 503
    assert response["Content-Type"] == "application/json"
    assert "took too long" in json.loads(response.content)["detail"]


# --- NUL bytes in the path or the query string (mwe_site.middleware.RejectNulMiddleware).


@pytest.fixture
def nul_urls(db):
    from tests.builders import DatasetFactory

    dataset = DatasetFactory(slug="narcissism")
    return [
        f"/datasets/{dataset.slug}/?q=%00",
        "/explore/?dataset=%00",
        "/evaluations/?dataset=%00",
        "/annotate/join/%00/",
    ]


def test_a_nul_byte_in_the_url_is_a_400_not_a_500(client, nul_urls):
    # These four were 500s on PostgreSQL, whose text values cannot hold NUL.
    for url in nul_urls:
        response = client.get(url)
        assert response.status_code == 400, url
        assert b"NUL" in response.content, url


@pytest.mark.parametrize(
    "url",
    ["/?a%00b=1", "/?x=1&y=a%00", "/datasets/%00/", "/static/%00.css", "/explore/?dataset=ok&dataset=%00"],
)
def test_nul_anywhere_in_path_or_query_is_refused(client, db, url):
    assert client.get(url).status_code == 400
    assert client.post(url).status_code == 400


def test_nul_under_the_api_is_json(client, db):
    response = client.get("/api/examples/?dataset=%00")
    assert response.status_code == 400
    assert "NUL" in response.json()["detail"]


def test_other_percent_escapes_pass(client, db):
    # %2500 is a literal "%00", not a NUL; a search for it is an ordinary search.
    assert client.get("/api/examples/?search=%2500").status_code == 200
    assert client.get("/?q=caf%C3%A9").status_code == 200


def test_nul_middleware_is_installed_before_anything_reads_the_request(settings):
    order = settings.MIDDLEWARE
    assert order.index("mwe_site.middleware.RejectNulMiddleware") < order.index(
        "django.contrib.sessions.middleware.SessionMiddleware"
    )
