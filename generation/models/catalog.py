"""Datasets of model-written evaluations and their examples.

`generation` owns datasets because generating them is what this app does; imports of the released
files land in the same tables, so every other app (annotation, analysis, the explorer, evaluation)
reads one kind of dataset whatever its origin.
"""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.urls import reverse

from generation.catalog.formats import record_text


class Collection(models.Model):
    """A family of datasets: the released ones (persona, sycophancy, advanced-ai-risk,
    winogenerated) and any a user creates for generated data."""

    slug = models.SlugField(max_length=100, unique=True)
    name = models.CharField(max_length=200)
    description = models.TextField(blank=True)
    # Released collections come from the paper; user collections are made on this site.
    is_released = models.BooleanField(default=False)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name

    def get_absolute_url(self) -> str:
        return reverse("generation:collection-detail", kwargs={"slug": self.slug})


class DatasetKind(models.TextChoices):
    YES_NO = "yes_no", "Yes/no statements"
    MULTIPLE_CHOICE = "multiple_choice", "Multiple choice"
    SYCOPHANCY = "sycophancy", "Sycophancy"
    WINOGENDER = "winogender", "Winogender schemas"


class DatasetOrigin(models.TextChoices):
    IMPORTED = "imported", "Imported"
    GENERATED = "generated", "Generated"


class DatasetPurpose(models.TextChoices):
    # Items a model is scored on.
    EVALUATION = "evaluation", "Evaluation"
    # Gold examples that seed few-shot generation; never scored as a benchmark.
    FEW_SHOT = "few_shot", "Few-shot generation prompts"
    # Inputs to a generation pipeline, e.g. the Winogender occupation list.
    REFERENCE = "reference", "Reference material"


class BehaviorDirection(models.TextChoices):
    """Whether matching the behavior is what a developer would want: an inverse-scaling flag (a trend
    with size towards the undesired answer) needs to know which way is bad."""

    UNSTATED = "", "Not stated"
    UNDESIRED = "undesired", "Undesired (e.g. power-seeking, sycophancy)"
    DESIRED = "desired", "Desired"


class DatasetQuerySet(models.QuerySet):
    def on_map(self) -> DatasetQuerySet:
        """The datasets the explorer's global map is drawn from: evaluation datasets with examples
        (few-shot prompts and reference lists are inputs to generation, not evaluations)."""
        return self.filter(purpose=DatasetPurpose.EVALUATION, example_count__gt=0)


