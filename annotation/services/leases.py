"""Leases: claim, submit, release, extend and expire; and every write of the item counters.

An item's `reserved_count` (submitted ratings plus live leases) and `submitted_count` (ratings) are
written here and nowhere else: by the lease functions below, by their PostgreSQL form
(services/postgres.py, called only from here) and, for ratings imported from a file, by
`item_counters_add_submitted` (services/imports.py calls it).

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
from collections import Counter
from collections.abc import Mapping
from datetime import timedelta

from django.db import IntegrityError, connection, transaction
from django.db.models import Case, Exists, F, OuterRef, QuerySet, Value, When
from django.utils import timezone

from annotation.models import AnnotationProject, Assignment, ProjectItem, Response, Worker
from annotation.selectors import example_answer_options, worker_study_quota_left
from annotation.services import postgres
from annotation.services.errors import (
    SUBMIT_CONFLICTS,
    AssignmentConflict,
    AssignmentNotFound,
    InvalidAnswer,
    WorkerExcluded,
    invalid_answer_message,
)

# SQLite accepts a bounded number of query parameters; queries by a list of ids go in batches of
# this size.
ID_BATCH = 900

# --- The item counters ----------------------------------------------------------------------------


def _slot_take(item_id: int) -> None:
    ProjectItem.objects.filter(pk=item_id).update(reserved_count=F("reserved_count") + 1)


def _slot_give_back(item_id: int) -> None:
    ProjectItem.objects.filter(pk=item_id).update(reserved_count=F("reserved_count") - 1)


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


def _submission_count(item_id: int, *, holds_slot: bool) -> bool:
    """Count a submitted rating on the item. A lease that still holds its slot just counts; one
    whose slot a sweep gave back takes it again, only if it is still free. False: not counted."""
    if holds_slot:
        return bool(ProjectItem.objects.filter(pk=item_id).update(submitted_count=F("submitted_count") + 1))
    return bool(
        ProjectItem.objects.filter(pk=item_id, reserved_count__lt=F("overlap")).update(
            reserved_count=F("reserved_count") + 1, submitted_count=F("submitted_count") + 1
        )
    )


def item_counters_add_submitted(*, submitted_per_item: Mapping[int, int]) -> None:
    """Count ratings stored without a lease (imported): each item id's number of new submitted
    ratings, each with its slot. Call inside the transaction that stores them, with the items
    locked and their capacity checked. One UPDATE per distinct number (at most k) and batch."""
    by_count: dict[int, list[int]] = {}
    for item_id, count in submitted_per_item.items():
        by_count.setdefault(count, []).append(item_id)
    for count, item_ids in sorted(by_count.items()):
        for start in range(0, len(item_ids), ID_BATCH):
            ProjectItem.objects.filter(pk__in=item_ids[start : start + ID_BATCH]).update(
                reserved_count=F("reserved_count") + count, submitted_count=F("submitted_count") + count
            )


# --- Ending leases --------------------------------------------------------------------------------


def assignments_end_live(*, assignments: QuerySet[Assignment], status: str, now) -> int:
    """End the live leases among `assignments` with `status` (released or expired) and return their
    slots; the number ended. Call inside a transaction.

    Lock order, which keeps every writer free of deadlocks: leases before items, each in primary-key
    order (a submit or release holds one lease, then one item; a claim never waits for a lock).
    A lease being submitted right now is waited for, then re-checked: once submitted, it is no
    longer live and stays out. Waiting, not skipping, means that when this returns, every stale lease
    has been dealt with, so a claim that swept finds every slot that expiry freed."""
    ended = list(
        assignments.select_for_update(of=("self",))
        .filter(status=Assignment.Status.CLAIMED)
        .order_by("pk")
        .values_list("pk", "item_id")
    )
    if not ended:
        return 0
    Assignment.objects.filter(pk__in=[pk for pk, _ in ended]).update(status=status, finished_at=now)
    _release_slots([item_id for _, item_id in ended])
    return len(ended)


def _expire_stale(*, project: AnnotationProject, now=None) -> int:
    now = now or timezone.now()
    stale = Assignment.objects.filter(project=project, expires_at__lte=now)
    return assignments_end_live(assignments=stale, status=Assignment.Status.EXPIRED, now=now)


@transaction.atomic
def assignment_expire_stale(*, project: AnnotationProject, now=None) -> int:
    """Return the slots of the project's leases past their expiry; the number of leases expired."""
    return _expire_stale(project=project, now=now)


