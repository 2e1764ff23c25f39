"""The public embedding explorer: the page, its binary payload and overlays, a point's details and
semantic search. Thin views over analysis.explorer.selectors; the staff-only build button queues
analysis.explorer.jobs's background job.

The data endpoints cost CPU, memory and database time per request, so each is rate limited per
client (mwe_site.throttling; staff are not limited): the payload and overlays share "explorer_map",
point details "explorer_point", semantic search "semantic_search". A request is first checked by
its own parameters, which costs less than counting it, so a bad one is refused (400) uncounted and
before anything is read; every request that goes on to read a map, a row or a model is counted
first, including those that then find no such map (404)."""

from __future__ import annotations

import gzip
import hashlib
from collections.abc import Callable

from django.http import Http404, HttpResponse, JsonResponse
from django.shortcuts import get_object_or_404, redirect
from django.urls import reverse
from django.utils.cache import patch_cache_control, patch_vary_headers
from django.views import View
from django.views.decorators.http import require_safe
from django.views.generic import TemplateView
from drf_spectacular.utils import OpenApiResponse, extend_schema

from analysis.documented import DocumentedView
from analysis.explorer import selectors
from analysis.explorer.errors import ExplorerError
from analysis.explorer.jobs import explorer_job_active, explorer_job_create, summary_model_spec
from analysis.explorer.serializers import (
    ExplorerErrorSerializer,
    PointDetailSerializer,
    SearchQuerySerializer,
    SearchResultSerializer,
)
from analysis.models import ExplorerBuild
from generation.models import Dataset, EvaluationRun
from mwe_site.first_run import first_run_status
from mwe_site.permissions import StaffRequiredMixin
from mwe_site.throttling import throttle_refusal

SEARCH_RESULTS_DEFAULT = 100
AGREEMENT_PRIVATE = "ratings=all"
MODEL_SPEC_CHARS = EvaluationRun._meta.get_field("model_spec").max_length
# Builds never change; a browser may keep their payload until the next build replaces it.
PAYLOAD_MAX_AGE = 24 * 3600


def _build_or_404(pk: int) -> ExplorerBuild:
    try:
        return selectors.explorer_build_get(build_id=pk)
    except ExplorerBuild.DoesNotExist:
        raise Http404("no such map; it may have been replaced by a newer build") from None


def _is_staff(request) -> bool:
    return request.user.is_active and request.user.is_staff


def _bad_request(message: str) -> HttpResponse:
    return HttpResponse(message, status=400, content_type="text/plain; charset=utf-8")


def _binary(
    request, *, compressed: Callable[[], bytes], etag: str, max_age: int, public: bool = True
) -> HttpResponse:
    """Bytes stored gzip-compressed, sent as they are with Content-Encoding (browsers unpack them
    natively), or unpacked for the rare client that does not accept gzip; `compressed` is called
    only when the client's copy is stale. Not public: for this user only, revalidated every time,
    never kept by a shared cache."""
    if request.headers.get("If-None-Match") == etag:
        response = HttpResponse(status=304)
    elif "gzip" in request.headers.get("Accept-Encoding", ""):
        response = HttpResponse(compressed(), content_type="application/octet-stream")
        response["Content-Encoding"] = "gzip"
    else:
        response = HttpResponse(gzip.decompress(compressed()), content_type="application/octet-stream")
    response["ETag"] = etag
    patch_vary_headers(response, ["Accept-Encoding"])
    if public:
        patch_cache_control(response, public=True, max_age=max_age)
    else:
        patch_cache_control(response, private=True, no_cache=True)
    return response


class ExplorerView(TemplateView):
    template_name = "analysis/explorer.html"

    def get_context_data(self, **kwargs):
        context = super().get_context_data(**kwargs)
        slug = self.request.GET.get("dataset", "").strip()
        dataset = get_object_or_404(Dataset, slug=slug) if slug else None
        build = selectors.explorer_build_current(dataset=dataset)
        context.update(
            dataset=dataset,
            build=build,
            choices=selectors.explorer_map_choices(),
            is_staff=_is_staff(self.request),
            active_job=explorer_job_active(),
            summary_model=summary_model_spec(),
            # Without a map yet, what `make run` is doing about it (the demo's generation, the map).
            first_run=first_run_status() if build is None else None,
        )
        if build is not None:
            models = selectors.explorer_model_options(build=build)
            context.update(
                clusters=selectors.explorer_clusters(build=build),
                config={
                    "build": build.pk,
                    "count": build.point_count,
                    "dataset": dataset.slug if dataset else "",
                    "payload": reverse("explorer:payload", kwargs={"pk": build.pk}),
                    "point": reverse("explorer:point", kwargs={"pk": build.pk, "index": 0}).removesuffix(
                        "0/"
                    ),
                    "search": reverse("explorer:search", kwargs={"pk": build.pk}),
                    "agreement": self._agreement_url(build),
                    "pMatch": reverse("explorer:p-match", kwargs={"pk": build.pk}),
                    "models": [
                        {"spec": m.model_spec, "format": m.prompt_format, "label": m.label} for m in models
                    ],
                },
            )
        return context

    def _agreement_url(self, build: ExplorerBuild) -> str | None:
        # Staff colour by every rating, from a URL of their own, so that no shared cache can hand
        # their private overlay to anyone else.
        staff = _is_staff(self.request)
        if not selectors.explorer_has_agreement(build=build, include_private=staff):
            return None
        url = reverse("explorer:agreement", kwargs={"pk": build.pk})
        return f"{url}?{AGREEMENT_PRIVATE}" if staff else url


