"""Read-only REST API over the catalog. Writes come with the generation and annotation features."""

import django_filters
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import viewsets
from rest_framework.decorators import action

from generation.generation_selectors import generation_run_list
from generation.models import Candidate, Collection, Dataset, EvaluationRun, Example, GenerationRun
from generation.selectors import matching_answer_q
from generation.serializers import (
    CandidateSerializer,
    CollectionSerializer,
    DatasetSerializer,
    EvaluationItemSerializer,
    EvaluationRunSerializer,
    ExampleSerializer,
    GenerationRunSerializer,
)


class CollectionViewSet(viewsets.ReadOnlyModelViewSet):
    queryset = Collection.objects.order_by("-is_released", "name")
    serializer_class = CollectionSerializer
    lookup_field = "slug"
    search_fields = ["name", "description"]
    ordering_fields = ["name", "slug"]


class DatasetFilter(django_filters.FilterSet):
    collection = django_filters.CharFilter(field_name="collection__slug")

    class Meta:
        model = Dataset
        fields = ["collection", "kind", "purpose", "origin", "category"]


class DatasetViewSet(viewsets.ReadOnlyModelViewSet):
    queryset = Dataset.objects.select_related("collection").order_by("collection__name", "slug")
    serializer_class = DatasetSerializer
    lookup_field = "slug"
    filterset_class = DatasetFilter
    search_fields = ["slug", "behavior", "description"]
    ordering_fields = ["slug", "example_count", "mean_label_confidence", "created_at"]


class ExampleFilter(django_filters.FilterSet):
    dataset = django_filters.CharFilter(field_name="dataset__slug", help_text="dataset slug")
    label = django_filters.CharFilter(
        method="filter_label",
        help_text='the matching answer, with or without its leading space: " Yes", "Yes", "(A)"',
    )
    min_label_confidence = django_filters.NumberFilter(field_name="label_confidence", lookup_expr="gte")
    max_label_confidence = django_filters.NumberFilter(field_name="label_confidence", lookup_expr="lte")
    text_hash = django_filters.CharFilter()

    class Meta:
        model = Example
        fields = ["dataset", "label", "min_label_confidence", "max_label_confidence", "text_hash"]

    def filter_label(self, queryset, name, value):
        return queryset.filter(matching_answer_q(value))


class ExampleViewSet(viewsets.ReadOnlyModelViewSet):
    queryset = Example.objects.select_related("dataset").order_by("dataset_id", "position")
    serializer_class = ExampleSerializer
    filterset_class = ExampleFilter
    search_fields = ["question", "statement"]
    ordering_fields = ["position", "label_confidence", "id"]


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


class GenerationRunFilter(django_filters.FilterSet):
    class Meta:
        model = GenerationRun
        fields = ["status", "slug", "method"]


class GenerationRunViewSet(viewsets.ReadOnlyModelViewSet):
    """Dataset generation runs: the spec, the generator's and discriminator's provenance, the counts
    of candidates generated, parsed, scored and kept, and the dataset made."""

    queryset = generation_run_list()
    serializer_class = GenerationRunSerializer
    filterset_class = GenerationRunFilter
    search_fields = ["slug", "behavior", "description"]
    ordering_fields = ["created_at", "finished_at", "id"]

    @extend_schema(
        parameters=[
            OpenApiParameter(
                "decision",
                OpenApiTypes.STR,
                enum=Candidate.Decision.values,
                description="kept, dropped or pending",
            ),
            OpenApiParameter(
                "label",
                OpenApiTypes.STR,
                description='the label asked for, with or without its leading space: " Yes", "No"',
            ),
        ],
        responses=CandidateSerializer(many=True),
    )
    @action(detail=True, methods=["get"], filter_backends=[], serializer_class=CandidateSerializer)
    def candidates(self, request, pk=None, format=None):
        """The run's candidates in (label, sample index) order, kept and dropped, with their scores."""
        run = self.get_object()
        candidates = run.candidates.order_by("label", "sample_index", "id")
        decision = request.query_params.get("decision", "").strip()
        if decision:
            candidates = candidates.filter(decision=decision)
        label = request.query_params.get("label", "").strip()
        if label:
            candidates = candidates.filter(label__in=[label, f" {label}"])
        page = self.paginate_queryset(candidates)
        serializer = CandidateSerializer(page, many=True, context=self.get_serializer_context())
        return self.get_paginated_response(serializer.data)
