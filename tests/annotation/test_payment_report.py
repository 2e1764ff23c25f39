"""The payment report (issue 17): one CSV row per worker of a project with tasks done, time on task,
gold accuracy, bonus eligibility, study sessions and the pay estimate; staff only; safe to open in a
spreadsheet."""

import csv
import io
from datetime import timedelta
from decimal import Decimal

import pytest
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from annotation.models import AnnotationProject
from annotation.services.leases import task_claim
from annotation.services.projects import project_item_mark_gold
from annotation.services.studies import (
    project_study_link_set,
    study_participant_enter,
    study_participant_finish,
)
from annotation.services.workers import worker_set_excluded
from tests.annotation.builders import build_study_project, prolific_ids, submit_rating
from tests.builders import StaffFactory, WorkerFactory

pytestmark = pytest.mark.django_db


def report(project) -> list[dict]:
    staff = Client()
    staff.force_login(StaffFactory())
    response = staff.get(reverse("annotation:payments-csv", args=[project.slug]))
    assert response.status_code == 200 and response["Content-Type"] == "text/csv; charset=utf-8"
    assert f'filename="{project.slug}-payments.csv"' in response["Content-Disposition"]
    return list(csv.DictReader(io.StringIO(b"".join(response.streaming_content).decode())))


def rate(worker, project, *, ms: int, right: bool, claimed_ago: timedelta = timedelta(0)):
    lease = task_claim(worker=worker, project=project, now=timezone.now() - claimed_ago)
    # A gold answer is right when it agrees with the expected answers (label, not ambiguous).
    return submit_rating(lease, worker, label_correct=right, time_on_task_ms=ms)


@pytest.fixture
def project():
    # gold_rate 1: each worker's first task is the gold item.
    project = build_study_project(items=6, overlap=3, study_quota=3, gold_rate=1.0, lease_seconds=3600)
    project_item_mark_gold(item=project.items.order_by("pk").first(), label_correct=True, ambiguous=False)
    AnnotationProject.objects.filter(pk=project.pk).update(gold_min_answers=1)
    return project_study_link_set(
        project=AnnotationProject.objects.get(pk=project.pk),
        platform="prolific",
        study_quota=3,
        completion_code="C0DE42",
        pay_per_hour=Decimal("12.00"),
        bonus_gold_accuracy=0.5,
    )


def test_one_row_per_worker_with_time_gold_bonus_and_pay(project):
    good = study_participant_enter(project=project, platform="prolific", query=prolific_ids(1))
    rate(good.worker, project, ms=90_000, right=True, claimed_ago=timedelta(minutes=10))  # gold, right
    rate(good.worker, project, ms=20_000, right=False)
    rate(good.worker, project, ms=10_000, right=True)
    assert study_participant_finish(worker=good.worker, study_session=good.study_session) is not None
    sloppy = study_participant_enter(project=project, platform="prolific", query=prolific_ids(2))
    rate(sloppy.worker, project, ms=1_000, right=False)  # gold, wrong
    idle = WorkerFactory(projects=[project], external_id="invited-1")

    rows = {row["worker_id"]: row for row in report(project)}
    assert list(rows) == [str(good.worker.pk), str(sloppy.worker.pk), str(idle.pk)]
    first = rows[str(good.worker.pk)]
    assert first["platform"] == "prolific" and first["external_id"] == prolific_ids(1)["PROLIFIC_PID"]
    assert first["tasks_done"] == "3" and first["time_on_task_seconds"] == "120.0"
    # From the claim of their first task (ten minutes ago) to their last response.
    assert 600 <= float(first["span_seconds"]) < 660
    assert first["first_response_at"] <= first["last_response_at"]
    assert (first["gold_answers"], first["gold_right"], first["gold_accuracy"]) == ("1", "1", "1.0")
    assert first["bonus_eligible"] == "True"
    assert (first["study_sessions"], first["study_sessions_completed"]) == ("1", "1")
    # 12.00 per hour for 120 s on task.
    assert (first["pay_per_hour"], first["pay_estimate"]) == ("12.00", "0.40")
    second = rows[str(sloppy.worker.pk)]
    assert (second["tasks_done"], second["gold_accuracy"], second["bonus_eligible"]) == ("1", "0.0", "False")
    assert (second["study_sessions"], second["study_sessions_completed"]) == ("1", "0")
    assert second["pay_estimate"] == "0.00"
    third = rows[str(idle.pk)]
    assert (third["platform"], third["tasks_done"], third["time_on_task_seconds"]) == ("", "0", "0.0")
    assert (third["span_seconds"], third["gold_accuracy"], third["bonus_eligible"]) == ("", "", "False")


def test_too_few_gold_answers_earn_no_bonus_and_without_a_rate_there_is_no_estimate(project):
    AnnotationProject.objects.filter(pk=project.pk).update(gold_min_answers=2, pay_per_hour=None)
    project = AnnotationProject.objects.get(pk=project.pk)
    entry = study_participant_enter(project=project, platform="prolific", query=prolific_ids(1))
    rate(entry.worker, project, ms=5_000, right=True)
    worker_set_excluded(worker=entry.worker, excluded=True)
    (row,) = report(project)
    assert (row["gold_answers"], row["bonus_eligible"], row["excluded"]) == ("1", "False", "True")
    assert row["pay_per_hour"] == "" and row["pay_estimate"] == ""
    AnnotationProject.objects.filter(pk=project.pk).update(bonus_gold_accuracy=None)
    (row,) = report(AnnotationProject.objects.get(pk=project.pk))
    assert row["bonus_eligible"] == ""  # the project sets no bonus


def test_a_formula_in_an_id_is_written_as_text(project):
    WorkerFactory(projects=[project], external_id='=HYPERLINK("https://evil.example","pay me")')
    (row,) = report(project)
    assert row["external_id"] == '\'=HYPERLINK("https://evil.example","pay me")'


def test_only_staff_get_the_report(project):
    url = reverse("annotation:payments-csv", args=[project.slug])
    anonymous = Client().get(url)
    assert anonymous.status_code == 302 and "login" in anonymous["Location"]
    worker = WorkerFactory(projects=[project])
    signed_in = Client()
    signed_in.force_login(worker.user)
    assert signed_in.get(url).status_code == 404
    staff = Client()
    staff.force_login(StaffFactory())
    assert staff.post(url).status_code == 405
    assert staff.get(reverse("annotation:payments-csv", args=["nope"])).status_code == 404
    assert url in staff.get(project.get_absolute_url()).content.decode()
