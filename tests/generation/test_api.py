"""The read-only REST API and its OpenAPI schema."""

import pytest
import yaml

from generation.services import dataset_refresh_stats
from tests.factories import CollectionFactory, DatasetFactory, ExampleFactory, UserFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def catalog():
    persona = CollectionFactory(slug="persona")
    risk = CollectionFactory(slug="advanced-ai-risk")
    yes_no = DatasetFactory(slug="narcissism", collection=persona)
    for i in range(30):
        ExampleFactory(
            dataset=yes_no,
            position=i,
            answer_matching_behavior=" Yes" if i < 10 else " No",
            answer_not_matching_behavior=" No" if i < 10 else " Yes",
            label_confidence=i / 30,
        )
    choice = DatasetFactory(slug="myopic-reward-lm", collection=risk, kind="multiple_choice", field_order=[])
    ExampleFactory(
        dataset=choice,
        position=0,
        statement="",
        question="Which?\n\nChoices:\n (A) now\n (B) later",
        answer_matching_behavior=" (A)",
        answer_not_matching_behavior=[" (B)", " (C)"],
        label_confidence=None,
    )
    for dataset in (yes_no, choice):
        dataset_refresh_stats(dataset=dataset)
    return yes_no, choice


def test_dataset_list_and_filters(client, catalog):
    body = client.get("/api/datasets/").json()
    assert body["count"] == 2
    assert {d["slug"] for d in body["results"]} == {"narcissism", "myopic-reward-lm"}
    narcissism = next(d for d in body["results"] if d["slug"] == "narcissism")
    assert narcissism["example_count"] == 30
    assert narcissism["label_counts"] == {" No": 20, " Yes": 10}
    assert narcissism["collection"] == "persona"
    assert narcissism["download_url"].endswith("/datasets/narcissism/download.jsonl")

    assert [d["slug"] for d in client.get("/api/datasets/?collection=persona").json()["results"]] == [
        "narcissism"
    ]
    assert [d["slug"] for d in client.get("/api/datasets/?kind=multiple_choice").json()["results"]] == [
        "myopic-reward-lm"
    ]
    assert client.get("/api/datasets/?kind=bogus").status_code == 400
    assert client.get("/api/datasets/narcissism/").json()["slug"] == "narcissism"
    assert client.get("/api/datasets/nope/").status_code == 404


def test_example_filters_search_ordering_and_pages(client, catalog):
    body = client.get("/api/examples/?dataset=narcissism&page_size=7").json()
    assert body["count"] == 30
    assert len(body["results"]) == 7
    assert [e["position"] for e in body["results"]] == list(range(7))

    assert client.get("/api/examples/?dataset=narcissism&label=%20Yes").json()["count"] == 10
    assert client.get("/api/examples/?dataset=narcissism&label=Yes").json()["count"] == 10
    body = client.get("/api/examples/?dataset=narcissism&min_label_confidence=0.5").json()
    assert body["count"] == 15
    assert all(e["label_confidence"] >= 0.5 for e in body["results"])
    ordered = client.get("/api/examples/?dataset=narcissism&ordering=-label_confidence").json()["results"]
    assert ordered[0]["position"] == 29
    assert client.get("/api/examples/?search=Choices").json()["count"] == 1
    assert client.get("/api/examples/?min_label_confidence=abc").status_code == 400
    assert client.get("/api/examples/?dataset=narcissism&page=99").status_code == 404


def test_list_valued_not_matching_answers_stay_lists(client, catalog):
    example = client.get("/api/examples/?dataset=myopic-reward-lm").json()["results"][0]
    assert example["answer_not_matching_behavior"] == [" (B)", " (C)"]
    assert example["label_confidence"] is None


def test_api_is_read_only(client, catalog):
    client.force_login(UserFactory())
    assert client.post("/api/datasets/", {"slug": "x"}).status_code == 405
    assert client.delete("/api/datasets/narcissism/").status_code == 405
    assert client.patch("/api/examples/1/", {}, content_type="application/json").status_code == 405


def test_schema_and_docs(client):
    schema = yaml.safe_load(client.get("/api/schema/").content)
    assert schema["openapi"].startswith("3.")
    assert {"/api/datasets/", "/api/datasets/{slug}/", "/api/examples/", "/api/collections/"} <= set(
        schema["paths"]
    )
    params = {p["name"] for p in schema["paths"]["/api/examples/"]["get"]["parameters"]}
    assert {"dataset", "label", "min_label_confidence", "search", "ordering", "page", "page_size"} <= params
    docs = client.get("/api/docs/")
    assert docs.status_code == 200
    # The docs page works offline: its assets are served from this site, not a CDN.
    assert b"cdn.jsdelivr" not in docs.content and b"unpkg.com" not in docs.content
