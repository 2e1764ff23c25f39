"""Claim, submit, release, extend and expire; gold items and worker exclusion. Every test runs on both
paths of the leases (the `lease_path` fixture): the ORM steps on SQLite, the single PostgreSQL
statements of services/postgres.py in the PostgreSQL pass (`-m postgres`)."""

import random
from datetime import timedelta

import pytest
from django.db import connection
from django.db.models import F
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from annotation import selectors
from annotation.models import Assignment, ProjectItem, Response
from annotation.services.errors import AssignmentConflict, AssignmentNotFound, InvalidAnswer, WorkerExcluded
from annotation.services.leases import (
    assignment_expire_stale,
    assignment_extend,
    assignment_release,
    assignment_submit,
    task_claim,
)
from annotation.services.projects import project_create, project_item_mark_gold
from annotation.services.workers import worker_flag_below_threshold, worker_set_excluded
from tests.annotation.builders import build_project, submit_rating
from tests.annotation.invariants import check_invariants
from tests.builders import DatasetFactory, ExampleFactory, WorkerFactory

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("lease_path")]


def submit(assignment, worker, **overrides):
    return submit_rating(assignment, worker, **overrides)


def test_every_item_gets_exactly_k_responses_and_workers_never_repeat(project, workers):
    for _ in range(20):
        for worker in workers:
            assignment = task_claim(worker=worker, project=project)
            if assignment is not None:
                submit(assignment, worker)
    assert all(task_claim(worker=w, project=project) is None for w in workers)
    assert list(project.items.values_list("submitted_count", flat=True)) == [3, 3, 3, 3]
    check_invariants(project)
    progress = selectors.project_progress(project=project)
    assert progress == {"total": 4, "done": 4, "gold": 0, "in_progress": 0, "remaining": 0, "responses": 12}


def test_claim_returns_the_open_lease_again(project, workers):
    first = task_claim(worker=workers[0], project=project)
    assert task_claim(worker=workers[0], project=project).pk == first.pk
    assert Assignment.objects.count() == 1


def test_live_leases_count_against_overlap(db):
    project = build_project(items=1, overlap=2)
    a, b, c = WorkerFactory.create_batch(3, projects=[project])
    assert task_claim(worker=a, project=project)
    assert task_claim(worker=b, project=project)
    assert task_claim(worker=c, project=project) is None


def test_expired_lease_returns_its_slot_and_late_submit_conflicts(db):
    project = build_project(items=1, overlap=1, lease_seconds=60)
    slow, fast = WorkerFactory.create_batch(2, projects=[project])
    now = timezone.now()
    lease = task_claim(worker=slow, project=project, now=now)
    assert task_claim(worker=fast, project=project, now=now) is None
    later = now + timedelta(seconds=61)
    taken = task_claim(worker=fast, project=project, now=later)
    assert taken is not None and taken.item_id == lease.item_id
    assert Assignment.objects.get(pk=lease.pk).status == Assignment.Status.EXPIRED
    with pytest.raises(AssignmentConflict):
        submit(lease, slow)
    assert Response.objects.count() == 0
    submit(taken, fast)
    check_invariants(project)


def test_late_submit_succeeds_while_the_slot_is_free(db):
    project = build_project(items=1, overlap=1, lease_seconds=60)
    (worker,) = WorkerFactory.create_batch(1, projects=[project])
    now = timezone.now()
    lease = task_claim(worker=worker, project=project, now=now)
    late = now + timedelta(seconds=61)
    assert lease.expires_at < late
    # Past its expiry but not yet swept: the lease still holds its slot, so the answer counts.
    response = submit(lease, worker, now=late)
    assert response.time_on_task_ms == 61_000
    assert Assignment.objects.get(pk=lease.pk).status == Assignment.Status.SUBMITTED
    item = ProjectItem.objects.get()
    assert (item.reserved_count, item.submitted_count) == (1, 1)
    check_invariants(project, now=late)


def test_late_submit_after_sweep_takes_the_free_slot_back(db):
    project = build_project(items=1, overlap=1, lease_seconds=60)
    (worker,) = WorkerFactory.create_batch(1, projects=[project])
    now = timezone.now()
    lease = task_claim(worker=worker, project=project, now=now)
    assert assignment_expire_stale(project=project, now=now + timedelta(seconds=61)) == 1
    assert ProjectItem.objects.get().reserved_count == 0
    submit(lease, worker)
    check_invariants(project)
    assert ProjectItem.objects.get().submitted_count == 1


def test_double_submit_is_a_conflict_and_stores_nothing(project, workers):
    lease = task_claim(worker=workers[0], project=project)
    submit(lease, workers[0])
    with pytest.raises(AssignmentConflict):
        submit(lease, workers[0], relevance=1)
    assert Response.objects.get().relevance == 4
    check_invariants(project)


