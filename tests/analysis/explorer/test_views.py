"""The explorer's pages and endpoints: the public page, the binary payload and overlays, a point's
details and neighbours, semantic search, and the staff build button. Maps are built for real (UMAP
on a few dozen points) with the counting stand-in embedder."""

import gzip
import json

import numpy as np
import pytest
from django.urls import reverse
from django.utils import timezone

from analysis.explorer import selectors as explorer_selectors
from analysis.explorer.builds import explorer_maps_build
from analysis.explorer.payload import payload_decode
from analysis.models import ExplorerBuild
from annotation.models import AnnotationProject
from annotation.services.leases import assignment_submit, task_claim
from annotation.services.projects import project_create
from generation.models import Job
from tests.analysis.builders import answer_for
from tests.analysis.explorer.builders import topic_dataset
from tests.analysis.explorer.fakes import CountingEmbedder, ScriptedSummaryModel
from tests.builders import (
    EvaluationItemFactory,
    EvaluationRunFactory,
    StaffFactory,
    UserFactory,
    WorkerFactory,
)

pytestmark = pytest.mark.django_db

XSS = '<b>bold</b> <a href="javascript:alert(1)">x</a> <img src=x onerror="alert(1)">'


@pytest.fixture
def embedder(monkeypatch):
    embedder = CountingEmbedder()
    monkeypatch.setattr(explorer_selectors, "query_embedder", lambda: embedder)
    return embedder


def build_map(embedder, slug="four-topics", per_topic=6, **kwargs):
    dataset = topic_dataset(slug, per_topic=per_topic)
    explorer_maps_build(embedder=embedder, include_global=False, datasets=[slug], **kwargs)
    return dataset, ExplorerBuild.objects.get(dataset=dataset)


def examples_of(dataset):
    return list(dataset.examples.order_by("position"))


# ----------------------------------------------------------------------------- the page


def test_page_without_maps_says_how_to_build_them(client):
    response = client.get(reverse("explorer:explorer"))
    assert response.status_code == 200
    content = response.content.decode()
    assert "No map has been built yet" in content
    assert "manage.py build_explorer" in content
    assert "plotly-strict.min.js" not in content and 'action="/explore/build/"' not in content


def test_page_shows_the_map_publicly(client, embedder):
    dataset, _ = build_map(embedder)
    explorer_maps_build(embedder=embedder, include_datasets=False)
    global_build = ExplorerBuild.objects.get(scope="global")
    response = client.get(reverse("explorer:explorer"))
    assert response.status_code == 200
    config = response.context["config"]
    assert config["build"] == global_build.pk and config["count"] == 24
    assert config["payload"] == f"/explore/builds/{global_build.pk}/points.bin"
    assert config["point"] == f"/explore/builds/{global_build.pk}/points/"
    assert config["agreement"] is None and config["models"] == []
    content = response.content.decode()
    assert (
        'id="explorer-config"' in content
        and "plotly/plotly-strict.min.js" in content
        and '<script type="module" src="/static/js/explorer/main.js">' in content
    )
    assert "All datasets (24)" in content and "four-topics (24)" in content

    response = client.get(reverse("explorer:explorer"), {"dataset": dataset.slug})
    assert response.context["build"].dataset == dataset
    assert client.get(reverse("explorer:explorer"), {"dataset": "nope"}).status_code == 404


def test_untrusted_text_is_escaped_in_the_page(client, embedder):
    dataset = topic_dataset("four-topics", per_topic=6)
    first = dataset.examples.order_by("position").first()
    first.statement = f"I want power {XSS}"
    first.save()

    explorer_maps_build(
        embedder=embedder,
        datasets=[dataset.slug],
        include_global=False,
        summary_model=ScriptedSummaryModel(f"About {XSS}."),
    )
    response = client.get(reverse("explorer:explorer"), {"dataset": dataset.slug})
    content = response.content.decode()
    assert "<b>bold</b>" not in content and "<img src=x" not in content and 'href="javascript' not in content
    assert "About &lt;b&gt;bold&lt;/b&gt;" in content


