"""The read-only API over evaluation runs and their items, and its place in the OpenAPI schema."""

import pytest
import yaml
from django.urls import reverse

from generation.catalog.services import dataset_refresh_stats
from tests.builders import (
    CollectionFactory,
    DatasetFactory,
    EvaluationItemFactory,
    EvaluationRunFactory,
    ExampleFactory,
    StaffFactory,
    UserFactory,
)

pytestmark = pytest.mark.django_db

PAYLOAD = "<script>alert(1)</script>"


@pytest.fixture
def runs():
    persona = CollectionFactory(slug="persona")
    narcissism = DatasetFactory(slug="narcissism", collection=persona)
    for i in range(60):
        ExampleFactory(dataset=narcissism, position=i, statement=f"statement {i}")
    dataset_refresh_stats(dataset=narcissism)
    power = DatasetFactory(slug="power-seeking", collection=CollectionFactory(slug="advanced-ai-risk"))
    ExampleFactory(dataset=power, position=0)
    dataset_refresh_stats(dataset=power)

    paper = EvaluationRunFactory(dataset=narcissism, percent_matching=60.0, item_count=60)
    for example in narcissism.examples.order_by("position"):
        EvaluationItemFactory(run=paper, example=example, matches_behavior=example.position % 3 != 0)
    plain = EvaluationRunFactory(dataset=narcissism, prompt_format="plain", percent_matching=45.0)
    other_model = EvaluationRunFactory(
        dataset=power, model_spec="hf:HuggingFaceTB/SmolLM2-360M", percent_matching=70.0
    )
    failed = EvaluationRunFactory(dataset=power, status="failed", error="boom", percent_matching=None)
    return {"paper": paper, "plain": plain, "other_model": other_model, "failed": failed}


def ids(body) -> list[int]:
    return [run["id"] for run in body["results"]]


def test_list_and_detail(client, runs):
    body = client.get("/api/evaluation-runs/").json()
    assert body["count"] == 4
    detail = client.get(f"/api/evaluation-runs/{runs['paper'].pk}/").json()
    assert detail["dataset"] == "narcissism"
    assert detail["model_spec"] == "smollm2-135m" and detail["prompt_format"] == "paper"
    assert detail["status"] == "succeeded"
    assert detail["percent_matching"] == 60.0 and detail["ci_low"] == 31.3 and detail["ci_high"] == 83.2
    assert detail["model_info"]["versions"]["torch"] == "2.13.0"
    assert detail["model_fingerprint"] == "sha256:abc" and len(detail["data_fingerprint"]) == 64
    assert detail["page_url"].endswith(runs["paper"].get_absolute_url())
    assert detail["items_url"].endswith(f"/api/evaluation-runs/{runs['paper'].pk}/items/")
    assert "created_by" not in detail
    assert client.get("/api/evaluation-runs/99999/").status_code == 404


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("dataset=narcissism", {"paper", "plain"}),
        ("dataset=power-seeking", {"other_model", "failed"}),
        ("collection=persona", {"paper", "plain"}),
        ("model_spec=hf:HuggingFaceTB/SmolLM2-360M", {"other_model"}),
        ("prompt_format=plain", {"plain"}),
        ("status=failed", {"failed"}),
        ("status=succeeded&dataset=power-seeking", {"other_model"}),
        ("dataset=missing", set()),
    ],
)
def test_filters(client, runs, query, expected):
    body = client.get(f"/api/evaluation-runs/?{query}").json()
    assert set(ids(body)) == {runs[name].pk for name in expected}


def test_invalid_choice_filters_are_400(client, runs):
    assert client.get("/api/evaluation-runs/?prompt_format=xml").status_code == 400
    assert client.get("/api/evaluation-runs/?status=done").status_code == 400


def test_ordering(client, runs):
    body = client.get("/api/evaluation-runs/?ordering=-percent_matching&status=succeeded").json()
    assert ids(body) == [runs["other_model"].pk, runs["paper"].pk, runs["plain"].pk]
    body = client.get("/api/evaluation-runs/?ordering=percent_matching&status=succeeded").json()
    assert ids(body) == [runs["plain"].pk, runs["paper"].pk, runs["other_model"].pk]


def test_items_are_paginated_with_position_and_text(client, runs):
    run = runs["paper"]
    url = reverse("api-evaluation-run-items", kwargs={"pk": run.pk})
    body = client.get(url).json()
    assert body["count"] == 60 and len(body["results"]) == 50 and body["next"]
    first = body["results"][0]
    assert first["position"] == 0 and first["text"] == "statement 0"
    assert first["choices"] == [" Yes", " No"] and first["logprobs"] == [-1.5, -0.5]
    assert first["predicted"] == " No" and first["predicted_index"] == 1
    assert first["matches_behavior"] is False and first["p_match"] == 0.27
    assert first["example_url"].endswith("/datasets/narcissism/examples/0/")
    assert [item["position"] for item in body["results"]] == list(range(50))
    page_two = client.get(body["next"]).json()
    assert [item["position"] for item in page_two["results"]] == list(range(50, 60))
    assert len(client.get(url, {"page_size": 7}).json()["results"]) == 7


