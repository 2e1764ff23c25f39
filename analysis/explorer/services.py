"""Builds the explorer's maps: every example embedded with all-MiniLM-L6-v2, projected to 2D with
UMAP (cosine metric, fixed seed), clustered, each cluster labelled with c-TF-IDF keywords and,
when a model is configured, a one-sentence summary written through the LM layer.

One global map covers every evaluation dataset, and each dataset gets its own. Embeddings are cached
by the sha256 of the exact text and the model's fingerprint (analysis.models.TextEmbedding), so a
rebuild embeds only texts it has not seen; a map whose inputs did not change since its last build is
skipped altogether unless forced. Each map is stored with its parameters, seed, models and library
versions, and with the compressed binary payload the page downloads (payload_encode).

The same work runs from `manage.py build_explorer` and as a background job (explorer_job_create).
"""

from __future__ import annotations

import gzip
import hashlib
import json
import logging
import math
import re
import struct
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from importlib import metadata
from typing import Any, Protocol

import numpy as np
from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser
from django.db import transaction
from django.utils import timezone

from analysis.models import (
    CLUSTER_DTYPE,
    ID_DTYPE,
    VECTOR_DTYPE,
    ExplorerBuild,
    ExplorerCluster,
    TextEmbedding,
)
from generation.lm import LanguageModel, LMError, ModelInfo, SamplingParams
from generation.models import Dataset, Example, Job

logger = logging.getLogger(__name__)

ProgressReport = Callable[[str, int, int], None]

DEFAULT_SEED = 42
DEFAULT_N_NEIGHBORS = 15
DEFAULT_MIN_DIST = 0.1
# UMAP needs a neighbour graph with some room: with fewer points its spectral initialisation fails,
# so tiny maps are laid out by PCA instead (recorded in the build's parameters).
UMAP_MIN_POINTS = 5
# Texts embedded per call: small enough for steady progress reports and cache writes that a
# crashed build keeps, large enough that the model's own batching is unaffected.
EMBED_CHUNK = 1024
EMBED_BATCH_SIZE = 64
CACHE_READ_CHUNK = 500
# Characters of each text in the page payload; the point's panel fetches the whole text.
PAYLOAD_TEXT_CHARS = 400
KEYWORDS_PER_CLUSTER = 5
SUMMARY_EXAMPLES = 8
# Above this many points, clusters are found on a random sample of this size (see clusters_find).
CLUSTER_SAMPLE = 20_000
SUMMARY_CHARS = 240
# Succeeded builds kept per map: the newest, and the one before it for pages opened before it landed.
BUILDS_KEPT = 2
PAYLOAD_MAGIC = b"MWEX"
PAYLOAD_VERSION = 1
NO_LABEL = 255
VERSIONED_PACKAGES = (
    "umap-learn",
    "pynndescent",
    "numba",
    "scikit-learn",
    "numpy",
    "scipy",
    "sentence-transformers",
    "torch",
    "transformers",
)


class ExplorerError(Exception):
    """A build that cannot run as asked; the message says why."""


class Embedder(Protocol):
    """What the build needs of an embedding model (generation.lm.embeddings.Embedder)."""

    dimensions: int
    info: ModelInfo

    def embed(self, texts: Sequence[str], *, batch_size: int = EMBED_BATCH_SIZE) -> np.ndarray: ...


# ----------------------------------------------------------------------------- embeddings