def test_submit_stores_the_chosen_answer_and_derives_label_correct(project, workers):
    """The paper's Q2: the worker chooses an answer; whether it is the label is worked out here."""
    for worker, answer, label_correct in [(workers[0], " No", False), (workers[1], " Yes", True)]:
        lease = task_claim(worker=worker, project=project)
        response = assignment_submit(
            assignment_id=lease.pk, worker=worker, relevance=2, answer=answer, ambiguous=True
        )
        assert (response.answer, response.label_correct, response.ambiguous) == (answer, label_correct, True)
        stored = Response.objects.get(pk=response.pk)
        assert (stored.answer, stored.label_correct, stored.relevance) == (answer, label_correct, 2)
    check_invariants(project)


@pytest.mark.parametrize("answer", ["Maybe", "Yes", " yes", "", "   ", " (A)"])
def test_an_answer_that_is_not_an_option_is_refused_and_stores_nothing(project, workers, answer):
    lease = task_claim(worker=workers[0], project=project)
    with pytest.raises(InvalidAnswer):
        submit(lease, workers[0], answer=answer)
    assert not Response.objects.exists()
    assert Assignment.objects.get(pk=lease.pk).status == Assignment.Status.CLAIMED
    assert ProjectItem.objects.get(pk=lease.item_id).submitted_count == 0
    check_invariants(project)
    # The lease is untouched: a valid answer goes through.
    assert submit(lease, workers[0], answer=" No").answer == " No"


def test_an_invalid_answer_on_someone_elses_assignment_is_not_found(project, workers):
    lease = task_claim(worker=workers[0], project=project)
    with pytest.raises(AssignmentNotFound):
        submit(lease, workers[1], answer="Maybe")


def test_multiple_choice_answers_include_every_other_option(db):
    """A sycophancy item with several not-matching answers (PhilPapers): each is a valid choice."""
    dataset = DatasetFactory(kind="multiple_choice")
    ExampleFactory(
        dataset=dataset,
        statement="",
        question="Which is right?\n (A) one\n (B) two\n (C) three\nAnswer:",
        answer_matching_behavior=" (A)",
        answer_not_matching_behavior=[" (B)", " (C)"],
    )
    project = project_create(name="Mc", slug="mc", datasets=[dataset], overlap=3)
    a, b, c = WorkerFactory.create_batch(3, projects=[project])
    for worker, answer, label_correct in [(a, " (C)", False), (b, " (A)", True)]:
        response = submit(task_claim(worker=worker, project=project), worker, answer=answer)
        assert (response.answer, response.label_correct) == (answer, label_correct)
    with pytest.raises(InvalidAnswer):
        submit(task_claim(worker=c, project=project), c, answer=" (D)")
    check_invariants(project)


def test_a_gold_answer_is_right_when_its_agreement_with_the_label_is_the_expected_one(db):
    # gold_label_correct False: the label is wrong, so the right answer is the other one.
    project = build_project(items=2, overlap=1, gold_rate=1.0)
    gold = project.items.order_by("pk").first()
    project_item_mark_gold(item=gold, label_correct=False, ambiguous=None)
    right, wrong = WorkerFactory.create_batch(2, projects=[project])
    rng = random.Random(0)
    for worker, answer in [(right, " No"), (wrong, " Yes")]:
        lease = task_claim(worker=worker, project=project, rng=rng)
        assert lease.item_id == gold.pk
        submit(lease, worker, answer=answer)
    assert selectors.worker_gold_accuracy(project=project) == {right.pk: (1, 1), wrong.pk: (0, 1)}


def test_another_workers_assignment_is_not_found(project, workers):
    lease = task_claim(worker=workers[0], project=project)
    with pytest.raises(AssignmentNotFound):
        submit(lease, workers[1])
    with pytest.raises(AssignmentNotFound):
        assignment_release(assignment_id=lease.pk, worker=workers[1])


def test_release_returns_the_slot_and_the_worker_moves_on(db):
    project = build_project(items=2, overlap=1)
    a, b = WorkerFactory.create_batch(2, projects=[project])
    lease = task_claim(worker=a, project=project)
    assignment_release(assignment_id=lease.pk, worker=a)
    assert ProjectItem.objects.get(pk=lease.item_id).reserved_count == 0
    nxt = task_claim(worker=a, project=project)
    assert nxt.item_id != lease.item_id
    assert task_claim(worker=b, project=project).item_id == lease.item_id
    with pytest.raises(AssignmentConflict):
        submit(lease, a)
    check_invariants(project)