def test_staff_see_the_build_button_and_the_running_job(client, embedder, django_capture_on_commit_callbacks):
    build_map(embedder)
    client.force_login(StaffFactory())
    content = client.get(reverse("explorer:explorer")).content.decode()
    assert 'action="/explore/build/"' in content
    with django_capture_on_commit_callbacks(execute=False):
        response = client.post(reverse("explorer:build"))
    job = Job.objects.get(kind=Job.Kind.EXPLORE)
    assert response.status_code == 302 and response.url == job.get_absolute_url()
    assert job.params == {
        "datasets": None,
        "global": True,
        "per_dataset": True,
        "summaries": True,
        "force": False,
    }
    content = client.get(reverse("explorer:explorer")).content.decode()
    assert f"Build job #{job.pk}" in content and 'action="/explore/build/"' not in content
    # Pressing again while it is queued does not queue a second build.
    with django_capture_on_commit_callbacks(execute=False):
        client.post(reverse("explorer:build"))
    assert Job.objects.filter(kind=Job.Kind.EXPLORE).count() == 1


def test_only_staff_may_start_a_build(client):
    response = client.post(reverse("explorer:build"))
    assert response.status_code == 302 and "login" in response.url
    client.force_login(UserFactory())
    assert client.post(reverse("explorer:build")).status_code == 403
    assert client.get(reverse("explorer:build")).status_code in (403, 405)
    assert not Job.objects.exists()


# ----------------------------------------------------------------------------- payload


def test_payload_is_sent_gzip_compressed_with_an_etag(client, embedder):
    dataset, build = build_map(embedder)
    url = reverse("explorer:payload", kwargs={"pk": build.pk})
    response = client.get(url, HTTP_ACCEPT_ENCODING="gzip, deflate, br")
    assert response.status_code == 200
    assert response["Content-Encoding"] == "gzip" and response["Content-Type"] == "application/octet-stream"
    assert "Accept-Encoding" in response["Vary"] and "public" in response["Cache-Control"]
    header, arrays = payload_decode(response.content)
    assert header["count"] == len(examples_of(dataset))

    assert client.get(url, HTTP_IF_NONE_MATCH=response["ETag"]).status_code == 304
    plain = client.get(url)  # a client that does not take gzip gets the bytes unpacked
    assert "Content-Encoding" not in plain and plain.content == gzip.decompress(response.content)


def test_unknown_or_unfinished_builds_are_not_served(client, embedder):
    _, build = build_map(embedder)
    running = ExplorerBuild.objects.create(scope="global", status=ExplorerBuild.Status.RUNNING)
    for pk in (build.pk + 100, running.pk):
        assert client.get(reverse("explorer:payload", kwargs={"pk": pk})).status_code == 404
        assert client.get(reverse("explorer:point", kwargs={"pk": pk, "index": 0})).status_code == 404


# ----------------------------------------------------------------------------- one point


def test_a_point_has_its_example_and_nearest_neighbours_in_embedding_space(client, embedder):
    dataset, build = build_map(embedder)
    examples = examples_of(dataset)
    response = client.get(reverse("explorer:point", kwargs={"pk": build.pk, "index": 3}))
    assert response.status_code == 200
    detail = response.json()
    example = examples[3]
    assert detail["example"]["text"] == example.text
    assert detail["example"]["url"] == example.get_absolute_url()
    assert detail["example"]["dataset_url"] == dataset.get_absolute_url()
    assert detail["example"]["label"] == example.answer_matching_behavior.strip()
    assert detail["example"]["label_confidence"] == pytest.approx(example.label_confidence)
    # Neighbours: the most similar vectors (cosine, 384 dimensions), best first, not the point itself.
    vectors = np.stack([embedder.vector(e.text) for e in examples])
    similarity = vectors @ vectors[3]
    similarity[3] = -np.inf
    expected = list(np.argsort(-similarity, kind="stable")[: explorer_selectors.NEIGHBOURS])
    assert [n["index"] for n in detail["neighbours"]] == expected
    assert detail["neighbours"][0]["similarity"] == pytest.approx(similarity[expected[0]], abs=1e-4)
    assert detail["neighbours"][0]["url"] == examples[expected[0]].get_absolute_url()
    assert detail["cluster"]["keywords"] and detail["ratings"] is None and detail["evaluations"] == []

    assert client.get(reverse("explorer:point", kwargs={"pk": build.pk, "index": 24})).status_code == 404
    example.delete()
    assert client.get(reverse("explorer:point", kwargs={"pk": build.pk, "index": 3})).status_code == 404


