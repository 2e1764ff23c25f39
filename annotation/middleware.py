"""Keeps a crowdworker's browser on the annotation pages.

The public site shows every example's label (the catalog, dataset and example pages, the API,
evaluations and generations) and the explorer shows published ratings: a worker who could open them
while rating would see the answer they are asked to judge. So a browser signed in as a worker who is
not staff reaches only the annotation app (the work page, its actions, the worker API, and the
researcher pages, which refuse workers themselves), the admin's login (which asks for a password a
worker does not have) and /health/. Every other page sends a GET back to the work page; other
methods, and anything under /api/, are a 403.

Anonymous visitors keep the public site as it is; staff who also hold a worker account (researchers
previewing the task) are not confined. Requests signed with a worker's API token are not sessions:
on the catalog API a token is no credential (the request is anonymous)."""

from __future__ import annotations

from collections.abc import Callable

from django.http import HttpRequest, HttpResponse, HttpResponseForbidden, JsonResponse
from django.shortcuts import redirect
from django.urls import Resolver404, resolve

from annotation.selectors import worker_for_user

# URL namespaces and view modules a worker's browser may reach.
ALLOWED_NAMESPACES = frozenset({"annotation", "admin"})
ALLOWED_VIEW_MODULE_PREFIX = "annotation."  # the worker API (annotation/api.py) has no namespace
ALLOWED_URL_NAMES = frozenset({"health", "admin-login"})

CONFINED_MESSAGE = "This page is not open to annotation workers while they rate."


def worker_may_reach(path: str) -> bool:
    """Whether a worker's browser may open `path`. A path that matches no page is left to answer
    its 404 (it shows nothing)."""
    try:
        match = resolve(path)
    except Resolver404:
        return True
    if ALLOWED_NAMESPACES.intersection(match.namespaces) or match.url_name in ALLOWED_URL_NAMES:
        return True
    return (getattr(match.func, "__module__", "") or "").startswith(ALLOWED_VIEW_MODULE_PREFIX)


def _confined_worker(request: HttpRequest) -> bool:
    user = getattr(request, "user", None)
    if user is None or not user.is_authenticated or user.is_staff:
        return False
    return worker_for_user(user=user) is not None


class WorkerConfinementMiddleware:
    """Placed after AuthenticationMiddleware (it reads request.user). Costs one query per request of
    a signed-in non-staff user (their worker, which the annotation views then reuse) and none for
    anonymous visitors."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        if _confined_worker(request) and not worker_may_reach(request.path_info):
            if request.path_info.startswith("/api/"):
                return JsonResponse({"detail": CONFINED_MESSAGE}, status=403)
            if request.method in ("GET", "HEAD"):
                return redirect("annotation:work")
            return HttpResponseForbidden(CONFINED_MESSAGE, content_type="text/plain; charset=utf-8")
        return self.get_response(request)
