"""Claim, submit, release, extend and expire; projects, gold items and worker exclusion."""

import random
from datetime import timedelta

import pytest
from django.db import connection
from django.db.models import F
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from annotation import selectors, services
from annotation.models import Assignment, ProjectItem, Response
from tests.annotation.conftest import build_project
from tests.annotation.invariants import check_invariants
from tests.builders import DatasetFactory, ExampleFactory, WorkerFactory

pytestmark = pytest.mark.django_db


def submit(assignment, worker, **overrides):
    answers = {"relevance": 4, "label_correct": True, "ambiguous": False, **overrides}
    return services.assignment_submit(assignment_id=assignment.pk, worker=worker, **answers)


def test_every_item_gets_exactly_k_responses_and_workers_never_repeat(project, workers):
    for _ in range(20):
        for worker in workers:
            assignment = services.task_claim(worker=worker, project=project)
            if assignment is not None:
                submit(assignment, worker)
    assert all(services.task_claim(worker=w, project=project) is None for w in workers)
    assert list(project.items.values_list("submitted_count", flat=True)) == [3, 3, 3, 3]
    check_invariants(project)
    progress = selectors.project_progress(project=project)
    assert progress == {"total": 4, "done": 4, "gold": 0, "in_progress": 0, "remaining": 0, "responses": 12}


def test_claim_returns_the_open_lease_again(project, workers):
    first = services.task_claim(worker=workers[0], project=project)
    assert services.task_claim(worker=workers[0], project=project).pk == first.pk
    assert Assignment.objects.count() == 1


def test_live_leases_count_against_overlap(db):
    project = build_project(items=1, overlap=2)
    a, b, c = WorkerFactory.create_batch(3, projects=[project])
    assert services.task_claim(worker=a, project=project)
    assert services.task_claim(worker=b, project=project)
    assert services.task_claim(worker=c, project=project) is None


def test_expired_lease_returns_its_slot_and_late_submit_conflicts(db):
    project = build_project(items=1, overlap=1, lease_seconds=60)
    slow, fast = WorkerFactory.create_batch(2, projects=[project])
    now = timezone.now()
    lease = services.task_claim(worker=slow, project=project, now=now)
    assert services.task_claim(worker=fast, project=project, now=now) is None
    later = now + timedelta(seconds=61)
    taken = services.task_claim(worker=fast, project=project, now=later)
    assert taken is not None and taken.item_id == lease.item_id
    assert Assignment.objects.get(pk=lease.pk).status == Assignment.Status.EXPIRED
    with pytest.raises(services.AssignmentConflict):
        submit(lease, slow)
    assert Response.objects.count() == 0
    submit(taken, fast)
    check_invariants(project)


def test_late_submit_succeeds_while_the_slot_is_free(db):
    project = build_project(items=1, overlap=1, lease_seconds=60)
    (worker,) = WorkerFactory.create_batch(1, projects=[project])
    now = timezone.now()
    lease = services.task_claim(worker=worker, project=project, now=now)
    # Not yet swept: the lease still holds its slot.
    submit(lease, worker)
    check_invariants(project)


def test_late_submit_after_sweep_takes_the_free_slot_back(db):
    project = build_project(items=1, overlap=1, lease_seconds=60)
    (worker,) = WorkerFactory.create_batch(1, projects=[project])
    now = timezone.now()
    lease = services.task_claim(worker=worker, project=project, now=now)
    assert services.assignment_expire_stale(project=project, now=now + timedelta(seconds=61)) == 1
    assert ProjectItem.objects.get().reserved_count == 0
    submit(lease, worker)
    check_invariants(project)
    assert ProjectItem.objects.get().submitted_count == 1


def test_double_submit_is_a_conflict_and_stores_nothing(project, workers):
    lease = services.task_claim(worker=workers[0], project=project)
    submit(lease, workers[0])
    with pytest.raises(services.AssignmentConflict):
        submit(lease, workers[0], relevance=1)
    assert Response.objects.get().relevance == 4
    check_invariants(project)


def test_another_workers_assignment_is_not_found(project, workers):
    lease = services.task_claim(worker=workers[0], project=project)
    with pytest.raises(services.AssignmentNotFound):
        submit(lease, workers[1])
    with pytest.raises(services.AssignmentNotFound):
        services.assignment_release(assignment_id=lease.pk, worker=workers[1])


def test_release_returns_the_slot_and_the_worker_moves_on(db):
    project = build_project(items=2, overlap=1)
    a, b = WorkerFactory.create_batch(2, projects=[project])
    lease = services.task_claim(worker=a, project=project)
    services.assignment_release(assignment_id=lease.pk, worker=a)
    assert ProjectItem.objects.get(pk=lease.item_id).reserved_count == 0
    nxt = services.task_claim(worker=a, project=project)
    assert nxt.item_id != lease.item_id
    assert services.task_claim(worker=b, project=project).item_id == lease.item_id
    with pytest.raises(services.AssignmentConflict):
        submit(lease, a)
    check_invariants(project)


