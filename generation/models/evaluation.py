"""Evaluation runs: one model scored on one dataset, item by item."""

from django.db import models
from django.db.models import Q
from django.urls import reverse

from generation.models.base import RunBase, Status
from generation.models.catalog import Dataset, Example


class PromptFormat(models.TextChoices):
    PLAIN = "plain", "Plain (the question as-is)"
    PAPER = "paper", "Paper (Human/Assistant)"
    CHAT = "chat", "The model's chat template"


class EvaluationTask(models.TextChoices):
    BEHAVIOR = "behavior", "Behavior (share of answers matching the behavior)"
    WINOGENDER = "winogender", "Winogender gender bias (Pearson r with BLS % women)"


class EvaluationRun(RunBase):
    """One model scored on one dataset (or a stratified sample of it) in one prompt format.

    The score is the share of items where the argmax over the answer choices of
    log p(answer | prompt) is the behavior-matching answer (Perez et al., 2022)."""

    Format = PromptFormat
    Task = EvaluationTask

    dataset = models.ForeignKey(Dataset, on_delete=models.CASCADE, related_name="evaluation_runs")
    model_spec = models.CharField(max_length=500)
    model_name = models.CharField(max_length=300, blank=True)
    model_fingerprint = models.CharField(max_length=200, blank=True)
    model_info = models.JSONField(default=dict, blank=True)
    prompt_format = models.CharField(max_length=10, choices=PromptFormat.choices)
    task = models.CharField(max_length=20, choices=EvaluationTask.choices, default=EvaluationTask.BEHAVIOR)
    format_fingerprint = models.CharField(max_length=64, blank=True)
    data_fingerprint = models.CharField(max_length=64, blank=True)
    limit = models.PositiveIntegerField(
        null=True, blank=True, help_text="Stratified sample size; empty: all."
    )
    seed = models.IntegerField(default=0)

    # Written only by generation.evaluation.services from the stored items.
    item_count = models.PositiveIntegerField(default=0)
    matching_count = models.PositiveIntegerField(default=0)
    percent_matching = models.FloatField(null=True, blank=True)
    ci_low = models.FloatField(null=True, blank=True)
    ci_high = models.FloatField(null=True, blank=True)
    mean_p_match = models.FloatField(null=True, blank=True)
    items_per_second = models.FloatField(null=True, blank=True)
    seconds = models.FloatField(null=True, blank=True)
    # Figures a task computes besides the share matching (Winogender: r, its CI, n), by name.
    results = models.JSONField(default=dict, blank=True)

    class Meta(RunBase.Meta):
        constraints = [
            models.CheckConstraint(
                condition=Q(prompt_format__in=PromptFormat.values), name="run_prompt_format_valid"
            ),
            models.CheckConstraint(condition=Q(status__in=Status.values), name="run_status_valid"),
            models.CheckConstraint(condition=Q(task__in=EvaluationTask.values), name="run_task_valid"),
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
    # What a task stores per item besides the choice scores (Winogender: the renormalised pronoun
    # probabilities, the occupation and its BLS share of women).
    details = models.JSONField(default=dict, blank=True)

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
