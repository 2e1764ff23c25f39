"""Rate limits for the public endpoints that cost CPU, memory or database time (searches, the
explorer's semantic search and point details, downloads). One rule for pages and API views alike.

Counters live in Django's default cache, which production points at Redis (settings `CACHES`), so
a limit holds across every gunicorn process and machine; `make run` uses a local-memory cache, which
is per process but has only one web process. Each counter is a fixed window: `cache.add` starts it
with the window's length as its timeout and `cache.incr` counts atomically (Redis INCR), so
concurrent requests can't all read "under the limit" and pass together.

Rates are "N/second|minute|hour|day" strings in settings.MWE_THROTTLE_RATES, by scope; an unknown
scope is a programming error. Staff are never limited: they are the operators, and their own
expensive work runs as jobs. Clients are told by their user id when signed in, else by address:
REMOTE_ADDR, or behind MWE_PROXY_COUNT proxies the address the outermost of them saw in
X-Forwarded-For (DRF's NUM_PROXIES rule), so a client cannot pick its own identity with that header."""

from __future__ import annotations

import functools
import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass

from django.conf import settings
from django.core import checks
from django.core.cache import cache
from django.http import HttpRequest, HttpResponse, JsonResponse
from rest_framework.throttling import BaseThrottle

logger = logging.getLogger(__name__)

PERIODS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


@dataclass(frozen=True)
class Rate:
    requests: int
    seconds: int


def rate_parse(*, rate: str) -> Rate:
    """'30/minute' -> Rate(30, 60). Raises ValueError naming the bad rate."""
    try:
        count, period = rate.split("/")
        requests = int(count)
        seconds = PERIODS[period.strip()[0].lower()]
    except (ValueError, KeyError, IndexError):
        raise ValueError(f"{rate!r} is not a rate: use N/second, N/minute, N/hour or N/day") from None
    if requests < 1:
        raise ValueError(f"{rate!r} is not a rate: the number of requests must be at least 1")
    return Rate(requests=requests, seconds=seconds)


def _rate_of(scope: str) -> Rate:
    return rate_parse(rate=settings.MWE_THROTTLE_RATES[scope])


def client_ident(*, request: HttpRequest) -> str:
    user = getattr(request, "user", None)
    if user is not None and user.is_authenticated:
        return f"user:{user.pk}"
    # DRF's rule for the client address (REMOTE_ADDR, or X-Forwarded-For with NUM_PROXIES).
    return f"addr:{BaseThrottle().get_ident(request)}"


def throttle_wait(*, request: HttpRequest, scope: str, ident: str | None = None) -> float | None:
    """Counts this request against the client's limit for `scope`. None when it may proceed, else
    the seconds until the client's window ends (the request must then be refused). `ident` counts
    it against another identity than the client's, e.g. the username a sign-in attempt names."""
    rate = _rate_of(scope)
    user = getattr(request, "user", None)
    if user is not None and user.is_authenticated and user.is_staff:
        return None
    now = time.time()
    window = int(now // rate.seconds)
    key = f"throttle:{scope}:{ident or client_ident(request=request)}:{window}"
    try:
        # +1 s so the key outlives its window even with clock skew between processes.
        cache.add(key, 0, timeout=rate.seconds + 1)
        try:
            count = cache.incr(key)
        except ValueError:  # expired between add and incr: this request starts a new window
            cache.add(key, 1, timeout=rate.seconds + 1)
            count = 1
    except Exception:  # noqa: BLE001 (any error of the cache's client library)
        # The limits protect the site; an unreachable cache must not take the pages down with it.
        # The statement timeout still bounds what one request can cost the database.
        logger.warning("rate limit %s not applied: the cache did not answer", scope, exc_info=True)
        return None
    if count <= rate.requests:
        return None
    return (window + 1) * rate.seconds - now


def too_many_requests(*, wait: float, json: bool, what: str = "Too many requests") -> HttpResponse:
    """The 429 for a client over its rate, with Retry-After; `what` says what there were too many of."""
    seconds = max(1, math.ceil(wait))
    message = f"{what}; try again in {seconds} s."
    if json:
        response: HttpResponse = JsonResponse({"detail": message}, status=429)
    else:
        response = HttpResponse(message, status=429, content_type="text/plain; charset=utf-8")
    response["Retry-After"] = str(seconds)
    response["Cache-Control"] = "no-store"
    return response


def throttle_refusal(*, request: HttpRequest, scope: str, json: bool) -> HttpResponse | None:
    """Counts the request against the client's limit for `scope`: the 429 to send when it is over,
    else None (the view goes on). For views that validate their input before counting."""
    wait = throttle_wait(request=request, scope=scope)
    return None if wait is None else too_many_requests(wait=wait, json=json)


def throttled(scope: str, *, json: bool = False) -> Callable:
    """Decorator for a Django view: a client over the scope's rate gets a 429 with Retry-After.
    Apply it after validating the input where bad input is cheap to refuse, or on the whole view."""
    _rate_of(scope)  # fail at import on a scope without a rate

    def decorate(view: Callable) -> Callable:
        @functools.wraps(view)
        def wrapper(request: HttpRequest, *args, **kwargs) -> HttpResponse:
            refusal = throttle_refusal(request=request, scope=scope, json=json)
            return refusal or view(request, *args, **kwargs)

        return wrapper

    return decorate


class SharedScopeThrottle(BaseThrottle):
    """The same limits for DRF views: a subclass says which scope a request counts against
    (`scope_for`; None: not limited), this class counts it."""

    def __init__(self) -> None:
        self.wait_seconds: float | None = None

    def scope_for(self, request, view) -> str | None:
        raise NotImplementedError

    def allow_request(self, request, view) -> bool:
        scope = self.scope_for(request, view)
        if scope is None:
            return True
        self.wait_seconds = throttle_wait(request=request, scope=scope)
        return self.wait_seconds is None

    def wait(self) -> float | None:
        return self.wait_seconds


@checks.register(checks.Tags.security, deploy=True)
def shared_cache_check(app_configs=None, **kwargs) -> list[checks.CheckMessage]:
    """A cache of each process's own multiplies every limit by the number of processes."""
    backend = settings.CACHES["default"]["BACKEND"]
    if backend.endswith(("LocMemCache", "DummyCache")):
        return [
            checks.Warning(
                "Rate limits are counted by each process on its own: the default cache is not shared.",
                hint="Set CACHE_URL=redis://... (production uses the broker's Redis when the broker is Redis).",
                id="mwe_site.W001",
            )
        ]
    return []