def test_extend_moves_the_expiry(project, workers):
    now = timezone.now()
    lease = services.task_claim(worker=workers[0], project=project, now=now)
    extended = services.assignment_extend(
        assignment_id=lease.pk, worker=workers[0], now=now + timedelta(seconds=200)
    )
    assert extended.expires_at == now + timedelta(seconds=500)
    services.assignment_release(assignment_id=lease.pk, worker=workers[0])
    with pytest.raises(services.AssignmentConflict):
        services.assignment_extend(assignment_id=lease.pk, worker=workers[0])


def test_excluded_worker_gets_nothing_and_inclusion_is_reversible(project, workers):
    worker = workers[0]
    lease = services.task_claim(worker=worker, project=project)
    services.worker_set_excluded(worker=worker, excluded=True, reason="spam")
    assert Assignment.objects.get(pk=lease.pk).status == Assignment.Status.RELEASED
    worker.refresh_from_db()
    with pytest.raises(services.WorkerExcluded):
        services.task_claim(worker=worker, project=project)
    worker = services.worker_set_excluded(worker=worker, excluded=False)
    assert not worker.excluded and worker.excluded_at is None
    assert services.task_claim(worker=worker, project=project) is not None
    check_invariants(project)


def test_project_create_samples_per_dataset_and_label(db):
    datasets = DatasetFactory.create_batch(2)
    for dataset in datasets:
        ExampleFactory.create_batch(7, dataset=dataset, answer_matching_behavior=" Yes")
        ExampleFactory.create_batch(3, dataset=dataset, answer_matching_behavior=" No")
    project = services.project_create(name="S", slug="s", datasets=datasets, per_label=5, seed=1)
    counts = {}
    for item in project.items.select_related("example"):
        key = (item.example.dataset_id, item.example.answer_matching_behavior)
        counts[key] = counts.get(key, 0) + 1
    assert sorted(counts.values()) == [3, 3, 5, 5]
    again = services.project_create(name="S2", slug="s2", datasets=datasets, per_label=5, seed=1)
    assert sorted(again.items.values_list("example_id", flat=True)) == sorted(
        project.items.values_list("example_id", flat=True)
    )
    everything = services.project_create(name="All", slug="all", datasets=datasets)
    assert everything.items.count() == 20


def test_gold_items_are_mixed_in_and_scored(db):
    # gold_rate=1: gold first while any is left, so each worker meets both gold items.
    project = build_project(items=6, overlap=2, gold_rate=1.0)
    project.gold_min_answers = 2
    project.gold_threshold = 0.75
    project.save()
    golds = list(project.items.order_by("pk")[:2])
    for item in golds:
        services.project_item_mark_gold(item=item, label_correct=True, ambiguous=False)
    good, bad = WorkerFactory.create_batch(2, projects=[project])
    rng = random.Random(0)
    for worker, label in [(good, True), (bad, False)]:
        while (lease := services.task_claim(worker=worker, project=project, rng=rng)) is not None:
            submit(lease, worker, label_correct=label)
    # Each worker saw both gold items; the four regular items got k=2 ratings each.
    assert Response.objects.filter(item__is_gold=True).count() == 4
    assert Response.objects.filter(item__is_gold=False).count() == 8
    assert selectors.worker_gold_accuracy(project=project) == {good.pk: (2, 2), bad.pk: (0, 2)}
    flagged = services.worker_flag_below_threshold(project=project)
    assert [w.pk for w in flagged] == [bad.pk]
    rows = {row["worker"].pk: row for row in selectors.project_worker_stats(project=project)}
    assert rows[bad.pk]["worker"].excluded and rows[bad.pk]["below_threshold"]
    assert not rows[good.pk]["worker"].excluded
    check_invariants(project)


def _claim_queries(project, worker) -> int:
    with CaptureQueriesContext(connection) as ctx:
        lease = services.task_claim(worker=worker, project=project)
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
    big = services.project_create(name="Big", slug="big", datasets=[dataset])
    assert big.items.count() == 10_000
    worker = WorkerFactory(projects=[small, big])
    # Some history on the big project, so the "never seen" filter has rows to skip.
    for _ in range(5):
        submit(services.task_claim(worker=worker, project=big), worker)
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
    with pytest.raises(services.WorkerExcluded):
        services.task_claim(worker=stale, project=project)
    assert not Assignment.objects.exists()
