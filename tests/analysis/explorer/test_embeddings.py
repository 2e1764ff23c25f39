"""The embedding cache: only distinct texts missing from it reach the model, keyed by exact text and
model fingerprint, stored chunk by chunk. The model is a stand-in (tests/analysis/explorer/fakes.py)."""

import numpy as np
import pytest

from analysis.explorer.embeddings import embeddings_get_or_create, text_sha256
from analysis.explorer.errors import ExplorerError
from analysis.models import TextEmbedding
from tests.analysis.explorer.fakes import CountingEmbedder

pytestmark = pytest.mark.django_db


def test_only_distinct_uncached_texts_reach_the_model():
    embedder = CountingEmbedder()
    texts = ["I like power", "I like money", "I like power"]
    vectors, stats = embeddings_get_or_create(texts=texts, embedder=embedder)
    assert sorted(embedder.texts) == ["I like money", "I like power"]
    assert (stats.embedded, stats.cached) == (2, 0)
    assert vectors.shape == (3, 384) and vectors.dtype == np.float32
    assert np.array_equal(vectors[0], vectors[2])
    row = TextEmbedding.objects.get(text_hash=text_sha256("I like power"))
    assert row.model_fingerprint == "sha256:fake-minilm" and row.dimensions == 384
    assert len(bytes(row.vector)) == 384 * 4  # float32 bytes, not JSON
    assert np.array_equal(row.as_array(), embedder.vector("I like power"))

    again = CountingEmbedder()
    cached, stats = embeddings_get_or_create(texts=[*texts, "I like cats"], embedder=again)
    assert again.texts == ["I like cats"]
    assert (stats.embedded, stats.cached) == (1, 2)
    assert np.array_equal(cached[:3], vectors)


def test_cache_is_keyed_by_exact_text_and_model_fingerprint():
    embeddings_get_or_create(texts=["I like power"], embedder=CountingEmbedder())
    other_model = CountingEmbedder(fingerprint="sha256:another-model")
    embeddings_get_or_create(texts=["I like power", "i like  power"], embedder=other_model)
    # A new model never reads the old model's vectors, and texts differing in case or spacing are
    # different texts to the embedder.
    assert other_model.texts == ["i like  power", "I like power"]
    assert TextEmbedding.objects.count() == 3


def test_chunks_are_stored_as_they_are_embedded():
    embedder = CountingEmbedder()
    texts = [f"statement {n} about power" for n in range(25)]
    reports = []
    embeddings_get_or_create(
        texts=texts, embedder=embedder, chunk_size=10, progress=lambda *args: reports.append(args)
    )
    assert embedder.calls == 3
    assert reports == [
        ("embedding", 0, 25),
        ("embedding", 10, 25),
        ("embedding", 20, 25),
        ("embedding", 25, 25),
    ]


def test_a_model_returning_the_wrong_shape_is_refused():
    class Broken(CountingEmbedder):
        def embed(self, texts, *, batch_size=64):
            return np.zeros((len(texts), 3), dtype=np.float32)

    with pytest.raises(ExplorerError, match="shape"):
        embeddings_get_or_create(texts=["a", "b"], embedder=Broken())
    assert TextEmbedding.objects.count() == 0
