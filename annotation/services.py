"""Writes of the annotation app: projects, workers, leases and responses.

Concurrency. A claim, submit, release or expiry changes an item's counters and an assignment in one
transaction, so the counters always equal what the assignment and response tables say. On PostgreSQL
a claim locks its candidate item with `SELECT ... FOR UPDATE SKIP LOCKED`: concurrent claimers take
different items instead of queueing on one; the CheckConstraints on the counters are the last line
of defence. On SQLite the settings open every transaction with BEGIN IMMEDIATE, so writers are
serialized and the same code is correct there.

Expiry is lazy: a lease past `expires_at` keeps its slot until a claim (or `assignment_expire_stale`)
sweeps it. Until then its worker may still submit; once swept, a late submit succeeds only if the
slot is still free, and otherwise raises `AssignmentConflict` (HTTP 409) and stores nothing.
"""

from __future__ import annotations

import random
from collections import Counter, defaultdict
from collections.abc import Iterable
from datetime import timedelta

from django.contrib.auth import get_user_model
from django.contrib.auth.models import AbstractBaseUser
from django.db import IntegrityError, transaction
from django.db.models import Case, Exists, F, OuterRef, Value, When
from django.utils import timezone
from rest_framework.authtoken.models import Token

from annotation.models import (
    GOLD_ITEM_CAPACITY,
    AnnotationProject,
    Assignment,
    ProjectItem,
    Response,
    Worker,
)
from generation.models import Dataset, Example

BULK_BATCH = 1000


class AnnotationError(Exception):
    """Base of the domain errors the API turns into HTTP answers."""


class AssignmentNotFound(AnnotationError):
    """No such assignment for this worker (also another worker's assignment: never reveal it)."""


class AssignmentConflict(AnnotationError):
    """The assignment cannot take this action any more (HTTP 409): submitted twice, released, or
    expired with its slot given to another worker."""


class WorkerExcluded(AnnotationError):
    """An excluded worker gets no new tasks."""


# --- Projects -------------------------------------------------------------------------------------


def _stratified_sample(examples: list[Example], *, per_label: int, rng: random.Random) -> list[Example]:
    by_label: dict[str, list[Example]] = defaultdict(list)
    for example in examples:
        by_label[example.answer_matching_behavior.strip()].append(example)
    chosen: list[Example] = []
    for label in sorted(by_label):
        group = by_label[label]
        chosen.extend(group if len(group) <= per_label else rng.sample(group, per_label))
    return chosen


@transaction.atomic
def project_create(
    *,
    name: str,
    slug: str,
    datasets: Iterable[Dataset],
    overlap: int = 3,
    lease_seconds: int = 300,
    instructions: str = "",
    gold_rate: float = 0.0,
    gold_threshold: float = 0.7,
    per_label: int | None = None,
    seed: int = 0,
    created_by: AbstractBaseUser | None = None,
) -> AnnotationProject:
    """A project over all examples of `datasets`, or, with `per_label`, a stratified random sample of
    up to `per_label` examples per dataset and label (the behavior-matching answer), reproducible
    from `seed`."""
    datasets = list(datasets)
    project = AnnotationProject.objects.create(
        name=name,
        slug=slug,
        overlap=overlap,
        lease_seconds=lease_seconds,
        instructions=instructions,
        gold_rate=gold_rate,
        gold_threshold=gold_threshold,
        created_by=created_by if created_by is not None and created_by.is_authenticated else None,
    )
    project.datasets.set(datasets)
    rng = random.Random(seed)
    for dataset in sorted(datasets, key=lambda d: d.pk):
        examples = dataset.examples.order_by("position")
        if per_label is None:
            ids = list(examples.values_list("pk", flat=True))
        else:
            fields = examples.only("pk", "answer_matching_behavior")
            ids = sorted(e.pk for e in _stratified_sample(list(fields), per_label=per_label, rng=rng))
        ProjectItem.objects.bulk_create(
            [ProjectItem(project=project, example_id=pk, overlap=overlap) for pk in ids],
            batch_size=BULK_BATCH,
        )
    return project


