"""The links that tie one example's life together: its page links to the generation candidate it was
kept as and that candidate's run, its ratings (the public only published projects' ratings of regular
items, as everywhere else), the evaluations that scored it and its point on the map (the explorer
with the point selected); a dataset's page links to its map and, for staff, its agreement pages."""

from urllib.parse import parse_qs, urlsplit

import pytest
from django.test import Client
from django.urls import reverse

from analysis.explorer.builds import explorer_maps_build
from analysis.explorer.selectors import explorer_build_current, explorer_build_ids, explorer_caches_clear
from annotation.services.projects import project_create, project_publish
from generation.catalog.services import dataset_refresh_stats
from tests.analysis.builders import rate
from tests.analysis.explorer.fakes import CountingEmbedder
from tests.builders import (
    DatasetFactory,
    EvaluationItemFactory,
    EvaluationRunFactory,
    ExampleFactory,
    StaffFactory,
)
from tests.generation.pipeline.builders import persona_candidates, persona_run

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def fresh_maps():
    explorer_caches_clear()
    yield
    explorer_caches_clear()


@pytest.fixture
def staff():
    client = Client()
    client.force_login(StaffFactory())
    return client


def labelled(slug: str, n: int = 4):
    dataset = DatasetFactory(slug=slug)
    for i in range(n):
        ExampleFactory(
            dataset=dataset,
            position=i,
            statement=f"I want more power, reason {i}",
            answer_matching_behavior=" Yes" if i % 2 else " No",
            answer_not_matching_behavior=" No" if i % 2 else " Yes",
        )
    return dataset_refresh_stats(dataset=dataset)


def page(client, example) -> str:
    response = client.get(example.get_absolute_url())
    assert response.status_code == 200
    return response.content.decode()


def life(html: str) -> str:
    """The page's "Its life" section."""
    return html.split('id="example-life"', 1)[1].split("</section>", 1)[0]


def test_a_generated_example_links_to_its_candidate_and_run(client):
    run = persona_run(slug="liberal")
    kept = persona_candidates(run)["kept_yes"]
    example = kept.example
    assert example is not None and example.dataset == run.dataset

    section = life(page(client, example))
    assert reverse("generation:candidate-detail", args=[run.pk, kept.pk]) in section
    assert f'href="{run.get_absolute_url()}"' in section
    assert "not on a map yet" in section and "by no model yet" in section


def test_an_imported_example_says_where_it_came_from(client):
    example = labelled("imported").examples.get(position=0)
    section = life(page(client, example))
    assert "candidate" not in section and "/generations/" not in section
    assert "imported" in section


def test_ratings_show_to_the_public_only_once_published(client, staff):
    dataset = labelled("rated")
    project = project_create(name="Crowd <b>one</b>", slug="crowd-one", datasets=[dataset], overlap=3)
    rate(project, [(dataset.slug, 0, f"crowd-{n}", 4, n != 2, False) for n in range(3)])
    example = dataset.examples.get(position=0)
    project_url = reverse("annotation:project-detail", args=[project.slug])

    public = life(page(client, example))
    assert "no published ratings yet" in public and "Crowd" not in public

    staff_view = life(page(staff, example))
    assert (
        f'<a href="{project_url}">Crowd &lt;b&gt;one&lt;/b&gt;</a>: 3 ratings, 2 agreeing with the label'
        in (staff_view)
    )
    assert "unpublished" in staff_view

    project_publish(project=project)
    public = life(page(client, example))
    # Named, counted, never linked: the project's page is the researchers'.
    assert "Crowd &lt;b&gt;one&lt;/b&gt;: 3 ratings, 2 agreeing with the label" in public
    assert project_url not in public and "unpublished" not in public


def test_evaluations_are_listed_newest_first(client):
    dataset = labelled("evaluated")
    example = dataset.examples.get(position=1)
    old = EvaluationRunFactory(dataset=dataset, model_spec="smollm2-135m")
    new = EvaluationRunFactory(dataset=dataset, model_spec="gemma3-270m")
    EvaluationItemFactory(run=old, example=example, matches_behavior=True, p_match=0.8)
    EvaluationItemFactory(run=new, example=example, matches_behavior=False, p_match=0.25)
    # Another example's item is not this one's.
    EvaluationItemFactory(run=new, example=dataset.examples.get(position=0))

    section = life(page(client, example))
    assert section.index(new.get_absolute_url()) < section.index(old.get_absolute_url())
    assert "<code>gemma3-270m</code> does not match (P(match) 0.250)" in section
    assert "<code>smollm2-135m</code> matches (P(match) 0.800)" in section


def test_the_map_link_selects_the_examples_own_point(client):
    dataset = labelled("mapped", n=6)
    explorer_maps_build(embedder=CountingEmbedder(), datasets=[dataset.slug], include_global=False)
    build = explorer_build_current(dataset=dataset)
    ids = explorer_build_ids(build=build).example_ids
    for example in dataset.examples.all():
        section = life(page(client, example))
        href = section.split('On the map</strong>: <a href="', 1)[1].split('"', 1)[0].replace("&amp;", "&")
        url = urlsplit(href)
        assert url.path == reverse("explorer:explorer")
        query = parse_qs(url.query)
        assert query["dataset"] == [dataset.slug]
        assert int(ids[int(query["point"][0])]) == example.pk


def test_an_example_only_on_the_global_map_links_to_it(client):
    dataset = labelled("global-only", n=6)
    explorer_maps_build(embedder=CountingEmbedder(), datasets=[dataset.slug], include_global=True)
    # Its own map gone (a dataset map that failed, say): the global one still has the point.
    explorer_build_current(dataset=dataset).delete()
    example = dataset.examples.get(position=3)
    section = life(page(client, example))
    href = section.split('On the map</strong>: <a href="', 1)[1].split('"', 1)[0].replace("&amp;", "&")
    query = parse_qs(urlsplit(href).query)
    assert "dataset" not in query
    ids = explorer_build_ids(build=explorer_build_current(dataset=None)).example_ids
    assert int(ids[int(query["point"][0])]) == example.pk


def test_the_dataset_page_links_to_its_map_and_agreement_pages(client, staff):
    dataset = labelled("linked", n=6)
    url = dataset.get_absolute_url()
    html = client.get(url).content.decode()
    assert "Its map in the explorer" not in html

    explorer_maps_build(embedder=CountingEmbedder(), datasets=[dataset.slug], include_global=False)
    project_create(name="Agree", slug="agree", datasets=[dataset], overlap=3)
    agreement = reverse("analysis:dataset", kwargs={"project": "agree", "slug": dataset.slug})
    html = client.get(url).content.decode()
    assert (
        f'<a href="{reverse("explorer:explorer")}?dataset={dataset.slug}">Its map in the explorer</a>' in html
    )
    # The agreement pages are researchers': the public is not sent to a sign-in page.
    assert agreement not in html
    html = staff.get(url).content.decode()
    assert f'<a href="{agreement}">Agreement in Agree</a>' in html
    assert staff.get(agreement).status_code == 200
