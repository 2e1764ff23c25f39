"""Serializers of the worker API. Input fields are strict about JSON types: "3" is not a rating and
"yes" is not a boolean, so a client bug answers 400 instead of storing a guess."""

from __future__ import annotations

import functools

from rest_framework import serializers

from annotation.markdown import render_markdown
from annotation.models import Assignment, AssignmentStatus, Response
from annotation.selectors import example_answer_options, example_task_question
from generation.models import Example

# A project's instructions are rendered with every task it hands out; they rarely change, so each
# process keeps the latest few renderings (keyed by the Markdown source itself, never stale).
_instructions_html = functools.lru_cache(maxsize=32)(render_markdown)


class StrictIntegerField(serializers.IntegerField):
    default_error_messages = {"invalid": "A JSON integer is required."}

    def to_internal_value(self, data):
        if isinstance(data, bool) or not isinstance(data, int):
            self.fail("invalid")
        return super().to_internal_value(data)


class StrictCharField(serializers.CharField):
    default_error_messages = {"invalid": "A JSON string is required."}

    def to_internal_value(self, data):
        if not isinstance(data, str):
            self.fail("invalid")
        return super().to_internal_value(data)


class StrictBooleanField(serializers.BooleanField):
    default_error_messages = {"invalid": "A JSON boolean (true or false) is required."}

    def to_internal_value(self, data):
        if not isinstance(data, bool):
            self.fail("invalid")
        return data


class SubmitSerializer(serializers.Serializer):
    """The worker's answers to the paper's three questions (Perez et al., 2022, §3.3)."""

    relevance = StrictIntegerField(
        min_value=1,
        max_value=5,
        help_text="Is this a good question for testing the described behavior? 1 (Horrible) to 5 (Amazing).",
    )
    answer = serializers.CharField(
        max_length=500,
        trim_whitespace=False,
        help_text="What is the correct answer to this question? If it's ambiguous, make your best guess "
        "anyways. One of the task's answer_options, exactly as given (e.g. ' Yes', ' (A)').",
    )
    ambiguous = StrictBooleanField(
        help_text="Is it unclear or ambiguous what the 'correct' answer should be?"
    )
    time_on_task_ms = StrictIntegerField(
        required=False,
        min_value=0,
        max_value=24 * 3600 * 1000,
        help_text="Time the worker spent on the item; measured on the server when omitted.",
    )
    comment = StrictCharField(
        required=False,
        default="",
        allow_blank=True,
        trim_whitespace=False,
        max_length=Response._meta.get_field("comment").max_length,
        help_text="An optional note for the researchers about this example.",
    )
    flagged_broken = StrictBooleanField(
        required=False,
        default=False,
        help_text="The worker reports the example as broken (unreadable, off topic, no right answer).",
    )

    def to_internal_value(self, data):
        # Workers no longer judge a label they are shown: they choose an answer and the server
        # compares it with the label. A client still sending the old verdict is told so plainly.
        if isinstance(data, dict) and "label_correct" in data:
            raise serializers.ValidationError(
                {
                    "label_correct": [
                        "No longer accepted: workers are not shown the label. Send the answer the "
                        "worker chose as `answer` (one of the task's answer_options)."
                    ]
                }
            )
        return super().to_internal_value(data)


class EditSerializer(SubmitSerializer):
    """A change of the worker's submitted answers: all of them again, as a submit sends them (the
    time on task is the first submit's and does not change)."""

    time_on_task_ms = None


class NextTaskRequestSerializer(serializers.Serializer):
    project = serializers.SlugField(
        required=False, help_text="Project slug; the worker's first active project when omitted."
    )


# The output serializers below declare their fields instead of deriving them from the models: a
# ModelSerializer rebuilds its fields from the model on every instance, which on the claim and
# submit endpoints cost more CPU than the database work itself. The two that answer every claim and
# every submit go further and write their output out (to_representation): even declared fields are
# copied for each response. Their fields still document the output (the schema), and a test checks
# that the written-out output equals what DRF would make of those fields.

_datetime = serializers.DateTimeField()


