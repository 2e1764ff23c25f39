"""The invariants are enforced by the database itself, whatever code writes the rows."""

from datetime import timedelta

import pytest
from django.db import IntegrityError, transaction
from django.db.models import F
from django.utils import timezone

from annotation.models import Assignment, ProjectItem, Response
from tests.builders import WorkerFactory

pytestmark = pytest.mark.django_db


def _assignment(item, worker, status="claimed"):
    now = timezone.now()
    return Assignment.objects.create(
        project=item.project,
        item=item,
        worker=worker,
        status=status,
        claimed_at=now,
        expires_at=now + timedelta(minutes=5),
    )


def test_submitted_count_cannot_exceed_overlap(project):
    item = project.items.first()
    ProjectItem.objects.filter(pk=item.pk).update(reserved_count=3, submitted_count=3)
    with pytest.raises(IntegrityError), transaction.atomic():
        ProjectItem.objects.filter(pk=item.pk).update(submitted_count=F("submitted_count") + 1)


def test_reserved_count_cannot_exceed_overlap(project):
    item = project.items.first()
    with pytest.raises(IntegrityError), transaction.atomic():
        ProjectItem.objects.filter(pk=item.pk).update(reserved_count=4)


def test_submitted_never_exceeds_reserved(project):
    item = project.items.first()
    with pytest.raises(IntegrityError), transaction.atomic():
        ProjectItem.objects.filter(pk=item.pk).update(submitted_count=1)


def test_one_live_lease_per_item_and_worker(project, workers):
    item = project.items.first()
    _assignment(item, workers[0])
    _assignment(item, workers[0], status="released")  # finished leases do not count
    with pytest.raises(IntegrityError), transaction.atomic():
        _assignment(item, workers[0])


def test_one_response_per_item_and_worker(project, workers):
    item = project.items.first()
    first = _assignment(item, workers[0], status="submitted")
    second = _assignment(item, workers[0], status="submitted")
    common = {
        "project": project,
        "item": item,
        "worker": workers[0],
        "answer": " Yes",
        "label_correct": True,
        "ambiguous": False,
    }
    Response.objects.create(assignment=first, relevance=3, **common)
    with pytest.raises(IntegrityError), transaction.atomic():
        Response.objects.create(assignment=second, relevance=3, **common)


@pytest.mark.parametrize("relevance", [0, 6])
def test_relevance_range(project, workers, relevance):
    item = project.items.first()
    assignment = _assignment(item, workers[0], status="submitted")
    with pytest.raises(IntegrityError), transaction.atomic():
        Response.objects.create(
            project=project,
            item=item,
            worker=workers[0],
            assignment=assignment,
            relevance=relevance,
            answer=" Yes",
            label_correct=True,
            ambiguous=False,
        )


def test_lease_status_is_checked(project, workers):
    with pytest.raises(IntegrityError), transaction.atomic():
        _assignment(project.items.first(), workers[0], status="stolen")


def test_a_lease_needs_a_worker(project):
    with pytest.raises(IntegrityError), transaction.atomic():
        _assignment(project.items.first(), None)


def test_workers_are_never_deleted(project):
    worker = WorkerFactory(projects=[project])
    from annotation.services.leases import assignment_submit, task_claim

    assignment = task_claim(worker=worker, project=project)
    assignment_submit(assignment_id=assignment.pk, worker=worker, relevance=4, answer=" Yes", ambiguous=False)
    from django.db.models import ProtectedError

    with pytest.raises(ProtectedError):
        worker.delete()
