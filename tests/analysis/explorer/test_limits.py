"""What the public explorer endpoints may cost a web process: bad input is refused before any model,
map or row is read; the expensive endpoints are rate limited per client (mwe_site.throttling); the
embedding model is loaded once per process, on the first valid search; and a process keeps no copy
of the maps it serves (their arrays are memory-mapped from files every process shares)."""

import gc
import sys
import tracemalloc

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from analysis.explorer import builds as explorer_builds
from analysis.explorer import selectors as explorer_selectors
from analysis.explorer.builds import explorer_maps_build
from analysis.models import ExplorerBuild
from tests.analysis.builders import examples_create
from tests.analysis.explorer.builders import topic_dataset
from tests.analysis.explorer.fakes import CountingEmbedder
from tests.builders import DatasetFactory, EvaluationItemFactory, EvaluationRunFactory, StaffFactory

pytestmark = pytest.mark.django_db


class CountingFactory:
    """Stands in for generation.lm.embeddings.load_embedder: counts the loads."""

    def __init__(self) -> None:
        self.loads = 0
        self.embedder = CountingEmbedder()

    def __call__(self, *args, **kwargs) -> CountingEmbedder:
        self.loads += 1
        return self.embedder


@pytest.fixture
def factory(monkeypatch):
    factory = CountingFactory()
    monkeypatch.setattr("generation.lm.embeddings.load_embedder", factory)
    monkeypatch.setattr(explorer_selectors, "_embedder", None)  # a fresh process: nothing loaded yet
    torch = sys.modules.get("torch")
    threads = torch.get_num_threads() if torch is not None else None
    yield factory
    if torch is not None:  # loading the query model limits this process's threads; other tests need them
        torch.set_num_threads(threads)


@pytest.fixture
def build():
    dataset = topic_dataset("four", per_topic=1)  # four points: laid out by PCA, no UMAP
    explorer_maps_build(embedder=CountingEmbedder(), include_global=False, datasets=[dataset.slug])
    return ExplorerBuild.objects.get(dataset=dataset)


def limit(settings, **rates):
    settings.MWE_THROTTLE_RATES = {**settings.MWE_THROTTLE_RATES, **rates}


# ----------------------------------------------------------------------------- semantic search


@pytest.mark.parametrize(
    ("params", "error"),
    [
        ({}, "type something"),
        ({"q": "  \n "}, "type something"),
        ({"q": "x" * 301}, "at most 300"),
        ({"q": "power", "k": "0"}, "between 1 and 500"),
        ({"q": "power", "k": "501"}, "between 1 and 500"),
        ({"q": "power", "k": "ten"}, "not a whole number"),
        ({"q": "power", "k": "9" * 5000}, "not a whole number"),
    ],
)
def test_a_bad_search_is_refused_before_any_model_or_map_is_read(client, factory, build, params, error):
    with CaptureQueriesContext(connection) as queries:
        response = client.get(reverse("explorer:search", kwargs={"pk": build.pk}), params)
    assert response.status_code == 400 and error in response.json()["error"]
    assert factory.loads == 0
    assert len(queries) == 0  # not even the map's row


def test_a_search_of_a_missing_map_loads_no_model(client, factory, build):
    response = client.get(reverse("explorer:search", kwargs={"pk": build.pk + 1}), {"q": "power"})
    assert response.status_code == 404 and factory.loads == 0


def test_the_model_is_loaded_once_on_the_first_valid_search(client, factory, build):
    url = reverse("explorer:search", kwargs={"pk": build.pk})
    for query in ("power", "money", "cats"):
        assert client.get(url, {"q": query, "k": 2}).status_code == 200
    assert factory.loads == 1 and factory.embedder.texts == ["power", "money", "cats"]


def test_the_query_model_runs_on_one_thread(client, factory, build):
    torch = pytest.importorskip("torch")
    torch.set_num_threads(2)
    url = reverse("explorer:search", kwargs={"pk": build.pk})
    assert client.get(url, {"q": "power"}).status_code == 200
    # One short sentence is too little work to share out: more threads only spin more cores.
    assert torch.get_num_threads() == 1


def test_semantic_search_is_limited_per_client(client, factory, build, settings):
    limit(settings, semantic_search="2/minute")
    url = reverse("explorer:search", kwargs={"pk": build.pk})
    # Input refused by its own parameters costs less than counting it, so it is not counted.
    for _ in range(5):
        assert client.get(url, {"q": ""}).status_code == 400
    assert client.get(url, {"q": "power"}).status_code == 200
    assert client.get(url, {"q": "money"}).status_code == 200
    refused = client.get(url, {"q": "cats"})
    assert refused.status_code == 429 and refused["Content-Type"] == "application/json"
    assert "Too many requests" in refused.json()["detail"] and int(refused["Retry-After"]) >= 1
    assert factory.embedder.texts == ["power", "money"]  # the refused query never reached the model
    # Another client (address) has its own allowance; staff have none.
    assert client.get(url, {"q": "cats"}, REMOTE_ADDR="10.0.0.2").status_code == 200
    client.force_login(StaffFactory())
    assert client.get(url, {"q": "rain"}).status_code == 200


