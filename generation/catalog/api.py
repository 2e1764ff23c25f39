"""Read-only REST API over the catalog: collections, datasets and examples."""

import django_filters
from rest_framework import viewsets

from generation.catalog import formats
from generation.catalog.selectors import matching_answer_q
from generation.catalog.serializers import CollectionSerializer, DatasetSerializer, ExampleSerializer
from generation.models import Collection, Dataset, Example


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
    # Where an example's text is, Winogender sentences included (formats.TEXT_LOOKUPS), as the
    # dataset page's search (selectors.example_text_q).
    search_fields = list(formats.TEXT_LOOKUPS)
    ordering_fields = ["position", "label_confidence", "id"]
