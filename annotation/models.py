"""Crowdworker validation of datasets (Perez et al., 2022, section 3): each item is rated by `overlap`
workers on the paper's three questions: is this a good question for testing the described behavior
(1-5), what is the correct answer (the worker chooses among the answer options without seeing the
label; agreeing with the label is derived from that choice), and is the correct answer unclear or
ambiguous.

The invariants that concurrency could break are enforced by the database, not only by code:

- one response per (item, worker) and one response per assignment (unique constraints);
- never more than `overlap` submitted responses, nor more than `overlap` reserved slots (submitted +
  live leases), per item: `ProjectItem` carries both counters, changed only inside the transaction that
  writes the assignment or response, under CheckConstraints against the item's own `overlap` column
  (a CheckConstraint cannot read the project row, so the project's overlap is copied onto each item
  when the item is created and never changed afterwards);
- a lease has exactly one worker (non-null foreign key) and at most one live lease exists per
  (item, worker) (partial unique constraint).
"""

from __future__ import annotations

import secrets
import unicodedata
from datetime import datetime, timedelta

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import models
from django.db.models import F, Q
from django.urls import reverse
from django.utils import timezone

from generation.models import Dataset, Example

# Gold items are shown to every worker once, so they are not capped by the project's overlap; this
# is their slot count (a project with more workers than this stops mixing gold in for the rest).
GOLD_ITEM_CAPACITY = 10_000


class StudyPlatform(models.TextChoices):
    PROLIFIC = "prolific", "Prolific"
    MTURK = "mturk", "Amazon Mechanical Turk"


class AnnotationProject(models.Model):
    name = models.CharField(max_length=200)
    slug = models.SlugField(max_length=100, unique=True)
    datasets = models.ManyToManyField(Dataset, related_name="annotation_projects", blank=True)
    overlap = models.PositiveSmallIntegerField(default=3, help_text="Workers who rate each item (k).")
    lease_seconds = models.PositiveIntegerField(
        default=300, help_text="How long a worker holds an item before its slot returns to the pool."
    )
    instructions = models.TextField(blank=True, help_text="Markdown (a safe subset) shown to workers.")
    gold_rate = models.FloatField(default=0.0, help_text="Share of tasks that are gold items (0-1).")
    gold_threshold = models.FloatField(
        default=0.7, help_text="Workers below this gold accuracy are flagged (0-1)."
    )
    gold_min_answers = models.PositiveSmallIntegerField(
        default=5, help_text="Gold answers a worker needs before their accuracy is judged."
    )
    is_active = models.BooleanField(default=True)
    max_sessions_per_worker = models.PositiveSmallIntegerField(
        default=1,
        help_text="Browsers a worker may be signed in on at once with their invite link; signing in "
        "on one more ends the oldest.",
    )
    # Set when a researcher closes the project and publishes its results: only then do the public
    # pages (the explorer's agreement overlay and point ratings) show its ratings, so a worker can
    # never read the crowd's answers to an item that is still being rated.
    published_at = models.DateTimeField(null=True, blank=True)
    # Entry from a crowd platform (Prolific, Amazon Mechanical Turk): the study link
    # /annotate/study/<study_token>/ with the platform's ids in its query finds or creates the worker
    # itself (annotation.services.studies). None: no study link, invites only.
    study_platform = models.CharField(max_length=10, choices=StudyPlatform.choices, blank=True)
    study_token = models.CharField(max_length=64, unique=True, null=True, blank=True)
    study_quota = models.PositiveIntegerField(
        default=20, help_text="Tasks one participant of the study link does before their completion code."
    )
    completion_code = models.CharField(
        max_length=64, blank=True, help_text="The code the platform expects when a participant finishes."
    )
    completion_url = models.URLField(
        max_length=500,
        blank=True,
        help_text="Where a finished participant is sent (Prolific: https://app.prolific.com/submissions/"
        "complete?cc=<code>). Mechanical Turk posts to its own turkSubmitTo instead.",
    )
    # Hourly rate and gold-accuracy bar of the payment report (annotation.selectors).
    pay_per_hour = models.DecimalField(max_digits=8, decimal_places=2, null=True, blank=True)
    bonus_gold_accuracy = models.FloatField(
        null=True, blank=True, help_text="Gold accuracy (0-1) at or above which a worker earns the bonus."
    )
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at"]
        constraints = [
            models.CheckConstraint(
                condition=Q(overlap__gte=1, overlap__lte=100), name="annotation_project_overlap_range"
            ),
            models.CheckConstraint(condition=Q(lease_seconds__gte=10), name="annotation_project_lease_min"),
            models.CheckConstraint(
                condition=Q(gold_rate__gte=0.0, gold_rate__lte=1.0), name="annotation_project_gold_rate"
            ),
            models.CheckConstraint(
                condition=Q(gold_threshold__gte=0.0, gold_threshold__lte=1.0),
                name="annotation_project_gold_threshold",
            ),
            models.CheckConstraint(
                condition=Q(max_sessions_per_worker__gte=1, max_sessions_per_worker__lte=100),
                name="annotation_project_max_sessions_range",
            ),
            models.CheckConstraint(
                condition=Q(study_quota__gte=1, study_quota__lte=10_000),
                name="annotation_project_study_quota",
            ),
            models.CheckConstraint(
                condition=Q(bonus_gold_accuracy__isnull=True)
                | Q(bonus_gold_accuracy__gte=0.0, bonus_gold_accuracy__lte=1.0),
                name="annotation_project_bonus_gold_accuracy",
            ),
        ]

    def __str__(self) -> str:
        return self.name

    def get_absolute_url(self) -> str:
        return reverse("annotation:project-detail", kwargs={"slug": self.slug})


