"""Crowd platforms' study links (issue 17): the platform's ids are validated, the participant's worker
is found or created (never twice), their sessions recorded, the quota enforced where tasks are
claimed, and the study link is turned on, rotated and off by its service. The tests that claim run
on both lease paths (`lease_path`: SQLite's ORM steps, PostgreSQL's single statements)."""

from decimal import Decimal

import pytest
from django.core.exceptions import ValidationError
from django.http import QueryDict

from annotation.models import AnnotationProject, Assignment, Response, StudySession, Worker
from annotation.services.leases import task_claim
from annotation.services.projects import project_item_mark_gold
from annotation.services.studies import (
    StudyIdsInvalid,
    StudyLinkClosed,
    StudyParticipantExcluded,
    project_study_link_set,
    study_ids_parse,
    study_participant_enter,
    study_participant_finish,
)
from annotation.services.workers import worker_set_excluded
from tests.annotation.builders import build_study_project, mturk_ids, prolific_ids, submit_rating
from tests.builders import WorkerFactory

pytestmark = pytest.mark.django_db


def enter(project, query):
    return study_participant_enter(project=project, platform=project.study_platform, query=query)


def rate_all(worker, project) -> int:
    """Claim and submit until the worker gets nothing more; the number submitted."""
    done = 0
    while (lease := task_claim(worker=worker, project=project)) is not None:
        submit_rating(lease, worker)
        done += 1
        assert done < 100, "the claims never ran out"
    return done


def nothing_written() -> tuple[int, int]:
    return Worker.objects.count(), StudySession.objects.count()


# ----------------------------------------------------------------------------- the platform's ids


@pytest.mark.parametrize(
    "change, problem",
    [
        ({"PROLIFIC_PID": None}, "PROLIFIC_PID is missing"),
        ({"STUDY_ID": "6A" + "0" * 22}, "STUDY_ID is not a Prolific id"),  # uppercase
        ({"SESSION_ID": "7b" + "0" * 21}, "SESSION_ID is not a Prolific id"),  # 23 characters
        ({"PROLIFIC_PID": "{{%PROLIFIC_PID%}}"}, "PROLIFIC_PID is not a Prolific id"),  # not filled in
        ({"PROLIFIC_PID": "5f" + "0" * 21 + "g"}, "PROLIFIC_PID is not a Prolific id"),
        ({"PROLIFIC_PID": "5f" + "0" * 22 + "\n"}, "PROLIFIC_PID is not a Prolific id"),
    ],
)
def test_prolific_ids_must_be_24_lowercase_hex_characters(change, problem):
    project = build_study_project()
    query = {**prolific_ids(1), **change}
    query = {name: value for name, value in query.items() if value is not None}
    before = nothing_written()
    with pytest.raises(StudyIdsInvalid, match=problem):
        enter(project, query)
    assert nothing_written() == before


def test_a_repeated_id_is_refused_and_other_parameters_are_ignored():
    project = build_study_project()
    ids = prolific_ids(1)
    repeated = QueryDict(mutable=True)
    repeated.update(ids)
    repeated.appendlist("PROLIFIC_PID", "5f" + "1" * 22)
    with pytest.raises(StudyIdsInvalid, match="PROLIFIC_PID is given more than once"):
        enter(project, repeated)
    entry = enter(project, {**ids, "utm_source": "<script>", "next": "https://evil.example/"})
    assert entry.worker.external_id == ids["PROLIFIC_PID"]


def test_every_problem_is_named_but_no_value_is_repeated():
    with pytest.raises(StudyIdsInvalid) as caught:
        study_ids_parse(platform="prolific", query={"PROLIFIC_PID": "<b>x</b>", "STUDY_ID": "nope"})
    message = str(caught.value)
    assert "PROLIFIC_PID is not" in message and "STUDY_ID is not" in message
    assert "SESSION_ID is missing" in message
    assert "<b>" not in message and "nope" not in message


