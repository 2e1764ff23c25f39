from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from generation.evaluation.serializers import StaffOnlyErrorField
from generation.models import (
    Candidate,
    GenerationRun,
)
from generation.pipeline.run import run_sampling


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
    # Annotated by the viewset's queryset (selectors.generation_run_list), one query a page.
    generated_count = serializers.IntegerField(read_only=True)
    parsed_count = serializers.IntegerField(read_only=True)
    scored_count = serializers.IntegerField(read_only=True)
    kept_count = serializers.IntegerField(read_only=True)
    profile = serializers.SerializerMethodField(
        help_text='The sampling profile: "paper" (the paper\'s values) or "small-model" (ours).'
    )
    sampling = serializers.SerializerMethodField(
        help_text="The profile and, per phase, the values it resolved to: temperature, top_p, max_tokens, "
        "stop, calibrate (batch calibration of the label question)."
    )

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
            "profile",
            "sampling",
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

    @extend_schema_field(OpenApiTypes.STR)
    def get_profile(self, obj: GenerationRun) -> str:
        return run_sampling(obj)["profile"]

    @extend_schema_field(OpenApiTypes.OBJECT)
    def get_sampling(self, obj: GenerationRun) -> dict:
        return run_sampling(obj)


class CandidateSerializer(serializers.ModelSerializer):
    """One generated sample with its scores and the decision on it."""

    example = serializers.PrimaryKeyRelatedField(read_only=True)
    duplicate_of = serializers.PrimaryKeyRelatedField(read_only=True)
    # The reason as a sentence with its numbers, as before reasons had codes; reason_code and
    # reason_detail are the same, for programs.
    reason = serializers.CharField(source="reason_text", read_only=True)
    reason_code = serializers.ChoiceField(
        source="reason", choices=Candidate.Reason.choices, allow_blank=True, read_only=True
    )
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
            "reason_code",
            "reason_detail",
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
