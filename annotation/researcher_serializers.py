"""Serializers of the researcher API (annotation/researcher_api.py).

The input serializers check JSON types only ("3" is not an overlap, a list is not a name): the rules
(ranges, a free slug, datasets with answers, all or none of the external ids) are the project page's
own forms', which the views run on what these let through, so the page, the shell and the API accept
and refuse the same input."""

from __future__ import annotations

from django.urls import reverse
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from annotation.serializers import StrictIntegerField


class StrictFloatField(serializers.FloatField):
    default_error_messages = {"invalid": "A JSON number is required."}

    def to_internal_value(self, data):
        if isinstance(data, bool) or not isinstance(data, int | float):
            self.fail("invalid")
        return super().to_internal_value(data)


class StrictCharField(serializers.CharField):
    default_error_messages = {"invalid": "A JSON string is required."}

    def __init__(self, **kwargs):
        # What is blank, too long or badly spaced is for the form to say, as on the page.
        super().__init__(allow_blank=True, trim_whitespace=False, **kwargs)

    def to_internal_value(self, data):
        if not isinstance(data, str):
            self.fail("invalid")
        return super().to_internal_value(data)


class ProjectCreateSerializer(serializers.Serializer):
    name = StrictCharField(help_text="Up to 200 characters.")
    slug = StrictCharField(
        help_text="Letters, digits, hyphens and underscores; unique; names the project in URLs."
    )
    datasets = serializers.ListField(
        child=StrictCharField(), allow_empty=True, help_text="Slugs of one or more datasets with examples."
    )
    per_dataset = StrictIntegerField(
        required=False,
        allow_null=True,
        help_text="A random sample of up to N examples per dataset, balanced over its labels (the paper "
        "rated 100); omit for every example.",
    )
    per_label = StrictIntegerField(
        required=False,
        allow_null=True,
        help_text="Instead: up to N examples per dataset and label. Not with per_dataset.",
    )
    seed = StrictIntegerField(required=False, default=0, help_text="The same seed draws the same sample.")
    overlap = StrictIntegerField(
        required=False, default=3, help_text="Workers who rate each example (k), 1-100."
    )
    lease_seconds = StrictIntegerField(
        required=False, default=300, help_text="How long a worker holds an example (10 s to a day)."
    )
    instructions = StrictCharField(
        required=False, default="", help_text="Markdown shown to workers with each example."
    )
    gold_rate = StrictFloatField(
        required=False, default=0.0, help_text="Share of tasks that are gold items (0-1)."
    )
    gold_threshold = StrictFloatField(
        required=False, default=0.7, help_text="Workers below this gold accuracy are flagged (0-1)."
    )
    max_sessions_per_worker = StrictIntegerField(
        required=False,
        allow_null=True,
        help_text="Browsers a worker may be signed in on at once with their invite link (default 1).",
    )

    def form_data(self) -> dict:
        """The validated values as the project form's data (absent and null alike left out)."""
        return {name: value for name, value in self.validated_data.items() if value is not None}


class ProjectProgressSerializer(serializers.Serializer):
    total = serializers.IntegerField(help_text="Regular (not gold) items.")
    done = serializers.IntegerField(help_text="Regular items with k responses.")
    in_progress = serializers.IntegerField()
    remaining = serializers.IntegerField(help_text="Regular items nobody has taken yet.")
    gold = serializers.IntegerField(help_text="Gold items.")
    responses = serializers.IntegerField()


class StudyLinkSerializer(serializers.Serializer):
    platform = serializers.CharField(
        source="study_platform", help_text="prolific, mturk, or empty: no study link (invites only)."
    )
    url = serializers.SerializerMethodField(
        help_text="The link to paste into the platform, on this site's address; null without one."
    )
    quota = serializers.IntegerField(source="study_quota", help_text="Tasks per participant.")
    completion_code = serializers.CharField()
    completion_url = serializers.CharField()
    pay_per_hour = serializers.DecimalField(max_digits=8, decimal_places=2, allow_null=True)
    bonus_gold_accuracy = serializers.FloatField(allow_null=True)

    def get_url(self, project) -> str | None:
        return self.context["study_url"]


class ProjectSerializer(serializers.Serializer):
    """A project as the list shows it."""

    slug = serializers.CharField()
    name = serializers.CharField()
    overlap = serializers.IntegerField(help_text="Workers who rate each item (k).")
    is_active = serializers.BooleanField(help_text="Open for work.")
    published_at = serializers.DateTimeField(allow_null=True, help_text="When its ratings were made public.")
    created_at = serializers.DateTimeField()
    url = serializers.SerializerMethodField(help_text="This project in the API.")

    def get_url(self, project) -> str:
        return self.context["request"].build_absolute_uri(reverse("api-project-detail", args=[project.slug]))


class ProjectDetailSerializer(ProjectSerializer):
    datasets = serializers.SerializerMethodField(help_text="Slugs of the project's datasets.")
    lease_seconds = serializers.IntegerField()
    instructions = serializers.CharField(help_text="Markdown shown to workers.")
    gold_rate = serializers.FloatField()
    gold_threshold = serializers.FloatField()
    gold_min_answers = serializers.IntegerField()
    max_sessions_per_worker = serializers.IntegerField()
    items = serializers.SerializerMethodField(help_text="Items in the project, gold ones included.")
    workers = serializers.SerializerMethodField(help_text="Workers of the project.")
    progress = serializers.SerializerMethodField()
    study_link = serializers.SerializerMethodField()

    def get_datasets(self, project) -> list[str]:
        return sorted(project.datasets.values_list("slug", flat=True))

    def get_items(self, project) -> int:
        return project.items.count()

    def get_workers(self, project) -> int:
        return project.workers.count()

    @extend_schema_field(ProjectProgressSerializer)
    def get_progress(self, project) -> dict:
        return ProjectProgressSerializer(self.context["progress"]).data

    @extend_schema_field(StudyLinkSerializer)
    def get_study_link(self, project) -> dict:
        return StudyLinkSerializer(project, context=self.context).data


class WorkerSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    external_id = serializers.CharField(help_text="The crowd platform's id, or empty.")
    platform = serializers.CharField(help_text="Set for a participant a study link created.")
    invite_live = serializers.SerializerMethodField(
        help_text="Whether the worker's invite link works (not revoked or expired)."
    )
    invite_expires_at = serializers.DateTimeField(allow_null=True, help_text="Null: revoked.")
    responses = serializers.IntegerField(
        source="response_count", help_text="Responses submitted in this project."
    )
    excluded = serializers.BooleanField()
    excluded_reason = serializers.CharField()
    created_at = serializers.DateTimeField()

    def get_invite_live(self, worker) -> bool:
        return worker.invite_expires_at is not None and worker.invite_expires_at > self.context["now"]


class WorkersAddSerializer(serializers.Serializer):
    count = StrictIntegerField(help_text="How many workers to add (1-500).")
    external_ids = serializers.ListField(
        child=StrictCharField(),
        required=False,
        help_text="Optional: each new worker's id on a crowd platform, as many as `count`, all different "
        "and not yet taken, none with surrounding spaces or invisible characters. All or none are added.",
    )


class InviteSerializer(serializers.Serializer):
    worker_id = serializers.IntegerField()
    external_id = serializers.CharField()
    invite_url = serializers.CharField(
        help_text="The invite link on this site's address (its secret in the fragment), shown this once; "
        "empty when revoked."
    )
    invite_expires_at = serializers.CharField(help_text="ISO 8601, UTC; empty when revoked.")


class InvitesSerializer(serializers.Serializer):
    workers = InviteSerializer(many=True)
