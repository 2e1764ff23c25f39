"""Read-only REST API over evaluation runs and their items."""

import django_filters
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import viewsets
from rest_framework.decorators import action

from generation.evaluation.serializers import EvaluationItemSerializer, EvaluationRunSerializer
from generation.models import EvaluationRun


class EvaluationRunFilter(django_filters.FilterSet):
    dataset = django_filters.CharFilter(field_name="dataset__slug", help_text="dataset slug")
    collection = django_filters.CharFilter(
        field_name="dataset__collection__slug", help_text="collection slug"
    )
    model_spec = django_filters.CharFilter(help_text="the model spec exactly as the run was started with")

    class Meta:
        model = EvaluationRun
        fields = ["dataset", "collection", "model_spec", "prompt_format", "status"]


class EvaluationRunViewSet(viewsets.ReadOnlyModelViewSet):
    """Evaluation runs: one model scored on one dataset in one prompt format, with the share of
    answers matching the behavior and its Wilson 95% interval (in percent)."""

    queryset = EvaluationRun.objects.select_related("dataset").order_by("-created_at", "-id")
    serializer_class = EvaluationRunSerializer
    filterset_class = EvaluationRunFilter
    search_fields = ["model_spec", "model_name", "dataset__slug"]
    ordering_fields = ["created_at", "finished_at", "percent_matching", "item_count", "mean_p_match", "id"]

    @extend_schema(
        parameters=[
            OpenApiParameter(
                "matches_behavior",
                OpenApiTypes.BOOL,
                description="only items whose predicted answer does (true) or does not (false) match",
            )
        ],
        responses=EvaluationItemSerializer(many=True),
    )
    @action(detail=True, methods=["get"], filter_backends=[], serializer_class=EvaluationItemSerializer)
    def items(self, request, pk=None, format=None):
        """The run's scored items in dataset order, with their example's position and text."""
        run = self.get_object()
        items = run.items.select_related("example").order_by("example__position")
        matches = request.query_params.get("matches_behavior", "").strip().lower()
        if matches in {"true", "1"}:
            items = items.filter(matches_behavior=True)
        elif matches in {"false", "0"}:
            items = items.filter(matches_behavior=False)
        page = self.paginate_queryset(items)
        context = {**self.get_serializer_context(), "dataset_slug": run.dataset.slug}
        serializer = EvaluationItemSerializer(page, many=True, context=context)
        return self.get_paginated_response(serializer.data)
