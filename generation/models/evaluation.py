"""Evaluation runs: one model scored on one dataset, item by item; suites: several models on several
datasets in one job, each (model, dataset) pair a run of its own."""

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


class Scorer(models.TextChoices):
    """How an item's answer was read from the model. The paper's is LOGPROBS; the others serve models
    that give no log-probs of the prompt's tokens (chat APIs). Figures from different scorers are not
    comparable, so comparisons refuse to mix them."""

    LOGPROBS = "logprobs", "Log-prob of each answer given the prompt (the paper's)"
    TOP_LOGPROBS = "top-logprobs", "Top log-probs of the reply's first token (chat APIs)"
    PARSED = "parsed", "The answer parsed from the reply's text (no log-probs)"


class RunScorer(models.TextChoices):
    """The scoring a run asks for: LOGPROBS scores each answer choice; ANSWER asks the model for its
    answer and reads the first token's top log-probs, falling back to parsing the reply, item by item
    (each item records which of the two it got, as a Scorer)."""

    LOGPROBS = "logprobs", "Log-probs of each answer choice (the paper's)"
    ANSWER = "answer", "Ask for the answer: first-token top log-probs, else the parsed reply"


class EvaluationSuite(RunBase):
    """Several models scored on several datasets as one experiment (the paper's Fig. 1/5): each model
    is loaded once and the requests of all datasets are scored together; each (model, dataset) pair is
    an EvaluationRun of the suite, so a suite resumes per (model, dataset, item) like a single run."""

    Scorer = RunScorer

    name = models.CharField(max_length=200, blank=True)
    # In the order given; each a model spec string (generation.lm.specs).
    model_specs = models.JSONField(default=list)
    datasets = models.ManyToManyField(Dataset, related_name="evaluation_suites")
    prompt_format = models.CharField(max_length=10, choices=PromptFormat.choices, default=PromptFormat.PAPER)
    scorer = models.CharField(max_length=20, choices=RunScorer.choices, default=RunScorer.LOGPROBS)
    limit = models.PositiveIntegerField(
        null=True, blank=True, help_text="Stratified sample size per dataset; empty: all."
    )
    seed = models.IntegerField(default=0)
    # Written only by the suite service: items to score in all, and the scoring time per model.
    item_count = models.PositiveIntegerField(default=0)
    results = models.JSONField(default=dict, blank=True)

    class Meta(RunBase.Meta):
        constraints = [
            models.CheckConstraint(
                condition=Q(prompt_format__in=PromptFormat.values), name="suite_prompt_format_valid"
            ),
            models.CheckConstraint(condition=Q(status__in=Status.values), name="suite_status_valid"),
            models.CheckConstraint(condition=Q(scorer__in=RunScorer.values), name="suite_scorer_valid"),
        ]

    def __str__(self) -> str:
        return self.name or f"suite #{self.pk}"

    def get_absolute_url(self) -> str:
        return reverse("generation:suite-detail", kwargs={"pk": self.pk})


class EvaluationRun(RunBase):
    """One model scored on one dataset (or a stratified sample of it) in one prompt format.

    The score is the share of items where the argmax over the answer choices of
    log p(answer | prompt) is the behavior-matching answer (Perez et al., 2022)."""

    Format = PromptFormat
    Task = EvaluationTask
    Scorer = RunScorer

    dataset = models.ForeignKey(Dataset, on_delete=models.CASCADE, related_name="evaluation_runs")
    suite = models.ForeignKey(
        EvaluationSuite, null=True, blank=True, on_delete=models.CASCADE, related_name="runs"
    )
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
    scorer = models.CharField(max_length=20, choices=RunScorer.choices, default=RunScorer.LOGPROBS)

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
            models.CheckConstraint(condition=Q(scorer__in=RunScorer.values), name="run_scorer_valid"),
            # A suite scores each model once per dataset.
            models.UniqueConstraint(
                fields=["suite", "model_spec", "dataset"],
                condition=Q(suite__isnull=False),
                name="run_unique_in_suite",
            ),
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
    scorer = models.CharField(max_length=20, choices=Scorer.choices, default=Scorer.LOGPROBS)
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
            models.CheckConstraint(
                condition=Q(scorer__in=Scorer.values), name="evaluation_item_scorer_valid"
            ),
        ]

    def __str__(self) -> str:
        return f"run {self.run_id} item {self.example_id}"

    @property
    def predicted(self) -> str:
        return self.choices[self.predicted_index]