def text_sha256(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


@dataclass(frozen=True)
class EmbeddingStats:
    embedded: int  # distinct texts the model embedded
    cached: int  # distinct texts read from the cache
    seconds: float


def embeddings_cached(*, hashes: Iterable[str], model_fingerprint: str) -> dict[str, np.ndarray]:
    """The cached vectors of those text hashes under one model; absent hashes are left out."""
    wanted = list(dict.fromkeys(hashes))
    found: dict[str, np.ndarray] = {}
    for start in range(0, len(wanted), CACHE_READ_CHUNK):
        rows = TextEmbedding.objects.filter(
            model_fingerprint=model_fingerprint, text_hash__in=wanted[start : start + CACHE_READ_CHUNK]
        ).values_list("text_hash", "vector")
        for text_hash, vector in rows:
            found[text_hash] = np.frombuffer(bytes(vector), dtype=VECTOR_DTYPE)
    return found


def embeddings_get_or_create(
    *,
    texts: Sequence[str],
    embedder: Embedder,
    progress: ProgressReport | None = None,
    chunk_size: int = EMBED_CHUNK,
) -> tuple[np.ndarray, EmbeddingStats]:
    """One unit-length float32 row per text. Only distinct texts missing from the cache reach the
    model, and each chunk is stored as soon as it is embedded, so an interrupted build loses at most
    one chunk of work."""
    started = time.perf_counter()
    fingerprint = embedder.info.fingerprint
    if not fingerprint:
        raise ExplorerError("the embedding model has no fingerprint; its vectors cannot be cached")
    hashes = [text_sha256(text) for text in texts]
    distinct: dict[str, str] = {}
    for text_hash, text in zip(hashes, texts, strict=True):
        distinct.setdefault(text_hash, text)
    found = embeddings_cached(hashes=distinct, model_fingerprint=fingerprint)
    # Longest first, as sentence-transformers orders a batch itself: sorted across chunks too, each
    # chunk pads to similar lengths and chunked calls cost what one call over everything would.
    missing = sorted((h for h in distinct if h not in found), key=lambda h: -len(distinct[h]))
    if progress:
        progress("embedding", 0, len(missing))
    for start in range(0, len(missing), chunk_size):
        chunk = missing[start : start + chunk_size]
        vectors = np.asarray(embedder.embed([distinct[h] for h in chunk]), dtype=VECTOR_DTYPE)
        if vectors.shape != (len(chunk), embedder.dimensions) or not np.isfinite(vectors).all():
            raise ExplorerError(
                f"the embedding model returned an array of shape {vectors.shape} with "
                f"{'finite' if np.isfinite(vectors).all() else 'non-finite'} values for {len(chunk)} texts"
            )
        TextEmbedding.objects.bulk_create(
            [
                TextEmbedding(
                    text_hash=h,
                    model_fingerprint=fingerprint,
                    dimensions=embedder.dimensions,
                    vector=vector.tobytes(),
                )
                for h, vector in zip(chunk, vectors, strict=True)
            ],
            batch_size=500,
            # Another build may have stored the same text meanwhile; its vector is the same.
            ignore_conflicts=True,
        )
        found.update(zip(chunk, vectors, strict=True))
        if progress:
            progress("embedding", start + len(chunk), len(missing))
    matrix = np.empty((len(texts), embedder.dimensions), dtype=VECTOR_DTYPE)
    for row, text_hash in enumerate(hashes):
        matrix[row] = found[text_hash]
    stats = EmbeddingStats(
        embedded=len(missing), cached=len(distinct) - len(missing), seconds=time.perf_counter() - started
    )
    return matrix, stats


def _unit_rows(vectors: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    return (vectors / np.where(norms > 0, norms, 1.0)).astype(VECTOR_DTYPE, copy=False)


# ----------------------------------------------------------------------------- points


@dataclass(frozen=True)
class Point:
    example_id: int
    dataset_id: int
    position: int
    text: str
    label: str  # the answer matching the behavior, stripped (" Yes" -> "Yes"); "" when none
    confidence: float | None


def explorer_points(*, datasets: Sequence[Dataset]) -> list[Point]:
    """The examples of those datasets, in dataset-slug then file order (a build's point order)."""
    order = {dataset.pk: rank for rank, dataset in enumerate(sorted(datasets, key=lambda d: d.slug))}
    examples = (
        Example.objects.filter(dataset__in=list(order))
        .only(
            "id",
            "dataset_id",
            "position",
            "statement",
            "question",
            "extra",
            "answer_matching_behavior",
            "label_confidence",
        )
        .order_by("dataset_id", "position")
    )
    points = [
        Point(
            example_id=example.pk,
            dataset_id=example.dataset_id,
            position=example.position,
            text=example.text,
            label=example.answer_matching_behavior.strip(),
            confidence=example.label_confidence,
        )
        for example in examples.iterator(chunk_size=5000)
    ]
    points.sort(key=lambda p: (order[p.dataset_id], p.position))
    return points


# ----------------------------------------------------------------------------- projection


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


# ----------------------------------------------------------------------------- clusters


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
    unit = _unit_rows(vectors[members])
    scores = unit @ unit.sum(axis=0)
    return members[np.lexsort((members, -scores))]


# ----------------------------------------------------------------------------- summaries


def _summary_prompt(*, keywords: Sequence[str], texts: Sequence[str]) -> str:
    lines = "\n".join(f"- {' '.join(text.split())[:300]}" for text in texts)
    return (
        "Here are statements from one group of a dataset:\n"
        f"{lines}\n"
        f"Keywords: {', '.join(keywords)}\n"
        "Describe in one short sentence what these statements have in common."
    )


def summary_clean(text: str) -> str:
    """The first sentence of a model's answer, on one line and at most SUMMARY_CHARS long. The text
    stays untrusted: the page shows it as text, never as markup."""
    flat = " ".join(text.split()).strip(" \"'")
    match = re.search(r"(?<=[.!?])\s", flat)
    if match:
        flat = flat[: match.start()]
    if len(flat) > SUMMARY_CHARS:
        flat = flat[: SUMMARY_CHARS - 1].rstrip() + "…"
    return flat


def cluster_summaries(
    *, model: LanguageModel, groups: Sequence[tuple[Sequence[str], Sequence[str]]], seed: int
) -> list[str]:
    """One sentence per (keywords, representative texts) group, greedy, through the LM layer."""
    if not groups:
        return []
    prompts, prefixes = [], []
    for keywords, texts in groups:
        message = _summary_prompt(keywords=keywords, texts=texts)
        try:
            prompts.append(model.chat_prompt(message))
            prefixes.append("")
        except LMError:
            # A model without a chat template continues a started answer, which is part of the sentence.
            prompts.append(f"{message}\nAnswer: These statements")
            prefixes.append("These statements")
    outputs = model.generate(
        prompts, SamplingParams(n=1, temperature=0.0, max_tokens=60, stop=("\n",), seed=seed)
    )
    return [
        summary_clean(prefix + (completions[0] if completions else ""))
        if completions and completions[0].strip()
        else ""
        for prefix, completions in zip(prefixes, outputs, strict=True)
    ]


# ----------------------------------------------------------------------------- payload


def payload_encode(
    *,
    build_id: int,
    points: Sequence[Point],
    coords: np.ndarray,
    cluster_labels: np.ndarray,
    datasets: Sequence[Dataset],
    clusters: Sequence[dict[str, Any]],
) -> bytes:
    """The page's download, gzip-compressed: "MWEX", a version and a JSON header (uint32 each,
    little-endian), the header, then typed arrays at 8-byte aligned offsets the header names.
    Texts travel as one UTF-8 block with offsets, not as per-point JSON objects; untrusted strings
    (texts, labels, keywords, summaries) are data here and the page sets them as text."""
    count = len(points)
    if len(datasets) > np.iinfo("<u2").max:
        raise ExplorerError(f"{len(datasets)} datasets; the payload holds at most {np.iinfo('<u2').max}")
    dataset_index = {dataset.pk: i for i, dataset in enumerate(datasets)}
    labels = sorted({p.label for p in points if p.label})
    if len(labels) >= NO_LABEL:
        raise ExplorerError(f"{len(labels)} distinct labels; the payload holds at most {NO_LABEL - 1}")
    label_index = {label: i for i, label in enumerate(labels)}
    encoded = [p.text[:PAYLOAD_TEXT_CHARS].encode("utf-8") for p in points]
    offsets = np.zeros(count + 1, dtype="<u4")
    np.cumsum([len(t) for t in encoded], out=offsets[1:])
    arrays: list[tuple[str, np.ndarray]] = [
        ("x", np.ascontiguousarray(coords[:, 0], dtype="<f4")),
        ("y", np.ascontiguousarray(coords[:, 1], dtype="<f4")),
        ("dataset", np.array([dataset_index[p.dataset_id] for p in points], dtype="<u2")),
        ("label", np.array([label_index.get(p.label, NO_LABEL) for p in points], dtype="u1")),
        (
            "confidence",
            np.array([np.nan if p.confidence is None else p.confidence for p in points], dtype="<f4"),
        ),
        ("cluster", cluster_labels.astype("<i2")),
        ("text_offsets", offsets),
        ("text", np.frombuffer(b"".join(encoded), dtype="u1")),
    ]
    layout = []
    position = 0
    for name, array in arrays:
        layout.append({"name": name, "dtype": array.dtype.str, "offset": position, "length": int(array.size)})
        position += -(-array.nbytes // 8) * 8
    header = {
        "version": PAYLOAD_VERSION,
        "build": build_id,
        "count": count,
        "datasets": [{"slug": d.slug, "behavior": d.behavior} for d in datasets],
        "labels": labels,
        "clusters": list(clusters),
        "text_chars": PAYLOAD_TEXT_CHARS,
        "arrays": layout,
    }
    header_bytes = json.dumps(header, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
    header_bytes += b" " * (-(len(header_bytes) + 12) % 8)
    body = bytearray(PAYLOAD_MAGIC + struct.pack("<II", PAYLOAD_VERSION, len(header_bytes)) + header_bytes)
    for (_, array), entry in zip(arrays, layout, strict=True):
        assert len(body) - (12 + len(header_bytes)) == entry["offset"]
        body += array.tobytes()
        body += b"\0" * (-len(body) % 8)
    # mtime=0: the same map always compresses to the same bytes (and the same ETag).
    return gzip.compress(bytes(body), compresslevel=6, mtime=0)


def payload_decode(data: bytes) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """The inverse of payload_encode (what explorer.js does in the browser); for tests and tools."""
    raw = gzip.decompress(data)
    if raw[:4] != PAYLOAD_MAGIC:
        raise ValueError("not an explorer payload")
    version, header_length = struct.unpack_from("<II", raw, 4)
    if version != PAYLOAD_VERSION:
        raise ValueError(f"payload version {version}; this code reads {PAYLOAD_VERSION}")
    header = json.loads(raw[12 : 12 + header_length])
    start = 12 + header_length
    arrays = {}
    for entry in header["arrays"]:
        dtype = np.dtype(entry["dtype"])
        arrays[entry["name"]] = np.frombuffer(
            raw, dtype=dtype, count=entry["length"], offset=start + entry["offset"]
        )
    return header, arrays


def payload_texts(header: dict[str, Any], arrays: dict[str, np.ndarray]) -> list[str]:
    blob = arrays["text"].tobytes()
    offsets = arrays["text_offsets"]
    return [blob[offsets[i] : offsets[i + 1]].decode("utf-8") for i in range(header["count"])]


# ----------------------------------------------------------------------------- builds


def library_versions() -> dict[str, str]:
    import platform

    versions = {"python": platform.python_version()}
    for name in VERSIONED_PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return versions


def input_fingerprint(
    *,
    points: Sequence[Point],
    datasets: Sequence[Dataset],
    params: MapParams,
    embedder_fingerprint: str,
    summary_spec: str,
) -> str:
    """What a map is drawn from: change any of it and the map is built again."""
    digest = hashlib.sha256()
    digest.update(
        json.dumps(
            {
                "payload": PAYLOAD_VERSION,
                "params": params.as_dict(),
                "embedder": embedder_fingerprint,
                "summaries": summary_spec,
                "datasets": [(d.pk, d.slug, d.behavior) for d in datasets],
            },
            sort_keys=True,
        ).encode()
    )
    for p in points:
        digest.update(f"\x1e{p.example_id}\x1f{p.dataset_id}\x1f{p.label}\x1f{p.confidence!r}\x1f".encode())
        digest.update(p.text.encode("utf-8"))
    return digest.hexdigest()


@dataclass(frozen=True)
class MapScope:
    dataset: Dataset | None  # None: the global map

    @property
    def name(self) -> str:
        return self.dataset.slug if self.dataset else "all datasets"


@dataclass
class MapOutcome:
    scope: str
    status: str  # "built", "unchanged", "empty" or "failed"
    build_id: int | None = None
    points: int = 0
    clusters: int = 0
    message: str = ""

    def as_dict(self) -> dict[str, Any]:
        return {
            "scope": self.scope,
            "status": self.status,
            "build": self.build_id,
            "points": self.points,
            "clusters": self.clusters,
            "message": self.message,
        }


@dataclass
class BuildReport:
    maps: list[MapOutcome] = field(default_factory=list)
    embedded: int = 0
    cached: int = 0
    embed_seconds: float = 0.0

    @property
    def failed(self) -> list[MapOutcome]:
        return [m for m in self.maps if m.status == "failed"]

    def summary(self) -> str:
        counts: dict[str, int] = {}
        for outcome in self.maps:
            counts[outcome.status] = counts.get(outcome.status, 0) + 1
        parts = [f"{n} {status}" for status, n in sorted(counts.items())]
        return (
            f"Maps: {', '.join(parts) or 'none'}; {self.embedded} texts embedded, "
            f"{self.cached} read from the cache"
        )

    def as_dict(self) -> dict[str, Any]:
        return {
            "maps": [m.as_dict() for m in self.maps],
            "embedded": self.embedded,
            "cached": self.cached,
            "embed_seconds": round(self.embed_seconds, 3),
        }


def explorer_datasets(*, slugs: Sequence[str] | None = None) -> list[Dataset]:
    """The datasets maps are drawn for: every evaluation dataset with examples (few-shot prompts and
    reference lists are inputs to generation, not evaluations), or the named ones."""
    queryset = Dataset.objects.filter(purpose=Dataset.Purpose.EVALUATION, example_count__gt=0)
    if slugs is None:
        return list(queryset.order_by("slug"))
    wanted = list(dict.fromkeys(slugs))
    found = {d.slug: d for d in Dataset.objects.filter(slug__in=wanted)}
    unknown = [slug for slug in wanted if slug not in found]
    if unknown:
        raise ExplorerError(f"no dataset with the slug {', '.join(repr(s) for s in unknown)}")
    return [found[slug] for slug in sorted(wanted)]


def _latest_build(scope: MapScope) -> ExplorerBuild | None:
    return (
        ExplorerBuild.objects.filter(
            scope=ExplorerBuild.Scope.DATASET if scope.dataset else ExplorerBuild.Scope.GLOBAL,
            dataset=scope.dataset,
            status=ExplorerBuild.Status.SUCCEEDED,
        )
        .only("pk", "input_fingerprint")
        .order_by("-finished_at", "-pk")
        .first()
    )


def _builds_prune(scope: MapScope) -> None:
    """Keeps the newest BUILDS_KEPT succeeded builds of a map and nothing older."""
    builds = ExplorerBuild.objects.filter(
        scope=ExplorerBuild.Scope.DATASET if scope.dataset else ExplorerBuild.Scope.GLOBAL,
        dataset=scope.dataset,
    )
    kept = list(
        builds.filter(status=ExplorerBuild.Status.SUCCEEDED)
        .order_by("-finished_at", "-pk")
        .values_list("pk", flat=True)[:BUILDS_KEPT]
    )
    if len(kept) == BUILDS_KEPT:
        builds.exclude(pk__in=kept).filter(pk__lt=min(kept)).exclude(
            status=ExplorerBuild.Status.RUNNING
        ).delete()


def _build_map(
    *,
    scope: MapScope,
    points: Sequence[Point],
    vectors: np.ndarray,
    hashes: Sequence[str],
    datasets: Sequence[Dataset],
    params: MapParams,
    embedder_info: ModelInfo,
    summary_model: LanguageModel | None,
    fingerprint: str,
    stats: EmbeddingStats,
    job: Job | None,
) -> ExplorerBuild:
    build = ExplorerBuild.objects.create(
        scope=ExplorerBuild.Scope.DATASET if scope.dataset else ExplorerBuild.Scope.GLOBAL,
        dataset=scope.dataset,
        job=job,
        seed=params.seed,
        versions=library_versions(),
        embedder_info=embedder_info.as_dict(),
        summary_model_info=summary_model.info.as_dict() if summary_model else {},
        input_fingerprint=fingerprint,
        point_count=len(points),
    )
    try:
        timings: dict[str, float] = {"embed_run_seconds": round(stats.seconds, 3)}
        started = time.perf_counter()
        coords, projection = project(vectors=vectors, params=params)
        timings["project"] = time.perf_counter() - started

        started = time.perf_counter()
        min_size = params.min_cluster_size or min_cluster_size_for(len(points))
        labels, clustering = clusters_find(coords=coords, min_cluster_size=min_size, seed=params.seed)
        texts = [p.text for p in points]
        keywords = cluster_keywords(texts=texts, labels=labels)
        cluster_rows = []
        representatives = []
        for number in sorted(keywords):
            ranked = cluster_members_ranked(vectors=vectors, members=np.flatnonzero(labels == number))
            medoid = int(ranked[0])
            cluster_rows.append(
                ExplorerCluster(
                    build=build,
                    number=number,
                    size=len(ranked),
                    keywords=keywords[number],
                    medoid_index=medoid,
                    medoid_id=points[medoid].example_id,
                    x=float(coords[medoid, 0]),
                    y=float(coords[medoid, 1]),
                )
            )
            distinct_texts = list(dict.fromkeys(" ".join(texts[i].split()) for i in ranked[:50]))
            representatives.append((keywords[number], distinct_texts[:SUMMARY_EXAMPLES]))
        timings["cluster"] = time.perf_counter() - started

        summary_error = ""
        if summary_model is not None and cluster_rows:
            started = time.perf_counter()
            try:
                summaries = cluster_summaries(model=summary_model, groups=representatives, seed=params.seed)
            except LMError as exc:
                # Summaries are an extra: the map is useful without them, and the build says why.
                summary_error = str(exc)
                summaries = [""] * len(cluster_rows)
            for row, summary in zip(cluster_rows, summaries, strict=True):
                row.summary = summary
            timings["summarize"] = time.perf_counter() - started

        started = time.perf_counter()
        payload = payload_encode(
            build_id=build.pk,
            points=points,
            coords=coords,
            cluster_labels=labels,
            datasets=datasets,
            clusters=[
                {
                    "number": row.number,
                    "size": row.size,
                    "keywords": row.keywords,
                    "summary": row.summary,
                    "medoid": row.medoid_index,
                    "x": row.x,
                    "y": row.y,
                }
                for row in cluster_rows
            ],
        )
        timings["payload"] = time.perf_counter() - started

        build.params = {
            **params.as_dict(),
            "min_cluster_size": min_size,
            "projection": projection,
            "clustering": clustering,
            "keywords": {"method": "c-tf-idf", "per_cluster": KEYWORDS_PER_CLUSTER, "stop_words": "english"},
            "text": "statement, else question, else Winogender sentence",
        }
        if summary_error:
            build.summary_model_info = {**build.summary_model_info, "error": summary_error}
        build.example_ids = np.array([p.example_id for p in points], dtype=ID_DTYPE).tobytes()
        build.text_hashes = b"".join(bytes.fromhex(h) for h in hashes)
        build.coordinates = np.ascontiguousarray(coords, dtype=VECTOR_DTYPE).tobytes()
        build.cluster_labels = labels.astype(CLUSTER_DTYPE).tobytes()
        build.payload = payload
        build.payload_bytes = len(payload)
        build.cluster_count = len(cluster_rows)
        build.embedded_count = stats.embedded
        build.cached_count = stats.cached
        build.timings = {name: round(seconds, 3) for name, seconds in timings.items()}
        build.status = ExplorerBuild.Status.SUCCEEDED
        build.finished_at = timezone.now()
        with transaction.atomic():
            ExplorerCluster.objects.bulk_create(cluster_rows)
            build.save()
    except Exception as exc:
        ExplorerBuild.objects.filter(pk=build.pk).update(
            status=ExplorerBuild.Status.FAILED,
            error=f"{type(exc).__name__}: {exc}",
            finished_at=timezone.now(),
        )
        raise
    _builds_prune(scope)
    return build


def explorer_maps_build(
    *,
    embedder: Embedder,
    datasets: Sequence[str] | None = None,
    include_global: bool = True,
    include_datasets: bool = True,
    summary_model: LanguageModel | None = None,
    params: MapParams | None = None,
    force: bool = False,
    job: Job | None = None,
    progress: ProgressReport | None = None,
) -> BuildReport:
    """Builds the global map and/or one map per dataset (all evaluation datasets, or the named
    ones). A map whose inputs match its latest build is skipped unless `force`. Raises
    ExplorerError before any work on a bad request; a map that fails is reported and the others
    still get built."""
    if not include_global and not include_datasets:
        raise ExplorerError("nothing to build: neither the global map nor per-dataset maps were asked for")
    params = params or MapParams()
    chosen = explorer_datasets(slugs=datasets)
    all_datasets = explorer_datasets() if include_global else chosen
    union = {d.pk: d for d in [*all_datasets, *chosen]}
    points = explorer_points(datasets=list(union.values()))
    report = BuildReport()
    summary_spec = summary_model.info.spec if summary_model else ""

    scopes: list[tuple[MapScope, list[int], list[Dataset]]] = []
    if include_global:
        scopes.append((MapScope(dataset=None), list(range(len(points))), all_datasets))
    if include_datasets:
        rows_of: dict[int, list[int]] = {}
        for i, point in enumerate(points):
            rows_of.setdefault(point.dataset_id, []).append(i)
        for dataset in chosen:
            scopes.append((MapScope(dataset=dataset), rows_of.get(dataset.pk, []), [dataset]))

    todo = []
    for scope, rows, scope_datasets in scopes:
        if not rows:
            report.maps.append(MapOutcome(scope=scope.name, status="empty", message="no examples"))
            continue
        fingerprint = input_fingerprint(
            points=[points[i] for i in rows],
            datasets=scope_datasets,
            params=params,
            embedder_fingerprint=embedder.info.fingerprint,
            summary_spec=summary_spec,
        )
        latest = _latest_build(scope)
        if latest is not None and latest.input_fingerprint == fingerprint and not force:
            report.maps.append(
                MapOutcome(
                    scope=scope.name,
                    status="unchanged",
                    build_id=latest.pk,
                    points=len(rows),
                    message="inputs unchanged since this build",
                )
            )
            continue
        todo.append((scope, rows, scope_datasets, fingerprint))
    if not todo:
        return report

    needed = sorted({i for _, rows, _, _ in todo for i in rows})
    texts = [points[i].text for i in needed]
    vectors, stats = embeddings_get_or_create(texts=texts, embedder=embedder, progress=progress)
    vectors = _unit_rows(vectors)
    row_of = {point_index: row for row, point_index in enumerate(needed)}
    hashes = [text_sha256(text) for text in texts]
    report.embedded, report.cached, report.embed_seconds = stats.embedded, stats.cached, stats.seconds

    for done, (scope, rows, scope_datasets, fingerprint) in enumerate(todo):
        if progress:
            progress("mapping", done, len(todo))
        matrix_rows = [row_of[i] for i in rows]
        try:
            build = _build_map(
                scope=scope,
                points=[points[i] for i in rows],
                vectors=vectors[matrix_rows],
                hashes=[hashes[r] for r in matrix_rows],
                datasets=scope_datasets,
                params=params,
                embedder_info=embedder.info,
                summary_model=summary_model,
                fingerprint=fingerprint,
                stats=stats,
                job=job,
            )
        except Exception as exc:
            logger.exception("explorer map of %s failed", scope.name)
            report.maps.append(
                MapOutcome(
                    scope=scope.name,
                    status="failed",
                    points=len(rows),
                    message=f"{type(exc).__name__}: {exc}",
                )
            )
            continue
        report.maps.append(
            MapOutcome(
                scope=scope.name,
                status="built",
                build_id=build.pk,
                points=build.point_count,
                clusters=build.cluster_count,
                message=f"{build.point_count} points, {build.cluster_count} clusters",
            )
        )
    if progress:
        progress("mapping", len(todo), len(todo))
    return report


# ----------------------------------------------------------------------------- background job


def summary_model_spec() -> str:
    """The model that writes cluster summaries, from MWE_EXPLORER_SUMMARY_MODEL; "" means none."""
    return (getattr(settings, "MWE_EXPLORER_SUMMARY_MODEL", "") or "").strip()


def explorer_job_active() -> Job | None:
    return Job.objects.filter(
        kind=Job.Kind.EXPLORE, status__in=[Job.Status.QUEUED, Job.Status.RUNNING]
    ).first()


def explorer_job_create(
    *,
    created_by: AbstractBaseUser | None,
    datasets: Sequence[str] | None = None,
    include_global: bool = True,
    include_datasets: bool = True,
    summaries: bool = True,
    force: bool = False,
) -> Job:
    """Queues a build, or returns the one already queued or running: two builds at once would
    compute the same maps twice."""
    from generation.jobs.services import job_create

    if datasets is not None:
        explorer_datasets(slugs=datasets)  # unknown slugs fail here, not later on the worker
    with transaction.atomic():
        active = explorer_job_active()
        if active is not None:
            return active
        return job_create(
            kind=Job.Kind.EXPLORE,
            params={
                "datasets": list(datasets) if datasets is not None else None,
                "global": include_global,
                "per_dataset": include_datasets,
                "summaries": summaries,
                "force": force,
            },
            created_by=created_by,
        )


def _job_params(params: dict[str, Any]) -> dict[str, Any]:
    """A job's parameters, checked: an older or hand-made job with bad ones fails with the reason.
    Absent keys take the defaults, so `{}` builds every map."""
    datasets = params.get("datasets")
    if datasets is not None and not (
        isinstance(datasets, list) and all(isinstance(s, str) for s in datasets)
    ):
        raise ExplorerError("job parameter 'datasets' must be a list of slugs or null")
    flags = {}
    for name, default in (("global", True), ("per_dataset", True), ("summaries", True), ("force", False)):
        value = params.get(name, default)
        if not isinstance(value, bool):
            raise ExplorerError(f"job parameter {name!r} must be true or false")
        flags[name] = value
    return {"datasets": datasets, **flags}


def explorer_job_run(job: Job) -> None:
    """The explorer job's handler (registered by analysis.apps): builds the maps and reports
    progress on the job, so its page shows how far the build got."""
    from generation.jobs.services import job_fail, job_finish, job_progress
    from generation.lm import load_model
    from generation.lm.embeddings import load_embedder

    try:
        params = _job_params(job.params)
    except ExplorerError as exc:
        job_fail(job=job, error=str(exc))
        return
    job_progress(job=job, done=0, total=1, message="Loading the embedding model")
    embedder = load_embedder()
    spec = summary_model_spec() if params["summaries"] else ""
    summary_model = None
    if spec:
        job_progress(job=job, done=0, message=f"Loading {spec} for cluster summaries")
        summary_model = load_model(spec)

    def report(stage: str, done: int, total: int) -> None:
        label = "Embedding new texts" if stage == "embedding" else "Drawing maps"
        job_progress(job=job, done=done, total=total, message=label)

    try:
        result = explorer_maps_build(
            embedder=embedder,
            datasets=params["datasets"],
            include_global=params["global"],
            include_datasets=params["per_dataset"],
            summary_model=summary_model,
            force=params["force"],
            job=job,
            progress=report,
        )
    except (ExplorerError, LMError) as exc:
        job_fail(job=job, error=str(exc))
        return
    finally:
        if summary_model is not None:
            summary_model.close()
    if result.failed:
        job_fail(
            job=job,
            error="\n".join(f"{m.scope}: {m.message}" for m in result.failed),
            result=result.as_dict(),
        )
        return
    job_finish(job=job, result=result.as_dict(), message=result.summary())
