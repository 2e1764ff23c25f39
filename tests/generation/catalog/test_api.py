"""The read-only REST API and its OpenAPI schema."""

import json

import pytest
import yaml

from generation.catalog.services import dataset_refresh_stats, evals_import
from generation.models import Dataset
from tests.builders import CollectionFactory, DatasetFactory, ExampleFactory, UserFactory
from tests.generation.catalog.records import WINOGENDER

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


# --- Bounds and rate limit on the search (mwe_site/search.py) ------------------------------------------


def test_a_thousand_term_search_is_refused_before_any_query(client, catalog, django_assert_num_queries):
    # Before: 200 after 195 s, a parallel scan on three PostgreSQL backends (1,000 ANDed ILIKE pairs
    # over every example). Now refused while reading the parameters: no query at all.
    huge = " ".join(["e"] * 1000)
    with django_assert_num_queries(0):
        response = client.get("/api/examples/", {"search": huge})
    assert response.status_code == 400
    assert response["Content-Type"] == "application/json"
    assert response.json() == {"detail": "The search is 1999 characters long; at most 200 are allowed."}
    # Within the length, the number of terms is bounded too.
    with django_assert_num_queries(0):
        response = client.get("/api/examples/", {"search": " ".join(["e"] * 100)})
    assert response.json() == {"detail": "The search has 100 terms; at most 8 are allowed."}


def test_search_bounds_terms_and_length(client, catalog):
    eight = " ".join(f"w{i}" for i in range(8))
    assert client.get("/api/examples/", {"search": eight}).status_code == 200
    nine = client.get("/api/examples/", {"search": eight + " w8"})
    assert nine.status_code == 400 and "at most 8" in nine.json()["detail"]
    # DRF splits on commas too, and keeps a quoted phrase as one term.
    assert client.get("/api/examples/", {"search": ",".join(["x"] * 9)}).status_code == 400
    assert client.get("/api/examples/", {"search": '"' + " ".join(["x"] * 20) + '"'}).status_code == 200
    assert client.get("/api/examples/", {"search": "x" * 200}).status_code == 200
    long = client.get("/api/examples/", {"search": "x" * 201})
    assert long.status_code == 400
    assert long.json() == {"detail": "The search is 201 characters long; at most 200 are allowed."}


@pytest.mark.parametrize(
    "url", ["/api/collections/", "/api/datasets/", "/api/evaluation-runs/", "/api/generation-runs/"]
)
def test_every_searchable_endpoint_is_bounded(client, catalog, url):
    assert client.get(url, {"search": "narcissism"}).status_code == 200
    assert client.get(url, {"search": " ".join(["e"] * 9)}).status_code == 400


def test_searches_are_rate_limited_for_anonymous_clients(client, catalog, settings):
    settings.MWE_THROTTLE_RATES = {**settings.MWE_THROTTLE_RATES, "search": "2/minute"}
    for _ in range(2):
        assert client.get("/api/examples/", {"search": "Choices"}).status_code == 200
    refused = client.get("/api/examples/", {"search": "Choices"})
    assert refused.status_code == 429
    assert int(refused["Retry-After"]) >= 1 and "throttled" in refused.json()["detail"]
    # The same scope covers every searchable endpoint; listing without a search is not limited.
    assert client.get("/api/datasets/", {"search": "x"}).status_code == 429
    assert client.get("/api/examples/").status_code == 200
    assert client.get("/api/examples/", {"dataset": "narcissism"}).status_code == 200
    # Staff are the operators: never limited.
    client.force_login(UserFactory(is_staff=True))
    assert client.get("/api/examples/", {"search": "Choices"}).status_code == 200


# --- The browsable API shows LM text as text (templates/rest_framework/api.html) --------------------


def test_browsable_api_does_not_turn_lm_text_into_links(client):
    dataset = DatasetFactory(slug="hostile")
    ExampleFactory(
        dataset=dataset,
        position=0,
        statement='See http://evil.example/x and <a href="http://evil.example/y">click</a> or evil.example',
    )
    html = client.get("/api/examples/?dataset=hostile", HTTP_ACCEPT="text/html").content.decode()
    assert "http://evil.example/x" in html  # shown ...
    assert '<a href="http://evil.example' not in html  # ... but never a link
    assert 'href="http://evil.example' not in html
    assert "&lt;a href=" in html  # the markup written by the LM is text
    # The page is still the browsable API: the response, its pagination and the filters.
    assert 'class="response-info"' in html and "Filters" in html
    detail = client.get(f"/api/examples/{dataset.examples.get().pk}/", HTTP_ACCEPT="text/html")
    assert 'href="http://evil.example' not in detail.content.decode()


def test_the_browsable_api_template_is_drfs_but_for_the_links():
    """templates/rest_framework/api.html copies DRF's `content` block with the two `urlize` filters
    removed. When DRF changes that block, this fails: copy it again (and drop `urlize` again)."""
    import re
    from pathlib import Path

    import rest_framework
    from django.conf import settings

    def content_block(text: str) -> str:
        return re.search(r"{% block content %}(.*){% endblock content %}", text, re.S).group(1)

    drf = (Path(rest_framework.__file__).parent / "templates/rest_framework/base.html").read_text()
    ours = (settings.BASE_DIR / "templates/rest_framework/api.html").read_text()
    assert content_block(ours) == content_block(drf).replace("|urlize", "")


def test_the_api_and_the_dataset_page_find_a_winogender_example_by_its_text(client, tmp_path):
    """A Winogender example has no statement or question: its text is its sentence with a blank.
    Imported as the released file is, the API's search finds it as the dataset page's search does."""
    path = tmp_path / "winogenerated_examples.jsonl"
    path.write_text(json.dumps(WINOGENDER) + "\n")
    [result] = evals_import(paths=[path])
    assert result.status == "imported", result.message
    dataset = Dataset.objects.get(slug=result.dataset_slug)
    example = dataset.examples.get()
    assert example.text == WINOGENDER["sentence_with_blank"]

    found = client.get("/api/examples/", {"search": "would be back"}).json()
    assert [e["id"] for e in found["results"]] == [example.pk]
    page = client.get(dataset.get_absolute_url(), {"q": "would be back"})
    assert [e.pk for e in page.context["page_obj"]] == [example.pk]
    # Text found nowhere is found by neither.
    assert client.get("/api/examples/", {"search": "elsewhere"}).json()["count"] == 0
    assert not client.get(dataset.get_absolute_url(), {"q": "elsewhere"}).context["page_obj"].object_list