def rate(dataset, *, workers: int, correct):
    """Every example of the dataset rated by `workers` workers; correct(example, worker_number)
    decides each rating's label_correct."""
    project = project_create(name="Check", slug="check", datasets=[dataset], overlap=workers)
    for number in range(workers):
        worker = WorkerFactory(projects=[project])
        while (assignment := task_claim(worker=worker, project=project)) is not None:
            assignment_submit(
                assignment_id=assignment.pk,
                worker=worker,
                relevance=4,
                answer=answer_for(assignment.item.example, agrees=correct(assignment.item.example, number)),
                ambiguous=False,
            )
    return project


def test_human_agreement_is_a_share_per_point_and_nan_when_unrated(client, embedder):
    dataset, build = build_map(embedder, per_topic=2)
    examples = examples_of(dataset)
    rated = {e.pk for e in examples[:5]}
    other = topic_dataset("other", per_topic=1)
    other_project = rate(other, workers=1, correct=lambda example, number: True)  # not on this map: ignored
    project = project_create(name="Some", slug="some", datasets=[dataset], overlap=3)
    project.items.exclude(example_id__in=rated).delete()
    for number in range(3):
        worker = WorkerFactory(projects=[project])
        while (assignment := task_claim(worker=worker, project=project)) is not None:
            example = assignment.item.example
            assignment_submit(
                assignment_id=assignment.pk,
                worker=worker,
                relevance=3,
                answer=answer_for(example, agrees=number < examples.index(example) % 3 + 1),
                ambiguous=number == 0,
            )
    # Ratings are public once the project is published (tests/analysis/explorer/test_privacy.py).
    AnnotationProject.objects.filter(pk__in=[project.pk, other_project.pk]).update(
        published_at=timezone.now()
    )
    response = client.get(reverse("explorer:explorer"), {"dataset": dataset.slug})
    assert response.context["config"]["agreement"] == f"/explore/builds/{build.pk}/agreement.bin"
    response = client.get(reverse("explorer:agreement", kwargs={"pk": build.pk}), HTTP_ACCEPT_ENCODING="gzip")
    values = np.frombuffer(gzip.decompress(response.content), dtype="<f4")
    assert len(values) == len(examples)
    expected = [(i % 3 + 1) / 3 for i in range(5)]
    assert values[:5].tolist() == pytest.approx(expected)
    assert np.isnan(values[5:]).all()

    detail = client.get(reverse("explorer:point", kwargs={"pk": build.pk, "index": 1})).json()
    assert detail["ratings"]["count"] == 3
    assert detail["ratings"]["label_correct_share"] == pytest.approx(2 / 3)
    assert detail["ratings"]["ambiguous_share"] == pytest.approx(1 / 3)
    assert detail["ratings"]["relevance_mean"] == pytest.approx(3.0)
    # The answers chosen, the label's first, spelled without the released files' leading space: two
    # of three chose the label's answer, one the other option.
    label, other = (answer.strip() for answer in examples[1].answer_choices)
    assert detail["ratings"]["answers"] == [{"answer": label, "count": 2}, {"answer": other, "count": 1}]
    assert detail["ratings"]["answers_not_recorded"] == 0
    assert "projects" not in detail["ratings"]  # project pages are for staff
    client.force_login(StaffFactory())
    detail = client.get(reverse("explorer:point", kwargs={"pk": build.pk, "index": 1})).json()
    assert detail["ratings"]["projects"] == [
        {
            "name": "Some",
            "count": 3,
            "published": True,
            "gold": 0,
            "url": reverse("annotation:project-detail", kwargs={"slug": "some"}),
        }
    ]