@require_safe
def payload_view(request, pk: int) -> HttpResponse:
    if refused := throttle_refusal(request=request, scope="explorer_map", json=False):
        return refused
    build = _build_or_404(pk)
    return _binary(
        request,
        compressed=lambda: selectors.explorer_payload(build=build),
        etag=f'"map-{build.pk}-{build.input_fingerprint[:16]}"',
        max_age=PAYLOAD_MAX_AGE,
    )


@require_safe
def agreement_view(request, pk: int) -> HttpResponse:
    """float32 per point: share of human ratings calling the label correct (NaN: not rated, or no
    rating may be shown). Everyone gets published projects' ratings; staff may ask for every
    rating (?ratings=all), which is sent for them only."""
    ratings = request.GET.get("ratings", "")
    if ratings not in ("", "all"):
        return _bad_request(f"ratings={ratings[:20]!r}: leave it out, or ratings=all (staff)")
    include_private = ratings == "all"
    if include_private and not _is_staff(request):
        return HttpResponse("every rating is for staff only", status=403, content_type="text/plain")
    if refused := throttle_refusal(request=request, scope="explorer_map", json=False):
        return refused
    build = _build_or_404(pk)
    values = selectors.explorer_agreement_values(build=build, include_private=include_private)
    # Ratings arrive all the time: revalidate every minute, never serve a day-old copy.
    return _binary(
        request,
        compressed=lambda: selectors.float_array_gzip(values),
        etag=_content_etag(values),
        max_age=60,
        public=not include_private,
    )


@require_safe
def p_match_view(request, pk: int) -> HttpResponse:
    """float32 per point: a model's P(match) from its newest evaluation (NaN: not evaluated)."""
    model_spec = request.GET.get("model", "")
    prompt_format = request.GET.get("format", "")
    if not model_spec or not prompt_format:
        return _bad_request("choose a model (model=) and a prompt format (format=)")
    if len(model_spec) > MODEL_SPEC_CHARS or prompt_format not in EvaluationRun.Format.values:
        return _bad_request("no evaluation has that model or prompt format")
    if refused := throttle_refusal(request=request, scope="explorer_map", json=False):
        return refused
    build = _build_or_404(pk)
    known = {(o.model_spec, o.prompt_format) for o in selectors.explorer_model_options(build=build)}
    if (model_spec, prompt_format) not in known:
        raise Http404("no finished evaluation of that model and prompt format on this map")
    values = selectors.explorer_p_match_values(
        build=build, model_spec=model_spec, prompt_format=prompt_format
    )
    return _binary(
        request,
        compressed=lambda: selectors.float_array_gzip(values),
        etag=_content_etag(values),
        max_age=60,
    )


def _content_etag(values) -> str:
    return '"' + hashlib.sha256(values.tobytes()).hexdigest()[:32] + '"'


# Point details and search are DRF views only to be documented in the API schema
# (analysis.documented): they answer, count and refuse exactly as plain views.
NOT_FOUND = OpenApiResponse(description="No such map (it may have been replaced by a newer build), or point.")
TOO_MANY = OpenApiResponse(description="Over the client's rate limit; Retry-After says when to try again.")


class PointView(DocumentedView):
    @extend_schema(
        operation_id="explorer_point",
        summary="One point of an explorer map",
        description="The example behind point `index` of map `pk`, its cluster, nearest neighbours, "
        "published ratings (staff: every project's) and newest evaluations. Public; rate limited per "
        "client. Every text is as it was written (by a model or a person): show it as text.",
        responses={200: PointDetailSerializer, 404: NOT_FOUND, 429: TOO_MANY},
        tags=["explorer"],
    )
    def get(self, request, pk: int, index: int) -> HttpResponse:
        if refused := throttle_refusal(request=request, scope="explorer_point", json=True):
            return refused
        build = _build_or_404(pk)
        if index >= build.point_count:
            raise Http404("no such point on this map")
        detail = selectors.explorer_point_detail(build=build, index=index, include_private=_is_staff(request))
        if detail is None:
            raise Http404("this example has been deleted since the map was built")
        return JsonResponse(detail)


class SearchView(DocumentedView):
    @extend_schema(
        operation_id="explorer_search",
        summary="Search an explorer map by meaning",
        description="The points nearest to the query's MiniLM embedding. The model is loaded only for a "
        "valid query on a map that exists, by a client within its limit. Public; rate limited per client.",
        parameters=[SearchQuerySerializer],
        responses={
            200: SearchResultSerializer,
            400: OpenApiResponse(ExplorerErrorSerializer, description="A bad query; not counted."),
            404: NOT_FOUND,
            429: TOO_MANY,
        },
        tags=["explorer"],
    )
    def get(self, request, pk: int) -> HttpResponse:
        try:
            query = selectors.explorer_search_query_clean(
                query=request.GET.get("q", ""), k=request.GET.get("k", str(SEARCH_RESULTS_DEFAULT))
            )
        except ExplorerError as exc:
            return JsonResponse({"error": str(exc)}, status=400)
        if refused := throttle_refusal(request=request, scope="semantic_search", json=True):
            return refused
        build = _build_or_404(pk)
        try:
            results = selectors.explorer_semantic_search(
                build=build, query=query.text, k=query.k, embedder=selectors.query_embedder()
            )
        except ExplorerError as exc:
            return JsonResponse({"error": str(exc)}, status=400)
        return JsonResponse(
            {"indices": [i for i, _ in results], "scores": [round(score, 4) for _, score in results]}
        )


# The names analysis/explorer/urls.py routes to.
point_view = PointView.as_view()
search_view = SearchView.as_view()


class ExplorerBuildStartView(StaffRequiredMixin, View):
    """Staff queue a build of every map (unchanged maps are skipped); the job page shows progress."""

    def post(self, request):
        job = explorer_job_create(created_by=request.user, force=request.POST.get("force") == "1")
        return redirect(job)
