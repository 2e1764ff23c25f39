from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from generation.evaluation_selectors import run_error_visible
from generation.models import (
    Candidate,
    Collection,
    Dataset,
    EvaluationItem,
    EvaluationRun,
    Example,
    GenerationRun,
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


class StaffOnlyErrorField(serializers.CharField):
    """A run's error, for staff only: it holds what a model server answered and the worker's file
    paths. Others get null, and see from `status` that the run failed."""

    def __init__(self, **kwargs) -> None:
        kwargs.setdefault(
            "help_text", "Why the run failed (empty if it did not); null unless the caller is staff."
        )
        super().__init__(read_only=True, allow_null=True, **kwargs)

    def get_attribute(self, instance):
        request = self.context.get("request")
        if not run_error_visible(user=getattr(request, "user", None)):
            return None
        return super().get_attribute(instance)


class EvaluationRunSerializer(serializers.ModelSerializer):
    dataset = serializers.SlugRelatedField(slug_field="slug", read_only=True)
    error = StaffOnlyErrorField()
    url = serializers.HyperlinkedIdentityField(view_name="api-evaluation-run-detail")
    items_url = serializers.HyperlinkedIdentityField(view_name="api-evaluation-run-items")
    page_url = serializers.SerializerMethodField()
    job = serializers.PrimaryKeyRelatedField(read_only=True)

    class Meta:
        model = EvaluationRun
        # created_by is left out: who ran what is for the admin, not the public API.
        fields = [
            "id",
            "url",
            "dataset",
            "model_spec",
            "model_name",
            "model_fingerprint",
            "model_info",
            "prompt_format",
            "format_fingerprint",
            "data_fingerprint",
            "limit",
            "seed",
            "status",
            "error",
            "item_count",
            "matching_count",
            "percent_matching",
            "ci_low",
            "ci_high",
            "mean_p_match",
            "items_per_second",
            "seconds",
            "job",
            "created_at",
            "finished_at",
            "items_url",
            "page_url",
        ]

    @extend_schema_field(OpenApiTypes.URI)
    def get_page_url(self, obj: EvaluationRun) -> str:
        request = self.context.get("request")
        path = obj.get_absolute_url()
        return request.build_absolute_uri(path) if request else path


class EvaluationItemSerializer(serializers.ModelSerializer):
    """One scored item: the `evaluate_model --out` row plus the example it scored."""

    example = serializers.PrimaryKeyRelatedField(read_only=True)
    position = serializers.IntegerField(source="example.position", read_only=True)
    text = serializers.CharField(source="example.text", read_only=True)
    choices = serializers.ListField(child=serializers.CharField(), read_only=True)
    logprobs = serializers.ListField(child=serializers.FloatField(), read_only=True)
    predicted = serializers.CharField(read_only=True)
    example_url = serializers.SerializerMethodField()

    class Meta:
        model = EvaluationItem
        fields = [
            "example",
            "position",
            "text",
            "choices",
            "logprobs",
            "predicted_index",
            "predicted",
            "matches_behavior",
            "p_match",
            "example_url",
        ]

    @extend_schema_field(OpenApiTypes.URI)
    def get_example_url(self, obj: EvaluationItem) -> str:
        from django.urls import reverse

        request = self.context.get("request")
        # The run's dataset slug is known to the view; reversing it here avoids a query per item.
        slug = self.context.get("dataset_slug") or obj.example.dataset.slug
        path = reverse("generation:example-detail", kwargs={"slug": slug, "position": obj.example.position})
        return request.build_absolute_uri(path) if request else path


class GenerationRunSerializer(serializers.ModelSerializer):
    """A generation run: its spec, the models' provenance, its counts and the dataset it made."""

    url = serializers.HyperlinkedIdentityField(view_name="api-generation-run-detail")
    # What each state means for a generation, for the API's readers. Labels of its own also keep this
    # enum apart from evaluation runs' in the schema, which otherwise names the shared one by a hash.
    status = serializers.ChoiceField(
        read_only=True,
        choices=[
            (GenerationRun.Status.QUEUED, "waiting for a worker"),
            (GenerationRun.Status.RUNNING, "generating or scoring candidates"),
            (GenerationRun.Status.SUCCEEDED, "done: the dataset is published"),
            (GenerationRun.Status.FAILED, "stopped by an error (see error); a rerun resumes"),
            (GenerationRun.Status.CANCELLED, "stopped on request"),
        ],
    )
    candidates_url = serializers.HyperlinkedIdentityField(view_name="api-generation-run-candidates")
    page_url = serializers.SerializerMethodField()
    dataset = serializers.SlugRelatedField(slug_field="slug", read_only=True)
    job = serializers.PrimaryKeyRelatedField(read_only=True)
    error = StaffOnlyErrorField()
    # Annotated by the viewset's queryset (generation_selectors.COUNT_EXPRESSIONS), one query a page.
    generated_count = serializers.IntegerField(read_only=True)
    parsed_count = serializers.IntegerField(read_only=True)
    scored_count = serializers.IntegerField(read_only=True)
    kept_count = serializers.IntegerField(read_only=True)

    class Meta:
        model = GenerationRun
        # created_by is left out: who ran what is for the admin, not the public API.
        fields = [
            "id",
            "url",
            "method",
            "slug",
            "behavior",
            "description",
            "spec",
            "generator_info",
            "discriminator_info",
            "status",
            "error",
            "generated_count",
            "parsed_count",
            "scored_count",
            "kept_count",
            "dataset",
            "job",
            "created_at",
            "finished_at",
            "candidates_url",
            "page_url",
        ]

    @extend_schema_field(OpenApiTypes.URI)
    def get_page_url(self, obj: GenerationRun) -> str:
        request = self.context.get("request")
        path = obj.get_absolute_url()
        return request.build_absolute_uri(path) if request else path


class CandidateSerializer(serializers.ModelSerializer):
    """One generated sample with its scores and the decision on it."""

    example = serializers.PrimaryKeyRelatedField(read_only=True)
    duplicate_of = serializers.PrimaryKeyRelatedField(read_only=True)
    page_url = serializers.SerializerMethodField()

    class Meta:
        model = Candidate
        fields = [
            "id",
            "label",
            "sample_index",
            "seed",
            "prompt",
            "raw_output",
            "text",
            "scores",
            "label_probability",
            "decision",
            "reason",
            "duplicate_of",
            "example",
            "page_url",
        ]

    @extend_schema_field(OpenApiTypes.URI)
    def get_page_url(self, obj: Candidate) -> str:
        from django.urls import reverse

        request = self.context.get("request")
        path = reverse("generation:candidate-detail", kwargs={"pk": obj.run_id, "candidate_id": obj.pk})
        return request.build_absolute_uri(path) if request else path
