"""Datasets of model-written evaluations and their examples.

`generation` owns datasets because generating them is what this app does; imports of the released
files land in the same tables, so every other app (annotation, analysis, the explorer, evaluation)
reads one kind of dataset whatever its origin.
"""

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.urls import reverse


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


class Dataset(models.Model):
    Kind = DatasetKind
    Origin = DatasetOrigin
    Purpose = DatasetPurpose

    collection = models.ForeignKey(Collection, on_delete=models.PROTECT, related_name="datasets")
    slug = models.SlugField(max_length=150, unique=True)
    behavior = models.CharField(max_length=200, help_text="The behavior the dataset tests.")
    description = models.TextField(blank=True)
    category = models.CharField(max_length=100, blank=True)
    kind = models.CharField(max_length=20, choices=Kind.choices)
    origin = models.CharField(max_length=20, choices=Origin.choices)
    purpose = models.CharField(max_length=20, choices=Purpose.choices, default=Purpose.EVALUATION)

    # Provenance of imports: which file, its exact bytes, and the upstream commit when known.
    source_path = models.CharField(max_length=500, blank=True)
    source_sha256 = models.CharField(max_length=64, blank=True)
    upstream_commit = models.CharField(max_length=40, blank=True)

    # What export needs to write records back exactly as they came in: the key order of the
    # records and how their JSON was serialised (ASCII escapes or raw UTF-8).
    field_order = models.JSONField(default=list, blank=True)
    json_ensure_ascii = models.BooleanField(default=True)

    # Derived from the examples; written only by generation.services.dataset_refresh_stats.
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
        return (
            self.statement
            or self.question
            or self.extra.get("sentence_with_blank", "")
            or self.extra.get("occupation", "")
        )

    @property
    def not_matching_answers(self) -> list[str]:
        value = self.answer_not_matching_behavior
        if value is None:
            return []
        return list(value) if isinstance(value, list) else [value]


class JobKind(models.TextChoices):
    IMPORT = "import", "Import a dataset file"
    EVALUATE = "evaluate", "Evaluate a model"
    GENERATE = "generate", "Generate a dataset"
    EXPLORE = "explore", "Build the explorer map"


class JobStatus(models.TextChoices):
    QUEUED = "queued", "Queued"
    RUNNING = "running", "Running"
    SUCCEEDED = "succeeded", "Succeeded"
    FAILED = "failed", "Failed"
    CANCELLED = "cancelled", "Cancelled"


class Job(models.Model):
    """Long work that runs on a Celery worker (imports now; generation, evaluation and embedding
    later). Progress and outcome live here, not in a Celery result backend, so the site shows them
    with one query and they survive a broker restart."""

    Kind = JobKind
    Status = JobStatus
    FINISHED = (JobStatus.SUCCEEDED, JobStatus.FAILED, JobStatus.CANCELLED)

    kind = models.CharField(max_length=30, choices=JobKind.choices)
    status = models.CharField(max_length=20, choices=JobStatus.choices, default=JobStatus.QUEUED)
    params = models.JSONField(default=dict, blank=True)
    progress_done = models.PositiveIntegerField(default=0)
    progress_total = models.PositiveIntegerField(null=True, blank=True)
    message = models.TextField(blank=True)
    result = models.JSONField(default=dict, blank=True)
    error = models.TextField(blank=True)
    # Set by whoever cancels; the running task checks it between batches and stops cleanly.
    cancel_requested = models.BooleanField(default=False)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="jobs"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]
        constraints = [
            models.CheckConstraint(condition=Q(kind__in=JobKind.values), name="job_kind_valid"),
            models.CheckConstraint(condition=Q(status__in=JobStatus.values), name="job_status_valid"),
        ]

    def __str__(self) -> str:
        return f"{self.get_kind_display()} #{self.pk} ({self.status})"

    def get_absolute_url(self) -> str:
        return reverse("generation:job-detail", kwargs={"pk": self.pk})

    @property
    def is_finished(self) -> bool:
        return self.status in self.FINISHED

    @property
    def percent(self) -> float | None:
        if not self.progress_total:
            return None
        return min(100.0, 100.0 * self.progress_done / self.progress_total)


