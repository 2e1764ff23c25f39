"""Building maps: what is embedded and redrawn when the catalog changes, the parameters, models and
versions stored with a build, reproducibility, scope, pruning and failures."""

from importlib import metadata

import pytest

from analysis.explorer import builds
from analysis.explorer.builds import explorer_maps_build
from analysis.explorer.embeddings import text_sha256
from analysis.explorer.errors import ExplorerError
from analysis.explorer.payload import payload_decode
from analysis.explorer.projection import MapParams
from analysis.models import ExplorerBuild, ExplorerCluster, TextEmbedding
from generation.models import Dataset
from tests.analysis.explorer.builders import latest_build, topic_dataset
from tests.analysis.explorer.fakes import CountingEmbedder
from tests.builders import ExampleFactory

pytestmark = pytest.mark.django_db


def test_rebuilding_an_unchanged_catalog_makes_zero_model_calls():
    topic_dataset("power-and-money", per_topic=8, topics=("power", "money"))
    topic_dataset("cats-and-rain", per_topic=8, topics=("cats", "rain"))
    first = CountingEmbedder()
    report = explorer_maps_build(embedder=first)
    assert [(m.scope, m.status) for m in report.maps] == [
        ("all datasets", "built"),
        ("cats-and-rain", "built"),
        ("power-and-money", "built"),
    ]
    assert first.calls == 1 and len(first.texts) == 32 and report.embedded == 32

    # Unchanged inputs: every map is skipped, nothing is embedded or stored.
    again = CountingEmbedder()
    report = explorer_maps_build(embedder=again)
    assert {m.status for m in report.maps} == {"unchanged"}
    assert again.calls == 0 and ExplorerBuild.objects.count() == 3

    # Forced: the maps are drawn again, every vector comes from the cache.
    forced = CountingEmbedder()
    report = explorer_maps_build(embedder=forced, force=True)
    assert {m.status for m in report.maps} == {"built"}
    assert forced.calls == 0 and forced.texts == []
    assert (report.embedded, report.cached) == (0, 32)
    assert latest_build().cached_count == 32 and latest_build().embedded_count == 0


def test_a_new_example_embeds_only_its_text_and_redraws_only_its_maps():
    power = topic_dataset("power-and-money", per_topic=8, topics=("power", "money"))
    topic_dataset("cats-and-rain", per_topic=8, topics=("cats", "rain"))
    explorer_maps_build(embedder=CountingEmbedder())
    ExampleFactory(dataset=power, position=100, statement="Power is what I want most")
    embedder = CountingEmbedder()
    report = explorer_maps_build(embedder=embedder)
    assert embedder.texts == ["Power is what I want most"]
    assert {m.scope: m.status for m in report.maps} == {
        "all datasets": "built",
        "cats-and-rain": "unchanged",
        "power-and-money": "built",
    }
    assert latest_build(power).point_count == 17


def test_a_build_stores_its_parameters_seed_models_and_versions():
    dataset = topic_dataset("four-topics")
    embedder = CountingEmbedder()
    explorer_maps_build(
        embedder=embedder,
        datasets=["four-topics"],
        include_global=False,
        params=MapParams(n_neighbors=10, min_dist=0.2, seed=7),
    )
    build = latest_build(dataset)
    assert build.status == ExplorerBuild.Status.SUCCEEDED and build.finished_at
    assert build.scope == "dataset" and build.point_count == 48
    assert build.seed == 7
    projection = build.params["projection"]
    assert projection["method"] == "umap" and projection["metric"] == "cosine"
    assert (
        projection["n_neighbors"] == 10 and projection["min_dist"] == 0.2 and projection["random_state"] == 7
    )
    assert build.params["clustering"]["method"] == "hdbscan"
    assert build.versions["umap-learn"] == metadata.version("umap-learn")
    assert build.versions["scikit-learn"] == metadata.version("scikit-learn")
    assert build.embedder_info["fingerprint"] == "sha256:fake-minilm"
    assert build.summary_model_info == {}
    assert set(build.timings) >= {"project", "cluster", "payload", "embed_run_seconds"}
    assert len(build.input_fingerprint) == 64
    # Arrays are raw bytes of the right sizes.
    assert build.coordinate_array().shape == (48, 2)
    assert build.example_id_array().tolist() == list(
        dataset.examples.order_by("position").values_list("pk", flat=True)
    )
    assert build.text_hash_list() == [text_sha256(e.text) for e in dataset.examples.order_by("position")]


def test_the_same_inputs_and_seed_draw_the_same_map():
    dataset = topic_dataset("four-topics", per_topic=6)
    explorer_maps_build(embedder=CountingEmbedder(), datasets=[dataset.slug], include_global=False)
    first = latest_build(dataset)
    explorer_maps_build(
        embedder=CountingEmbedder(), datasets=[dataset.slug], include_global=False, force=True
    )
    second = latest_build(dataset)
    assert second.pk != first.pk
    assert bytes(second.coordinates) == bytes(first.coordinates)
    assert bytes(second.cluster_labels) == bytes(first.cluster_labels)


def test_global_map_covers_evaluation_datasets_only():
    topic_dataset("power-only", per_topic=6, topics=("power",))
    topic_dataset("few-shot", per_topic=6, topics=("cats",), purpose=Dataset.Purpose.FEW_SHOT)
    report = explorer_maps_build(embedder=CountingEmbedder(), include_datasets=False)
    assert [(m.scope, m.status) for m in report.maps] == [("all datasets", "built")]
    header, _ = payload_decode(bytes(latest_build().payload))
    assert [d["slug"] for d in header["datasets"]] == ["power-only"]


def test_bad_requests_change_nothing():
    topic_dataset("four-topics", per_topic=3)
    embedder = CountingEmbedder()
    with pytest.raises(ExplorerError, match="'nope'"):
        explorer_maps_build(embedder=embedder, datasets=["four-topics", "nope"])
    with pytest.raises(ExplorerError, match="nothing to build"):
        explorer_maps_build(embedder=embedder, include_global=False, include_datasets=False)
    with pytest.raises(ExplorerError, match="n_neighbors"):
        MapParams(n_neighbors=1)
    assert embedder.calls == 0 and not ExplorerBuild.objects.exists() and not TextEmbedding.objects.exists()


def test_only_the_newest_builds_of_a_map_are_kept():
    dataset = topic_dataset("four-topics", per_topic=3)
    for _ in range(4):
        explorer_maps_build(
            embedder=CountingEmbedder(), datasets=[dataset.slug], include_global=False, force=True
        )
    kept = list(ExplorerBuild.objects.filter(dataset=dataset).order_by("pk"))
    assert len(kept) == builds.BUILDS_KEPT
    assert ExplorerCluster.objects.filter(build__in=kept).count() == sum(b.cluster_count for b in kept)


def test_a_failing_map_is_recorded_and_the_others_still_built(monkeypatch):
    topic_dataset("power-and-money", per_topic=6, topics=("power", "money"))
    topic_dataset("cats-and-rain", per_topic=6, topics=("cats", "rain"))
    real = builds.project

    def project(*, vectors, params):
        if len(vectors) == 12 and not hasattr(project, "failed"):
            project.failed = True
            raise RuntimeError("out of memory")
        return real(vectors=vectors, params=params)

    monkeypatch.setattr(builds, "project", project)
    report = explorer_maps_build(embedder=CountingEmbedder())
    assert [m.status for m in report.maps] == ["built", "failed", "built"]
    failed = ExplorerBuild.objects.get(status=ExplorerBuild.Status.FAILED)
    assert failed.error == "RuntimeError: out of memory"
