"""The public pages: catalog, collection, dataset (search, filter, sort, pages, download) and example."""

import json

import pytest
from django.urls import reverse

from generation.catalog.services import dataset_refresh_stats
from tests.builders import CollectionFactory, DatasetFactory, ExampleFactory, StaffFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def persona():
    dataset = DatasetFactory(
        slug="narcissism", behavior="narcissism", collection=CollectionFactory(slug="persona")
    )
    for i in range(120):
        ExampleFactory(
            dataset=dataset,
            position=i,
            statement=f"I am statement {i}" + (" about leadership" if i % 10 == 0 else ""),
            answer_matching_behavior=" Yes" if i % 2 == 0 else " No",
            answer_not_matching_behavior=" No" if i % 2 == 0 else " Yes",
            label_confidence=0.5 + i / 400,
        )
    return dataset_refresh_stats(dataset=dataset)


def test_empty_catalog_says_how_to_import(client):
    response = client.get("/")
    assert response.status_code == 200
    assert b"The catalog is empty" in response.content
    assert b"import_evals" in response.content


def test_catalog_lists_counts_balance_and_confidence(client, persona):
    response = client.get("/")
    html = response.content.decode()
    assert "narcissism" in html
    assert ">120<" in html
    assert "Yes 50%" in html and "No 50%" in html
    assert f"{persona.mean_label_confidence:.3f}" in html


def test_catalog_query_count_does_not_grow_with_datasets(client, django_assert_max_num_queries):
    collection = CollectionFactory(slug="persona")
    for _ in range(40):
        dataset_refresh_stats(dataset=ExampleFactory(dataset=DatasetFactory(collection=collection)).dataset)
    # The collections with their datasets, and the first run's three (mwe_site.first_run): the demo
    # generation, the newest map job, whether a map exists.
    with django_assert_max_num_queries(5):
        assert client.get("/").status_code == 200


def test_collection_page(client, persona):
    response = client.get(reverse("generation:collection-detail", kwargs={"slug": "persona"}))
    assert response.status_code == 200
    assert "narcissism" in response.content.decode()


def test_dataset_page_paginates(client, persona):
    first = client.get(persona.get_absolute_url())
    assert first.status_code == 200
    assert len(first.context["examples"]) == 50
    assert first.context["page_obj"].paginator.num_pages == 3
    last = client.get(persona.get_absolute_url(), {"page": 3})
    assert [e.position for e in last.context["examples"]] == list(range(100, 120))


def test_dataset_page_page_past_the_end_shows_last_page(client, persona):
    response = client.get(persona.get_absolute_url(), {"page": 99})
    assert response.status_code == 200
    assert response.context["page_obj"].number == 3


def test_dataset_search_filter_and_sort(client, persona):
    response = client.get(persona.get_absolute_url(), {"q": "LEADERSHIP"})
    assert sorted(e.position for e in response.context["examples"]) == list(range(0, 120, 10))

    response = client.get(persona.get_absolute_url(), {"label": " No"})
    assert response.context["paginator"].count == 60
    assert all(e.answer_matching_behavior == " No" for e in response.context["examples"])
    # The leading space is optional, as forms and hand-typed URLs drop it.
    assert client.get(persona.get_absolute_url(), {"label": "No"}).context["paginator"].count == 60

    response = client.get(persona.get_absolute_url(), {"sort": "-confidence"})
    confidences = [e.label_confidence for e in response.context["examples"]]
    assert confidences == sorted(confidences, reverse=True)
    assert confidences[0] == max(e.label_confidence for e in persona.examples.all())

    response = client.get(
        persona.get_absolute_url(), {"sort": "confidence", "label": "Yes", "q": "leadership"}
    )
    assert [e.position for e in response.context["examples"]] == list(range(0, 120, 10))


def test_dataset_page_ignores_unknown_label_and_sort(client, persona):
    response = client.get(persona.get_absolute_url(), {"label": "Maybe", "sort": "drop table"})
    assert response.status_code == 200
    assert response.context["paginator"].count == 120


def test_pagination_links_keep_the_filters(client, persona):
    response = client.get(persona.get_absolute_url(), {"label": " Yes", "q": "statement"})
    assert "label=+Yes&amp;q=statement&amp;page=2" in response.content.decode()


def test_download_is_the_released_format(client, persona):
    response = client.get(reverse("generation:dataset-download", kwargs={"slug": persona.slug}))
    assert response.status_code == 200
    assert response["Content-Disposition"] == 'attachment; filename="narcissism.jsonl"'
    lines = b"".join(response.streaming_content).decode().splitlines()
    assert len(lines) == 120
    first = json.loads(lines[0])
    assert list(first) == [
        "question",
        "statement",
        "label_confidence",
        "answer_matching_behavior",
        "answer_not_matching_behavior",
    ]
    assert first["statement"] == "I am statement 0 about leadership"


def test_example_page_shows_fields_neighbours_and_duplicates(client, persona):
    dataset = persona
    twin = ExampleFactory(dataset=dataset, position=500, statement="I am statement 7")
    response = client.get(reverse("generation:example-detail", kwargs={"slug": dataset.slug, "position": 7}))
    html = response.content.decode()
    assert response.status_code == 200
    assert "I am statement 7" in html
    assert response.context["previous_position"] == 6
    assert response.context["next_position"] == 8
    assert list(response.context["duplicates"]) == [twin.position]


def test_unknown_dataset_and_example_are_404(client, persona):
    assert client.get("/datasets/nope/").status_code == 404
    assert client.get("/datasets/nope/download.jsonl").status_code == 404
    assert client.get(f"/datasets/{persona.slug}/examples/9999/").status_code == 404


def test_dataset_search_over_200_characters_is_a_400_that_says_so(client, persona):
    # Before: cut to 200 characters without a word, and searched.
    response = client.get(persona.get_absolute_url(), {"q": "x" * 201})
    assert response.status_code == 400
    html = response.content.decode()
    assert "The search is 201 characters long; at most 200 are allowed." in html
    assert 'role="alert"' in html
    # The page is still the dataset's, with its search form to fix the query.
    assert 'name="q"' in html and "narcissism" in html
    assert client.get(persona.get_absolute_url(), {"q": "x" * 200}).status_code == 200


def test_dataset_search_is_rate_limited_for_anonymous_clients(client, persona, settings):
    settings.MWE_THROTTLE_RATES = {**settings.MWE_THROTTLE_RATES, "search": "2/minute"}
    for _ in range(2):
        assert client.get(persona.get_absolute_url(), {"q": "leadership"}).status_code == 200
    refused = client.get(persona.get_absolute_url(), {"q": "leadership"})
    assert refused.status_code == 429 and int(refused["Retry-After"]) >= 1
    # Paging and filtering without a search are not searches.
    assert client.get(persona.get_absolute_url(), {"label": "Yes", "page": 2}).status_code == 200
    client.force_login(StaffFactory())
    assert client.get(persona.get_absolute_url(), {"q": "leadership"}).status_code == 200