# ----------------------------------------------------------------------------- points and maps


def test_point_details_are_limited_per_client(client, build, settings):
    limit(settings, explorer_point="2/minute")
    for index in (0, 1):
        assert (
            client.get(reverse("explorer:point", kwargs={"pk": build.pk, "index": index})).status_code == 200
        )
    refused = client.get(reverse("explorer:point", kwargs={"pk": build.pk, "index": 2}))
    assert refused.status_code == 429 and "Too many requests" in refused.json()["detail"]


def test_the_map_and_its_overlays_share_one_limit(client, build, settings):
    limit(settings, explorer_map="3/minute")
    run = EvaluationRunFactory(dataset=build.dataset, model_spec="smollm2-135m", prompt_format="paper")
    EvaluationItemFactory(run=run, example=build.dataset.examples.first())
    urls = [
        reverse("explorer:payload", kwargs={"pk": build.pk}),
        reverse("explorer:agreement", kwargs={"pk": build.pk}),
        reverse("explorer:p-match", kwargs={"pk": build.pk}) + "?model=smollm2-135m&format=paper",
    ]
    for url in urls:
        assert client.get(url).status_code == 200
    for url in urls:
        refused = client.get(url)
        assert refused.status_code == 429 and refused["Retry-After"]


def test_a_revalidated_payload_is_not_read_again(client, build):
    url = reverse("explorer:payload", kwargs={"pk": build.pk})
    etag = client.get(url, HTTP_ACCEPT_ENCODING="gzip")["ETag"]
    with CaptureQueriesContext(connection) as queries:
        assert client.get(url, HTTP_IF_NONE_MATCH=etag).status_code == 304
    # The payload (megabytes for the big maps) is not fetched from the database to answer 304.
    assert not any('"payload"' in q["sql"] for q in queries)


def test_a_bad_overlay_request_is_refused_before_it_is_counted(client, build, settings):
    limit(settings, explorer_map="1/minute")
    url = reverse("explorer:p-match", kwargs={"pk": build.pk})
    with CaptureQueriesContext(connection) as queries:
        for params in ({}, {"model": "m"}, {"model": "m" * 1000, "format": "paper"}):
            response = client.get(url, params)
            assert response.status_code == 400 and response.content
    assert len(queries) == 0
    assert client.get(reverse("explorer:payload", kwargs={"pk": build.pk})).status_code == 200


# ----------------------------------------------------------------------------- memory


def point_request(client, build, index=0):
    response = client.get(reverse("explorer:point", kwargs={"pk": build.pk, "index": index}))
    assert response.status_code == 200
    return response


def test_a_maps_vectors_are_read_from_the_database_once_per_machine(client, build):
    point_request(client, build)
    explorer_selectors.explorer_caches_clear()  # as if another web process served the next request
    with CaptureQueriesContext(connection) as queries:
        detail = point_request(client, build, index=1).json()
    assert detail["neighbours"]
    sql = " ".join(q["sql"] for q in queries)
    assert "analysis_textembedding" not in sql and '"text_hashes"' not in sql and '"example_ids"' not in sql


def test_a_process_keeps_no_copy_of_the_maps_it_serves(client, monkeypatch):
    """Cycling point requests over three maps of 2,000 points (3 MB of vectors each): the
    memory Python allocates and keeps stays far below one map's vectors (before: the two most
    recently used maps' vectors, 6 MB, stayed in every process)."""
    # This test is about serving maps, not drawing them: the first two dimensions are the layout.
    monkeypatch.setattr(
        explorer_builds, "project", lambda *, vectors, params: (vectors[:, :2].copy(), {"method": "test"})
    )
    points = 2000
    builds = []
    for number in range(3):
        dataset = DatasetFactory(slug=f"big-{number}")
        examples_create(dataset, points)
        explorer_maps_build(embedder=CountingEmbedder(), include_global=False, datasets=[dataset.slug])
        builds.append(ExplorerBuild.objects.get(dataset=dataset))
    vector_bytes = points * 384 * 4

    warm = topic_dataset("warm", per_topic=1)
    explorer_maps_build(embedder=CountingEmbedder(), include_global=False, datasets=[warm.slug])
    warm_up = ExplorerBuild.objects.get(dataset=warm)
    tracemalloc.start()
    try:
        point_request(client, warm_up)  # Django's own first-request allocations, on a tiny map
        gc.collect()
        baseline = tracemalloc.get_traced_memory()[0]
        for _ in range(3):
            for index, build in enumerate(builds):
                point_request(client, build, index=index)
        gc.collect()
        kept = tracemalloc.get_traced_memory()[0] - baseline
    finally:
        tracemalloc.stop()
    assert kept < vector_bytes / 4, f"{kept} bytes kept after serving maps of {vector_bytes} bytes of vectors"
