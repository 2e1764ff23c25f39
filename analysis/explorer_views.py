"""The public embedding explorer: the page, its binary payload and overlays, a point's details and
semantic search. Thin views over analysis.explorer_selectors; the staff-only build button queues
analysis.explorer's background job."""

from __future__ import annotations

import gzip
import hashlib

from django.http import Http404, HttpResponse, JsonResponse
from django.shortcuts import get_object_or_404, redirect
from django.urls import reverse
from django.utils.cache import patch_cache_control, patch_vary_headers
from django.views import View
from django.views.decorators.http import require_safe
from django.views.generic import TemplateView

from analysis import explorer_selectors as selectors
from analysis.explorer import ExplorerError, explorer_job_active, explorer_job_create, summary_model_spec
from analysis.models import ExplorerBuild
from generation.models import Dataset
from generation.views import StaffRequiredMixin

SEARCH_RESULTS_DEFAULT = 100
# Builds never change; a browser may keep their payload until the next build replaces it.
PAYLOAD_MAX_AGE = 24 * 3600


def _build_or_404(pk: int) -> ExplorerBuild:
    try:
        return selectors.explorer_build_get(build_id=pk)
    except ExplorerBuild.DoesNotExist:
        raise Http404("no such map; it may have been replaced by a newer build") from None


def _binary(request, *, compressed: bytes, etag: str, max_age: int) -> HttpResponse:
    """Bytes stored gzip-compressed, sent as they are with Content-Encoding (browsers unpack them
    natively), or unpacked for the rare client that does not accept gzip."""
    if request.headers.get("If-None-Match") == etag:
        response = HttpResponse(status=304)
    elif "gzip" in request.headers.get("Accept-Encoding", ""):
        response = HttpResponse(compressed, content_type="application/octet-stream")
        response["Content-Encoding"] = "gzip"
    else:
        response = HttpResponse(gzip.decompress(compressed), content_type="application/octet-stream")
    response["ETag"] = etag
    patch_vary_headers(response, ["Accept-Encoding"])
    patch_cache_control(response, public=True, max_age=max_age)
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
            is_staff=self.request.user.is_active and self.request.user.is_staff,
            active_job=explorer_job_active(),
            summary_model=summary_model_spec(),
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
                    "agreement": reverse("explorer:agreement", kwargs={"pk": build.pk})
                    if selectors.explorer_has_agreement(build=build)
                    else None,
                    "pMatch": reverse("explorer:p-match", kwargs={"pk": build.pk}),
                    "models": [
                        {"spec": m.model_spec, "format": m.prompt_format, "label": m.label} for m in models
                    ],
                },
            )
        return context


@require_safe
def payload_view(request, pk: int) -> HttpResponse:
    build = _build_or_404(pk)
    return _binary(
        request,
        compressed=selectors.explorer_payload(build=build),
        etag=f'"map-{build.pk}-{build.input_fingerprint[:16]}"',
        max_age=PAYLOAD_MAX_AGE,
    )


@require_safe
def agreement_view(request, pk: int) -> HttpResponse:
    """float32 per point: share of human ratings calling the label correct (NaN: not rated)."""
    build = _build_or_404(pk)
    values = selectors.explorer_agreement_values(build=build)
    # Ratings arrive all the time: revalidate every minute, never serve a day-old copy.
    return _binary(
        request, compressed=selectors.float_array_gzip(values), etag=_content_etag(values), max_age=60
    )


@require_safe
def p_match_view(request, pk: int) -> HttpResponse:
    """float32 per point: a model's P(match) from its newest evaluation (NaN: not evaluated)."""
    build = _build_or_404(pk)
    model_spec = request.GET.get("model", "")
    prompt_format = request.GET.get("format", "")
    known = {(o.model_spec, o.prompt_format) for o in selectors.explorer_model_options(build=build)}
    if (model_spec, prompt_format) not in known:
        raise Http404("no finished evaluation of that model and prompt format on this map")
    values = selectors.explorer_p_match_values(
        build=build, model_spec=model_spec, prompt_format=prompt_format
    )
    return _binary(
        request, compressed=selectors.float_array_gzip(values), etag=_content_etag(values), max_age=60
    )


def _content_etag(values) -> str:
    return '"' + hashlib.sha256(values.tobytes()).hexdigest()[:32] + '"'


@require_safe
def point_view(request, pk: int, index: int) -> JsonResponse:
    build = _build_or_404(pk)
    if index >= build.point_count:
        raise Http404("no such point on this map")
    detail = selectors.explorer_point_detail(
        build=build, index=index, include_projects=request.user.is_active and request.user.is_staff
    )
    if detail is None:
        raise Http404("this example has been deleted since the map was built")
    return JsonResponse(detail)


@require_safe
def search_view(request, pk: int) -> JsonResponse:
    """Semantic search: the points nearest to the query's MiniLM embedding."""
    build = _build_or_404(pk)
    raw_k = request.GET.get("k", str(SEARCH_RESULTS_DEFAULT))
    try:
        k = int(raw_k)
    except ValueError:
        return JsonResponse({"error": f"k={raw_k[:20]!r} is not a whole number"}, status=400)
    try:
        results = selectors.explorer_semantic_search(
            build=build, query=request.GET.get("q", ""), k=k, embedder=selectors.query_embedder()
        )
    except ExplorerError as exc:
        return JsonResponse({"error": str(exc)}, status=400)
    return JsonResponse(
        {"indices": [i for i, _ in results], "scores": [round(score, 4) for _, score in results]}
    )


class ExplorerBuildStartView(StaffRequiredMixin, View):
    """Staff queue a build of every map (unchanged maps are skipped); the job page shows progress."""

    def post(self, request):
        job = explorer_job_create(created_by=request.user, force=request.POST.get("force") == "1")
        return redirect(job)