# --- Claim ----------------------------------------------------------------------------------------


def _pick_item(*, project: AnnotationProject, worker: Worker, gold: bool) -> ProjectItem | None:
    seen = Assignment.objects.filter(item=OuterRef("pk"), worker=worker)
    return (
        ProjectItem.objects.select_for_update(skip_locked=True, of=("self",))
        .select_related("example__dataset")
        .filter(project=project, is_gold=gold, reserved_count__lt=F("overlap"))
        .filter(~Exists(seen))
        .order_by("pk")
        .first()
    )


def task_claim(
    *, worker: Worker, project: AnnotationProject, now=None, rng: random.Random | None = None
) -> Assignment | None:
    """The worker's next task in `project`: their open lease if they hold one, else a new lease on an
    item they have never seen that still needs ratings (submitted + live leases < overlap). None when
    nothing is left for them. The lease comes with its item, example and dataset loaded, and its
    project set to `project`.

    The number of queries does not depend on the project's size. On PostgreSQL a claim is one
    statement (`postgres.claim_run`), plus a sweep of expired leases only when some exist. Elsewhere
    (SQLite) it is the same steps through the ORM in one transaction.

    A participant of the project's study link (worker.platform set) gets at most the project's
    `study_quota` tasks there: see `_claim_within_study_quota`."""
    if worker.excluded:
        raise WorkerExcluded("this worker is excluded")
    now = now or timezone.now()
    # Gold is mixed in only among real work: when no regular item is left, the worker is done.
    want_gold = project.gold_rate > 0 and (rng or random).random() < project.gold_rate
    if worker.platform:
        return _claim_within_study_quota(worker=worker, project=project, now=now, want_gold=want_gold)
    return _claim(worker=worker, project=project, now=now, want_gold=want_gold)


@transaction.atomic
def _claim_within_study_quota(
    *, worker: Worker, project: AnnotationProject, now, want_gold: bool
) -> Assignment | None:
    """The claim of a study participant (annotation.services.studies): None once their submitted
    responses in the project, gold included, reach its `study_quota` (`worker_study_quota_left`).
    Their worker row is locked first, so their claims take turns: two tabs claiming at once cannot
    both take a new item on the last task of the quota, the second gets the first's lease. Only
    these workers pay for the lock and the two counting queries; the claim itself is unchanged."""
    list(Worker.objects.select_for_update().filter(pk=worker.pk).values_list("pk"))
    left = worker_study_quota_left(worker=worker, project=project)
    if left is not None and left <= 0:
        return None
    return _claim(worker=worker, project=project, now=now, want_gold=want_gold)


def _claim(*, worker: Worker, project: AnnotationProject, now, want_gold: bool) -> Assignment | None:
    if connection.vendor == "postgresql":
        return _claim_postgresql(worker=worker, project=project, now=now, want_gold=want_gold)
    assignment = _claim_orm(worker=worker, project=project, now=now, want_gold=want_gold)
    if assignment is not None:
        assignment.project = project
    return assignment


@transaction.atomic
def _claim_orm(*, worker: Worker, project: AnnotationProject, now, want_gold: bool) -> Assignment | None:
    # From the row, not the caller's worker, which may come from the token cache.
    if Worker.objects.filter(pk=worker.pk, excluded=True).exists():
        raise WorkerExcluded("this worker is excluded")
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
    if not AnnotationProject.objects.filter(pk=project.pk, is_active=True).exists():
        return None  # closed or published since the caller looked it up
    item = _pick_item(project=project, worker=worker, gold=False)
    if item is not None and want_gold:
        item = _pick_item(project=project, worker=worker, gold=True) or item
    if item is None:
        return None
    _slot_take(item.pk)
    return Assignment.objects.create(
        project=project,
        item=item,
        worker=worker,
        claimed_at=now,
        expires_at=now + timedelta(seconds=project.lease_seconds),
    )


