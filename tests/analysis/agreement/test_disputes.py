"""The disputed examples page: why each example is disputed (split votes, open flags, gold misses),
the counts per reason, the reason filter, escaping of LM-written text and comments, the page bound,
the links from the agreement pages and staff-only access."""

import random

import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from analysis.agreement import disputes
from annotation.models import Response
from annotation.services.leases import assignment_submit, response_flag_resolve, task_claim
from annotation.services.projects import project_create, project_item_mark_gold
from tests.annotation.builders import answer_for
from tests.builders import DatasetFactory, ExampleFactory, StaffFactory, UserFactory, WorkerFactory

pytestmark = pytest.mark.django_db

XSS = '<script>alert("x")</script>'


@pytest.fixture(autouse=True)
def few_resamples(settings):
    settings.ANALYSIS_BOOTSTRAP_REPLICATES = 20


@pytest.fixture
def staff_client():
    client = Client()
    client.force_login(StaffFactory())
    return client


def _rate_all(project, workers, choose) -> None:
    """The workers take turns claiming and submitting through the site's services until no task is
    left; `choose(worker index, example position)` gives the submit's keywords beyond the assignment."""
    rng = random.Random(0)
    busy = list(enumerate(workers))
    while busy:
        for index, worker in list(busy):
            assignment = task_claim(worker=worker, project=project, rng=rng)
            if assignment is None:
                busy.remove((index, worker))
                continue
            example = assignment.item.example
            values = {"relevance": 4, "ambiguous": False, "answer": answer_for(example)}
            assignment_submit(
                assignment_id=assignment.pk, worker=worker, **{**values, **choose(index, example)}
            )


@pytest.fixture
def project():
    """Six examples rated by three workers. #0 is gold (label correct), worker 2 answers against it;
    on #1 worker 0 picks the other answer; on #2 only worker 1 calls it ambiguous; on #3 worker 0
    flags it broken with a comment; on #4 worker 1 flags it and the flag is resolved; #5 is calm."""
    dataset = DatasetFactory(slug="power")
    for position in range(6):
        statement = XSS if position == 3 else f"I want power, number {position}"
        ExampleFactory(dataset=dataset, position=position, statement=statement)
    project = project_create(name="Crowd", slug="crowd", datasets=[dataset], overlap=3, gold_rate=1.0)
    gold = project.items.get(example__position=0)
    project_item_mark_gold(item=gold, label_correct=True, ambiguous=None)
    workers = [WorkerFactory(projects=[project]) for _ in range(3)]

    def choose(index, example):
        position = example.position
        if position == 0 and index == 2 or position == 1 and index == 0:
            return {"answer": answer_for(example, label_correct=False)}
        if position == 2 and index == 1:
            return {"ambiguous": True}
        if position == 3 and index == 0:
            return {"flagged_broken": True, "comment": f"Broken: {XSS}"}
        if position == 4 and index == 1:
            return {"flagged_broken": True, "comment": "cut off"}
        return {}

    _rate_all(project, workers, choose)
    flagged = Response.objects.get(project=project, item__example__position=4, flagged_broken=True)
    response_flag_resolve(project=project, response_id=flagged.pk)
    return project


def disputed(client, project, **params):
    return client.get(reverse("analysis:disputed", args=[project.slug]), params)


def test_every_rating_was_made(project):
    # Three ratings of each regular example and one gold answer by each worker.
    assert Response.objects.filter(project=project).count() == 18


def test_reasons_and_counts(project):
    found = disputes.project_disputes(project=project)
    assert found.counts == {"all": 4, "split": 3, "flagged": 1, "gold-miss": 1}
    reasons = {d.item.example.position: d.reasons for d in found.disputes}
    assert reasons == {0: ["split", "gold-miss"], 1: ["split"], 2: ["split"], 3: ["flagged"]}
    by_position = {d.item.example.position: d for d in found.disputes}
    assert by_position[1].answers == [("Yes", 2), ("No", 1)]
    assert (by_position[2].ambiguous_votes, by_position[2].votes) == (1, 3)
    assert by_position[0].gold_misses == 1
    assert [c["text"] for c in by_position[3].comments] == [f"Broken: {XSS}"]


def test_excluded_workers_make_no_disputes_unless_asked(project):
    from annotation.services.workers import worker_set_excluded

    # Worker 0 made #1's split vote and #3's flag; once excluded, only worker 2's gold miss (#0)
    # and worker 1's ambiguous vote (#2) remain.
    worker = Response.objects.get(project=project, item__example__position=3, flagged_broken=True).worker
    worker_set_excluded(worker=worker, excluded=True, reason="spam")
    found = disputes.project_disputes(project=project)
    assert found.counts == {"all": 2, "split": 2, "flagged": 0, "gold-miss": 1}
    by_position = {d.item.example.position: d for d in found.disputes}
    assert sorted(by_position) == [0, 2]
    assert by_position[2].votes == 2 and sorted(by_position[0].answers) == [("No", 1), ("Yes", 1)]
    everyone = disputes.project_disputes(project=project, include_excluded=True)
    assert everyone.counts == {"all": 4, "split": 3, "flagged": 1, "gold-miss": 1}


