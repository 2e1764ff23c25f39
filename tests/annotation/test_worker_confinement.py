"""A crowdworker's browser stays on the annotation pages (annotation/middleware.py): the public pages
that show labels or ratings send a worker back to the work page (the API answers 403), while
anonymous visitors and staff keep them. tests/authz_table.py has the cell of every URL pattern."""

import json

import pytest
from django.test import Client
from django.urls import reverse

from annotation.services.workers import worker_create
from tests.annotation.builders import build_project
from tests.builders import StaffFactory, UserFactory, WorkerFactory

pytestmark = pytest.mark.django_db

WORK = reverse("annotation:work")


@pytest.fixture
def rated_world(db):
    project = build_project(items=2, overlap=1)
    dataset = project.datasets.get()
    example = dataset.examples.order_by("position").first()
    return project, dataset, example


def public_pages(dataset, example) -> list[str]:
    return [
        reverse("generation:catalog"),
        dataset.collection.get_absolute_url(),
        dataset.get_absolute_url(),
        example.get_absolute_url(),
        reverse("generation:dataset-download", kwargs={"slug": dataset.slug}),
        reverse("generation:run-list"),
        reverse("generation:generation-list"),
        reverse("explorer:explorer"),
        reverse("analysis:project-list"),
    ]


def api_pages(dataset, example) -> list[str]:
    return [
        "/api/",
        "/api/datasets/",
        f"/api/datasets/{dataset.slug}/",
        f"/api/examples/?dataset={dataset.slug}",
        f"/api/examples/{example.pk}/",
        "/api/schema/",
    ]


def signed_in(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


def test_a_worker_is_sent_back_to_the_work_page_from_every_public_page(rated_world):
    project, dataset, example = rated_world
    client = signed_in(WorkerFactory(projects=[project]).user)
    for url in public_pages(dataset, example):
        response = client.get(url)
        assert (response.status_code, response.get("Location")) == (302, WORK), url
    # Followed, the redirect lands on the task, where no label is shown.
    landed = client.get(dataset.get_absolute_url(), follow=True)
    assert landed.redirect_chain == [(WORK, 302)]
    assert landed.context["assignment"] is not None
    assert "matching" not in landed.content.decode().lower()


def test_the_api_answers_a_worker_403_in_json(rated_world):
    project, dataset, example = rated_world
    client = signed_in(WorkerFactory(projects=[project]).user)
    for url in api_pages(dataset, example):
        response = client.get(url)
        assert response.status_code == 403, url
        assert response["Content-Type"] == "application/json"
        assert "not open to annotation workers" in json.loads(response.content)["detail"]


def test_other_methods_are_refused_too(rated_world):
    project, dataset, _ = rated_world
    client = signed_in(WorkerFactory(projects=[project]).user)
    assert client.post(dataset.get_absolute_url()).status_code == 403
    assert client.post(reverse("generation:import")).status_code == 403


def test_a_worker_signed_in_by_their_invite_link_is_confined(rated_world):
    project, dataset, example = rated_world
    worker = worker_create(project=project, external_id="crowd-confined")
    client = Client()
    assert client.post(reverse("annotation:join"), {"token": worker.invite_token}).status_code == 302
    assert client.get(example.get_absolute_url())["Location"] == WORK
    assert client.get(WORK).status_code == 200


def test_the_worker_keeps_what_they_need(rated_world):
    project, _, _ = rated_world
    client = signed_in(WorkerFactory(projects=[project]).user)
    page = client.get(WORK)
    assert page.status_code == 200 and page.context["assignment"] is not None
    assert client.get(reverse("annotation:join")).status_code == 200
    assert client.post(reverse("api-task-next"), {}, content_type="application/json").status_code == 200
    assert client.get(reverse("api-annotation-progress")).status_code == 200
    assert client.get(reverse("health")).status_code == 200
    # A page that does not exist is still just not found.
    assert client.get("/no-such-page/").status_code == 404


def test_anonymous_visitors_and_staff_keep_the_public_site(rated_world):
    project, dataset, example = rated_world
    for client in (Client(), signed_in(StaffFactory())):
        for url in (dataset.get_absolute_url(), example.get_absolute_url(), "/api/datasets/"):
            assert client.get(url).status_code == 200, url
    # A researcher who also holds a worker account (to preview the task) is not confined.
    researcher = StaffFactory()
    WorkerFactory(projects=[project], user=researcher)
    assert signed_in(researcher).get(dataset.get_absolute_url()).status_code == 200


def test_a_signed_in_user_who_is_no_worker_is_not_confined(rated_world):
    _, dataset, _ = rated_world
    assert signed_in(UserFactory()).get(dataset.get_absolute_url()).status_code == 200