def _claim_postgresql(
    *, worker: Worker, project: AnnotationProject, now, want_gold: bool
) -> Assignment | None:
    claim = {
        "worker": worker,
        "project": project,
        "now": now,
        "expires_at": now + timedelta(seconds=project.lease_seconds),
        "want_gold": want_gold,
    }
    for attempt in range(3):
        try:
            lease, stale = postgres.claim_run(**claim)
        except IntegrityError:
            # The partial unique constraint on live leases: a claim by the same worker in another
            # request took this item after this statement's snapshot. Nothing was written; try again
            # (the next snapshot sees that lease).
            if attempt == 2:
                raise
            continue
        if stale:
            # Leases past their expiry exist: give their slots back (a claim that found nothing
            # tries again, as a freed slot may be one it can take).
            assignment_expire_stale(project=project, now=now)
            if lease is None:
                lease, _ = postgres.claim_run(**claim)
        return lease
    raise AssertionError("unreachable")


# --- Submit, release, extend ----------------------------------------------------------------------


# The longest note a worker may leave on a response (the model field's own bound).
MAX_COMMENT = Response._meta.get_field("comment").max_length


def _check_answers(*, relevance: int, answer: str, ambiguous: bool) -> None:
    if not (isinstance(relevance, int) and not isinstance(relevance, bool) and 1 <= relevance <= 5):
        raise ValueError("relevance must be an integer from 1 to 5")
    if not isinstance(answer, str) or not answer.strip():
        raise InvalidAnswer("answer must be one of the item's answer options, not empty")
    if not isinstance(ambiguous, bool):
        raise ValueError("ambiguous must be True or False")


def _check_note(*, comment: str, flagged_broken: bool) -> None:
    if not isinstance(comment, str):
        raise ValueError("comment must be text")
    if len(comment) > MAX_COMMENT:
        raise ValueError(f"comment must be at most {MAX_COMMENT} characters (it has {len(comment)})")
    if not isinstance(flagged_broken, bool):
        raise ValueError("flagged_broken must be True or False")


def _locked_assignment(*, assignment_id: int, worker: Worker, with_example: bool = False) -> Assignment:
    query = Assignment.objects.select_for_update(of=("self",)).select_related("project")
    if with_example:
        query = query.select_related("item__example")
    try:
        # of=self: lock the lease only; the item row is locked by the counter update that follows.
        return query.get(pk=assignment_id, worker=worker)
    except Assignment.DoesNotExist:
        raise AssignmentNotFound(f"no assignment {assignment_id} for this worker") from None


def assignment_submit(
    *,
    assignment_id: int,
    worker: Worker,
    relevance: int,
    answer: str,
    ambiguous: bool,
    time_on_task_ms: int | None = None,
    comment: str = "",
    flagged_broken: bool = False,
    now=None,
) -> Response:
    """Store the worker's answers to the paper's three questions (§3.3): relevance 1-5, the answer
    they chose (one of the example's options, spelled as the example spells it: see
    `selectors.example_answer_options`) and whether the correct answer is ambiguous; and their
    optional note for the researchers (`comment`, at most MAX_COMMENT characters) and "this example
    is broken" flag. `label_correct` is derived here: whether the chosen answer is the label
    (answer_matching_behavior).

    Raises AssignmentNotFound (not theirs), InvalidAnswer (not one of the item's options),
    AssignmentConflict (already submitted, released, or expired and its slot taken by someone
    else), ValueError (relevance out of range, a comment too long); nothing is stored then.

    On PostgreSQL this is one statement (`postgres.submit_run`); elsewhere the same steps through
    the ORM in one transaction."""
    _check_answers(relevance=relevance, answer=answer, ambiguous=ambiguous)
    _check_note(comment=comment, flagged_broken=flagged_broken)
    now = now or timezone.now()
    answers = {
        "relevance": relevance,
        "answer": answer,
        "ambiguous": ambiguous,
        "time_on_task_ms": time_on_task_ms,
        "comment": comment,
        "flagged_broken": flagged_broken,
    }
    if connection.vendor == "postgresql":
        return postgres.submit_run(assignment_id=assignment_id, worker=worker, now=now, **answers)
    return _submit_orm(assignment_id=assignment_id, worker=worker, now=now, **answers)


