"""Answers, instead of a 500 and a traceback page:

- a request whose database went away (connection dropped, server restarting, failover) with a 503 and
  Retry-After: the client did nothing wrong and the same request will work once the database is back.
  Whatever the request had written inside a transaction was rolled back with the lost connection;
  Django drops the broken connection when the request ends (`close_old_connections`), so the next
  request opens a new one;
- a request whose query PostgreSQL cancelled (the web processes' statement_timeout,
  mwe_site/statement_timeout.py) with a 503 that says so, without Retry-After: the same request would
  be cancelled again. The connection stays usable; an open transaction is rolled back by its atomic
  block;
- a request with a NUL character in its path or query string with a 400 (RejectNulMiddleware)."""

from __future__ import annotations

import logging

from django.db import InterfaceError, OperationalError
from django.http import HttpRequest, HttpResponse, JsonResponse

logger = logging.getLogger(__name__)

RETRY_AFTER_SECONDS = 5
MESSAGE = "The database is unavailable for a moment; nothing was saved. Please try again shortly."
CANCELLED_MESSAGE = (
    "The query took too long and was stopped; nothing was saved. Narrow the request (a shorter search, "
    "a filter, a smaller page) and try again."
)
NUL_MESSAGE = "The URL contains a NUL character (%00), which no address or parameter of this site accepts."
# SQLSTATE query_canceled: statement_timeout, or pg_cancel_backend by an operator.
QUERY_CANCELED = "57014"


def _page(title: str, message: str) -> str:
    # Self-contained: the site's templates run context processors that query the database (the user).
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{title}</title></head>
<body><h1>{title}</h1><p>{message}</p></body></html>
"""


PAGE = _page("Temporarily unavailable", MESSAGE)
CANCELLED_PAGE = _page("The query took too long", CANCELLED_MESSAGE)


def _error_response(request: HttpRequest, *, status: int, message: str, page: str) -> HttpResponse:
    """JSON ({"detail": ...}, like every other API error) under /api/, a short page elsewhere."""
    if request.path.startswith("/api/"):
        response: HttpResponse = JsonResponse({"detail": message}, status=status)
    else:
        response = HttpResponse(page, status=status, content_type="text/html; charset=utf-8")
    response["Cache-Control"] = "no-store"
    return response


def query_was_cancelled(exception: BaseException) -> bool:
    """Whether a database error is PostgreSQL cancelling the statement (not a lost connection):
    Django raises its own OperationalError for both, with the driver's error as the cause."""
    cause = exception.__cause__
    return (
        getattr(cause, "sqlstate", None) == QUERY_CANCELED or getattr(cause, "pgcode", None) == QUERY_CANCELED
    )


class DatabaseUnavailableMiddleware:
    """Turns django.db.OperationalError and InterfaceError raised by a view into a 503: a cancelled
    query says it took too long, anything else that the database is unavailable."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        return self.get_response(request)

    def process_exception(self, request: HttpRequest, exception: Exception) -> HttpResponse | None:
        if not isinstance(exception, OperationalError | InterfaceError):
            return None
        if query_was_cancelled(exception):
            # A warning, not an error: the timeout did its job; the log says which request is slow.
            logger.warning(
                "query cancelled during %s %s: %s", request.method, request.get_full_path(), exception
            )
            return _error_response(request, status=503, message=CANCELLED_MESSAGE, page=CANCELLED_PAGE)
        logger.error(
            "database unavailable during %s %s: %s",
            request.method,
            request.path,
            exception,
            exc_info=exception,
        )
        response = _error_response(request, status=503, message=MESSAGE, page=PAGE)
        response["Retry-After"] = str(RETRY_AFTER_SECONDS)
        return response


class RejectNulMiddleware:
    """A 400 for a NUL character anywhere in the path or the query string (a name or a value), before
    any view, session or static file handler sees the request.

    No URL of this site has a use for NUL, and PostgreSQL text cannot hold one: psycopg refuses to send
    it, so every view that passes a path segment or a parameter to a query answered a 500 (dataset
    search, the explorer's and evaluations' dataset filter, a slug in a path). One check here covers
    every present and future view, where a check per view would be forgotten in the next one. Form
    bodies need none: Django's and DRF's CharFields already refuse NUL."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        if "\x00" in request.path or any(
            "\x00" in name or any("\x00" in value for value in values) for name, values in request.GET.lists()
        ):
            page = _page("Bad request", NUL_MESSAGE)
            return _error_response(request, status=400, message=NUL_MESSAGE, page=page)
        return self.get_response(request)
