"""The study link's pages (issue 17): a participant arrives from Prolific or Mechanical Turk, starts
(a POST with CSRF), rates up to the quota and gets the completion code and the way back to the
platform; refusals are clear pages that create nothing. And the researchers' study settings."""

from urllib.parse import urlencode

import pytest
from django.contrib.sessions.models import Session
from django.test import Client
from django.urls import reverse

from annotation.models import AnnotationProject, Response, StudySession, Worker, WorkerSession
from annotation.services.studies import project_study_link_set
from annotation.services.workers import worker_set_excluded
from tests.annotation.builders import build_study_project, mturk_ids, prolific_ids
from tests.builders import StaffFactory

pytestmark = pytest.mark.django_db

PAYLOAD = "<script>window.__xss = 1;</script>"


def study_url(project, ids: dict) -> str:
    return f"{reverse('annotation:study-entry', args=[project.study_token])}?{urlencode(ids)}"


def start(client: Client, project, ids: dict):
    """What the Start button does: POST, with the page's CSRF token, to the link as opened."""
    url = study_url(project, ids)
    page = client.get(url)
    assert page.status_code == 200, page.content
    return client.post(url, {"csrfmiddlewaretoken": page.context["csrf_token"]})


def rate_current(client: Client):
    """Rate the task the worker page shows, as its form does; the response to the submit."""
    page = client.get(reverse("annotation:work"), follow=True)
    assignment = page.context["assignment"]
    data = {
        "relevance": "4",
        "answer": assignment.item.example.answer_matching_behavior,
        "ambiguous": "no",
        "csrfmiddlewaretoken": page.context["csrf_token"],
    }
    return client.post(reverse("annotation:submit", args=[assignment.pk]), data)


def csp_of(response) -> dict[str, list[str]]:
    policy = {}
    for directive in response["Content-Security-Policy"].split(";"):
        name, *values = directive.split()
        policy[name] = values
    return policy


@pytest.fixture
def client() -> Client:
    return Client(enforce_csrf_checks=True)


# ----------------------------------------------------------------------------- arriving


def test_the_link_shows_the_study_and_a_start_button_and_creates_nothing(client):
    project = build_study_project(study_quota=7, instructions="Read **carefully**.")
    AnnotationProject.objects.filter(pk=project.pk).update(name=f"Power {PAYLOAD}")
    page = client.get(study_url(project, prolific_ids(1)))
    assert page.status_code == 200
    html = page.content.decode()
    assert "up to 7 examples" in html and "Prolific" in html and "<strong>carefully</strong>" in html
    assert PAYLOAD not in html and "&lt;script&gt;" in html
    # The form posts back to the link as opened, ids included.
    assert f'action="{study_url(project, prolific_ids(1)).replace("&", "&amp;")}"' in html
    assert Worker.objects.count() == 0 and StudySession.objects.count() == 0
    # A participant sees no way into the public site, whose pages show the labels.
    assert 'href="/datasets' not in html and "Catalog</a>" not in html and "Explore</a>" not in html


def test_start_needs_csrf_then_signs_in_and_shows_a_task(client):
    project = build_study_project()
    url = study_url(project, prolific_ids(1))
    assert client.post(url).status_code == 403  # a third-party page cannot sign anyone in
    assert Worker.objects.count() == 0
    response = start(client, project, prolific_ids(1))
    assert response.status_code == 302
    assert response["Location"] == f"{reverse('annotation:work')}?project={project.slug}"
    worker = Worker.objects.get(platform="prolific")
    page = client.get(response["Location"])
    assert page.status_code == 200 and page.context["worker"] == worker
    assert page.context["assignment"] is not None
    # Signed in as the invite link signs in: a recorded session with a fixed end.
    assert WorkerSession.objects.filter(worker=worker).count() == 1
    session = Session.objects.get(session_key=WorkerSession.objects.get(worker=worker).session_key)
    assert session.get_decoded()["_auth_user_id"] == str(worker.user_id)


def test_bad_ids_get_a_clear_page_that_repeats_nothing(client):
    project = build_study_project()
    page = client.get(study_url(project, {**prolific_ids(1), "PROLIFIC_PID": PAYLOAD}))
    assert page.status_code == 400
    html = page.content.decode()
    assert "PROLIFIC_PID is not a Prolific id" in html and "Open the study from Prolific" in html
    # The refusal names the parameter, never its value (nor does the page run it).
    assert "xss" not in page.context["message"] and PAYLOAD not in html
    token = client.get(study_url(project, prolific_ids(2))).context["csrf_token"]
    bad = client.post(study_url(project, {"PROLIFIC_PID": "x"}), {"csrfmiddlewaretoken": token})
    assert bad.status_code == 400 and b"STUDY_ID is missing" in bad.content
    assert Worker.objects.count() == 0