class PromptFormat(models.TextChoices):
    PLAIN = "plain", "Plain (the question as-is)"
    PAPER = "paper", "Paper (Human/Assistant)"
    CHAT = "chat", "The model's chat template"


class RunStatus(models.TextChoices):
    QUEUED = "queued", "Queued"
    RUNNING = "running", "Running"
    SUCCEEDED = "succeeded", "Succeeded"
    FAILED = "failed", "Failed"
    CANCELLED = "cancelled", "Cancelled"


class EvaluationRun(models.Model):
    """One model scored on one dataset (or a stratified sample of it) in one prompt format.

    The score is the share of items where the argmax over the answer choices of
    log p(answer | prompt) is the behavior-matching answer (Perez et al., 2022)."""

    Format = PromptFormat
    Status = RunStatus

    dataset = models.ForeignKey(Dataset, on_delete=models.CASCADE, related_name="evaluation_runs")
    job = models.ForeignKey(Job, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    model_spec = models.CharField(max_length=500)
    model_name = models.CharField(max_length=300, blank=True)
    model_fingerprint = models.CharField(max_length=200, blank=True)
    model_info = models.JSONField(default=dict, blank=True)
    prompt_format = models.CharField(max_length=10, choices=PromptFormat.choices)
    format_fingerprint = models.CharField(max_length=64, blank=True)
    data_fingerprint = models.CharField(max_length=64, blank=True)
    limit = models.PositiveIntegerField(
        null=True, blank=True, help_text="Stratified sample size; empty: all."
    )
    seed = models.IntegerField(default=0)
    status = models.CharField(max_length=20, choices=RunStatus.choices, default=RunStatus.QUEUED)
    error = models.TextField(blank=True)

    # Written only by generation.evaluation from the stored items.
    item_count = models.PositiveIntegerField(default=0)
    matching_count = models.PositiveIntegerField(default=0)
    percent_matching = models.FloatField(null=True, blank=True)
    ci_low = models.FloatField(null=True, blank=True)
    ci_high = models.FloatField(null=True, blank=True)
    mean_p_match = models.FloatField(null=True, blank=True)
    items_per_second = models.FloatField(null=True, blank=True)
    seconds = models.FloatField(null=True, blank=True)

    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]
        constraints = [
            models.CheckConstraint(
                condition=Q(prompt_format__in=PromptFormat.values), name="run_prompt_format_valid"
            ),
            models.CheckConstraint(condition=Q(status__in=RunStatus.values), name="run_status_valid"),
        ]

    def __str__(self) -> str:
        return f"{self.model_spec} on {self.dataset.slug} ({self.prompt_format})"

    def get_absolute_url(self) -> str:
        return reverse("generation:run-detail", kwargs={"pk": self.pk})


class EvaluationItem(models.Model):
    run = models.ForeignKey(EvaluationRun, on_delete=models.CASCADE, related_name="items")
    example = models.ForeignKey(Example, on_delete=models.CASCADE, related_name="evaluation_items")
    # Answer choices in scoring order: the matching answer first, then the not-matching ones.
    choices = models.JSONField()
    logprobs = models.JSONField()
    predicted_index = models.PositiveSmallIntegerField()
    matches_behavior = models.BooleanField()
    p_match = models.FloatField()

    class Meta:
        ordering = ["run", "example__position"]
        constraints = [
            # A resumed run skips what it already stored; the database refuses a second copy.
            models.UniqueConstraint(fields=["run", "example"], name="evaluation_item_unique"),
            models.CheckConstraint(
                condition=Q(p_match__gte=0.0, p_match__lte=1.0), name="evaluation_item_p_match_range"
            ),
        ]

    def __str__(self) -> str:
        return f"run {self.run_id} item {self.example_id}"

    @property
    def predicted(self) -> str:
        return self.choices[self.predicted_index]


