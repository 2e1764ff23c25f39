"""The map's layout and its regions: 2D coordinates by UMAP (cosine metric, fixed seed; PCA for
tiny maps), clusters by HDBSCAN on those coordinates, each labelled with c-TF-IDF keywords and
anchored at its medoid."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from analysis.explorer.embeddings import unit_rows
from analysis.explorer.errors import ExplorerError
from analysis.models import CLUSTER_DTYPE, VECTOR_DTYPE

DEFAULT_SEED = 42
DEFAULT_N_NEIGHBORS = 15
DEFAULT_MIN_DIST = 0.1
# UMAP needs a neighbour graph with some room: with fewer points its spectral initialisation fails,
# so tiny maps are laid out by PCA instead (recorded in the build's parameters).
UMAP_MIN_POINTS = 5
KEYWORDS_PER_CLUSTER = 5
# Above this many points, clusters are found on a random sample of this size (see clusters_find).
CLUSTER_SAMPLE = 20_000


@dataclass(frozen=True)
class MapParams:
    n_neighbors: int = DEFAULT_N_NEIGHBORS
    min_dist: float = DEFAULT_MIN_DIST
    seed: int = DEFAULT_SEED
    # None: chosen from the number of points (see min_cluster_size_for).
    min_cluster_size: int | None = None

    def __post_init__(self) -> None:
        if not 2 <= self.n_neighbors <= 200:
            raise ExplorerError("n_neighbors must be between 2 and 200")
        if not 0.0 <= self.min_dist <= 1.0 or not math.isfinite(self.min_dist):
            raise ExplorerError("min_dist must be between 0 and 1")
        if not 0 <= self.seed < 2**31:
            raise ExplorerError("the seed must be between 0 and 2**31 - 1")
        if self.min_cluster_size is not None and self.min_cluster_size < 2:
            raise ExplorerError("min_cluster_size must be at least 2")

    def as_dict(self) -> dict[str, Any]:
        return {
            "n_neighbors": self.n_neighbors,
            "min_dist": self.min_dist,
            "seed": self.seed,
            "min_cluster_size": self.min_cluster_size,
        }


def project(*, vectors: np.ndarray, params: MapParams) -> tuple[np.ndarray, dict[str, Any]]:
    """2D coordinates (float32) and the parameters that produced them, as run."""
    count = len(vectors)
    if count < UMAP_MIN_POINTS:
        return _project_pca(vectors), {"method": "pca", "reason": f"{count} points are too few for UMAP"}
    import umap  # imported here: numba and pynndescent take seconds to import, pages never need them

    n_neighbors = min(params.n_neighbors, count - 1)
    used = {
        "method": "umap",
        "n_components": 2,
        "n_neighbors": n_neighbors,
        "min_dist": params.min_dist,
        "metric": "cosine",
        "init": "spectral",
        "random_state": params.seed,
        # A fixed random_state makes UMAP single-threaded; that is the price of a reproducible map.
        "n_jobs": 1,
    }
    reducer = umap.UMAP(
        n_components=2,
        n_neighbors=n_neighbors,
        min_dist=params.min_dist,
        metric="cosine",
        init="spectral",
        random_state=params.seed,
        n_jobs=1,
        low_memory=True,
    )
    coords = np.asarray(reducer.fit_transform(vectors), dtype=VECTOR_DTYPE)
    if not np.isfinite(coords).all():
        raise ExplorerError("UMAP returned non-finite coordinates")
    return coords, used


def _project_pca(vectors: np.ndarray) -> np.ndarray:
    coords = np.zeros((len(vectors), 2), dtype=VECTOR_DTYPE)
    if len(vectors) < 2:
        return coords
    centred = vectors - vectors.mean(axis=0)
    _, _, components = np.linalg.svd(centred, full_matrices=False)
    projected = centred @ components[:2].T
    coords[:, : projected.shape[1]] = projected
    return coords


def min_cluster_size_for(count: int) -> int:
    """About 1% of the points, between 5 and 500: a per-dataset map of 1000 statements gets clusters
    of 10 or more, the global map's clusters are topics of several hundred."""
    return max(5, min(500, count // 100))


def clusters_find(
    *, coords: np.ndarray, min_cluster_size: int, seed: int = DEFAULT_SEED
) -> tuple[np.ndarray, dict[str, Any]]:
    """HDBSCAN on the map's coordinates: clusters are the dense regions a reader sees, of any shape,
    and sparse points stay unassigned (-1) instead of being forced into a region. Numbered by size,
    largest first, so the numbering does not depend on HDBSCAN's internal order.

    scikit-learn's HDBSCAN builds its spanning tree in O(n^2) (97 s for 133k points here, and four
    times that for twice the points), so a large map is clustered on a seeded random sample of
    CLUSTER_SAMPLE points, with the minimum cluster size scaled to the sample, and every other point
    takes the cluster of its nearest sampled point (unassigned if that one is)."""
    used: dict[str, Any] = {"method": "hdbscan", "space": "umap-2d", "min_cluster_size": min_cluster_size}
    labels = np.full(len(coords), -1, dtype=CLUSTER_DTYPE)
    if len(coords) < max(min_cluster_size, 2):
        return labels, used
    from sklearn.cluster import HDBSCAN

    points = coords.astype(np.float64)
    sample = np.arange(len(points))
    size = min_cluster_size
    if len(points) > CLUSTER_SAMPLE:
        sample = np.sort(np.random.default_rng(seed).choice(len(points), size=CLUSTER_SAMPLE, replace=False))
        size = max(5, round(min_cluster_size * CLUSTER_SAMPLE / len(points)))
        used.update(sample=CLUSTER_SAMPLE, sample_seed=seed, sample_min_cluster_size=size)
        used["others"] = "the cluster of the nearest sampled point"
    min_samples = min(size, 10)
    used["min_samples"] = min_samples
    found = HDBSCAN(min_cluster_size=size, min_samples=min_samples, copy=True).fit_predict(points[sample])
    if len(sample) < len(points):
        from sklearn.neighbors import KDTree

        nearest = KDTree(points[sample]).query(points, k=1, return_distance=False)[:, 0]
        found = found[nearest]
    numbers, sizes = np.unique(found[found >= 0], return_counts=True)
    for new, old in enumerate(numbers[np.lexsort((numbers, -sizes))]):
        labels[found == old] = new
    return labels, used


# Words of two or more letters. Apostrophes split words ("doesn't" -> "doesn", "t"), and the
# fragments contractions leave behind are stop words, like the rest of "does not".
_WORD_PATTERN = r"(?u)\b[^\W\d_]{2,}\b"
_CONTRACTION_FRAGMENTS = {
    "aren",
    "couldn",
    "didn",
    "doesn",
    "don",
    "hadn",
    "hasn",
    "haven",
    "isn",
    "ll",
    "re",
    "shouldn",
    "ve",
    "wasn",
    "weren",
    "won",
    "wouldn",
}


def cluster_keywords(
    *, texts: Sequence[str], labels: np.ndarray, top: int = KEYWORDS_PER_CLUSTER
) -> dict[int, list[str]]:
    """Keywords per cluster by class-based TF-IDF (Grootendorst, BERTopic): all texts of a cluster
    form one document; a term's weight is its frequency in that document times
    log(1 + average words per document / its frequency over all documents). Unassigned points form
    a document of their own, so words common everywhere rank low, but get no keywords."""
    from sklearn.feature_extraction.text import CountVectorizer

    numbers = sorted(int(n) for n in np.unique(labels) if n >= 0)
    if not numbers:
        return {}
    groups = [*numbers, -1] if (labels < 0).any() else numbers
    documents = [" ".join(texts[i] for i in np.flatnonzero(labels == number)) for number in groups]
    from sklearn.feature_extraction.text import ENGLISH_STOP_WORDS

    vectorizer = CountVectorizer(
        stop_words=sorted(ENGLISH_STOP_WORDS | _CONTRACTION_FRAGMENTS),
        token_pattern=_WORD_PATTERN,
        lowercase=True,
    )
    try:
        counts = vectorizer.fit_transform(documents).astype(np.float64)
    except ValueError:  # nothing but stop words
        return {number: [] for number in numbers}
    terms = vectorizer.get_feature_names_out()
    totals = np.asarray(counts.sum(axis=1)).ravel()
    term_frequency = np.asarray(counts.sum(axis=0)).ravel()
    idf = np.log(1.0 + (totals.mean() / term_frequency))
    keywords: dict[int, list[str]] = {}
    for row, number in enumerate(numbers):
        line = counts.getrow(row)
        if not totals[row]:
            keywords[number] = []
            continue
        weights = line.data / totals[row] * idf[line.indices]
        # Ties (common on small maps) broken alphabetically, so keywords do not depend on hash order.
        order = sorted(range(len(weights)), key=lambda i: (-weights[i], terms[line.indices[i]]))
        keywords[number] = [str(terms[line.indices[i]]) for i in order[:top]]
    return keywords


def cluster_members_ranked(*, vectors: np.ndarray, members: np.ndarray) -> np.ndarray:
    """A cluster's member indices, the medoid first: for unit vectors the member with the greatest
    summed cosine similarity to all members is v_i . sum(v), an exact medoid in O(n)."""
    unit = unit_rows(vectors[members])
    scores = unit @ unit.sum(axis=0)
    return members[np.lexsort((members, -scores))]