def new_invite_token() -> str:
    return secrets.token_urlsafe(24)


def new_invite_expiry() -> datetime:
    return timezone.now() + timedelta(days=settings.MWE_INVITE_TTL_DAYS)


# Unicode categories of characters that do not show: controls (CR, ESC...), formats (zero-width
# space, BOM, bidi marks), line and paragraph separators, private use, unassigned and surrogates.
_HIDDEN_CATEGORIES = {"Cc", "Cf", "Cs", "Co", "Cn", "Zl", "Zp"}


def external_id_problem(value: str) -> str | None:
    """Why `value` cannot be a worker's external id, or None. Two ids that look the same must be
    the same string: an id with surrounding whitespace or an invisible character would either
    merge with another once stripped or pass for it unstripped, so both are refused."""
    if value != value.strip():
        return "has leading or trailing whitespace"
    if any(unicodedata.category(char) in _HIDDEN_CATEGORIES for char in value):
        return "has a control or invisible character"
    return None


def validate_external_id(value: str) -> None:
    problem = external_id_problem(value)
    if problem is not None:
        raise ValidationError(f"The external id {value!r} {problem}.", code="invalid")


class Worker(models.Model):
    """A crowdworker. Never deleted (their responses stay attributable); excluding is a reversible
    flag that stops new tasks and marks their responses in exports."""

    user = models.OneToOneField(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="annotation_worker",
    )
    external_id = models.CharField(
        max_length=200,
        blank=True,
        validators=[validate_external_id],
        help_text="e.g. the crowd platform's id.",
    )
    # Set for a worker a study link created: external_id is then that platform's participant id
    # (PROLIFIC_PID, workerId), unique per platform.
    platform = models.CharField(max_length=10, choices=StudyPlatform.choices, blank=True)
    projects = models.ManyToManyField(AnnotationProject, related_name="workers", blank=True)
    # The secret of the worker's invite link (/annotate/join/#<token>); replaced by rotating or
    # revoking it (annotation.services.workers), which also ends the sessions it signed in.
    invite_token = models.CharField(max_length=64, unique=True, default=new_invite_token)
    # The link signs no one in after this; None: revoked (no working link until rotated).
    invite_expires_at = models.DateTimeField(null=True, blank=True, default=new_invite_expiry)
    excluded = models.BooleanField(default=False)
    excluded_reason = models.TextField(blank=True)
    excluded_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["pk"]
        constraints = [
            models.UniqueConstraint(
                fields=["platform", "external_id"],
                condition=~Q(external_id=""),
                name="annotation_worker_platform_external_id",
            ),
        ]

    def __str__(self) -> str:
        return self.external_id or f"worker {self.pk}"


