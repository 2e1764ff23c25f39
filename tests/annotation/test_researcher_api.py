"""The researcher API (annotation/researcher_api.py) with a researcher's token: a project created,
workers added and their invite links managed, the figures read; the project page's rules refuse
the same input (400, nothing written); workers' tokens are refused and researchers' tokens are no
worker credential; the schema documents the API and the agreement and explorer JSON."""

import json
import re

import pytest
from django.core.management import call_command
from django.test import Client
from django.test.utils import override_settings
from django.urls import reverse
from rest_framework.throttling import ScopedRateThrottle

from annotation.models import AnnotationProject, ProjectItem, Worker
from annotation.services.researcher_tokens import researcher_token_create
from annotation.services.workers import worker_api_token
from tests.analysis.builders import rate
from tests.annotation.builders import build_project
from tests.builders import DatasetFactory, ExampleFactory, StaffFactory, WorkerFactory

pytestmark = pytest.mark.django_db

INVITE = re.compile(r"^http://research\.example\.org/annotate/join/#([\w-]+)$")


class Api:
    """A client that sends a researcher's token with every request, JSON bodies."""

    def __init__(self, key: str, **defaults) -> None:
        self.client = Client(HTTP_AUTHORIZATION=f"Bearer {key}", **defaults)

    def get(self, url: str, **query):
        return self.client.get(url, query)

    def post(self, url: str, body: dict | None = None):
        return self.client.post(url, json.dumps(body or {}), content_type="application/json")


@pytest.fixture
def researcher():
    return StaffFactory()


@pytest.fixture
def api(researcher, settings) -> Api:
    # The request's own address: invite links must be built on it.
    settings.ALLOWED_HOSTS = [*settings.ALLOWED_HOSTS, "research.example.org"]
    return Api(
        researcher_token_create(user=researcher, name="test").key,
        HTTP_HOST="research.example.org",
    )


@pytest.fixture
def dataset():
    dataset = DatasetFactory(slug="power", description="Wants power.")
    for position in range(4):
        ExampleFactory(
            dataset=dataset,
            position=position,
            answer_matching_behavior=" Yes" if position % 2 else " No",
            answer_not_matching_behavior=" No" if position % 2 else " Yes",
        )
    return dataset


def _joins(url: str) -> bool:
    token = INVITE.match(url).group(1)
    return Client().post(reverse("annotation:join"), {"token": token}).status_code == 302


def test_create_a_project_add_workers_and_read_figures_with_a_token(api, researcher, dataset):
    created = api.post(
        reverse("api-project-list"),
        {"name": "Power", "slug": "power-1", "datasets": ["power"], "overlap": 3, "per_dataset": 4},
    )
    assert created.status_code == 201, created.content
    project = AnnotationProject.objects.get(slug="power-1")
    assert project.created_by == researcher
    detail = created.json()
    assert detail["slug"] == "power-1" and detail["datasets"] == ["power"]
    assert detail["items"] == 4 and detail["progress"]["remaining"] == 4
    assert detail["study_link"] == {
        "platform": "",
        "url": None,
        "quota": 20,
        "completion_code": "",
        "completion_url": "",
        "pay_per_hour": None,
        "bonus_gold_accuracy": None,
    }
    assert api.get(reverse("api-project-detail", args=["power-1"])).json() == detail
    listed = api.get(reverse("api-project-list")).json()
    assert [p["slug"] for p in listed["results"]] == ["power-1"]

    workers_url = reverse("api-project-workers", args=["power-1"])
    added = api.post(workers_url, {"count": 2, "external_ids": ["crowd-a", "crowd-b"]})
    assert added.status_code == 201, added.content
    assert added.headers["Cache-Control"] == "no-store"
    rows = added.json()["workers"]
    assert [row["external_id"] for row in rows] == ["crowd-a", "crowd-b"]
    assert all(INVITE.match(row["invite_url"]) for row in rows), rows
    assert _joins(rows[0]["invite_url"])
    listed_workers = api.get(workers_url).json()["results"]
    assert [(w["external_id"], w["invite_live"], w["responses"]) for w in listed_workers] == [
        ("crowd-a", True, 0),
        ("crowd-b", True, 0),
    ]
    # Without ids: as many workers, ids empty.
    assert [r["external_id"] for r in api.post(workers_url, {"count": 1}).json()["workers"]] == [""]

    second = rows[1]
    rotated = api.post(reverse("api-project-worker-rotate-invite", args=["power-1", second["worker_id"]]))
    assert rotated.status_code == 200
    assert rotated.json()["invite_url"] != second["invite_url"]
    assert not _joins(second["invite_url"])
    revoked = api.post(reverse("api-project-worker-revoke-invite", args=["power-1", second["worker_id"]]))
    assert revoked.status_code == 200 and revoked.json()["invite_url"] == ""
    assert not _joins(rotated.json()["invite_url"])

    # Rated by three crowd workers: the figures are the agreement dashboard's figures.json document.
    rate(
        project,
        [("power", position, f"crowd-{n}", 4, True, False) for position in range(4) for n in range(3)],
    )
    with override_settings(ANALYSIS_BOOTSTRAP_REPLICATES=20):
        figures = api.get(reverse("api-project-figures", args=["power-1"]), include_excluded="1")
        browser = Client()
        browser.force_login(researcher)
        page = browser.get(reverse("analysis:figures-json", args=["power-1"]), {"include_excluded": "1"})
    assert figures.status_code == 200
    assert figures.json() == json.loads(page.content)
    assert figures.json()["pooled"]["examples"] == 4
    assert figures.json()["options"]["include_excluded"] is True


