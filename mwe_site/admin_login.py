"""The admin's login page with sign-in attempts limited (scope "login" of mwe_site.throttling) per
client address and per username: guessing one account's password from many addresses, or many
accounts' from one address, is refused once either count passes the rate, even with the right
password, until the window ends. Showing the page is not an attempt; only a POST counts."""

from __future__ import annotations

import hashlib

from django.contrib import admin
from django.http import HttpRequest, HttpResponse
from django.views.decorators.cache import never_cache

from mwe_site.throttling import throttle_wait, too_many_requests


def _username_ident(username: str) -> str:
    # Hashed: the cache key holds no user input, and any username fits; case and surrounding space
    # do not make a new count.
    digest = hashlib.sha256(username.strip().casefold().encode()).hexdigest()
    return f"username:{digest}"


def attempts_wait(*, request: HttpRequest) -> float | None:
    """Counts a sign-in attempt; the seconds to wait when the address or the username is over the
    limit, else None. Both are counted on every attempt."""
    waits = [
        throttle_wait(request=request, scope="login"),
        throttle_wait(
            request=request, scope="login", ident=_username_ident(request.POST.get("username", ""))
        ),
    ]
    return max((wait for wait in waits if wait is not None), default=None)


@never_cache
def login(request: HttpRequest, extra_context: dict | None = None) -> HttpResponse:
    if request.method == "POST":
        wait = attempts_wait(request=request)
        if wait is not None:
            return too_many_requests(
                wait=wait, json=False, what="Too many sign-in attempts for this address or account"
            )
    return admin.site.login(request, extra_context)
