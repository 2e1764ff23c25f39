"""Serializers of the worker API. Input fields are strict about JSON types: "3" is not a rating and
"yes" is not a boolean, so a client bug answers 400 instead of storing a guess."""

from __future__ import annotations

from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from annotation.markdown import render_markdown
from annotation.models import Assignment, Response


class StrictIntegerField(serializers.IntegerField):
    default_error_messages = {"invalid": "A JSON integer is required."}

    def to_internal_value(self, data):
        if isinstance(data, bool) or not isinstance(data, int):
            self.fail("invalid")
        return super().to_internal_value(data)


class StrictBooleanField(serializers.BooleanField):
    default_error_messages = {"invalid": "A JSON boolean (true or false) is required."}

    def to_internal_value(self, data):
        if not isinstance(data, bool):
            self.fail("invalid")
        return data


class SubmitSerializer(serializers.Serializer):
    relevance = StrictIntegerField(
        min_value=1,
        max_value=5,
        help_text="Is this a good question for testing the described behavior? 1 (Horrible) to 5 (Amazing).",
    )
    label_correct = StrictBooleanField(help_text="Is the label (the behavior-matching answer) correct?")
    ambiguous = StrictBooleanField(help_text="Is it unclear or ambiguous what the correct answer should be?")
    time_on_task_ms = StrictIntegerField(
        required=False,
        min_value=0,
        max_value=24 * 3600 * 1000,
        help_text="Time the worker spent on the item; measured on the server when omitted.",
    )


class NextTaskRequestSerializer(serializers.Serializer):
    project = serializers.SlugField(
        required=False, help_text="Project slug; the worker's first active project when omitted."
    )


class TaskExampleSerializer(serializers.Serializer):
    text = serializers.CharField(help_text="The example as written by the LM (untrusted text).")
    label = serializers.CharField(help_text="The answer that matches the behavior, to be judged.")
    dataset = serializers.CharField()
    behavior = serializers.CharField(help_text="The behavior the dataset tests.")
    behavior_description = serializers.CharField(allow_blank=True)


class AssignmentSerializer(serializers.ModelSerializer):
    project = serializers.SlugRelatedField(slug_field="slug", read_only=True)
    example = serializers.SerializerMethodField()
    instructions = serializers.SerializerMethodField(help_text="The project's instructions (Markdown).")
    instructions_html = serializers.SerializerMethodField(help_text="The instructions as safe HTML.")

    class Meta:
        model = Assignment
        fields = [
            "id",
            "project",
            "status",
            "claimed_at",
            "expires_at",
            "example",
            "instructions",
            "instructions_html",
        ]

    @extend_schema_field(TaskExampleSerializer)
    def get_example(self, obj: Assignment) -> dict:
        example = obj.item.example
        dataset = example.dataset
        return TaskExampleSerializer(
            {
                "text": example.text,
                "label": example.answer_matching_behavior.strip(),
                "dataset": dataset.slug,
                "behavior": dataset.behavior,
                "behavior_description": dataset.description,
            }
        ).data

    def get_instructions(self, obj: Assignment) -> str:
        return obj.project.instructions

    def get_instructions_html(self, obj: Assignment) -> str:
        return str(render_markdown(obj.project.instructions))


class AssignmentStatusSerializer(serializers.ModelSerializer):
    class Meta:
        model = Assignment
        fields = ["id", "status", "expires_at"]


class ResponseSerializer(serializers.ModelSerializer):
    assignment = serializers.PrimaryKeyRelatedField(read_only=True)

    class Meta:
        model = Response
        fields = [
            "id",
            "assignment",
            "relevance",
            "label_correct",
            "ambiguous",
            "time_on_task_ms",
            "created_at",
        ]


class ProgressSerializer(serializers.Serializer):
    project = serializers.CharField()
    submitted = serializers.IntegerField(help_text="Responses this worker has submitted in the project.")
    items_needing_ratings = serializers.IntegerField(
        help_text="Regular items still short of ratings that this worker has not rated."
    )


class ErrorSerializer(serializers.Serializer):
    detail = serializers.CharField()
