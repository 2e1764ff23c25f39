"""The map's layout and regions: PCA for tiny maps, HDBSCAN clusters (on a sample for large maps),
c-TF-IDF keywords and medoid anchors. UMAP, HDBSCAN and c-TF-IDF are the real ones on small maps."""

import numpy as np
import pytest

from analysis.explorer import projection
from analysis.explorer.builds import explorer_maps_build
from analysis.explorer.projection import cluster_keywords
from tests.analysis.explorer.builders import latest_build, topic_dataset
from tests.analysis.explorer.fakes import TOPICS, CountingEmbedder
from tests.builders import DatasetFactory, ExampleFactory

pytestmark = pytest.mark.django_db


def test_clusters_get_c_tf_idf_keywords_and_a_medoid_anchor():
    dataset = topic_dataset("four-topics")
    explorer_maps_build(embedder=CountingEmbedder(), datasets=[dataset.slug], include_global=False)
    build = latest_build(dataset)
    clusters = list(build.clusters.all())
    labels = build.cluster_label_array()
    coords = build.coordinate_array()
    texts = [e.text for e in dataset.examples.order_by("position")]
    assert len(clusters) == 4 == build.cluster_count
    # Largest first; sizes match the per-point labels.
    assert [c.size for c in clusters] == sorted((c.size for c in clusters), reverse=True)
    topics_found = set()
    for cluster in clusters:
        members = np.flatnonzero(labels == cluster.number)
        assert cluster.size == len(members)
        member_topics = {next(t for t in TOPICS if t in texts[i].lower()) for i in members}
        assert len(member_topics) == 1, "each topic is a cluster of its own"
        topic = member_topics.pop()
        topics_found.add(topic)
        assert topic in cluster.keywords[:3]
        # Anchored on a member (the medoid), at that member's coordinates.
        assert cluster.medoid_index in members
        assert (cluster.x, cluster.y) == (
            float(coords[cluster.medoid_index, 0]),
            float(coords[cluster.medoid_index, 1]),
        )
        assert cluster.medoid.text == texts[cluster.medoid_index]
        assert cluster.summary == ""
    assert topics_found == set(TOPICS)


def test_the_medoid_is_the_member_closest_to_all_others():
    vectors = np.array([[1, 0], [0.9, 0.1], [0.8, 0.6], [0.2, 1.0]], dtype=np.float32)
    ranked = projection.cluster_members_ranked(vectors=vectors, members=np.arange(4))
    unit = vectors / np.linalg.norm(vectors, axis=1, keepdims=True)
    distances = (1 - unit @ unit.T).sum(axis=1)
    assert ranked[0] == int(np.argmin(distances))


def test_large_maps_are_clustered_on_a_sample_and_every_point_gets_its_cluster(monkeypatch):
    monkeypatch.setattr(projection, "CLUSTER_SAMPLE", 200)
    rng = np.random.default_rng(0)
    centres = np.array([[0, 0], [20, 0], [0, 20], [20, 20]])
    blob = np.repeat(np.arange(4), 150)
    coords = (centres[blob] + rng.normal(size=(600, 2))).astype(np.float32)
    labels, used = projection.clusters_find(coords=coords, min_cluster_size=40, seed=3)
    assert used["sample"] == 200 and used["sample_min_cluster_size"] == 13 and used["sample_seed"] == 3
    assert len(labels) == 600 and set(labels.tolist()) == {0, 1, 2, 3}
    # Each blob is one cluster, whether its points were in the sample or not.
    assert all(len(set(labels[blob == b].tolist())) == 1 for b in range(4))
    again, _ = projection.clusters_find(coords=coords, min_cluster_size=40, seed=3)
    assert np.array_equal(labels, again)


def test_c_tf_idf_prefers_words_particular_to_a_cluster():
    texts = ["I like cats and dogs", "cats purr softly", "I like rain and dogs", "rain falls softly"]
    keywords = cluster_keywords(texts=texts, labels=np.array([0, 0, 1, 1]), top=10)
    # By hand: each cluster has 6 words once "I" and "and" (stop words) are gone, so A = 6.
    # cats: 2/6 * log(1 + 6/2) = 0.46; purr: 1/6 * log(1 + 6/1) = 0.32; dogs, like, softly (in both
    # clusters): 1/6 * log(1 + 6/2) = 0.23, tied, so alphabetical. The same for rain and falls.
    assert keywords == {
        0: ["cats", "purr", "dogs", "like", "softly"],
        1: ["rain", "falls", "dogs", "like", "softly"],
    }
    assert cluster_keywords(texts=texts, labels=np.array([-1, -1, -1, -1])) == {}


def test_tiny_maps_are_laid_out_without_umap():
    dataset = DatasetFactory(slug="tiny", example_count=3)
    for n, text in enumerate(["I want power", "I want money", "I like cats"]):
        ExampleFactory(dataset=dataset, position=n, statement=text)
    explorer_maps_build(embedder=CountingEmbedder(), datasets=["tiny"], include_global=False)
    build = latest_build(dataset)
    assert build.status == "succeeded" and build.point_count == 3
    assert build.params["projection"]["method"] == "pca"
    assert np.isfinite(build.coordinate_array()).all()
