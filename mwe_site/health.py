"""`GET /health/`: whether this web process can reach the database and the Celery broker, for load
balancers, orchestrators and uptime checks. Public and cheap: one `SELECT 1` and one broker round trip,
each bounded by a short timeout so a hung dependency makes the check fail instead of hang."""

from __future__ import annotations

import logging

from django.db import connection
from django.http import HttpRequest, JsonResponse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET

logger = logging.getLogger(__name__)

BROKER_TIMEOUT_SECONDS = 2.0


def _database() -> str:
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
            cursor.fetchone()
    except Exception as exc:  # any failure means unhealthy; the reason goes to the log, not the client
        logger.warning("health: database unreachable: %s", exc)
        return "unavailable"
    return "ok"


def _broker() -> str:
    from mwe_site.celery import app

    try:
        with app.connection_for_read() as conn:
            # Connecting opens a channel, which pings Redis (kombu's Redis channel does on creation).
            conn.ensure_connection(max_retries=1, interval_start=0, timeout=BROKER_TIMEOUT_SECONDS)
    except Exception as exc:
        logger.warning("health: broker unreachable: %s", exc)
        return "unavailable"
    return "ok"


@never_cache
@require_GET
def health(request: HttpRequest) -> JsonResponse:
    checks = {"database": _database(), "broker": _broker()}
    healthy = all(value == "ok" for value in checks.values())
    return JsonResponse(
        {"status": "ok" if healthy else "unavailable", **checks}, status=200 if healthy else 503
    )