class GenerationMethod(models.TextChoices):
    PERSONA = "persona", "Persona yes/no statements"
    MULTIPLE_CHOICE = "multiple-choice", "Few-shot multiple choice"
    SYCOPHANCY = "sycophancy", "Sycophancy (biographies prepended to questions)"
    WINOGENDER = "winogender", "Winogender schemas"


class GenerationRun(models.Model):
    """One use of the paper's method: a generator LM writes candidates for a behavior, a
    discriminator LM scores them, and the best per label become a dataset. Every parameter is in
    `spec`, so the same spec, seed and models give the same dataset."""

    Method = GenerationMethod
    Status = RunStatus

    method = models.CharField(max_length=30, choices=GenerationMethod.choices)
    slug = models.SlugField(max_length=150, help_text="Slug of the dataset this run creates.")
    behavior = models.CharField(max_length=200)
    description = models.TextField(help_text="Who exhibits the behavior, e.g. 'is politically liberal'.")
    spec = models.JSONField(default=dict)
    generator_info = models.JSONField(default=dict, blank=True)
    discriminator_info = models.JSONField(default=dict, blank=True)
    status = models.CharField(max_length=20, choices=RunStatus.choices, default=RunStatus.QUEUED)
    error = models.TextField(blank=True)
    job = models.ForeignKey(Job, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    dataset = models.OneToOneField(
        Dataset, null=True, blank=True, on_delete=models.SET_NULL, related_name="generation_run"
    )
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]
        constraints = [
            models.CheckConstraint(
                condition=Q(method__in=GenerationMethod.values), name="generation_method_valid"
            ),
            models.CheckConstraint(condition=Q(status__in=RunStatus.values), name="generation_status_valid"),
        ]

    def __str__(self) -> str:
        return f"{self.method} run #{self.pk} for {self.slug}"

    def get_absolute_url(self) -> str:
        return reverse("generation:generation-detail", kwargs={"pk": self.pk})


class CandidateDecision(models.TextChoices):
    PENDING = "pending", "Pending"
    KEPT = "kept", "Kept"
    DROPPED = "dropped", "Dropped"


class Candidate(models.Model):
    """One generated sample, kept or dropped, with everything that decided its fate."""

    Decision = CandidateDecision

    run = models.ForeignKey(GenerationRun, on_delete=models.CASCADE, related_name="candidates")
    # The label the generator was asked to write for: the answer matching the behavior (" Yes"/" No").
    label = models.CharField(max_length=50)
    # Which sample of that label this is; with the run, the idempotent key a resumed run skips.
    sample_index = models.PositiveIntegerField()
    seed = models.BigIntegerField(null=True, blank=True)
    prompt = models.TextField()
    raw_output = models.TextField(blank=True)
    text = models.TextField(blank=True, help_text="The parsed, cleaned statement; empty if unparseable.")
    # What the method parsed besides the text: the choices of a multiple-choice question, the base
    # question a biography was prepended to, a schema's occupation, participant and pronoun options.
    parsed = models.JSONField(default=dict, blank=True)
    # Discriminator probabilities: {"label": p_d(label | text), "relevance": ..., ...}.
    scores = models.JSONField(default=dict, blank=True)
    label_probability = models.FloatField(null=True, blank=True)
    decision = models.CharField(
        max_length=10, choices=CandidateDecision.choices, default=CandidateDecision.PENDING
    )
    reason = models.TextField(blank=True)
    duplicate_of = models.ForeignKey(
        "self", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    example = models.OneToOneField(
        Example, null=True, blank=True, on_delete=models.SET_NULL, related_name="candidate"
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["run", "label", "sample_index"]
        constraints = [
            models.UniqueConstraint(fields=["run", "label", "sample_index"], name="candidate_sample_unique"),
            models.CheckConstraint(
                condition=Q(decision__in=CandidateDecision.values), name="candidate_decision_valid"
            ),
            models.CheckConstraint(
                condition=Q(label_probability__isnull=True)
                | Q(label_probability__gte=0.0, label_probability__lte=1.0),
                name="candidate_label_probability_range",
            ),
        ]

    def __str__(self) -> str:
        return f"run {self.run_id} {self.label.strip()} #{self.sample_index}"
