"""Real threads on PostgreSQL, each with its own connection: many workers claim and submit until the
project is exhausted; afterwards every invariant holds exactly."""

import random
import threading
import time
from datetime import timedelta

import pytest
from django.db import connection
from django.utils import timezone

from annotation.models import Assignment, ProjectItem, Response
from annotation.services.errors import AssignmentConflict
from annotation.services.leases import assignment_release, assignment_submit, task_claim
from tests.annotation.builders import build_project
from tests.annotation.invariants import check_invariants
from tests.builders import WorkerFactory

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]

THREADS = 24


def run_threads(target, count):
    errors = []
    barrier = threading.Barrier(count)

    def wrapped(index):
        try:
            barrier.wait()
            target(index)
        except BaseException as exc:  # noqa: BLE001 - reported by the main thread
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=wrapped, args=(i,)) for i in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=300)
    assert not any(thread.is_alive() for thread in threads), "a worker thread hung"
    assert not errors, errors


def test_many_workers_exhaust_the_project():
    project = build_project(items=60, overlap=3, slug="conc")
    workers = WorkerFactory.create_batch(THREADS, projects=[project])
    submitted = [0] * THREADS
    skipped = [0] * THREADS

    def work(index):
        rng = random.Random(index)
        worker = workers[index]
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            lease = task_claim(worker=worker, project=project)
            if lease is None:
                # Nothing for this worker right now; but a slot another worker skips later comes
                # back, so stop only once the project is complete.
                if not ProjectItem.objects.filter(project=project, submitted_count__lt=3).exists():
                    break
                time.sleep(0.01)
                continue
            if rng.random() < 0.1:
                assignment_release(assignment_id=lease.pk, worker=worker)
                skipped[index] += 1
                continue
            assignment_submit(
                assignment_id=lease.pk,
                worker=worker,
                relevance=rng.randint(1, 5),
                answer=" Yes" if rng.random() < 0.8 else " No",
                ambiguous=rng.random() < 0.2,
            )
            submitted[index] += 1

    run_threads(work, THREADS)
    check_invariants(project)
    assert set(ProjectItem.objects.filter(project=project).values_list("submitted_count", flat=True)) == {3}
    assert Response.objects.filter(project=project).count() == 60 * 3 == sum(submitted)
    assert not Assignment.objects.filter(project=project, status=Assignment.Status.CLAIMED).exists()
    assert sum(1 for n in submitted if n) > 1, "the work was spread over several workers"


def test_concurrent_late_submit_and_reclaim():
    """Expired leases: half the workers submit late while the other half claim the same slots; each
    slot ends with exactly one submission, and losers get a conflict with nothing stored."""
    project = build_project(items=10, overlap=1, lease_seconds=60, slug="late")
    sleepers = WorkerFactory.create_batch(10, projects=[project])
    takers = WorkerFactory.create_batch(10, projects=[project])
    past = timezone.now() - timedelta(seconds=120)
    leases = [task_claim(worker=w, project=project, now=past) for w in sleepers]
    assert all(leases)
    outcome = {"conflicts": 0, "late_ok": 0, "taken": 0}
    lock = threading.Lock()

    def race(index):
        if index < 10:
            try:
                assignment_submit(
                    assignment_id=leases[index].pk,
                    worker=sleepers[index],
                    relevance=3,
                    answer=" Yes",
                    ambiguous=False,
                )
                key = "late_ok"
            except AssignmentConflict:
                key = "conflicts"
        else:
            worker = takers[index - 10]
            lease = task_claim(worker=worker, project=project)
            if lease is None:
                return
            assignment_submit(
                assignment_id=lease.pk, worker=worker, relevance=3, answer=" Yes", ambiguous=False
            )
            key = "taken"
        with lock:
            outcome[key] += 1

    run_threads(race, 20)
    check_invariants(project)
    assert outcome["late_ok"] + outcome["taken"] == 10
    assert outcome["conflicts"] == 10 - outcome["late_ok"]
    assert Response.objects.filter(project=project).count() == 10