def test_p_match_comes_from_the_newest_run_of_the_chosen_model(client, embedder):
    dataset, build = build_map(embedder, per_topic=2)
    examples = examples_of(dataset)
    older = EvaluationRunFactory(dataset=dataset, model_spec="smollm2-135m", prompt_format="paper")
    newer = EvaluationRunFactory(dataset=dataset, model_spec="smollm2-135m", prompt_format="paper")
    plain = EvaluationRunFactory(dataset=dataset, model_spec="smollm2-135m", prompt_format="plain")
    EvaluationRunFactory(dataset=dataset, model_spec="failed-model", status="failed")
    for example in examples[:4]:
        EvaluationItemFactory(run=older, example=example, p_match=0.1, matches_behavior=False)
    EvaluationItemFactory(run=newer, example=examples[0], p_match=0.9)
    EvaluationItemFactory(run=plain, example=examples[0], p_match=0.5)

    config = client.get(reverse("explorer:explorer"), {"dataset": dataset.slug}).context["config"]
    assert [(m["spec"], m["format"]) for m in config["models"]] == [
        ("smollm2-135m", "paper"),
        ("smollm2-135m", "plain"),
    ]
    url = reverse("explorer:p-match", kwargs={"pk": build.pk})
    response = client.get(url, {"model": "smollm2-135m", "format": "paper"}, HTTP_ACCEPT_ENCODING="gzip")
    values = np.frombuffer(gzip.decompress(response.content), dtype="<f4")
    assert values[:4].tolist() == pytest.approx([0.9, 0.1, 0.1, 0.1])
    assert np.isnan(values[4:]).all()
    assert client.get(url, {"model": "failed-model", "format": "paper"}).status_code == 404
    assert client.get(url, {"model": "smollm2-135m"}).status_code == 400  # no format

    detail = client.get(reverse("explorer:point", kwargs={"pk": build.pk, "index": 0})).json()
    # Newest run first; the failed run's items (none here) would never be listed.
    assert [(e["run"], e["p_match"]) for e in detail["evaluations"]] == [
        (plain.pk, 0.5),
        (newer.pk, 0.9),
        (older.pk, 0.1),
    ]
    assert detail["evaluations"][0]["url"].startswith("/evaluations/")


# ----------------------------------------------------------------------------- semantic search


def test_semantic_search_finds_the_nearest_texts_by_meaning(client, embedder):
    dataset, build = build_map(embedder)
    examples = examples_of(dataset)
    url = reverse("explorer:search", kwargs={"pk": build.pk})
    response = client.get(url, {"q": "power to the people", "k": 6})
    assert response.status_code == 200
    body = response.json()
    query = embedder.vector("power to the people")
    scores = np.stack([embedder.vector(e.text) for e in examples]) @ query
    assert body["indices"] == list(np.argsort(-scores, kind="stable")[:6])
    assert all("power" in examples[i].text for i in body["indices"])
    assert body["scores"] == sorted(body["scores"], reverse=True)


@pytest.mark.parametrize(
    ("params", "error"),
    [
        ({"q": "   "}, "type something"),
        ({"q": "x" * 301}, "at most 300"),
        ({"q": "power", "k": "0"}, "between 1 and 500"),
        ({"q": "power", "k": "ten"}, "not a whole number"),
    ],
)
def test_bad_searches_get_a_clear_error(client, embedder, params, error):
    _, build = build_map(embedder, per_topic=2)
    response = client.get(reverse("explorer:search", kwargs={"pk": build.pk}), params)
    assert response.status_code == 400
    assert error in response.json()["error"]


def test_search_refuses_a_map_embedded_by_another_model(client, embedder, monkeypatch):
    _, build = build_map(embedder, per_topic=2)
    monkeypatch.setattr(
        explorer_selectors, "query_embedder", lambda: CountingEmbedder(fingerprint="sha256:v2")
    )
    response = client.get(reverse("explorer:search", kwargs={"pk": build.pk}), {"q": "power"})
    assert response.status_code == 400 and "rebuild" in response.json()["error"]


def test_config_is_json_not_markup(client, embedder):
    dataset, build = build_map(embedder, per_topic=2)
    EvaluationRunFactory(dataset=dataset, model_spec="hf:</script><script>alert(1)</script>")
    content = client.get(reverse("explorer:explorer"), {"dataset": dataset.slug}).content.decode()
    start = content.index('<script id="explorer-config" type="application/json">')
    block = content[start : content.index("</script>", start)]
    assert "<script>alert" not in block
    config = json.loads(block.split(">", 1)[1])
    assert config["models"][0]["spec"] == "hf:</script><script>alert(1)</script>"