@pytest.mark.parametrize(
    "change, problem",
    [
        ({"turkSubmitTo": "https://evil.example"}, "turkSubmitTo"),
        ({"turkSubmitTo": "http://www.mturk.com"}, "turkSubmitTo"),  # not https
        ({"turkSubmitTo": "https://www.mturk.com.evil.example"}, "turkSubmitTo"),
        ({"turkSubmitTo": None}, "turkSubmitTo"),
        ({"workerId": "a1234567890123"}, "workerId is not a Mechanical Turk id"),  # lowercase
        ({"hitId": "3" * 65}, "hitId is not a Mechanical Turk id"),  # too long
        ({"assignmentId": "3ASN-1"}, "assignmentId is not a Mechanical Turk id"),
    ],
)
def test_mturk_ids_and_submit_host_are_checked(change, problem):
    project = build_study_project(platform="mturk")
    query = {name: value for name, value in {**mturk_ids(1), **change}.items() if value is not None}
    before = nothing_written()
    with pytest.raises(StudyIdsInvalid, match=problem):
        enter(project, query)
    assert nothing_written() == before


def test_mturk_entry_keeps_the_submit_host_for_the_completion_form():
    project = build_study_project(platform="mturk")
    for host in ("https://www.mturk.com", "https://workersandbox.mturk.com/"):
        entry = enter(project, mturk_ids(1 if "www" in host else 2, submit_to=host))
        assert entry.study_session.submit_to == host.rstrip("/")
        assert entry.study_session.session_id == mturk_ids(1 if "www" in host else 2)["assignmentId"]
        assert entry.worker.platform == "mturk"
    assert project.completion_url == ""  # Mechanical Turk posts to turkSubmitTo instead


def test_an_mturk_preview_creates_nothing():
    project = build_study_project(platform="mturk")
    before = nothing_written()
    entry = enter(project, {"assignmentId": "ASSIGNMENT_ID_NOT_AVAILABLE", "hitId": "3HIT"})
    assert entry.ids.preview and entry.worker is None and entry.study_session is None
    assert nothing_written() == before


# ----------------------------------------------------------------------------- the participant


def test_an_arrival_creates_the_worker_with_an_account_and_a_session(lease_path):
    project = build_study_project()
    ids = prolific_ids(1)
    entry = enter(project, ids)
    worker = Worker.objects.get(pk=entry.worker.pk)
    assert (worker.platform, worker.external_id) == ("prolific", ids["PROLIFIC_PID"])
    assert worker.user is not None and not worker.user.has_usable_password()
    # No invite link: the study link is how they sign in.
    assert worker.invite_expires_at is None
    assert list(worker.projects.all()) == [project]
    session = StudySession.objects.get()
    assert (session.worker, session.project, session.platform) == (worker, project, "prolific")
    assert (session.study_id, session.session_id) == (ids["STUDY_ID"], ids["SESSION_ID"])
    assert session.completed_at is None and not entry.finished


def test_a_returning_participant_continues_and_a_new_session_id_is_a_new_session(lease_path):
    project = build_study_project(study_quota=3)
    first = enter(project, prolific_ids(1))
    lease = task_claim(worker=first.worker, project=project)
    submit_rating(lease, first.worker)
    again = enter(project, prolific_ids(1))
    assert again.worker.pk == first.worker.pk and again.study_session.pk == first.study_session.pk
    new_session = enter(project, prolific_ids(1, session=99))
    assert new_session.worker.pk == first.worker.pk
    assert new_session.study_session.pk != first.study_session.pk
    assert Worker.objects.count() == 1 and StudySession.objects.count() == 2
    # The quota counts per participant, over both sessions: two more tasks, then nothing.
    assert rate_all(first.worker, project) == 2
    assert Response.objects.filter(worker=first.worker).count() == 3


def test_the_same_pid_on_another_platform_or_invited_is_another_worker():
    project = build_study_project()
    invited = WorkerFactory(external_id=prolific_ids(1)["PROLIFIC_PID"], projects=[project])
    entry = enter(project, prolific_ids(1))
    assert entry.worker.pk != invited.pk and entry.worker.platform == "prolific"