def test_the_filter_keeps_one_reason(project):
    for reason, positions in (("split", [0, 1, 2]), ("flagged", [3]), ("gold-miss", [0])):
        found = disputes.project_disputes(project=project, reason=reason)
        assert [d.item.example.position for d in found.disputes] == positions
        assert found.page.paginator.count == len(positions)


def test_an_unknown_reason_is_refused_with_a_clear_message(staff_client, project):
    response = disputed(staff_client, project, reason="boring")
    assert response.status_code == 400
    assert "Unknown reason 'boring'" in response.content.decode()
    assert "split, flagged, gold-miss" in response.content.decode()


def test_the_page_shows_the_votes_comments_and_links(staff_client, project):
    response = disputed(staff_client, project)
    assert response.status_code == 200
    html = response.content.decode()
    assert "Disputed examples: Crowd" in html
    assert (
        "all (4)" in html and "split votes (3)" in html and "flagged (1)" in html and "gold miss (1)" in html
    )
    example_url = reverse("generation:example-detail", kwargs={"slug": "power", "position": 1})
    assert f'<a href="{example_url}">power#1</a>' in html
    assert "Yes: 2" in html and "No: 1" in html and "ambiguous: 1 of 3" in html and "against gold: 1" in html
    assert "flagged broken" in html
    # The resolved flag's example is not disputed, so neither it nor its comment is listed.
    assert "cut off" not in html and "power#4" not in html
    assert "power#5" not in html


def test_the_page_leaves_excluded_workers_out_and_counts_them_on_request(staff_client, project):
    from annotation.services.workers import worker_set_excluded

    worker = Response.objects.get(project=project, item__example__position=3, flagged_broken=True).worker
    worker_set_excluded(worker=worker, excluded=True, reason="spam")
    html = disputed(staff_client, project, reason="split").content.decode()
    assert "all (2)" in html and "split votes (2)" in html and "flagged (0)" in html
    assert "Workers a researcher excluded are left out" in html
    # The reason stays chosen when the toggle is followed, and the other links keep the toggle.
    assert 'href="?reason=split&amp;include_excluded=1">Count them too</a>' in html
    everyone = disputed(staff_client, project, reason="split", include_excluded="1").content.decode()
    assert "all (4)" in everyone and "split votes (3)" in everyone and "flagged (1)" in everyone
    assert 'href="?reason=flagged&amp;include_excluded=1">flagged (1)</a>' in everyone
    assert 'href="?reason=split">Leave excluded workers out</a>' in everyone


def test_example_text_and_comments_are_escaped(staff_client, project):
    html = disputed(staff_client, project, reason="flagged").content.decode()
    assert XSS not in html
    assert "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;" in html
    assert html.count("&lt;script&gt;") >= 2  # the example text and the comment


def test_pages_are_bounded(staff_client, project, monkeypatch):
    monkeypatch.setattr(disputes, "DISPUTES_PER_PAGE", 3)
    first = disputed(staff_client, project)
    assert len(first.context["disputes"].disputes) == 3
    assert "page 1 of 2" in first.content.decode()
    second = disputed(staff_client, project, page=2)
    assert [d.item.example.position for d in second.context["disputes"].disputes] == [3]
    # A page past the end or not a number shows the nearest page rather than failing.
    assert disputed(staff_client, project, page="x").context["page_obj"].number == 1
    assert disputed(staff_client, project, page=99).context["page_obj"].number == 2


def test_the_number_of_queries_does_not_grow_with_the_page(staff_client, project):
    with CaptureQueriesContext(connection) as one:
        disputed(staff_client, project, reason="flagged")
    with CaptureQueriesContext(connection) as four:
        disputed(staff_client, project)
    assert len(one) == len(four)


def test_linked_from_the_dashboard_and_the_group_pages(staff_client, project):
    url = reverse("analysis:disputed", args=[project.slug])
    for page in (
        reverse("analysis:dashboard", args=[project.slug]),
        reverse("analysis:pooled", args=[project.slug]),
        reverse("analysis:dataset", args=[project.slug, "power"]),
    ):
        html = staff_client.get(page).content.decode()
        assert f'<a href="{url}">Disputed examples (4)</a>' in html


def test_non_staff_are_refused(project):
    anonymous = Client().get(reverse("analysis:disputed", args=[project.slug]))
    assert anonymous.status_code == 302
    user = Client()
    user.force_login(UserFactory())
    assert user.get(reverse("analysis:disputed", args=[project.slug])).status_code == 403


def test_an_unknown_project_is_not_found(staff_client):
    assert staff_client.get(reverse("analysis:disputed", args=["nope"])).status_code == 404