def test_items_filter_by_match(client, runs):
    url = reverse("api-evaluation-run-items", kwargs={"pk": runs["paper"].pk})
    misses = client.get(url, {"matches_behavior": "false", "page_size": 100}).json()
    assert misses["count"] == 20
    assert all(item["position"] % 3 == 0 for item in misses["results"])
    assert client.get(url, {"matches_behavior": "true"}).json()["count"] == 40
    # The run list's filters do not apply to a run's items.
    assert client.get(url, {"dataset": "power-seeking"}).json()["count"] == 60


def test_items_of_a_missing_run_is_404(client):
    assert client.get("/api/evaluation-runs/99999/items/").status_code == 404


def test_api_is_read_only(client, runs):
    url = "/api/evaluation-runs/"
    assert client.post(url, {"model_spec": "x"}).status_code == 403
    client.force_login(StaffFactory())
    assert client.post(url, {"model_spec": "x"}).status_code == 405
    assert client.delete(f"{url}{runs['paper'].pk}/").status_code == 405


def test_query_counts_do_not_grow(client, runs, django_assert_max_num_queries):
    items_url = reverse("api-evaluation-run-items", kwargs={"pk": runs["paper"].pk})
    with django_assert_max_num_queries(3):
        assert client.get("/api/evaluation-runs/").status_code == 200
    with django_assert_max_num_queries(3):
        assert client.get(items_url, {"page_size": 100}).status_code == 200
    for _ in range(20):
        EvaluationRunFactory(dataset=DatasetFactory())
    with django_assert_max_num_queries(3):
        assert client.get("/api/evaluation-runs/").status_code == 200


def test_schema_documents_the_endpoints(client):
    schema = yaml.safe_load(client.get("/api/schema/").content)
    paths = schema["paths"]
    assert {
        "/api/evaluation-runs/",
        "/api/evaluation-runs/{id}/",
        "/api/evaluation-runs/{id}/items/",
    } <= set(paths)
    params = {p["name"] for p in paths["/api/evaluation-runs/"]["get"]["parameters"]}
    assert {"dataset", "model_spec", "prompt_format", "status", "ordering", "page"} <= params
    item_params = {p["name"] for p in paths["/api/evaluation-runs/{id}/items/"]["get"]["parameters"]}
    assert {"matches_behavior", "page", "page_size"} <= item_params
    assert "dataset" not in item_params
    item = schema["components"]["schemas"]["EvaluationItem"]["properties"]
    assert {"position", "text", "choices", "logprobs", "predicted", "matches_behavior", "p_match"} <= set(
        item
    )


def test_api_returns_lm_text_as_json_and_escapes_it_in_the_browsable_api(client):
    dataset = DatasetFactory()
    example = ExampleFactory(dataset=dataset, position=0, statement=PAYLOAD)
    dataset_refresh_stats(dataset=dataset)
    run = EvaluationRunFactory(dataset=dataset, model_spec=f"hf:{PAYLOAD}")
    EvaluationItemFactory(run=run, example=example)
    items_url = reverse("api-evaluation-run-items", kwargs={"pk": run.pk})
    response = client.get(items_url, HTTP_ACCEPT="application/json")
    assert response["Content-Type"].startswith("application/json")
    assert response.json()["results"][0]["text"] == PAYLOAD
    for url in (items_url, f"/api/evaluation-runs/{run.pk}/", "/api/evaluation-runs/"):
        browsable = client.get(url, HTTP_ACCEPT="text/html")
        assert browsable.status_code == 200
        assert PAYLOAD not in browsable.content.decode()


# ----------------------------------------------------------------------------- errors are for staff

# What a failed run's error may hold: up to 500 characters of whatever a model server answered, or the
# worker's file paths from an hf: spec.
SECRET_ERROR = "LMError: internal-secret-path /srv/x answered HTTP 500: token=abc"
SECRET_PARTS = ("internal-secret-path", "/srv/x", "token=abc")


@pytest.fixture
def failed_run():
    return EvaluationRunFactory(status="failed", error=SECRET_ERROR, percent_matching=None)


@pytest.mark.parametrize("who", ["anonymous", "user"])
def test_the_public_api_gives_no_error_text(client, failed_run, who):
    if who == "user":
        client.force_login(UserFactory())
    for url in [
        "/api/evaluation-runs/",
        f"/api/evaluation-runs/{failed_run.pk}/",
        "/api/evaluation-runs/?status=failed",
        f"/api/evaluation-runs/{failed_run.pk}/?format=api",
    ]:
        response = client.get(url)
        assert response.status_code == 200, url
        body = response.content.decode()
        for part in SECRET_PARTS:
            assert part not in body, (url, part)
    detail = client.get(f"/api/evaluation-runs/{failed_run.pk}/").json()
    assert detail["status"] == "failed" and detail["error"] is None


def test_staff_get_the_error_from_the_api(client, failed_run):
    client.force_login(StaffFactory())
    assert client.get(f"/api/evaluation-runs/{failed_run.pk}/").json()["error"] == SECRET_ERROR
    assert client.get("/api/evaluation-runs/").json()["results"][0]["error"] == SECRET_ERROR


def test_schema_says_the_error_is_for_staff(client):
    schema = yaml.safe_load(client.get("/api/schema/").content)
    error = schema["components"]["schemas"]["EvaluationRun"]["properties"]["error"]
    assert error["nullable"] is True and error["readOnly"] is True and "staff" in error["description"]


def test_schema_is_valid():
    from django.core.management import call_command

    # --fail-on-warn: a field the schema generator cannot type fails here, not in a client.
    call_command("spectacular", "--validate", "--fail-on-warn", "--file", "/dev/null")