@transaction.atomic
def project_item_mark_gold(
    *, item: ProjectItem, label_correct: bool | None, ambiguous: bool | None
) -> ProjectItem:
    """Make an item a gold item with the expected answers. Only before anyone rated it: its counters
    would otherwise describe a different capacity."""
    item = ProjectItem.objects.select_for_update().get(pk=item.pk)
    if item.reserved_count:
        raise AssignmentConflict("an item becomes gold only before any worker has taken it")
    item.is_gold = True
    item.gold_label_correct = label_correct
    item.gold_ambiguous = ambiguous
    item.overlap = GOLD_ITEM_CAPACITY
    item.save(update_fields=["is_gold", "gold_label_correct", "gold_ambiguous", "overlap"])
    return item


# --- Workers --------------------------------------------------------------------------------------


@transaction.atomic
def worker_create(
    *, project: AnnotationProject, external_id: str = "", user: AbstractBaseUser | None = None
) -> Worker:
    worker = Worker.objects.create(external_id=external_id, user=user)
    worker.projects.add(project)
    return worker


@transaction.atomic
def worker_join(*, invite_token: str) -> Worker | None:
    """Onboarding through an invite link: the worker's site account, made on first use (no password:
    the invite link is how they sign in). None when the token is unknown."""
    worker = Worker.objects.select_for_update().filter(invite_token=invite_token).first()
    if worker is None:
        return None
    if worker.user_id is None:
        user_model = get_user_model()
        user = user_model(username=f"worker-{worker.pk}")
        user.set_unusable_password()
        user.save()
        worker.user = user
        worker.save(update_fields=["user"])
    return worker


def worker_api_token(*, worker: Worker) -> str:
    """The worker's API token (DRF token auth), created with their account if needed."""
    if worker.user_id is None:
        worker = worker_join(invite_token=worker.invite_token)
    token, _ = Token.objects.get_or_create(user=worker.user)
    return token.key


@transaction.atomic
def worker_set_excluded(*, worker: Worker, excluded: bool, reason: str = "") -> Worker:
    """Exclude a worker or take them back; nothing is deleted either way."""
    worker = Worker.objects.select_for_update().get(pk=worker.pk)
    worker.excluded = excluded
    worker.excluded_reason = reason if excluded else ""
    worker.excluded_at = timezone.now() if excluded else None
    worker.save(update_fields=["excluded", "excluded_reason", "excluded_at"])
    if excluded:
        # Their open leases return to the pool at once rather than at expiry.
        for assignment in Assignment.objects.filter(worker=worker, status=Assignment.Status.CLAIMED):
            _finish_lease(assignment=assignment, status=Assignment.Status.RELEASED)
    return worker


def worker_flag_below_threshold(*, project: AnnotationProject) -> list[Worker]:
    """Exclude the project's workers whose gold accuracy is below the project's threshold after at
    least `gold_min_answers` gold answers. Returns those excluded now (reversible by
    `worker_set_excluded(excluded=False)`)."""
    from annotation.selectors import worker_gold_accuracy

    flagged = []
    for worker_id, (correct, total) in worker_gold_accuracy(project=project).items():
        if total < project.gold_min_answers or correct / total >= project.gold_threshold:
            continue
        worker = Worker.objects.get(pk=worker_id)
        if not worker.excluded:
            reason = f"gold accuracy {correct}/{total} below {project.gold_threshold:.0%} on {project.slug}"
            flagged.append(worker_set_excluded(worker=worker, excluded=True, reason=reason))
    return flagged


# --- Leases ---------------------------------------------------------------------------------------


