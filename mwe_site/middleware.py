"""Answers a request whose database went away (connection dropped, server restarting, failover) with a
503 and Retry-After instead of a 500 and a traceback page: the client did nothing wrong and the same
request will work once the database is back. Whatever the request had written inside a transaction
was rolled back with the lost connection; Django drops the broken connection when the request ends
(`close_old_connections`), so the next request opens a new one."""

from __future__ import annotations

import logging

from django.db import InterfaceError, OperationalError
from django.http import HttpRequest, HttpResponse, JsonResponse

logger = logging.getLogger(__name__)

RETRY_AFTER_SECONDS = 5
MESSAGE = "The database is unavailable for a moment; nothing was saved. Please try again shortly."
# Self-contained: the site's templates run context processors that query the database (the user).
PAGE = f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Unavailable</title></head>
<body><h1>Temporarily unavailable</h1><p>{MESSAGE}</p></body></html>
"""


class DatabaseUnavailableMiddleware:
    """Turns django.db.OperationalError and InterfaceError raised by a view into a 503: JSON
    ({"detail": ...}, like every other API error) under /api/, a short page elsewhere."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        return self.get_response(request)

    def process_exception(self, request: HttpRequest, exception: Exception) -> HttpResponse | None:
        if not isinstance(exception, OperationalError | InterfaceError):
            return None
        logger.error(
            "database unavailable during %s %s: %s",
            request.method,
            request.path,
            exception,
            exc_info=exception,
        )
        if request.path.startswith("/api/"):
            response: HttpResponse = JsonResponse({"detail": MESSAGE}, status=503)
        else:
            response = HttpResponse(PAGE, status=503, content_type="text/html; charset=utf-8")
        response["Retry-After"] = str(RETRY_AFTER_SECONDS)
        response["Cache-Control"] = "no-store"
        return response
