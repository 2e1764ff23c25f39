"""The annotation app's settings, each from Django's settings when set there (tests override them so),
else from the environment variable of the same name, else its default. Read on every use, so a
changed setting applies at once."""

from __future__ import annotations

import os

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured


def _positive(name: str, default: int) -> int:
    raw = getattr(settings, name, None)
    if raw is None:
        raw = os.environ.get(name) or default
    try:
        value = int(raw)
    except (TypeError, ValueError):
        raise ImproperlyConfigured(f"{name}={raw!r} is not a whole number") from None
    if value < 1:
        raise ImproperlyConfigured(f"{name}={raw!r}: it must be at least 1")
    return value


def invite_ttl_days() -> int:
    """MWE_INVITE_TTL_DAYS (default 14): how long a new or rotated invite link signs workers in."""
    return _positive("MWE_INVITE_TTL_DAYS", 14)


def worker_session_seconds() -> int:
    """MWE_WORKER_SESSION_SECONDS (default 12 hours): how long a sign-in through an invite link
    lasts, counted from the sign-in (activity does not extend it)."""
    return _positive("MWE_WORKER_SESSION_SECONDS", 12 * 3600)
