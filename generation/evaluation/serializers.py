from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from generation.evaluation.selectors import run_error_visible
from generation.models import (
    EvaluationItem,
    EvaluationRun,
)


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
    results = serializers.JSONField(
        read_only=True,
        help_text="The task's figures by name; Winogender: pearson_r, ci_low, ci_high, n (over sentences), "
        "r_occupations, ci_low_occupations, ci_high_occupations, n_occupations (over occupation means), "
        "left_out_no_bls. The 95% intervals use the Fisher transformation. Runs of the answer scorer: "
        "unanswered, {count, replies: [{index, reply}]}, the items whose reply named no choice (not stored "
        "as items, not counted in the share).",
    )
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
            "task",
            "scorer",
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
            "results",
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
    logprobs = serializers.ListField(
        child=serializers.FloatField(allow_null=True),
        read_only=True,
        help_text="Per choice: log p(answer | prompt) (scorer logprobs), or the log of the probability "
        "renormalised over the choices (top-logprobs; 0 for a parsed answer's choice); null where that "
        "probability is 0.",
    )
    predicted = serializers.CharField(read_only=True)
    example_url = serializers.SerializerMethodField()
    details = serializers.JSONField(
        read_only=True,
        help_text="What the run's task stores per item besides the choice scores; Winogender: occupation, "
        "bls_percent_women, p_female and p_male (renormalised over the two), majority, neutral_logprob.",
    )

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
            "scorer",
            "details",
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