def _release_slots(item_ids: list[int]) -> None:
    """Give back one reserved slot per entry of `item_ids` (an item may appear several times). The
    items are locked in primary-key order first, so two sweeps never deadlock on each other."""
    counts = Counter(item_ids)
    list(ProjectItem.objects.filter(pk__in=counts).order_by("pk").select_for_update().values_list("pk"))
    if len(set(counts.values())) == 1:
        decrement = Value(next(iter(counts.values())))
    else:
        decrement = Case(*(When(pk=pk, then=Value(n)) for pk, n in counts.items()))
    ProjectItem.objects.filter(pk__in=counts).update(reserved_count=F("reserved_count") - decrement)


def _expire_stale(*, project: AnnotationProject, now=None) -> int:
    # Leases locked by a concurrent transaction (being submitted right now) are skipped: their
    # owner decides their fate.
    now = now or timezone.now()
    stale = list(
        Assignment.objects.select_for_update(skip_locked=True, of=("self",))
        .filter(project=project, status=Assignment.Status.CLAIMED, expires_at__lte=now)
        .values_list("pk", "item_id")
    )
    if not stale:
        return 0
    Assignment.objects.filter(pk__in=[pk for pk, _ in stale]).update(
        status=Assignment.Status.EXPIRED, finished_at=now
    )
    _release_slots([item_id for _, item_id in stale])
    return len(stale)


@transaction.atomic
def assignment_expire_stale(*, project: AnnotationProject, now=None) -> int:
    """Return the slots of the project's leases past their expiry; the number of leases expired."""
    return _expire_stale(project=project, now=now)


def _pick_item(*, project: AnnotationProject, worker: Worker, gold: bool) -> ProjectItem | None:
    seen = Assignment.objects.filter(item=OuterRef("pk"), worker=worker)
    return (
        ProjectItem.objects.select_for_update(skip_locked=True, of=("self",))
        .filter(project=project, is_gold=gold, reserved_count__lt=F("overlap"))
        .filter(~Exists(seen))
        .order_by("pk")
        .first()
    )


@transaction.atomic
def task_claim(
    *, worker: Worker, project: AnnotationProject, now=None, rng: random.Random | None = None
) -> Assignment | None:
    """The worker's next task in `project`: their open lease if they hold one, else a new lease on an
    item they have never seen that still needs ratings (submitted + live leases < overlap). None when
    nothing is left for them.

    The number of queries does not depend on the project's size: one look-up of the open lease, one
    sweep of expired leases (more only when some expired), one locked pick, one counter update and
    one insert."""
    if worker.excluded:
        raise WorkerExcluded("this worker is excluded")
    now = now or timezone.now()
    current = (
        Assignment.objects.filter(
            worker=worker, project=project, status=Assignment.Status.CLAIMED, expires_at__gt=now
        )
        .select_related("item__example__dataset")
        .first()
    )
    if current is not None:
        return current
    _expire_stale(project=project, now=now)

    # Gold is mixed in only among real work: when no regular item is left, the worker is done.
    want_gold = project.gold_rate > 0 and (rng or random).random() < project.gold_rate
    item = _pick_item(project=project, worker=worker, gold=False)
    if item is not None and want_gold:
        item = _pick_item(project=project, worker=worker, gold=True) or item
    if item is None:
        return None
    ProjectItem.objects.filter(pk=item.pk).update(reserved_count=F("reserved_count") + 1)
    assignment = Assignment.objects.create(
        project=project,
        item=item,
        worker=worker,
        claimed_at=now,
        expires_at=now + timedelta(seconds=project.lease_seconds),
    )
    return assignment


def _locked_assignment(*, assignment_id: int, worker: Worker) -> Assignment:
    try:
        # of=self: lock the lease only; the item row is locked by the counter update that follows.
        return (
            Assignment.objects.select_for_update(of=("self",))
            .select_related("project")
            .get(pk=assignment_id, worker=worker)
        )
    except Assignment.DoesNotExist:
        raise AssignmentNotFound(f"no assignment {assignment_id} for this worker") from None