class TaskExampleSerializer(serializers.Serializer):
    # What the worker needs to answer the paper's three questions, and never the label: the
    # behavior-matching answer is not sent, and the options come in a neutral order.
    text = serializers.CharField(
        read_only=True, help_text="The example as written by the LM (untrusted text)."
    )
    question = serializers.SerializerMethodField(
        help_text="The question as the evaluated model sees it (for a persona statement: 'Is the "
        "following statement something you would say?' and the statement). Untrusted text."
    )
    answer_options = serializers.SerializerMethodField(
        help_text="The answers to choose from, in a fixed neutral order (by their text), spelled as the "
        "example spells them: send one back as `answer`; show it without the leading space."
    )
    dataset = serializers.CharField(source="dataset.slug", read_only=True)
    behavior = serializers.CharField(
        source="dataset.behavior", read_only=True, help_text="The behavior the dataset tests."
    )
    behavior_description = serializers.CharField(source="dataset.description", read_only=True)

    def get_question(self, example: Example) -> str:
        return example_task_question(example=example)

    def get_answer_options(self, example: Example) -> list[str]:
        return example_answer_options(example=example)


class AssignmentSerializer(serializers.Serializer):
    id = serializers.IntegerField(read_only=True)
    project = serializers.CharField(source="project.slug", read_only=True)
    status = serializers.ChoiceField(choices=AssignmentStatus.choices, read_only=True)
    claimed_at = serializers.DateTimeField(read_only=True)
    expires_at = serializers.DateTimeField(read_only=True)
    example = TaskExampleSerializer(source="item.example", read_only=True)
    instructions = serializers.CharField(
        source="project.instructions", read_only=True, help_text="The project's instructions (Markdown)."
    )
    instructions_html = serializers.SerializerMethodField(help_text="The instructions as safe HTML.")

    def get_instructions_html(self, obj: Assignment) -> str:
        return str(_instructions_html(obj.project.instructions))

    def to_representation(self, obj: Assignment) -> dict:
        example = obj.item.example
        dataset = example.dataset
        return {
            "id": obj.pk,
            "project": obj.project.slug,
            "status": obj.status,
            "claimed_at": _datetime.to_representation(obj.claimed_at),
            "expires_at": _datetime.to_representation(obj.expires_at),
            "example": {
                "text": example.text,
                "question": example_task_question(example=example),
                "answer_options": example_answer_options(example=example),
                "dataset": dataset.slug,
                "behavior": dataset.behavior,
                "behavior_description": dataset.description,
            },
            "instructions": obj.project.instructions,
            "instructions_html": self.get_instructions_html(obj),
        }


class AssignmentStatusSerializer(serializers.Serializer):
    id = serializers.IntegerField(read_only=True)
    status = serializers.ChoiceField(choices=AssignmentStatus.choices, read_only=True)
    expires_at = serializers.DateTimeField(read_only=True)


class ResponseSerializer(serializers.Serializer):
    id = serializers.IntegerField(read_only=True)
    assignment = serializers.IntegerField(source="assignment_id", read_only=True)
    relevance = serializers.IntegerField(read_only=True, help_text="1 (Horrible) to 5 (Amazing).")
    # Not label_correct: it would tell the worker the item's label after the fact (and a gold
    # item's expected answer).
    answer = serializers.CharField(read_only=True, help_text="The answer the worker chose.")
    ambiguous = serializers.BooleanField(read_only=True)
    time_on_task_ms = serializers.IntegerField(read_only=True, allow_null=True)
    comment = serializers.CharField(read_only=True)
    flagged_broken = serializers.BooleanField(read_only=True)
    created_at = serializers.DateTimeField(read_only=True)
    edited_at = serializers.DateTimeField(
        read_only=True, allow_null=True, help_text="When the worker last changed these answers."
    )

    def to_representation(self, obj: Response) -> dict:
        return {
            "id": obj.pk,
            "assignment": obj.assignment_id,
            "relevance": obj.relevance,
            "answer": obj.answer,
            "ambiguous": obj.ambiguous,
            "time_on_task_ms": obj.time_on_task_ms,
            "comment": obj.comment,
            "flagged_broken": obj.flagged_broken,
            "created_at": _datetime.to_representation(obj.created_at),
            "edited_at": None if obj.edited_at is None else _datetime.to_representation(obj.edited_at),
        }


class ProgressSerializer(serializers.Serializer):
    project = serializers.CharField()
    submitted = serializers.IntegerField(help_text="Responses this worker has submitted in the project.")
    items_needing_ratings = serializers.IntegerField(
        help_text="Regular items still short of ratings that this worker has not rated."
    )


class ErrorSerializer(serializers.Serializer):
    detail = serializers.CharField()
