"""The worker page through the test client: instructions open on the first task, "k of N", the minutes
left on the lease, the comment and "broken" flag, changing the last answer while its lease lasts,
no public-site navigation; and the researchers' review of flags and comments on the project page."""

import re
from datetime import timedelta

import pytest
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from annotation.models import AnnotationProject, Assignment, Response
from annotation.services.leases import MAX_COMMENT
from tests.annotation.builders import answer_for, build_project
from tests.builders import StaffFactory, WorkerFactory

pytestmark = pytest.mark.django_db

WORK = reverse("annotation:work")
RATING = {"relevance": "4", "ambiguous": "no"}


def signed_in(worker) -> Client:
    client = Client()
    client.force_login(worker.user)
    return client


def rate_current(client, **extra):
    """Submit the task the work page shows, with the label's answer unless told otherwise."""
    page = client.get(WORK)
    assignment = page.context["assignment"]
    data = {**RATING, "answer": answer_for(assignment.item.example), **extra}
    response = client.post(reverse("annotation:submit", args=[assignment.pk]), data)
    assert response.status_code == 302
    return assignment


def test_instructions_are_open_on_the_first_task_then_collapsed(db):
    project = build_project(items=3, instructions="Read **carefully**.")
    client = signed_in(WorkerFactory(projects=[project]))
    first = client.get(WORK).content.decode()
    assert re.search(r'<details class="instructions" id="instructions" open>', first)
    assert "<strong>carefully</strong>" in first
    rate_current(client)
    second = client.get(WORK).content.decode()
    assert '<details class="instructions" id="instructions">' in second
    assert "<strong>carefully</strong>" in second


def test_progress_is_k_of_n(db):
    project = build_project(items=4, overlap=2)
    client = signed_in(WorkerFactory(projects=[project]))
    assert '<span id="progress">0 of 4 done</span>' in client.get(WORK).content.decode()
    rate_current(client)
    assert '<span id="progress">1 of 4 done</span>' in client.get(WORK).content.decode()
    # A skipped example never comes back: one fewer to be had.
    page = client.get(WORK)
    client.post(reverse("annotation:skip", args=[page.context["assignment"].pk]))
    assert '<span id="progress">1 of 3 done</span>' in client.get(WORK).content.decode()


def test_a_study_participant_sees_their_quota(db):
    project = build_project(items=6)
    AnnotationProject.objects.filter(pk=project.pk).update(study_quota=5)
    client = signed_in(WorkerFactory(projects=[project], platform="prolific"))
    assert '<span id="progress">0 of 5 done</span>' in client.get(WORK).content.decode()


def test_the_lease_shows_minutes_left_and_its_end_for_the_workers_clock(db):
    project = build_project(items=2, lease_seconds=270)
    client = signed_in(WorkerFactory(projects=[project]))
    page = client.get(WORK)
    html = page.content.decode()
    expires = page.context["assignment"].expires_at
    assert '<strong id="lease-minutes">5 min left</strong>' in html  # 4.5 minutes, rounded up
    seconds = int(re.search(r'id="lease" data-seconds-left="(\d+)"', html).group(1))
    assert 260 <= seconds <= 270
    # The ISO datetime annotate.js turns into the worker's local time, and the UTC fallback.
    assert f'<time class="local-time" datetime="{expires.isoformat()}">{expires:%H:%M} UTC</time>' in html


def test_the_comment_and_the_flag_are_stored_with_the_rating(db):
    project = build_project(items=2)
    worker = WorkerFactory(projects=[project])
    client = signed_in(worker)
    html = client.get(WORK).content.decode()
    assert 'name="comment"' in html and f'maxlength="{MAX_COMMENT}"' in html
    assert 'type="checkbox" name="flagged_broken"' in html and "This example is broken" in html
    rate_current(client, comment="  The statement is cut off.  ", flagged_broken="on")
    stored = Response.objects.get(worker=worker)
    assert (stored.comment, stored.flagged_broken) == ("The statement is cut off.", True)


def test_a_comment_over_the_bound_is_refused_and_nothing_is_stored(db):
    project = build_project(items=2)
    worker = WorkerFactory(projects=[project])
    client = signed_in(worker)
    assignment = client.get(WORK).context["assignment"]
    data = {**RATING, "answer": answer_for(assignment.item.example), "comment": "x" * (MAX_COMMENT + 1)}
    page = client.post(reverse("annotation:submit", args=[assignment.pk]), data, follow=True)
    assert b"Not saved" in page.content and b"at most 2000 characters" in page.content
    assert not Response.objects.exists()
    assert Assignment.objects.get(pk=assignment.pk).status == Assignment.Status.CLAIMED


def test_the_last_answer_can_be_changed_while_its_lease_lasts(db):
    project = build_project(items=3)
    worker = WorkerFactory(projects=[project])
    client = signed_in(worker)
    assert "Change my last answer" not in client.get(WORK).content.decode()
    rated = rate_current(client, comment="first thought")
    response = Response.objects.get(assignment=rated)
    edit_url = reverse("annotation:response-edit", args=[response.pk])
    page = client.get(WORK).content.decode()
    assert f'href="{edit_url}">Change my last answer</a>' in page

    # The edit page shows the example and the worker's own answers, the label nowhere.
    edit = client.get(edit_url)
    html = edit.content.decode()
    assert edit.status_code == 200 and "Change your last answer" in html
    assert rated.item.example.statement in html
    assert edit.context["form"]["answer"].value() == response.answer
    assert "first thought" in html
    assert "matching" not in html.lower() and 'id="skip-form"' not in html

    wrong = answer_for(rated.item.example, label_correct=False)
    changed = client.post(
        edit_url,
        {"relevance": "2", "answer": wrong, "ambiguous": "yes", "comment": "", "flagged_broken": "on"},
    )
    assert changed.status_code == 302 and changed["Location"] == WORK
    stored = Response.objects.get(pk=response.pk)
    assert (stored.relevance, stored.answer, stored.label_correct, stored.ambiguous) == (
        2,
        wrong,
        False,
        True,
    )
    assert (stored.comment, stored.flagged_broken) == ("", True) and stored.edited_at is not None
    assert b"Your last answer was changed." in client.get(WORK).content


