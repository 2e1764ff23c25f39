"""Read-only API of a suite's figures: GET /api/evaluation-suites/<pk>/figures/ answers the same
documents as the suite pages' JSON exports (the matrix and the size trends under the page's filters,
one dataset's points and trend, or two models compared), from the same cached selectors. Public like
the pages, and counted against the shared "download" rate limit like the exports."""

from __future__ import annotations

from django.http import Http404
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from generation.evaluation import suite_figures as figures
from generation.evaluation import suite_selectors, suite_views
from generation.models import EvaluationSuite
from mwe_site.throttling import SharedScopeThrottle

FIGURES = ("matrix", "dataset", "compare")


class FiguresThrottle(SharedScopeThrottle):
    def scope_for(self, request, view) -> str | None:
        return "download"


class SuiteFiguresView(APIView):
    """A suite's figures as JSON."""

    throttle_classes = [FiguresThrottle]

    @extend_schema(
        operation_id="evaluation_suites_figures",
        tags=["evaluation-suites"],
        parameters=[
            OpenApiParameter(
                "figure",
                OpenApiTypes.STR,
                enum=list(FIGURES),
                description="matrix (default): every dataset x model with the size trends; dataset: one "
                "dataset's points and trend (needs `dataset`); compare: two models item by item (`a`, `b`)",
            ),
            OpenApiParameter(
                "dataset", OpenApiTypes.STR, description="a dataset slug of the suite (figure=dataset)"
            ),
            OpenApiParameter("a", OpenApiTypes.INT, description="model A's index in the suite's model_specs"),
            OpenApiParameter("b", OpenApiTypes.INT, description="model B's index in the suite's model_specs"),
            OpenApiParameter(
                "collection", OpenApiTypes.STR, description="matrix: only this collection (slug)"
            ),
            OpenApiParameter("category", OpenApiTypes.STR, description="matrix: only this category"),
            OpenApiParameter("q", OpenApiTypes.STR, description="matrix: text in the behavior or slug"),
            OpenApiParameter(
                "direction",
                OpenApiTypes.STR,
                enum=list(suite_views.DIRECTIONS),
                description="matrix: the datasets' stated direction",
            ),
            OpenApiParameter(
                "model", OpenApiTypes.INT, many=True, description="matrix: only these models (indices)"
            ),
            OpenApiParameter(
                "sort", OpenApiTypes.STR, enum=list(figures.SORTS), description="matrix: row order"
            ),
        ],
        responses={
            200: OpenApiResponse(OpenApiTypes.OBJECT, description="the figure's document"),
            400: OpenApiResponse(
                OpenApiTypes.OBJECT, description="a parameter out of bounds: {'detail': reason}"
            ),
            404: OpenApiResponse(OpenApiTypes.OBJECT, description="no such suite, or dataset in it"),
        },
    )
    def get(self, request: Request, pk: int) -> Response:
        try:
            suite = suite_selectors.suite_get(pk=pk)
        except EvaluationSuite.DoesNotExist:
            raise Http404("No such evaluation suite.") from None
        results = suite_selectors.suite_results(suite=suite)
        try:
            figure = suite_views.param_choice(request, "figure", FIGURES, "matrix")
            if figure == "matrix":
                filters = suite_views.filters_from(request, results)
                groups = figures.matrix_groups(rows=results.rows, filters=filters, models=results.models)
                return Response(suite_views.detail_document(suite, results, filters, groups))
            if figure == "dataset":
                dataset = results.dataset(suite_views.param_text(request, "dataset", suite_views.MAX_SLUG))
                if dataset is None:
                    raise Http404("This dataset is not part of the suite.")
                return Response(suite_views.dataset_document(suite, results, dataset))
            a, b = suite_views.compare_params(request, results)
        except suite_views.BadParams as exc:
            return Response({"detail": str(exc)}, status=status.HTTP_400_BAD_REQUEST)
        comparison = suite_selectors.suite_comparison(suite=suite, results=results, a=a, b=b)
        return Response(suite_views.comparison_document(suite, comparison))