def test_a_session_id_of_another_participant_is_refused(lease_path):
    project = build_study_project()
    enter(project, prolific_ids(1, session=5))
    before = nothing_written()
    with pytest.raises(StudyIdsInvalid, match="already used"):
        enter(project, prolific_ids(2, session=5))
    assert nothing_written() == before
    # Nor may the same session come back with another study id.
    with pytest.raises(StudyIdsInvalid, match="already used"):
        enter(project, prolific_ids(1, session=5, study=3))


def test_an_excluded_participant_gets_nothing():
    project = build_study_project()
    entry = enter(project, prolific_ids(1))
    worker_set_excluded(worker=entry.worker, excluded=True, reason="gold")
    with pytest.raises(StudyParticipantExcluded):
        enter(project, prolific_ids(1, session=42))
    assert StudySession.objects.count() == 1
    # Excluded workers stop getting tasks, study link or not.
    with pytest.raises(Exception, match="excluded"):
        task_claim(worker=Worker.objects.get(pk=entry.worker.pk), project=project)


def test_a_closed_project_a_link_turned_off_or_replaced_lets_no_one_in():
    project = build_study_project()
    stale = AnnotationProject.objects.get(pk=project.pk)
    project_study_link_set(
        project=project, platform="prolific", study_quota=5, completion_code="X", rotate=True
    )
    with pytest.raises(StudyLinkClosed):
        enter(stale, prolific_ids(1))  # the old link, looked up before the rotation
    project = AnnotationProject.objects.get(pk=project.pk)
    project_study_link_set(project=project, platform="", study_quota=5)
    with pytest.raises(StudyLinkClosed):
        enter(AnnotationProject.objects.get(pk=project.pk), prolific_ids(1))
    closed = build_study_project(slug="closed")
    AnnotationProject.objects.filter(pk=closed.pk).update(is_active=False)
    with pytest.raises(StudyLinkClosed):
        enter(AnnotationProject.objects.get(pk=closed.pk), prolific_ids(1))
    # A Prolific link does not take Mechanical Turk's ids.
    with pytest.raises(StudyLinkClosed):
        study_participant_enter(project=closed, platform="mturk", query=mturk_ids(1))
    assert nothing_written() == (0, 0)


# ----------------------------------------------------------------------------- the quota


def test_a_participant_gets_at_most_the_quota_gold_included(lease_path):
    project = build_study_project(items=10, overlap=3, study_quota=4, gold_rate=1.0)
    gold = project.items.order_by("pk").first()
    project_item_mark_gold(item=gold, label_correct=True, ambiguous=False)
    entry = enter(project, prolific_ids(1))
    assert rate_all(entry.worker, project) == 4
    responses = Response.objects.filter(worker=entry.worker)
    assert responses.count() == 4 and responses.filter(item__is_gold=True).count() == 1
    # Items were left: the quota stopped them, not the pool.
    assert task_claim(worker=WorkerFactory(projects=[project]), project=project) is not None


def test_the_quota_does_not_touch_invited_workers():
    project = build_study_project(items=6, overlap=1, study_quota=2)
    invited = WorkerFactory(projects=[project])
    assert rate_all(invited, project) == 6


def test_a_live_lease_is_returned_not_a_second_one(lease_path):
    project = build_study_project(items=6, study_quota=2)
    worker = enter(project, prolific_ids(1)).worker
    submit_rating(task_claim(worker=worker, project=project), worker)
    lease = task_claim(worker=worker, project=project)
    assert task_claim(worker=worker, project=project).pk == lease.pk
    submit_rating(lease, worker)
    assert task_claim(worker=worker, project=project) is None
    assert Assignment.objects.filter(worker=worker).count() == 2