def test_unknown_closed_and_turned_off_links(client):
    project = build_study_project()
    unknown = client.get(f"{reverse('annotation:study-entry', args=['x' * 32])}?{urlencode(prolific_ids(1))}")
    assert unknown.status_code == 404 and b"This study link is not valid" in unknown.content
    url = study_url(project, prolific_ids(1))
    token = client.get(url).context["csrf_token"]
    AnnotationProject.objects.filter(pk=project.pk).update(is_active=False)
    assert client.get(url).status_code == 410
    closed = client.post(url, {"csrfmiddlewaretoken": token})
    assert closed.status_code == 410 and b"This study is closed" in closed.content
    project_study_link_set(project=project, platform="", study_quota=5)
    assert client.get(url).status_code == 404  # the token is gone with the link
    assert Worker.objects.count() == 0


def test_an_mturk_preview_shows_the_study_but_no_start(client):
    project = build_study_project(platform="mturk")
    url = study_url(project, {"assignmentId": "ASSIGNMENT_ID_NOT_AVAILABLE", "hitId": "3HIT"})
    page = client.get(url)
    assert page.status_code == 200 and b"Accept the HIT to start" in page.content
    assert b'id="study-start"' not in page.content
    # The page has no form; a POST anyway (CSRF aside) is refused and creates nothing.
    refused = Client().post(url)
    assert refused.status_code == 400 and b"Accept the HIT first" in refused.content
    assert Worker.objects.count() == 0


def test_an_excluded_participant_gets_a_clear_page_and_no_tasks(client):
    project = build_study_project()
    start(client, project, prolific_ids(1))
    worker = Worker.objects.get()
    worker_set_excluded(worker=worker, excluded=True, reason="failed gold")
    other = Client(enforce_csrf_checks=True)
    refused = start(other, project, prolific_ids(1, session=3))
    assert refused.status_code == 403 and b"You can no longer take part" in refused.content
    assert StudySession.objects.count() == 1
    done = client.get(reverse("annotation:study-complete"))
    assert done.status_code == 403 and b"C0DE42" not in done.content
    work = client.get(reverse("annotation:work"))
    assert work.status_code == 200 and work.context.get("assignment") is None


def test_arrivals_are_throttled_per_address(client, settings):
    settings.MWE_THROTTLE_RATES = {**settings.MWE_THROTTLE_RATES, "study": "2/minute"}
    project = build_study_project()
    for n in range(2):
        assert start(Client(enforce_csrf_checks=True), project, prolific_ids(n)).status_code == 302
    refused = start(Client(enforce_csrf_checks=True), project, prolific_ids(9))
    assert refused.status_code == 429 and "Retry-After" in refused
    assert Worker.objects.count() == 2


# ----------------------------------------------------------------------------- finishing


def test_at_the_quota_the_participant_gets_the_code_and_the_way_back(client):
    project = build_study_project(items=6, study_quota=2, completion_code="PRO-LIFIC_1")
    start(client, project, prolific_ids(1))
    assert client.get(reverse("annotation:study-complete")).status_code == 302  # not finished yet
    for _ in range(2):
        assert rate_current(client).status_code == 302
    work = client.get(reverse("annotation:work"))
    assert work.status_code == 302 and work["Location"] == reverse("annotation:study-complete")
    page = client.get(work["Location"])
    assert page.status_code == 200
    html = page.content.decode()
    assert 'id="completion-code">PRO-LIFIC_1<' in html
    completion = "https://app.prolific.com/submissions/complete?cc=PRO-LIFIC_1"
    assert f'href="{completion}"' in html and 'data-redirect-seconds="5"' in html
    assert "annotation/study_complete.js" in html and "<script>" not in html
    assert StudySession.objects.get().completed_at is not None
    assert Response.objects.count() == 2
    # The page may post to Mechanical Turk's hosts; no other page may.
    assert csp_of(page)["form-action"] == [
        "'self'",
        "https://www.mturk.com",
        "https://workersandbox.mturk.com",
    ]
    assert csp_of(client.get(study_url(project, prolific_ids(1))))["form-action"] == ["'self'"]


