"""A base for the analysis pages' JSON endpoints (the agreement figures, the explorer's point details
and search): DRF views only so that drf-spectacular documents them in /api/schema/ from the view that
serves them. Everything else stays as it was before they were DRF views: the views write their own
responses (the same bytes), check access and count requests themselves (StaffRequiredMixin,
mwe_site.throttling), and a Django 404 or 403 is the site's own page, not DRF's JSON."""

from __future__ import annotations

from django.core.exceptions import PermissionDenied
from django.http import Http404
from rest_framework import permissions
from rest_framework.authentication import SessionAuthentication
from rest_framework.negotiation import BaseContentNegotiation
from rest_framework.renderers import JSONRenderer
from rest_framework.views import APIView


class FixedContentNegotiation(BaseContentNegotiation):
    """The views answer one format whatever the Accept header says (as before: no 406)."""

    def select_parser(self, request, parsers):
        return parsers[0] if parsers else None

    def select_renderer(self, request, renderers, format_suffix=None):
        return (renderers[0], renderers[0].media_type)


class DocumentedView(APIView):
    # The session, as for every page of the site; no token is a credential here.
    authentication_classes = [SessionAuthentication]
    # Access is the view's own check (a mixin, or none: public).
    permission_classes = [permissions.AllowAny]
    # Counted by the views themselves where they are limited (mwe_site.throttling).
    throttle_classes: list = []
    renderer_classes = [JSONRenderer]
    content_negotiation_class = FixedContentNegotiation

    def handle_exception(self, exc):
        # Django's own exceptions reach Django's handlers, which answer the site's 404 and 403 pages.
        if isinstance(exc, Http404 | PermissionDenied):
            raise exc
        return super().handle_exception(exc)