def test_extend_moves_the_expiry(project, workers):
    now = timezone.now()
    lease = task_claim(worker=workers[0], project=project, now=now)
    extended = assignment_extend(assignment_id=lease.pk, worker=workers[0], now=now + timedelta(seconds=200))
    assert extended.expires_at == now + timedelta(seconds=500)
    assignment_release(assignment_id=lease.pk, worker=workers[0])
    with pytest.raises(AssignmentConflict):
        assignment_extend(assignment_id=lease.pk, worker=workers[0])


def test_excluded_worker_gets_nothing_and_inclusion_is_reversible(project, workers):
    worker = workers[0]
    lease = task_claim(worker=worker, project=project)
    worker_set_excluded(worker=worker, excluded=True, reason="spam")
    assert Assignment.objects.get(pk=lease.pk).status == Assignment.Status.RELEASED
    worker.refresh_from_db()
    with pytest.raises(WorkerExcluded):
        task_claim(worker=worker, project=project)
    worker = worker_set_excluded(worker=worker, excluded=False)
    assert not worker.excluded and worker.excluded_at is None
    assert task_claim(worker=worker, project=project) is not None
    check_invariants(project)


def test_gold_items_are_mixed_in_and_scored(db):
    # gold_rate=1: gold first while any is left, so each worker meets both gold items.
    project = build_project(items=6, overlap=2, gold_rate=1.0)
    project.gold_min_answers = 2
    project.gold_threshold = 0.75
    project.save()
    golds = list(project.items.order_by("pk")[:2])
    for item in golds:
        project_item_mark_gold(item=item, label_correct=True, ambiguous=False)
    good, bad = WorkerFactory.create_batch(2, projects=[project])
    rng = random.Random(0)
    for worker, label in [(good, True), (bad, False)]:
        while (lease := task_claim(worker=worker, project=project, rng=rng)) is not None:
            submit(lease, worker, label_correct=label)
    # Each worker saw both gold items; the four regular items got k=2 ratings each.
    assert Response.objects.filter(item__is_gold=True).count() == 4
    assert Response.objects.filter(item__is_gold=False).count() == 8
    assert selectors.worker_gold_accuracy(project=project) == {good.pk: (2, 2), bad.pk: (0, 2)}
    flagged = worker_flag_below_threshold(project=project)
    assert [w.pk for w in flagged] == [bad.pk]
    rows = {row["worker"].pk: row for row in selectors.project_worker_stats(project=project)}
    assert rows[bad.pk]["worker"].excluded and rows[bad.pk]["below_threshold"]
    assert not rows[good.pk]["worker"].excluded
    check_invariants(project)


def _claim_queries(project, worker) -> int:
    with CaptureQueriesContext(connection) as ctx:
        lease = task_claim(worker=worker, project=project)
    assert lease is not None
    return len(ctx.captured_queries)


def test_claim_query_count_is_constant_in_project_size(db):
    small = build_project(items=10, slug="small")
    dataset = DatasetFactory()
    ExampleFactory._meta.model.objects.bulk_create(
        [
            ExampleFactory.build(dataset=dataset, position=i, statement=f"big {i}", text_hash=f"{i:064x}")
            for i in range(10_000)
        ],
        batch_size=2000,
    )
    big = project_create(name="Big", slug="big", datasets=[dataset])
    assert big.items.count() == 10_000
    worker = WorkerFactory(projects=[small, big])
    # Some history on the big project, so the "never seen" filter has rows to skip.
    for _ in range(5):
        submit(task_claim(worker=worker, project=big), worker)
    # Most of the big project done: a claim must not walk past the full items.
    ProjectItem.objects.filter(project=big, pk__lt=big.items.order_by("pk")[9000].pk).update(
        reserved_count=F("overlap"), submitted_count=F("overlap")
    )
    small_count = _claim_queries(small, worker)
    big_count = _claim_queries(big, worker)
    print(f"queries per claim: small={small_count} big={big_count}")
    if connection.vendor == "postgresql":
        # One statement, in a savepoint (the test runs inside a transaction).
        assert small_count == big_count == 3
    else:
        # Exclusion check, open-lease look-up, expiry sweep, the project still open, locked pick,
        # counter update, insert, plus the savepoint and its release.
        assert small_count == big_count == 9


def test_excluded_worker_is_refused_even_when_the_caller_holds_a_stale_worker(project, workers):
    # The API may hand task_claim a worker from the token cache, loaded before the exclusion.
    stale = workers[0]
    type(stale).objects.filter(pk=stale.pk).update(excluded=True)
    assert not stale.excluded
    with pytest.raises(WorkerExcluded):
        task_claim(worker=stale, project=project)
    assert not Assignment.objects.exists()
