"""Background jobs: the one table every long piece of work (import, evaluation, generation,
the explorer's maps) reports its progress in."""

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.urls import reverse

from generation.models.base import Status, StatusBase


class JobKind(models.TextChoices):
    IMPORT = "import", "Import a dataset file"
    EVALUATE = "evaluate", "Evaluate a model"
    SUITE = "suite", "Evaluate models on datasets"
    GENERATE = "generate", "Generate a dataset"
    EXPLORE = "explore", "Build the explorer map"


class Job(StatusBase):
    """Long work that runs on a Celery worker (imports now; generation, evaluation and embedding
    later). Progress and outcome live here, not in a Celery result backend, so the site shows them
    with one query and they survive a broker restart."""

    Kind = JobKind

    kind = models.CharField(max_length=30, choices=JobKind.choices)
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
            models.CheckConstraint(condition=Q(status__in=Status.values), name="job_status_valid"),
        ]

    def __str__(self) -> str:
        return f"{self.get_kind_display()} #{self.pk} ({self.status})"

    def get_absolute_url(self) -> str:
        return reverse("generation:job-detail", kwargs={"pk": self.pk})

    @property
    def percent(self) -> float | None:
        if not self.progress_total:
            return None
        return min(100.0, 100.0 * self.progress_done / self.progress_total)
