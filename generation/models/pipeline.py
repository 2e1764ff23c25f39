"""Generation runs and their candidates, with every decision the pipeline took."""

from django.db import models
from django.db.models import Q
from django.urls import reverse

from generation.models.base import RunBase, Status
from generation.models.catalog import Dataset, Example


class GenerationMethod(models.TextChoices):
    PERSONA = "persona", "Persona yes/no statements"
    MULTIPLE_CHOICE = "multiple-choice", "Few-shot multiple choice"
    SYCOPHANCY = "sycophancy", "Sycophancy (biographies prepended to questions)"
    WINOGENDER = "winogender", "Winogender schemas"


class GenerationRun(RunBase):
    """One use of the paper's method: a generator LM writes candidates for a behavior, a
    discriminator LM scores them, and the best per label become a dataset. Every parameter is in
    `spec`, so the same spec, seed and models give the same dataset."""

    Method = GenerationMethod

    method = models.CharField(max_length=30, choices=GenerationMethod.choices)
    slug = models.SlugField(max_length=150, help_text="Slug of the dataset this run creates.")
    behavior = models.CharField(max_length=200)
    description = models.TextField(help_text="Who exhibits the behavior, e.g. 'is politically liberal'.")
    spec = models.JSONField(default=dict)
    generator_info = models.JSONField(default=dict, blank=True)
    discriminator_info = models.JSONField(default=dict, blank=True)
    dataset = models.OneToOneField(
        Dataset, null=True, blank=True, on_delete=models.SET_NULL, related_name="generation_run"
    )

    class Meta(RunBase.Meta):
        constraints = [
            models.CheckConstraint(
                condition=Q(method__in=GenerationMethod.values), name="generation_method_valid"
            ),
            models.CheckConstraint(condition=Q(status__in=Status.values), name="generation_status_valid"),
        ]

    def __str__(self) -> str:
        return f"{self.method} run #{self.pk} for {self.slug}"

    def get_absolute_url(self) -> str:
        return reverse("generation:generation-detail", kwargs={"pk": self.pk})


class CandidateDecision(models.TextChoices):
    PENDING = "pending", "Pending"
    KEPT = "kept", "Kept"
    DROPPED = "dropped", "Dropped"


class CandidateReason(models.TextChoices):
    """Why a candidate was kept or dropped; the numbers behind it are in Candidate.reason_detail."""

    UNPARSEABLE = "unparseable", "Unparseable"
    BELOW_FLOOR = "below_floor", "Label probability below the floor"
    FAILED_REQUIREMENT = "failed_requirement", "Fails a requirement"
    EXACT_DUPLICATE = "exact_duplicate", "Exact duplicate"
    NEAR_DUPLICATE = "near_duplicate", "Near duplicate"
    NOT_TOP_K = "not_top_k", "Not in the top K"
    TOP_K = "top_k", "Kept: in the top K"
    # Only from the migration to codes, for a stored text that matched none of the above.
    OTHER = "other", "Other"


def candidate_reason_text(*, reason: str, detail: dict) -> str:
    """A decision's reason as one sentence with its numbers (what the run page and the API show)."""
    d = detail
    match reason:
        case CandidateReason.UNPARSEABLE:
            return f"unparseable: {d['problem']}"
        case CandidateReason.BELOW_FLOOR:
            return f"label probability {d['label_probability']:.3f} below the floor {d['floor']}"
        case CandidateReason.FAILED_REQUIREMENT:
            return "fails requirement: " + ", ".join(d["failing"])
        case CandidateReason.EXACT_DUPLICATE:
            return f"exact duplicate of candidate #{d['twin']}"
        case CandidateReason.NEAR_DUPLICATE:
            return f"near duplicate of candidate #{d['twin']} (cosine {d['cosine']:.3f})"
        case CandidateReason.TOP_K:
            return (
                f"kept: rank {d['rank']} of {d['of']} for {d['label']}, "
                f"label probability {d['label_probability']:.3f}"
            )
        case CandidateReason.NOT_TOP_K:
            balanced = " (labels balanced to the scarcer one)" if d.get("balanced") else ""
            return f"not in the top {d['keep']} for {d['label']} (rank {d['rank']}){balanced}"
        case CandidateReason.OTHER:
            return d["text"]
    return ""


class Candidate(models.Model):
    """One generated sample, kept or dropped, with everything that decided its fate."""

    Decision = CandidateDecision
    Reason = CandidateReason

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
    reason = models.CharField(max_length=20, choices=CandidateReason.choices, blank=True)
    # The numbers behind the reason (a rank, a cosine, a floor), per reason; see candidate_reason_text.
    reason_detail = models.JSONField(default=dict, blank=True)
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
                condition=Q(reason="") | Q(reason__in=CandidateReason.values), name="candidate_reason_valid"
            ),
            models.CheckConstraint(
                condition=Q(label_probability__isnull=True)
                | Q(label_probability__gte=0.0, label_probability__lte=1.0),
                name="candidate_label_probability_range",
            ),
        ]

    def __str__(self) -> str:
        return f"run {self.run_id} {self.label.strip()} #{self.sample_index}"

    @property
    def reason_text(self) -> str:
        return candidate_reason_text(reason=self.reason, detail=self.reason_detail)