def test_a_returning_finished_participant_sees_the_completion_page_again(client):
    project = build_study_project(items=6, study_quota=1)
    start(client, project, prolific_ids(1))
    rate_current(client)
    assert client.get(reverse("annotation:study-complete")).status_code == 200
    again = start(Client(enforce_csrf_checks=True), project, prolific_ids(1))
    assert again.status_code == 302 and again["Location"] == reverse("annotation:study-complete")
    assert Response.objects.count() == 1 and Worker.objects.count() == 1


def test_mturk_participants_post_their_assignment_back(client):
    project = build_study_project(platform="mturk", items=4, study_quota=1, completion_code="MT1")
    ids = mturk_ids(1)
    start(client, project, ids)
    rate_current(client)
    page = client.get(reverse("annotation:study-complete"))
    html = page.content.decode()
    assert 'action="https://workersandbox.mturk.com/mturk/externalSubmit"' in html
    assert f'name="assignmentId" value="{ids["assignmentId"]}"' in html
    assert 'id="completion-code">MT1<' in html and "data-redirect-seconds" not in html


def test_the_pool_running_out_before_the_quota_also_finishes(client):
    project = build_study_project(items=2, overlap=1, study_quota=10)
    start(client, project, prolific_ids(1))
    rate_current(client)
    rate_current(client)
    page = client.get(reverse("annotation:work"), follow=True)
    assert page.resolver_match.url_name == "study-complete" and b"C0DE42" in page.content


def test_the_completion_page_is_only_for_participants():
    project = build_study_project()
    assert Client().get(reverse("annotation:study-complete")).status_code == 403
    staff = Client()
    staff.force_login(StaffFactory())
    assert staff.get(reverse("annotation:study-complete")).status_code == 403
    assert project.study_token


# ----------------------------------------------------------------------------- the researchers


def test_staff_turn_the_link_on_and_see_it_on_the_project_page():
    project = build_study_project(slug="settings")
    project_study_link_set(project=project, platform="", study_quota=5)
    staff = Client()
    staff.force_login(StaffFactory())
    url = reverse("annotation:project-study", args=[project.slug])
    assert staff.get(url).status_code == 200
    saved = staff.post(
        url,
        {
            "study_platform": "prolific",
            "study_quota": "12",
            "completion_code": "CODE1",
            "pay_per_hour": "9.50",
            "bonus_gold_accuracy": "0.8",
        },
    )
    assert saved.status_code == 302
    project = AnnotationProject.objects.get(pk=project.pk)
    assert (project.study_platform, project.study_quota, str(project.pay_per_hour)) == (
        "prolific",
        12,
        "9.50",
    )
    detail = staff.get(project.get_absolute_url()).content.decode()
    link = (
        f"http://testserver/annotate/study/{project.study_token}/"
        "?PROLIFIC_PID={{%PROLIFIC_PID%}}&amp;STUDY_ID={{%STUDY_ID%}}&amp;SESSION_ID={{%SESSION_ID%}}"
    )
    assert f'value="{link}"' in detail
    assert reverse("annotation:payments-csv", args=[project.slug]) in detail
    token = project.study_token
    staff.post(
        url,
        {"study_platform": "prolific", "study_quota": "12", "completion_code": "CODE1", "action": "rotate"},
    )
    assert AnnotationProject.objects.get(pk=project.pk).study_token not in (None, token)
    staff.post(url, {"study_platform": "", "study_quota": "12"})
    assert AnnotationProject.objects.get(pk=project.pk).study_token is None
    assert b"No study link" in staff.get(project.get_absolute_url()).content


@pytest.mark.parametrize(
    "change, problem",
    [
        ({"completion_code": ""}, "needs the completion code"),
        ({"completion_code": "a b"}, "letters, digits"),
        ({"completion_url": "http://example.org/done"}, "https://"),
        ({"study_quota": "0"}, "greater than or equal to 1"),
        ({"pay_per_hour": "-3"}, "greater than or equal to 0"),
        ({"bonus_gold_accuracy": "2"}, "less than or equal to 1"),
        ({"study_platform": "mechanical"}, "Select a valid choice"),
    ],
)
def test_bad_settings_are_refused_field_by_field_and_change_nothing(change, problem):
    project = build_study_project(slug="bad", completion_code="KEEP")
    staff = Client()
    staff.force_login(StaffFactory())
    data = {"study_platform": "prolific", "study_quota": "5", "completion_code": "NEW", **change}
    response = staff.post(reverse("annotation:project-study", args=[project.slug]), data)
    assert response.status_code == 400 and problem in response.content.decode()
    stored = AnnotationProject.objects.get(pk=project.pk)
    assert (stored.completion_code, stored.study_token) == ("KEEP", project.study_token)