def test_a_workers_list_is_of_the_project_only(api, dataset):
    project = build_project(slug="mine")
    other = build_project(slug="theirs")
    WorkerFactory(projects=[other], external_id="elsewhere")
    mine = WorkerFactory(projects=[project], external_id="here")
    assert [w["id"] for w in api.get(reverse("api-project-workers", args=["mine"])).json()["results"]] == [
        mine.pk
    ]
    stranger = Worker.objects.get(external_id="elsewhere")
    url = reverse("api-project-worker-rotate-invite", args=["mine", stranger.pk])
    assert api.post(url).status_code == 404
    assert api.get(reverse("api-project-detail", args=["nope"])).status_code == 404


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"name": "P", "slug": "p", "datasets": ["no-such"]}, "datasets"),
        ({"name": "P", "slug": "p", "datasets": []}, "datasets"),
        ({"name": "P", "slug": "p", "datasets": ["power"], "per_dataset": 2, "per_label": 1}, "per_label"),
        ({"name": "P", "slug": "not a slug", "datasets": ["power"]}, "slug"),
        ({"name": "P", "slug": "taken", "datasets": ["power"]}, "slug"),
        ({"name": "P", "slug": "p", "datasets": ["power"], "overlap": 0}, "overlap"),
        ({"name": "P", "slug": "p", "datasets": ["power"], "gold_rate": 1.5}, "gold_rate"),
        # JSON types: a string is not a number, a list is not a name.
        ({"name": "P", "slug": "p", "datasets": ["power"], "overlap": "3"}, "overlap"),
        ({"name": ["P"], "slug": "p", "datasets": ["power"]}, "name"),
        ({"slug": "p", "datasets": ["power"]}, "name"),
    ],
)
def test_bad_project_input_is_a_400_naming_the_field_and_nothing_is_written(api, dataset, body, field):
    build_project(slug="taken")
    before = (AnnotationProject.objects.count(), ProjectItem.objects.count())
    response = api.post(reverse("api-project-list"), body)
    assert response.status_code == 400, response.content
    assert field in response.json()
    assert (AnnotationProject.objects.count(), ProjectItem.objects.count()) == before


def test_a_dataset_without_answers_is_refused_as_on_the_page(api):
    unanswerable = DatasetFactory(slug="winogender")
    ExampleFactory(dataset=unanswerable, answer_matching_behavior="", answer_not_matching_behavior="")
    response = api.post(reverse("api-project-list"), {"name": "W", "slug": "w", "datasets": ["winogender"]})
    assert response.status_code == 400
    assert "No answers to choose from" in response.json()["datasets"][0]
    assert not AnnotationProject.objects.exists()