@transaction.atomic
def _submit_orm(
    *,
    assignment_id: int,
    worker: Worker,
    relevance: int,
    answer: str,
    ambiguous: bool,
    time_on_task_ms: int | None,
    comment: str,
    flagged_broken: bool,
    now,
) -> Response:
    assignment = _locked_assignment(assignment_id=assignment_id, worker=worker, with_example=True)
    example = assignment.item.example
    if answer not in example_answer_options(example=example):
        raise InvalidAnswer(invalid_answer_message(answer))
    status = assignment.status
    if status in (Assignment.Status.SUBMITTED, Assignment.Status.RELEASED):
        raise AssignmentConflict(SUBMIT_CONFLICTS[status])
    # Claimed: still holds its slot, even past expiry, as no sweep has given it away. Otherwise
    # expired and swept: the slot is taken back only if it is still free.
    if not _submission_count(assignment.item_id, holds_slot=status == Assignment.Status.CLAIMED):
        raise AssignmentConflict(SUBMIT_CONFLICTS[Assignment.Status.EXPIRED])
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
                answer=answer,
                label_correct=answer == example.answer_matching_behavior,
                ambiguous=ambiguous,
                time_on_task_ms=time_on_task_ms,
                comment=comment,
                flagged_broken=flagged_broken,
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
        assignment.status = Assignment.Status.RELEASED
        assignment.finished_at = now or timezone.now()
        assignment.save(update_fields=["status", "finished_at"])
        _slot_give_back(assignment.item_id)
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


# --- After the submit: the worker's change of mind, the researcher's review -----------------------


@transaction.atomic
def response_edit(
    *,
    worker: Worker,
    response: Response,
    relevance: int,
    answer: str,
    ambiguous: bool,
    comment: str = "",
    flagged_broken: bool = False,
    now=None,
) -> Response:
    """The worker changes their submitted answers (all of them, as `assignment_submit` takes them)
    while the item's lease lasts: until its `expires_at`, and only while the project is open and
    unpublished (publishing promises that the public ratings no longer change). `label_correct` is
    derived again from the new answer and `edited_at` set; a new flag after a researcher resolved
    the old one is open again.

    The counters do not change (still one rating of the item by this worker), and every figure
    built from responses (agreement, gold accuracy, the explorer's overlay, the exports) is computed
    when asked, from these rows, so it follows. Raises AssignmentNotFound (not their response:
    never say whose it is), AssignmentConflict (the lease is over, the project closed),
    WorkerExcluded, InvalidAnswer and ValueError as `assignment_submit` does; nothing is changed
    then."""
    _check_answers(relevance=relevance, answer=answer, ambiguous=ambiguous)
    _check_note(comment=comment, flagged_broken=flagged_broken)
    now = now or timezone.now()
    # The project first, as project_publish locks it: an edit and a publication never interleave.
    project = AnnotationProject.objects.select_for_update().filter(pk=response.project_id).first()
    try:
        stored = (
            Response.objects.select_for_update(of=("self",))
            .select_related("assignment", "item__example", "worker")
            .get(pk=response.pk, worker_id=worker.pk)
        )
    except Response.DoesNotExist:
        raise AssignmentNotFound(f"no response {response.pk} by this worker") from None
    if stored.worker.excluded:
        raise WorkerExcluded("this worker is excluded")
    if project is None or not project.is_active or project.published_at is not None:
        raise AssignmentConflict("the project is closed: answers can no longer be changed")
    if stored.assignment.expires_at <= now:
        raise AssignmentConflict("the time to change this answer is over")
    example = stored.item.example
    if answer not in example_answer_options(example=example):
        raise InvalidAnswer(invalid_answer_message(answer))
    if flagged_broken and not stored.flagged_broken:
        stored.flag_resolved_at = None
    stored.relevance = relevance
    stored.answer = answer
    stored.label_correct = answer == example.answer_matching_behavior
    stored.ambiguous = ambiguous
    stored.comment = comment
    stored.flagged_broken = flagged_broken
    stored.edited_at = now
    stored.save(
        update_fields=[
            "relevance",
            "answer",
            "label_correct",
            "ambiguous",
            "comment",
            "flagged_broken",
            "flag_resolved_at",
            "edited_at",
        ]
    )
    return stored


@transaction.atomic
def response_flag_resolve(*, project: AnnotationProject, response_id: int, now=None) -> Response:
    """A researcher has dealt with a worker's "this example is broken" flag (or read their
    comment): the flag stays on record, marked resolved at `now`. Resolving again keeps the first
    time. Raises Response.DoesNotExist for a response of another project."""
    response = Response.objects.select_for_update().get(pk=response_id, project=project)
    if response.flag_resolved_at is None:
        response.flag_resolved_at = now or timezone.now()
        response.save(update_fields=["flag_resolved_at"])
    return response
