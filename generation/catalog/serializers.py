from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from generation.models import (
    Collection,
    Dataset,
    Example,
)


class CollectionSerializer(serializers.ModelSerializer):
    class Meta:
        model = Collection
        fields = ["slug", "name", "description", "is_released"]


class DatasetSerializer(serializers.ModelSerializer):
    collection = serializers.SlugRelatedField(slug_field="slug", read_only=True)
    url = serializers.HyperlinkedIdentityField(view_name="api-dataset-detail", lookup_field="slug")
    examples_url = serializers.SerializerMethodField()
    download_url = serializers.SerializerMethodField()
    warnings = serializers.SerializerMethodField()

    class Meta:
        model = Dataset
        fields = [
            "slug",
            "url",
            "collection",
            "behavior",
            "description",
            "category",
            "behavior_direction",
            "kind",
            "purpose",
            "origin",
            "example_count",
            "label_counts",
            "mean_label_confidence",
            "source_path",
            "source_sha256",
            "upstream_commit",
            "warnings",
            "examples_url",
            "download_url",
            "created_at",
            "updated_at",
        ]

    def _absolute(self, path: str) -> str:
        request = self.context.get("request")
        return request.build_absolute_uri(path) if request else path

    def get_examples_url(self, obj: Dataset) -> str:
        from django.urls import reverse

        return self._absolute(f"{reverse('api-example-list')}?dataset={obj.slug}")

    def get_download_url(self, obj: Dataset) -> str:
        from django.urls import reverse

        return self._absolute(reverse("generation:dataset-download", kwargs={"slug": obj.slug}))

    def get_warnings(self, obj: Dataset) -> list[str]:
        return list(obj.import_report.get("warnings", []))


class ExampleSerializer(serializers.ModelSerializer):
    dataset = serializers.SlugRelatedField(slug_field="slug", read_only=True)
    text = serializers.CharField(read_only=True)
    answer_not_matching_behavior = serializers.SerializerMethodField()
    page_url = serializers.SerializerMethodField()

    class Meta:
        model = Example
        fields = [
            "id",
            "dataset",
            "position",
            "text",
            "question",
            "statement",
            "answer_matching_behavior",
            "answer_not_matching_behavior",
            "label_confidence",
            "extra",
            "text_hash",
            "page_url",
        ]

    @extend_schema_field(
        {"oneOf": [{"type": "string"}, {"type": "array", "items": {"type": "string"}}], "nullable": True}
    )
    def get_answer_not_matching_behavior(self, obj: Example):
        return obj.answer_not_matching_behavior

    @extend_schema_field(OpenApiTypes.URI)
    def get_page_url(self, obj: Example) -> str:
        request = self.context.get("request")
        path = obj.get_absolute_url()
        return request.build_absolute_uri(path) if request else path