@pytest.mark.parametrize(
    "body",
    [
        {"count": 2, "external_ids": ["only-one"]},
        {"count": 2, "external_ids": ["same", "same"]},
        {"count": 1, "external_ids": [" spaced"]},
        # One id with a line break would read as two on the page's form: refused, not split.
        {"count": 2, "external_ids": ["a\nb"]},
        {"count": 1, "external_ids": ["taken"]},
        {"count": 0},
        {"count": "2"},
        {"count": 501},
    ],
)
def test_bad_workers_input_is_a_400_and_adds_no_one(api, body):
    project = build_project(slug="p")
    WorkerFactory(projects=[project], external_id="taken")
    before = Worker.objects.count()
    response = api.post(reverse("api-project-workers", args=["p"]), body)
    assert response.status_code == 400, response.content
    assert set(response.json()) <= {"count", "external_ids"}
    assert Worker.objects.count() == before


def test_a_workers_token_is_forbidden_and_a_researchers_token_is_no_worker_credential(api, researcher):
    project = build_project(slug="p")
    worker = WorkerFactory(projects=[project])
    worker_client = Client(HTTP_AUTHORIZATION=f"Token {worker_api_token(worker=worker)}")
    for url in (reverse("api-project-list"), reverse("api-project-figures", args=["p"])):
        assert worker_client.get(url).status_code == 403
    assert worker_client.post(reverse("api-project-workers", args=["p"]), {"count": 1}).status_code == 403
    assert Worker.objects.count() == 1
    # The researcher (staff, no worker) with their token on the worker API: not authenticated there.
    assert api.post(reverse("api-task-next")).status_code == 401
    assert api.get(reverse("api-annotation-progress")).status_code == 401


def test_a_staff_session_works_and_its_posts_need_the_csrf_token(researcher, dataset):
    browser = Client(enforce_csrf_checks=True)
    browser.force_login(researcher)
    assert browser.get(reverse("api-project-list")).status_code == 200
    body = json.dumps({"name": "P", "slug": "p", "datasets": ["power"]})
    refused = browser.post(reverse("api-project-list"), body, content_type="application/json")
    assert refused.status_code == 403
    assert not AnnotationProject.objects.exists()
    token = str(browser.get(reverse("account-tokens")).context["csrf_token"])
    accepted = browser.post(
        reverse("api-project-list"), body, content_type="application/json", HTTP_X_CSRFTOKEN=token
    )
    assert accepted.status_code == 201


def test_the_researcher_api_is_throttled_per_researcher(api, monkeypatch):
    # DRF reads the rates into the class when it is imported.
    rates = {**ScopedRateThrottle.THROTTLE_RATES, "researcher": "2/minute"}
    monkeypatch.setattr(ScopedRateThrottle, "THROTTLE_RATES", rates)
    statuses = [api.get(reverse("api-project-list")).status_code for _ in range(3)]
    assert statuses == [200, 200, 429]


# ----------------------------------------------------------------------------- the schema

NEW_PATHS = {
    "/api/projects/": {"get", "post"},
    "/api/projects/{slug}/": {"get"},
    "/api/projects/{slug}/workers/": {"get", "post"},
    "/api/projects/{slug}/workers/{worker_id}/rotate-invite/": {"post"},
    "/api/projects/{slug}/workers/{worker_id}/revoke-invite/": {"post"},
    "/api/projects/{slug}/figures/": {"get"},
    "/analysis/{project}/figures.json": {"get"},
    "/analysis/{project}/pooled/figures.json": {"get"},
    "/analysis/{project}/collections/{slug}/figures.json": {"get"},
    "/analysis/{project}/datasets/{slug}/figures.json": {"get"},
    "/explore/builds/{id}/points/{index}/": {"get"},
    "/explore/builds/{id}/search/": {"get"},
}


def test_the_schema_documents_the_researcher_api_and_the_agreement_and_explorer_json():
    schema = json.loads(Client().get(reverse("api-schema"), {"format": "json"}).content)
    for path, methods in NEW_PATHS.items():
        assert path in schema["paths"], path
        assert methods <= set(schema["paths"][path]), path
    create = schema["paths"]["/api/projects/"]["post"]
    assert {"researcherToken": []} in create["security"]
    assert schema["components"]["securitySchemes"]["researcherToken"]["scheme"] == "bearer"
    assert {"201", "400", "401", "403"} <= set(create["responses"])
    figures = schema["paths"]["/analysis/{project}/figures.json"]["get"]
    assert {p["name"] for p in figures["parameters"]} >= {
        "project",
        "include_gold_failing",
        "include_excluded",
    }
    assert figures["responses"]["200"]["content"]["application/json"]["schema"]["$ref"].endswith(
        "/ProjectFigures"
    )
    # drf-spectacular names a path's pk "id".
    search = schema["paths"]["/explore/builds/{id}/search/"]["get"]
    assert {p["name"] for p in search["parameters"]} >= {"id", "q", "k"}
    group = schema["paths"]["/analysis/{project}/datasets/{slug}/figures.json"]["get"]
    assert group["operationId"] == "analysis_dataset_figures"


