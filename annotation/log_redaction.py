"""Keeps invite tokens out of logs. Invite links carry their token in the URL's fragment, which no
browser sends, so the site's own links never put one in a path; this filter covers a token pasted
into a path by hand (or a link from before fragments): Django's 404 and CSRF warnings and the
servers' access logs name the request's path, so `/annotate/join/<anything>` is redacted there, in
the message and in the request attached to the record (which JSON logs print)."""

from __future__ import annotations

import logging
import re

_JOIN_PATH = re.compile(r"(/annotate/join/)[^/\s?#\"']+")
REDACTED = r"\1[redacted]"
# The loggers whose records name a request's path: Django's (404s and other refusals, CSRF
# failures, runserver's access log) and gunicorn's.
LOGGERS = ("django.request", "django.security.csrf", "django.server", "gunicorn.access", "gunicorn.error")


def redact(text: str) -> str:
    return _JOIN_PATH.sub(REDACTED, text)


class _RedactedRequest:
    """The record's request, as it was, except that printing it shows the path redacted."""

    def __init__(self, request) -> None:
        self._request = request

    def __getattr__(self, name):
        return getattr(self._request, name)

    def __repr__(self) -> str:
        return redact(repr(self._request))

    __str__ = __repr__


class InviteTokenFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # a broken record is the handler's to report, as it is
            return True
        redacted = redact(message)
        if redacted != message:
            record.msg, record.args = redacted, None
        request = getattr(record, "request", None)
        if request is not None and not isinstance(request, _RedactedRequest):
            record.request = _RedactedRequest(request)
        return True


def install() -> None:
    token_filter = InviteTokenFilter()
    for name in LOGGERS:
        logger = logging.getLogger(name)
        if not any(isinstance(existing, InviteTokenFilter) for existing in logger.filters):
            logger.addFilter(token_filter)