def test_after_the_lease_the_answer_stays_as_it_is(db):
    project = build_project(items=3)
    worker = WorkerFactory(projects=[project])
    client = signed_in(worker)
    rated = rate_current(client)
    response = Response.objects.get(assignment=rated)
    now = timezone.now()
    Assignment.objects.filter(pk=rated.pk).update(
        claimed_at=now - timedelta(minutes=10), expires_at=now - timedelta(seconds=1)
    )
    assert "Change my last answer" not in client.get(WORK).content.decode()
    edit_url = reverse("annotation:response-edit", args=[response.pk])
    page = client.get(edit_url, follow=True)
    assert page.redirect_chain == [(WORK, 302)] and b"can no longer be changed" in page.content
    before = (response.relevance, response.answer)
    wrong = answer_for(rated.item.example, label_correct=False)
    posted = client.post(edit_url, {"relevance": "1", "answer": wrong, "ambiguous": "yes"}, follow=True)
    assert b"Not changed: the time to change this answer is over." in posted.content
    stored = Response.objects.get(pk=response.pk)
    assert (stored.relevance, stored.answer) == before and stored.edited_at is None


def test_an_invalid_change_is_refused_on_the_edit_page(db):
    project = build_project(items=2)
    worker = WorkerFactory(projects=[project])
    client = signed_in(worker)
    rated = rate_current(client)
    response = Response.objects.get(assignment=rated)
    page = client.post(
        reverse("annotation:response-edit", args=[response.pk]),
        {"relevance": "9", "answer": response.answer, "ambiguous": "no"},
    )
    assert page.status_code == 400 and b"Not changed." in page.content
    assert Response.objects.get(pk=response.pk).edited_at is None


def test_nobody_else_can_open_or_change_a_workers_answer(db):
    project = build_project(items=3)
    owner, other = WorkerFactory.create_batch(2, projects=[project])
    rated = rate_current(signed_in(owner))
    response = Response.objects.get(assignment=rated)
    url = reverse("annotation:response-edit", args=[response.pk])
    data = {"relevance": "1", "answer": response.answer, "ambiguous": "yes"}
    for client in (signed_in(other), Client(), signed_in(WorkerFactory())):
        assert client.get(url).status_code == 404
        assert client.post(url, data).status_code == 404
    staff = Client()
    staff.force_login(StaffFactory())
    assert staff.get(url).status_code == 404
    assert Response.objects.get(pk=response.pk).edited_at is None


def test_workers_see_no_public_navigation_and_staff_keep_theirs(db):
    project = build_project(items=2)
    worker_page = signed_in(WorkerFactory(projects=[project])).get(WORK).content.decode()
    header = worker_page.split("<body>")[1].split("<main>")[0]
    assert 'class="site-header worker-header"' in header and project.name in header
    for link in ("Catalog", "Explore", "Evaluations", "API", "href="):
        assert link not in header
    assert "<nav>" not in worker_page

    researcher = StaffFactory()
    WorkerFactory(projects=[project], user=researcher)
    staff = Client()
    staff.force_login(researcher)
    preview = staff.get(WORK)
    assert preview.status_code == 200 and preview.context["assignment"] is not None
    assert "<nav>" in preview.content.decode() and 'href="/explore/"' in preview.content.decode()


def test_researchers_review_flags_and_comments_escaped_and_resolve_them(db):
    project = build_project(items=3)
    worker = WorkerFactory(projects=[project])
    rate_current(signed_in(worker), comment='<script>alert("x")</script> odd', flagged_broken="on")
    response = Response.objects.get()
    researcher = Client()
    researcher.force_login(StaffFactory())
    page = researcher.get(project.get_absolute_url())
    html = page.content.decode()
    assert 'id="worker-notes"' in html and "1 response with a flag or a comment, 1 not yet resolved" in html
    assert "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt; odd" in html and "<script>alert" not in html
    assert "flagged broken" in html
    url = reverse("annotation:response-flag-resolve", args=[project.slug, response.pk])
    assert f'action="{url}"' in html

    # A worker may not resolve it; the researcher may.
    assert signed_in(worker).post(url).status_code == 403
    assert Response.objects.get().flag_resolved_at is None
    done = researcher.post(url)
    assert done.status_code == 302 and done["Location"] == project.get_absolute_url() + "#worker-notes"
    assert Response.objects.get().flag_resolved_at is not None
    assert "0 not yet resolved" in researcher.get(project.get_absolute_url()).content.decode()
    # A response of another project is not found through this one.
    other = build_project(slug="other")
    assert (
        researcher.post(
            reverse("annotation:response-flag-resolve", args=[other.slug, response.pk])
        ).status_code
        == 404
    )