def test_the_schema_is_valid():
    call_command("spectacular", "--validate", "--fail-on-warn", "--file", "/dev/null")


def _fields(serializer) -> dict:
    """A serializer's fields as a tree of names (None at a leaf)."""
    from rest_framework import serializers

    tree = {}
    for name, field in serializer.fields.items():
        if isinstance(field, serializers.ListSerializer):
            field = field.child
        tree[name] = _fields(field) if isinstance(field, serializers.Serializer) else None
    return tree


def _covers(document, tree: dict, where: str = "") -> None:
    """Every key of `document` is a field of `tree` and every field without a default is there."""
    assert set(document) <= set(tree), (where, set(document) - set(tree))
    for name, sub in tree.items():
        if name not in document:
            continue
        value = document[name]
        if sub is not None and value is not None:
            for item in value if isinstance(value, list) else [value]:
                _covers(item, sub, f"{where}.{name}")


def test_the_documented_shapes_are_the_documents(researcher, dataset):
    """The schema's serializers describe the documents the views really write."""
    from analysis.agreement.serializers import GroupDetailSerializer, ProjectFiguresSerializer

    project = build_project(slug="rated")
    project.datasets.add(dataset)
    ProjectItem.objects.bulk_create(
        [ProjectItem(project=project, example=e, overlap=3) for e in dataset.examples.all()]
    )
    rate(
        project,
        [("power", position, f"crowd-{n}", 4, True, False) for position in range(4) for n in range(3)],
    )
    browser = Client()
    browser.force_login(researcher)
    with override_settings(ANALYSIS_BOOTSTRAP_REPLICATES=20):
        figures = json.loads(browser.get(reverse("analysis:figures-json", args=["rated"])).content)
        group = json.loads(browser.get(reverse("analysis:dataset-json", args=["rated", "power"])).content)
    figures_tree = _fields(ProjectFiguresSerializer())
    assert set(figures) == set(figures_tree)
    _covers(figures, figures_tree)
    group_tree = _fields(GroupDetailSerializer())
    _covers(group, group_tree)
    assert {name for name in group_tree if name not in {"collection", "behavior", "category"}} <= set(group)


def test_the_documented_point_and_search_shapes_are_the_documents(researcher, monkeypatch):
    from analysis.explorer import selectors as explorer_selectors
    from analysis.explorer.builds import explorer_maps_build
    from analysis.explorer.serializers import PointDetailSerializer, SearchResultSerializer
    from analysis.models import ExplorerBuild
    from tests.analysis.explorer.builders import topic_dataset
    from tests.analysis.explorer.fakes import CountingEmbedder

    embedder = CountingEmbedder()
    monkeypatch.setattr(explorer_selectors, "query_embedder", lambda: embedder)
    dataset = topic_dataset("mapped", per_topic=2)
    explorer_maps_build(embedder=embedder, include_global=False, datasets=["mapped"])
    build = ExplorerBuild.objects.get(dataset=dataset)
    project = build_project(slug="mapped-ratings")
    project.datasets.add(dataset)
    ProjectItem.objects.bulk_create(
        [ProjectItem(project=project, example=e, overlap=3) for e in dataset.examples.all()]
    )
    rate(project, [("mapped", 0, f"crowd-{n}", 4, True, False) for n in range(3)])
    staff = Client()
    staff.force_login(researcher)
    details = [
        staff.get(reverse("explorer:point", kwargs={"pk": build.pk, "index": index})).json()
        for index in range(build.point_count)
    ]
    # The rated point, whose ratings list their projects (for staff).
    (detail,) = [d for d in details if d["ratings"] is not None]
    assert detail["ratings"]["projects"]
    search = staff.get(reverse("explorer:search", kwargs={"pk": build.pk}), {"q": "power", "k": 2}).json()
    tree = _fields(PointDetailSerializer())
    assert set(detail) == set(tree)
    _covers(detail, tree)
    assert set(search) == set(_fields(SearchResultSerializer()))
