"""Real threads on PostgreSQL, each with its own connection: simultaneous arrivals of one participant
through a study link make one worker (and one session per session id), and one participant's tabs
claiming at once never pass the quota."""

import pytest

from annotation.models import Assignment, StudySession, Worker
from annotation.services.leases import task_claim
from annotation.services.studies import study_participant_enter
from tests.annotation.builders import build_study_project, prolific_ids, submit_rating
from tests.annotation.services.test_leases_concurrency_postgres import run_threads

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]

THREADS = 8


def test_simultaneous_arrivals_of_one_participant_make_one_worker_and_one_session():
    project = build_study_project(slug="arrive")
    entries = [None] * THREADS

    def arrive(index):
        entries[index] = study_participant_enter(project=project, platform="prolific", query=prolific_ids(1))

    run_threads(arrive, THREADS)
    assert Worker.objects.filter(platform="prolific").count() == 1
    assert StudySession.objects.count() == 1
    worker = Worker.objects.get(platform="prolific")
    assert {entry.worker.pk for entry in entries} == {worker.pk}
    assert {entry.study_session.pk for entry in entries} == {StudySession.objects.get().pk}
    assert worker.user_id is not None and list(worker.projects.all()) == [project]


def test_simultaneous_sessions_of_one_participant_share_their_worker():
    project = build_study_project(slug="sessions")

    def arrive(index):
        study_participant_enter(project=project, platform="prolific", query=prolific_ids(1, session=index))

    run_threads(arrive, THREADS)
    assert Worker.objects.filter(platform="prolific").count() == 1
    assert StudySession.objects.filter(worker__external_id=prolific_ids(1)["PROLIFIC_PID"]).count() == THREADS


def test_many_participants_arriving_at_once_each_get_their_own_worker():
    project = build_study_project(slug="crowd")

    def arrive(index):
        # Two arrivals per participant, at once.
        study_participant_enter(project=project, platform="prolific", query=prolific_ids(index // 2))

    run_threads(arrive, THREADS)
    assert Worker.objects.filter(platform="prolific").count() == THREADS // 2
    assert StudySession.objects.count() == THREADS // 2
    assert project.workers.count() == THREADS // 2


def test_tabs_claiming_at_once_on_the_last_task_of_the_quota_share_one_lease():
    project = build_study_project(slug="tabs", items=20, overlap=3, study_quota=3)
    worker = study_participant_enter(project=project, platform="prolific", query=prolific_ids(1)).worker
    for _ in range(2):
        submit_rating(task_claim(worker=worker, project=project), worker)
    leases = [None] * THREADS

    def claim(index):
        leases[index] = task_claim(worker=Worker.objects.get(pk=worker.pk), project=project)

    run_threads(claim, THREADS)
    assert len({lease.pk for lease in leases}) == 1
    assert Assignment.objects.filter(worker=worker, status=Assignment.Status.CLAIMED).count() == 1
    submit_rating(leases[0], worker)
    assert task_claim(worker=worker, project=project) is None
