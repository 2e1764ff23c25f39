"""Read-only REST API over generation runs and their candidates."""

import django_filters
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import viewsets
from rest_framework.decorators import action

from generation.models import Candidate, GenerationRun
from generation.pipeline.selectors import generation_run_list
from generation.pipeline.serializers import CandidateSerializer, GenerationRunSerializer


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