def test_finishing_at_the_quota_and_coming_back_shows_the_completion_again(lease_path):
    project = build_study_project(items=6, study_quota=2)
    entry = enter(project, prolific_ids(1))
    # Not finished while tasks are left: one is leased to them instead.
    assert study_participant_finish(worker=entry.worker, study_session=entry.study_session) is None
    assert Assignment.objects.filter(worker=entry.worker, status="claimed").count() == 1
    rate_all(entry.worker, project)
    finished = study_participant_finish(worker=entry.worker, study_session=entry.study_session)
    assert finished.pk == entry.study_session.pk and finished.completed_at is not None
    returning = enter(project, prolific_ids(1))
    assert returning.finished and returning.study_session.completed_at == finished.completed_at
    # With a new session id: a new session, completed at once (the quota is per participant).
    again = enter(project, prolific_ids(1, session=7))
    assert again.finished and again.study_session.completed_at is not None
    assert StudySession.objects.filter(completed_at__isnull=False).count() == 2


def test_a_participant_finishes_when_the_pool_runs_out_before_the_quota(lease_path):
    project = build_study_project(items=3, overlap=1, study_quota=10)
    entry = enter(project, prolific_ids(1))
    assert rate_all(entry.worker, project) == 3
    finished = study_participant_finish(worker=entry.worker, study_session=entry.study_session)
    assert finished is not None and finished.completed_at is not None


def test_an_excluded_participant_does_not_finish():
    project = build_study_project(items=3, study_quota=1)
    entry = enter(project, prolific_ids(1))
    rate_all(entry.worker, project)
    worker = worker_set_excluded(worker=entry.worker, excluded=True)
    assert study_participant_finish(worker=worker, study_session=entry.study_session) is None
    assert StudySession.objects.get().completed_at is None


# ----------------------------------------------------------------------------- the researchers' side


def test_turning_the_link_on_rotating_and_off():
    project = build_study_project(study_quota=12, completion_code="ABC123")
    assert project.study_platform == "prolific" and len(project.study_token) >= 32
    # Prolific's own completion URL when none is given.
    assert project.completion_url == "https://app.prolific.com/submissions/complete?cc=ABC123"
    token = project.study_token
    same = project_study_link_set(
        project=project, platform="prolific", study_quota=8, completion_code="ABC123"
    )
    assert same.study_token == token and same.study_quota == 8
    rotated = project_study_link_set(
        project=project,
        platform="prolific",
        study_quota=8,
        completion_code="ABC123",
        completion_url="https://example.org/done",
        pay_per_hour=Decimal("12.50"),
        bonus_gold_accuracy=0.8,
        rotate=True,
    )
    assert rotated.study_token not in (None, token) and rotated.completion_url == "https://example.org/done"
    off = project_study_link_set(project=project, platform="", study_quota=8, pay_per_hour=Decimal("9"))
    stored = AnnotationProject.objects.get(pk=project.pk)
    assert off.study_token is None and stored.study_token is None and stored.study_platform == ""
    assert stored.pay_per_hour == Decimal("9.00")


@pytest.mark.parametrize(
    "change, field",
    [
        ({"platform": "crowdflower"}, "study_platform"),
        ({"study_quota": 0}, "study_quota"),
        ({"study_quota": 10_001}, "study_quota"),
        ({"completion_code": ""}, "completion_code"),
        ({"completion_code": "<script>"}, "completion_code"),
        ({"completion_url": "javascript:alert(1)"}, "completion_url"),
        ({"completion_url": "http://app.prolific.com/x"}, "completion_url"),
        ({"pay_per_hour": Decimal("-1")}, "pay_per_hour"),
        ({"pay_per_hour": Decimal("1.234")}, "pay_per_hour"),
        ({"pay_per_hour": Decimal("NaN")}, "pay_per_hour"),
        ({"bonus_gold_accuracy": 1.5}, "bonus_gold_accuracy"),
    ],
)
def test_bad_study_settings_are_refused_and_change_nothing(change, field):
    project = build_study_project(study_quota=5, completion_code="KEEP")
    values = {"platform": "prolific", "study_quota": 5, "completion_code": "NEW", **change}
    with pytest.raises(ValidationError) as caught:
        project_study_link_set(project=project, **values)
    assert field in caught.value.message_dict
    stored = AnnotationProject.objects.get(pk=project.pk)
    assert (stored.completion_code, stored.study_token) == ("KEEP", project.study_token)
