"""Who sees human ratings on the public explorer: only ratings of projects a researcher published,
never those of gold items, so a worker cannot read the crowd's answers (or a gold item's expected
answer) to an item they are rating. Staff see every project's. Maps of four points (laid out by
PCA, no UMAP) with the counting stand-in embedder."""

import gzip

import numpy as np
import pytest
from django.urls import reverse
from django.utils import timezone

from analysis.explorer import selectors as explorer_selectors
from analysis.explorer.builds import explorer_maps_build
from analysis.models import ExplorerBuild
from annotation.models import AnnotationProject
from annotation.services.leases import assignment_submit, task_claim
from annotation.services.projects import project_create, project_item_mark_gold
from tests.analysis.builders import answer_for
from tests.analysis.explorer.builders import topic_dataset
from tests.analysis.explorer.fakes import CountingEmbedder
from tests.builders import StaffFactory, UserFactory, WorkerFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def mapped():
    """A dataset of four examples and its map."""
    dataset = topic_dataset("four", per_topic=1)
    explorer_maps_build(embedder=CountingEmbedder(), include_global=False, datasets=[dataset.slug])
    return dataset, ExplorerBuild.objects.get(dataset=dataset)


def rated_project(dataset, *, slug, gold_position=None):
    """A project over the dataset (k=3), each item rated by three workers: regular items "label
    correct"; with gold_position, that example is a gold item (mixed into every worker's tasks),
    rated "label wrong"."""
    project = project_create(
        name=slug.title(),
        slug=slug,
        datasets=[dataset],
        overlap=3,
        gold_rate=1.0 if gold_position is not None else 0.0,
    )
    if gold_position is not None:
        gold = project.items.get(example__position=gold_position)
        project_item_mark_gold(item=gold, label_correct=True, ambiguous=False)
    for _ in range(3):
        worker = WorkerFactory(projects=[project])
        while (assignment := task_claim(worker=worker, project=project)) is not None:
            submit(assignment, worker, label_correct=not assignment.item.is_gold)
    return project


def submit(assignment, worker, *, label_correct):
    assignment_submit(
        assignment_id=assignment.pk,
        worker=worker,
        relevance=5,
        answer=answer_for(assignment.item.example, agrees=label_correct),
        ambiguous=False,
    )


def publish(project):
    AnnotationProject.objects.filter(pk=project.pk).update(published_at=timezone.now())


def point(client, build, position):
    index = list(explorer_selectors.explorer_build_ids(build=build).example_ids).index(
        build.dataset.examples.get(position=position).pk
    )
    response = client.get(reverse("explorer:point", kwargs={"pk": build.pk, "index": index}))
    assert response.status_code == 200
    return response.json()


def overlay(client, build, **params):
    response = client.get(
        reverse("explorer:agreement", kwargs={"pk": build.pk}), params, HTTP_ACCEPT_ENCODING="gzip"
    )
    assert response.status_code == 200
    ids = list(explorer_selectors.explorer_build_ids(build=build).example_ids)
    values = np.frombuffer(gzip.decompress(response.content), dtype="<f4")
    by_position = {e.position: values[ids.index(e.pk)] for e in build.dataset.examples.all()}
    return response, by_position


def page_config(client, dataset):
    return client.get(reverse("explorer:explorer"), {"dataset": dataset.slug}).context["config"]


def test_a_running_projects_ratings_are_not_public(client, mapped):
    dataset, build = mapped
    project = rated_project(dataset, slug="running")
    assert point(client, build, 0)["ratings"] is None
    assert page_config(client, dataset)["agreement"] is None
    _, values = overlay(client, build)
    assert all(np.isnan(v) for v in values.values())
    # A worker of the project signed in does not even reach the map (annotation/middleware.py).
    client.force_login(project.workers.first().user)
    for url in (
        reverse("explorer:explorer"),
        reverse("explorer:point", kwargs={"pk": build.pk, "index": 0}),
        reverse("explorer:agreement", kwargs={"pk": build.pk}),
    ):
        assert client.get(url)["Location"] == reverse("annotation:work"), url


def test_a_published_projects_ratings_are_public(client, mapped):
    dataset, build = mapped
    publish(rated_project(dataset, slug="done"))
    rated_project(dataset, slug="running")  # its ratings stay private beside the published ones
    ratings = point(client, build, 0)["ratings"]
    assert ratings["count"] == 3 and ratings["label_correct_share"] == 1.0 and "projects" not in ratings
    assert page_config(client, dataset)["agreement"] == f"/explore/builds/{build.pk}/agreement.bin"
    response, values = overlay(client, build)
    assert all(v == 1.0 for v in values.values())
    assert "public" in response["Cache-Control"]


def test_a_gold_items_ratings_are_never_public(client, mapped):
    dataset, build = mapped
    project = rated_project(dataset, slug="gold", gold_position=2)
    publish(project)
    gold = project.items.get(is_gold=True)
    assert gold.responses.count() == 3 and not gold.responses.filter(label_correct=True).exists()

    assert point(client, build, 2)["ratings"] is None
    assert point(client, build, 0)["ratings"]["count"] == 3
    _, values = overlay(client, build)
    assert np.isnan(values[2]) and values[0] == 1.0


def test_staff_see_every_projects_ratings_with_their_state(client, mapped):
    dataset, build = mapped
    done = rated_project(dataset, slug="done")
    publish(done)
    rated_project(dataset, slug="running", gold_position=1)
    client.force_login(StaffFactory())

    ratings = point(client, build, 0)["ratings"]
    assert ratings["count"] == 6
    assert [(p["name"], p["count"], p["published"], p["gold"]) for p in ratings["projects"]] == [
        ("Done", 3, True, 0),
        ("Running", 3, False, 0),
    ]
    gold_ratings = point(client, build, 1)["ratings"]
    assert gold_ratings["count"] == 6 and gold_ratings["label_correct_share"] == pytest.approx(3 / 6)
    assert [(p["name"], p["gold"]) for p in gold_ratings["projects"]] == [("Done", 0), ("Running", 3)]

    # Staff colour the map by every rating, from a URL of their own that no shared cache keeps.
    url = page_config(client, dataset)["agreement"]
    assert url == f"/explore/builds/{build.pk}/agreement.bin?ratings=all"
    response, values = overlay(client, build, ratings="all")
    assert values[1] == pytest.approx(3 / 6) and values[0] == 1.0
    assert "private" in response["Cache-Control"] and "public" not in response["Cache-Control"]
    # The public URL answers the same for staff as for everyone else.
    _, public_values = overlay(client, build)
    assert public_values[1] == 1.0


def test_only_staff_may_ask_for_every_rating(client, mapped):
    dataset, build = mapped
    rated_project(dataset, slug="running")
    url = reverse("explorer:agreement", kwargs={"pk": build.pk})
    assert client.get(url, {"ratings": "all"}).status_code == 403
    client.force_login(UserFactory())  # signed in, not staff
    assert client.get(url, {"ratings": "all"}).status_code == 403
    assert client.get(url, {"ratings": "everything"}).status_code == 400