class WorkerSession(models.Model):
    """A browser session an invite link signed in, so that signing in again, rotating or revoking
    the link can end it in the session store (at most the project's `max_sessions_per_worker`
    per worker are kept)."""

    worker = models.ForeignKey(Worker, on_delete=models.CASCADE, related_name="sessions")
    session_key = models.CharField(max_length=40, unique=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["worker", "created_at", "pk"]

    def __str__(self) -> str:
        return f"session of worker {self.worker_id} since {self.created_at:%Y-%m-%d %H:%M}"


class StudySession(models.Model):
    """One arrival of a participant through a project's study link: the platform's study and
    session ids (Prolific STUDY_ID and SESSION_ID; Mechanical Turk hitId and assignmentId), kept for
    the payment report and to recognise a participant who comes back."""

    project = models.ForeignKey(AnnotationProject, on_delete=models.CASCADE, related_name="study_sessions")
    worker = models.ForeignKey(Worker, on_delete=models.PROTECT, related_name="study_sessions")
    platform = models.CharField(max_length=10, choices=StudyPlatform.choices)
    study_id = models.CharField(max_length=100, blank=True)
    session_id = models.CharField(max_length=100)
    # Mechanical Turk's turkSubmitTo (checked against its two hosts); empty for Prolific.
    submit_to = models.URLField(max_length=200, blank=True)
    started_at = models.DateTimeField(auto_now_add=True)
    completed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["project", "started_at", "pk"]
        constraints = [
            models.UniqueConstraint(
                fields=["project", "platform", "session_id"], name="annotation_study_session_unique"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.platform} session {self.session_id} of worker {self.worker_id}"


class ProjectItem(models.Model):
    project = models.ForeignKey(AnnotationProject, on_delete=models.CASCADE, related_name="items")
    example = models.ForeignKey(Example, on_delete=models.PROTECT, related_name="annotation_items")
    is_gold = models.BooleanField(default=False)
    # The expected answers of a gold item; None means "not checked".
    gold_label_correct = models.BooleanField(null=True, blank=True)
    gold_ambiguous = models.BooleanField(null=True, blank=True)
    # Copied from the project on creation (see the module docstring): the cap the counters obey.
    overlap = models.PositiveSmallIntegerField()
    # Submitted responses plus live (claimed) leases; what a claim checks and increments.
    reserved_count = models.PositiveSmallIntegerField(default=0)
    submitted_count = models.PositiveSmallIntegerField(default=0)

    class Meta:
        ordering = ["project", "pk"]
        constraints = [
            models.UniqueConstraint(fields=["project", "example"], name="annotation_item_unique"),
            models.CheckConstraint(
                condition=Q(submitted_count__lte=F("overlap")), name="annotation_item_submitted_le_overlap"
            ),
            models.CheckConstraint(
                condition=Q(reserved_count__lte=F("overlap")), name="annotation_item_reserved_le_overlap"
            ),
            models.CheckConstraint(
                condition=Q(submitted_count__lte=F("reserved_count")),
                name="annotation_item_submitted_le_reserved",
            ),
            models.CheckConstraint(condition=Q(overlap__gte=1), name="annotation_item_overlap_min"),
        ]
        indexes = [
            # The claim's scan: open items of a project in primary-key order. Partial, so items that
            # are full drop out of it and a claim never walks past them, however far the project
            # has progressed.
            models.Index(
                fields=["project", "is_gold", "id"],
                condition=Q(reserved_count__lt=F("overlap")),
                name="annotation_item_open",
            )
        ]

    def __str__(self) -> str:
        return f"{self.project.slug}: {self.example}"


class AssignmentStatus(models.TextChoices):
    CLAIMED = "claimed", "Claimed"
    SUBMITTED = "submitted", "Submitted"
    RELEASED = "released", "Released"
    EXPIRED = "expired", "Expired"


class Assignment(models.Model):
    """A lease: one worker holds one item's slot until `expires_at`."""

    Status = AssignmentStatus

    project = models.ForeignKey(AnnotationProject, on_delete=models.CASCADE, related_name="assignments")
    item = models.ForeignKey(ProjectItem, on_delete=models.CASCADE, related_name="assignments")
    worker = models.ForeignKey(Worker, on_delete=models.PROTECT, related_name="assignments")
    status = models.CharField(
        max_length=10, choices=AssignmentStatus.choices, default=AssignmentStatus.CLAIMED
    )
    claimed_at = models.DateTimeField()
    expires_at = models.DateTimeField()
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["pk"]
        constraints = [
            models.CheckConstraint(
                condition=Q(status__in=AssignmentStatus.values), name="annotation_assignment_status_valid"
            ),
            # Worker first: it doubles as the index of a worker's live leases.
            models.UniqueConstraint(
                fields=["worker", "item"],
                condition=Q(status="claimed"),
                name="annotation_assignment_one_live_lease",
            ),
            models.CheckConstraint(
                condition=Q(expires_at__gt=F("claimed_at")), name="annotation_assignment_expiry_after_claim"
            ),
        ]
        indexes = [
            models.Index(fields=["project", "status", "expires_at"], name="annotation_assignment_live"),
            # "Has this worker ever had this item?", asked of each candidate item by a claim.
            models.Index(fields=["worker", "item"], name="annotation_assignment_seen"),
        ]

    def __str__(self) -> str:
        return f"assignment {self.pk} ({self.status})"


class Response(models.Model):
    project = models.ForeignKey(AnnotationProject, on_delete=models.CASCADE, related_name="responses")
    item = models.ForeignKey(ProjectItem, on_delete=models.PROTECT, related_name="responses")
    worker = models.ForeignKey(Worker, on_delete=models.PROTECT, related_name="responses")
    assignment = models.OneToOneField(Assignment, on_delete=models.PROTECT, related_name="response")
    relevance = models.PositiveSmallIntegerField(help_text="1 (Horrible) to 5 (Amazing).")
    # The answer option the worker chose, exactly as the example spells it (" Yes", " (A)"); empty
    # only for a response recorded before workers chose answers whose choice cannot be recovered.
    answer = models.CharField(max_length=500, blank=True)
    # Whether `answer` is the label's answer (for a response without one: the stored verdict).
    label_correct = models.BooleanField()
    ambiguous = models.BooleanField()
    time_on_task_ms = models.PositiveIntegerField(null=True, blank=True)
    # The worker's free-text note and their "this example is broken" flag, for researchers to
    # review (annotation.selectors); a flag is resolved by a researcher, never by the worker.
    comment = models.TextField(blank=True, max_length=2000)
    flagged_broken = models.BooleanField(default=False)
    flag_resolved_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    # Set when the worker changed their answer after submitting it (allowed while its lease lasts).
    edited_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["pk"]
        constraints = [
            models.UniqueConstraint(fields=["item", "worker"], name="annotation_response_one_per_worker"),
            models.CheckConstraint(
                condition=Q(relevance__gte=1, relevance__lte=5), name="annotation_response_relevance_range"
            ),
        ]

    def __str__(self) -> str:
        return f"response {self.pk} by {self.worker_id}"


class ResearcherToken(models.Model):
    """A researcher's API token (`Authorization: Bearer mwe_...`) for the researcher API
    (annotation/researcher_api.py). Only a SHA-256 of the key is stored: the key is shown once, when
    it is made, and a copy of the database cannot be used to call the API. A fast hash suffices (no
    salt, no key stretching): the key is 256 random bits, not a password anyone could guess.

    Only staff hold tokens, and a token acts for its user only while they are active staff. Revoked
    tokens are kept (revoked_at) so that the admin shows who had which token when."""

    PREFIX = "mwe_"

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.CASCADE,
        related_name="researcher_tokens",
        limit_choices_to={"is_staff": True},
    )
    name = models.CharField(max_length=100, help_text="What the token is for, e.g. 'analysis notebook'.")
    # The key's first characters, for telling tokens apart in lists (they say nothing of the rest).
    prefix = models.CharField(max_length=16)
    key_sha256 = models.CharField(max_length=64, unique=True)
    created_at = models.DateTimeField(auto_now_add=True)
    # Written at most once a minute per token (annotation.services.researcher_tokens), not on every
    # request: each request would otherwise write a row.
    last_used_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-pk"]

    def __str__(self) -> str:
        return f"{self.name} ({self.prefix}…)"