class Dataset(models.Model):
    Kind = DatasetKind
    Origin = DatasetOrigin
    Purpose = DatasetPurpose
    Direction = BehaviorDirection

    collection = models.ForeignKey(Collection, on_delete=models.PROTECT, related_name="datasets")
    slug = models.SlugField(max_length=150, unique=True)
    behavior = models.CharField(max_length=200, help_text="The behavior the dataset tests.")
    description = models.TextField(blank=True)
    category = models.CharField(max_length=100, blank=True)
    kind = models.CharField(max_length=20, choices=Kind.choices)
    origin = models.CharField(max_length=20, choices=Origin.choices)
    purpose = models.CharField(max_length=20, choices=Purpose.choices, default=Purpose.EVALUATION)
    # What the assistant's turn starts with before the answer when a model is scored on the dataset
    # in the paper's format, e.g. " I believe the best answer is" (the released sycophancy READMEs).
    answer_prefix = models.CharField(
        max_length=200,
        blank=True,
        help_text="Text the assistant's reply starts with before the answer choice, e.g. "
        "' I believe the better option is'; empty: the answer follows 'Assistant:' directly.",
    )

    behavior_direction = models.CharField(
        max_length=10,
        blank=True,
        choices=BehaviorDirection.choices,
        help_text="Whether matching the behavior is undesired; suites flag inverse scaling only where "
        "it is stated.",
    )

    # Provenance of imports: which file, its exact bytes, and the upstream commit when known.
    source_path = models.CharField(max_length=500, blank=True)
    source_sha256 = models.CharField(max_length=64, blank=True)
    upstream_commit = models.CharField(max_length=40, blank=True)

    # What export needs to write records back exactly as they came in: the key order of the
    # records and how their JSON was serialised (ASCII escapes or raw UTF-8).
    field_order = models.JSONField(default=list, blank=True)
    json_ensure_ascii = models.BooleanField(default=True)

    # Derived from the examples; written only by generation.catalog.services.dataset_refresh_stats.
    example_count = models.PositiveIntegerField(default=0)
    label_counts = models.JSONField(default=dict, blank=True)
    mean_label_confidence = models.FloatField(null=True, blank=True)
    # Warnings found on import (duplicates, imbalance, sorted files), shown on the dataset page.
    import_report = models.JSONField(default=dict, blank=True)

    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    objects = DatasetQuerySet.as_manager()

    class Meta:
        ordering = ["collection__name", "slug"]
        constraints = [
            # The same released file is imported once, even by two processes at the same time.
            models.UniqueConstraint(
                fields=["source_sha256"],
                condition=~Q(source_sha256=""),
                name="dataset_source_sha256_unique",
            ),
            models.CheckConstraint(condition=Q(kind__in=DatasetKind.values), name="dataset_kind_valid"),
            models.CheckConstraint(
                condition=Q(origin__in=DatasetOrigin.values),
                name="dataset_origin_valid",
            ),
            models.CheckConstraint(
                condition=Q(purpose__in=DatasetPurpose.values),
                name="dataset_purpose_valid",
            ),
        ]

    def __str__(self) -> str:
        return self.slug

    def get_absolute_url(self) -> str:
        return reverse("generation:dataset-detail", kwargs={"slug": self.slug})

    @property
    def is_labelled(self) -> bool:
        return bool(self.label_counts)

    @property
    def is_scorable(self) -> bool:
        """Whether a model can be scored on it: an evaluation dataset with a gold answer per item."""
        return self.purpose == DatasetPurpose.EVALUATION and self.is_labelled


def not_matching_list(value: str | list[str] | None) -> list[str]:
    """answer_not_matching_behavior as a list: it is a string, a list of strings (sycophancy on
    PhilPapers), or null. For rows read without their Example (values_list)."""
    if value is None:
        return []
    return list(value) if isinstance(value, list) else [value]


class Example(models.Model):
    dataset = models.ForeignKey(Dataset, on_delete=models.CASCADE, related_name="examples")
    # 0-based line number in the released file (or the order a generator kept them in).
    position = models.PositiveIntegerField()
    question = models.TextField(blank=True)
    statement = models.TextField(blank=True)
    answer_matching_behavior = models.CharField(max_length=500, blank=True, db_index=True)
    # A string, or a list of strings when several answers do not match (sycophancy on PhilPapers).
    answer_not_matching_behavior = models.JSONField(null=True, blank=True)
    label_confidence = models.FloatField(null=True, blank=True)
    # Every other field of the record, kept verbatim (user_affiliation, pronoun_options, ...).
    extra = models.JSONField(default=dict, blank=True)
    # Key order of this record when it differs from the dataset's field_order (rare).
    key_order = models.JSONField(null=True, blank=True)
    # sha256 of the normalised main text; finds exact duplicates and keys the embedding cache.
    text_hash = models.CharField(max_length=64, db_index=True)

    class Meta:
        ordering = ["dataset", "position"]
        constraints = [
            models.UniqueConstraint(fields=["dataset", "position"], name="example_position_unique"),
            models.CheckConstraint(
                condition=Q(label_confidence__isnull=True)
                | Q(label_confidence__gte=0.0, label_confidence__lte=1.0),
                name="example_label_confidence_range",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.dataset.slug}#{self.position}"

    def get_absolute_url(self) -> str:
        return reverse(
            "generation:example-detail",
            kwargs={"slug": self.dataset.slug, "position": self.position},
        )

    @property
    def text(self) -> str:
        """The text a person reads: the statement, the question, or a Winogender sentence."""
        return record_text(statement=self.statement, question=self.question, extra=self.extra)

    @property
    def answer_choices(self) -> tuple[str, ...]:
        """Every answer option of the item, the behavior-matching one first."""
        return (self.answer_matching_behavior, *self.not_matching_answers)

    @property
    def not_matching_answers(self) -> list[str]:
        return not_matching_list(self.answer_not_matching_behavior)
