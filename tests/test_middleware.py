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
