"""What jobs and runs share: one status vocabulary, the QuerySet methods that name its rules, and the
abstract base of evaluation and generation runs."""

from __future__ import annotations

from django.conf import settings
from django.db import models


class Status(models.TextChoices):
    """The life of a job and of the run it executes: a run mirrors its job's states, so both tables
    use the same values and a page can compare them."""

    QUEUED = "queued", "Queued"
    RUNNING = "running", "Running"
    SUCCEEDED = "succeeded", "Succeeded"
    FAILED = "failed", "Failed"
    CANCELLED = "cancelled", "Cancelled"


# Not yet done: waiting for a worker, or being worked on.
IN_PROGRESS: tuple[Status, ...] = (Status.QUEUED, Status.RUNNING)
# Ended, whatever the outcome (a failed run can still be resumed by hand, which starts it again).
FINISHED: tuple[Status, ...] = (Status.SUCCEEDED, Status.FAILED, Status.CANCELLED)


class StatusQuerySet(models.QuerySet):
    """Rows with a `status` of Status."""

    def in_progress(self) -> StatusQuerySet:
        return self.filter(status__in=IN_PROGRESS)

    def succeeded(self) -> StatusQuerySet:
        return self.filter(status=Status.SUCCEEDED)


class StatusBase(models.Model):
    """A row with a Status: a job, or a run of long work. The rules on its status (in progress,
    finished) are written here once."""

    Status = Status

    status = models.CharField(max_length=20, choices=Status.choices, default=Status.QUEUED)

    objects = StatusQuerySet.as_manager()

    class Meta:
        abstract = True

    @property
    def is_in_progress(self) -> bool:
        return self.status in IN_PROGRESS

    @property
    def is_finished(self) -> bool:
        return self.status in FINISHED


class RunBase(StatusBase):
    """A run of long work (an evaluation, a generation), usually carried out by a Job. The run keeps
    a status of its own beside its job's: the management commands run (and resume) a run in-process,
    with no job, and a job may end without its run being told (a model that fails to load ends the
    job before the run starts)."""

    error = models.TextField(blank=True)
    job = models.ForeignKey(
        "generation.Job", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        abstract = True
        ordering = ["-created_at"]

    @property
    def is_stalled(self) -> bool:
        """In progress by its own row, while the job that would finish it has ended: the job died
        before the run started (a model that failed to load) or a queued job was cancelled. Nothing
        will move the run on, so a page must stop waiting and show the job's outcome instead.
        Reads `job`: select it with the run."""
        return self.is_in_progress and self.job is not None and self.job.is_finished