def _finish_lease(*, assignment: Assignment, status: str, now=None) -> None:
    assignment.status = status
    assignment.finished_at = now or timezone.now()
    assignment.save(update_fields=["status", "finished_at"])
    ProjectItem.objects.filter(pk=assignment.item_id).update(reserved_count=F("reserved_count") - 1)


@transaction.atomic
def assignment_submit(
    *,
    assignment_id: int,
    worker: Worker,
    relevance: int,
    label_correct: bool,
    ambiguous: bool,
    time_on_task_ms: int | None = None,
    now=None,
) -> Response:
    """Store the worker's answers. Raises AssignmentNotFound (not theirs), AssignmentConflict (already
    submitted, released, or expired and its slot taken by someone else); nothing is stored then."""
    if not (isinstance(relevance, int) and 1 <= relevance <= 5):
        raise ValueError("relevance must be an integer from 1 to 5")
    now = now or timezone.now()
    assignment = _locked_assignment(assignment_id=assignment_id, worker=worker)
    status = assignment.status
    if status == Assignment.Status.SUBMITTED:
        raise AssignmentConflict("this assignment was already submitted")
    if status == Assignment.Status.RELEASED:
        raise AssignmentConflict("this assignment was released")
    if status == Assignment.Status.CLAIMED:
        # Still holds its slot, even past expiry: no sweep has given it away.
        updated = ProjectItem.objects.filter(pk=assignment.item_id).update(
            submitted_count=F("submitted_count") + 1
        )
    else:  # expired and swept: take the slot back only if it is still free.
        updated = ProjectItem.objects.filter(pk=assignment.item_id, reserved_count__lt=F("overlap")).update(
            reserved_count=F("reserved_count") + 1, submitted_count=F("submitted_count") + 1
        )
    if not updated:
        raise AssignmentConflict("the lease expired and the item was given to another worker")
    if time_on_task_ms is None:
        time_on_task_ms = max(0, int((now - assignment.claimed_at).total_seconds() * 1000))
    try:
        with transaction.atomic():
            response = Response.objects.create(
                project_id=assignment.project_id,
                item_id=assignment.item_id,
                worker=worker,
                assignment=assignment,
                relevance=relevance,
                label_correct=label_correct,
                ambiguous=ambiguous,
                time_on_task_ms=time_on_task_ms,
            )
    except IntegrityError:
        # The unique (item, worker) constraint: this worker already rated the item.
        raise AssignmentConflict("this worker already rated this item") from None
    assignment.status = Assignment.Status.SUBMITTED
    assignment.finished_at = now
    assignment.save(update_fields=["status", "finished_at"])
    return response


@transaction.atomic
def assignment_release(*, assignment_id: int, worker: Worker, now=None) -> Assignment:
    """The worker skips the item: its slot returns to the pool at once (they will not see it again)."""
    assignment = _locked_assignment(assignment_id=assignment_id, worker=worker)
    if assignment.status == Assignment.Status.CLAIMED:
        _finish_lease(assignment=assignment, status=Assignment.Status.RELEASED, now=now)
    elif assignment.status == Assignment.Status.SUBMITTED:
        raise AssignmentConflict("this assignment was already submitted")
    # Released or expired already: releasing again is a no-op.
    return assignment


@transaction.atomic
def assignment_extend(*, assignment_id: int, worker: Worker, now=None) -> Assignment:
    """A worker still reading: the lease runs `lease_seconds` from now. Only a live lease extends."""
    now = now or timezone.now()
    assignment = _locked_assignment(assignment_id=assignment_id, worker=worker)
    if assignment.status != Assignment.Status.CLAIMED:
        raise AssignmentConflict(f"this assignment is {assignment.status}")
    assignment.expires_at = now + timedelta(seconds=assignment.project.lease_seconds)
    assignment.save(update_fields=["expires_at"])
    return assignment
