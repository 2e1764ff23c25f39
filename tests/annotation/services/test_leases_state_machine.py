"""Random sequences of claim / submit / release / extend / time passing, checked against the invariants
after every step, on both paths of the leases (the `lease_path` fixture): the ORM steps on SQLite,
the single PostgreSQL statements in the PostgreSQL pass (`-m postgres`)."""

from datetime import timedelta

import pytest
from django.utils import timezone
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule

from annotation.models import Assignment, ProjectItem, Response
from annotation.services.errors import AssignmentConflict, AssignmentNotFound, InvalidAnswer
from annotation.services.leases import (
    assignment_expire_stale,
    assignment_extend,
    assignment_release,
    assignment_submit,
    task_claim,
)
from tests.annotation.builders import build_project
from tests.annotation.invariants import check_invariants
from tests.builders import WorkerFactory

WORKERS = 4
LEASE = 60


class LeaseMachine(RuleBasedStateMachine):
    @initialize(items=st.integers(1, 4), overlap=st.integers(1, 3))
    def setup(self, items, overlap):
        # Each example runs in its own transaction, rolled back at teardown (see the test below).
        from django.db import transaction

        self.atomic = transaction.atomic()
        self.atomic.__enter__()
        self.project = build_project(items=items, overlap=overlap, lease_seconds=LEASE, slug="sm")
        self.workers = WorkerFactory.create_batch(WORKERS, projects=[self.project])
        self.now = timezone.now()
        self.leases: list[tuple[int, int]] = []  # (assignment id, worker index) ever handed out

    def teardown(self):
        if hasattr(self, "atomic"):
            from django.db import transaction

            transaction.set_rollback(True)
            self.atomic.__exit__(None, None, None)

    @rule(w=st.integers(0, WORKERS - 1))
    def claim(self, w):
        before = {pk for pk, _ in self.leases}
        lease = task_claim(worker=self.workers[w], project=self.project, now=self.now)
        if lease is None:
            # Nothing left for w: every item is full (counting live leases) or already seen by w.
            seen = set(Assignment.objects.filter(worker=self.workers[w]).values_list("item_id", flat=True))
            for item in ProjectItem.objects.filter(project=self.project).exclude(pk__in=seen):
                live = item.assignments.filter(status="claimed", expires_at__gt=self.now).count()
                assert item.submitted_count + live >= item.overlap
        elif lease.pk not in before:
            self.leases.append((lease.pk, w))

    # " Yes" and " No" are the examples' options; "Maybe" is none of them (refused, nothing stored).
    @rule(
        i=st.integers(0, 50),
        relevance=st.integers(1, 5),
        answer=st.sampled_from([" Yes", " No", "Maybe"]),
        ambiguous=st.booleans(),
    )
    def submit(self, i, relevance, answer, ambiguous):
        if not self.leases:
            return
        pk, w = self.leases[i % len(self.leases)]
        before = Response.objects.count()
        try:
            assignment_submit(
                assignment_id=pk,
                worker=self.workers[w],
                relevance=relevance,
                answer=answer,
                ambiguous=ambiguous,
                now=self.now,
            )
        except (AssignmentConflict, InvalidAnswer) as exc:
            assert isinstance(exc, InvalidAnswer) == (answer == "Maybe")
            assert Response.objects.count() == before
        else:
            assert Response.objects.count() == before + 1

    @rule(i=st.integers(0, 50), other=st.integers(1, WORKERS - 1))
    def submit_as_someone_else(self, i, other):
        if not self.leases:
            return
        pk, w = self.leases[i % len(self.leases)]
        with pytest.raises(AssignmentNotFound):
            assignment_submit(
                assignment_id=pk,
                worker=self.workers[(w + other) % WORKERS],
                relevance=3,
                answer=" Yes",
                ambiguous=False,
            )

    @rule(i=st.integers(0, 50))
    def release(self, i):
        if not self.leases:
            return
        pk, w = self.leases[i % len(self.leases)]
        try:
            assignment_release(assignment_id=pk, worker=self.workers[w], now=self.now)
        except AssignmentConflict:
            assert Assignment.objects.get(pk=pk).status == Assignment.Status.SUBMITTED

    @rule(i=st.integers(0, 50))
    def extend(self, i):
        if not self.leases:
            return
        pk, w = self.leases[i % len(self.leases)]
        try:
            assignment_extend(assignment_id=pk, worker=self.workers[w], now=self.now)
        except AssignmentConflict:
            assert Assignment.objects.get(pk=pk).status != Assignment.Status.CLAIMED

    @rule(seconds=st.sampled_from([1, 30, LEASE + 1]))
    def time_passes(self, seconds):
        self.now += timedelta(seconds=seconds)

    @rule()
    def sweep(self):
        assignment_expire_stale(project=self.project, now=self.now)

    @invariant()
    def invariants_hold(self):
        if hasattr(self, "project"):
            check_invariants(self.project)


@pytest.mark.django_db
def test_lease_state_machine(lease_path):
    LeaseMachine.TestCase.settings = settings(
        max_examples=40,
        stateful_step_count=30,
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
    )
    LeaseMachine.TestCase().runTest()
