"""Reads for the explorer page: which maps exist, a map's payload, the colour overlays computed at
request time (human agreement from annotation responses, a model's P(match) from evaluation items),
a point's details with its nearest neighbours in the 384-dim embedding space, and semantic search.

Neighbours and semantic search need a map's vectors in memory (133k x 384 float32 is 200 MB for the
global map of the released data), so they are loaded from the embedding cache once per process and
kept for the few most recently used maps; the per-point example ids are kept the same way. Builds
never change once written, so nothing here goes stale: a new build is a new key.
"""

from __future__ import annotations

import gzip
import threading
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

import numpy as np
from django.db.models import Avg, Count, Q
from django.urls import reverse

from analysis.explorer import Embedder, ExplorerError, embeddings_cached
from analysis.models import VECTOR_DTYPE, ExplorerBuild, ExplorerCluster
from generation.models import Dataset, EvaluationItem, EvaluationRun, Example

# Fields a page never needs from a build row; deferred so that listing builds stays cheap.
HEAVY_FIELDS = ("payload", "example_ids", "coordinates", "cluster_labels", "text_hashes")
NEIGHBOURS = 10
SEARCH_RESULTS_MAX = 500
QUERY_CHARS_MAX = 300
DETAIL_TEXT_CHARS = 300
VECTOR_MAPS_KEPT = 2
ID_MAPS_KEPT = 8


class _Lru:
    """A small thread-safe least-recently-used cache (web servers may run requests in threads)."""

    def __init__(self, size: int) -> None:
        self.size = size
        self.items: OrderedDict[Any, Any] = OrderedDict()
        self.lock = threading.Lock()

    def get(self, key, load):
        with self.lock:
            if key in self.items:
                self.items.move_to_end(key)
                return self.items[key]
        value = load()
        with self.lock:
            self.items[key] = value
            self.items.move_to_end(key)
            while len(self.items) > self.size:
                self.items.popitem(last=False)
        return value

    def clear(self) -> None:
        with self.lock:
            self.items.clear()


_ids_cache = _Lru(ID_MAPS_KEPT)
_vectors_cache = _Lru(VECTOR_MAPS_KEPT)


def explorer_caches_clear() -> None:
    _ids_cache.clear()
    _vectors_cache.clear()


# ----------------------------------------------------------------------------- maps


def _succeeded() -> Any:
    return (
        ExplorerBuild.objects.filter(status=ExplorerBuild.Status.SUCCEEDED)
        .defer(*HEAVY_FIELDS)
        .select_related("dataset")
        .order_by("-finished_at", "-pk")
    )


def explorer_build_current(*, dataset: Dataset | None) -> ExplorerBuild | None:
    """The newest succeeded map of a dataset, or the global map when dataset is None."""
    scope = ExplorerBuild.Scope.DATASET if dataset else ExplorerBuild.Scope.GLOBAL
    return _succeeded().filter(scope=scope, dataset=dataset).first()


def explorer_build_get(*, build_id: int) -> ExplorerBuild:
    """A succeeded build (raises ExplorerBuild.DoesNotExist otherwise)."""
    return _succeeded().get(pk=build_id)


@dataclass(frozen=True)
class MapChoice:
    slug: str  # "" for the global map
    name: str
    points: int


def explorer_map_choices() -> list[MapChoice]:
    """Every map that can be shown, the global one first, each once (its newest build)."""
    rows = (
        ExplorerBuild.objects.filter(status=ExplorerBuild.Status.SUCCEEDED)
        .order_by("-finished_at", "-pk")
        .values_list("scope", "dataset__slug", "point_count")
    )
    seen: dict[str, MapChoice] = {}
    for scope, slug, points in rows:
        key = slug if scope == ExplorerBuild.Scope.DATASET else ""
        if key not in seen:
            seen[key] = MapChoice(slug=key, name=key or "All datasets", points=points)
    return sorted(seen.values(), key=lambda c: (c.slug != "", c.slug))


def explorer_payload(*, build: ExplorerBuild) -> bytes:
    return bytes(ExplorerBuild.objects.filter(pk=build.pk).values_list("payload", flat=True).get())


def explorer_clusters(*, build: ExplorerBuild) -> list[ExplorerCluster]:
    return list(build.clusters.select_related("medoid").order_by("number"))


# ----------------------------------------------------------------------------- per-point arrays


@dataclass(frozen=True)
class BuildIds:
    example_ids: np.ndarray  # int64 per point
    cluster_labels: np.ndarray  # int32 per point
    order: np.ndarray  # argsort of example_ids, for id -> index lookups

    def indices_of(self, example_ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(point indices, which of example_ids are on the map)."""
        ids = np.asarray(example_ids, dtype=np.int64)
        sorted_ids = self.example_ids[self.order]
        at = np.clip(np.searchsorted(sorted_ids, ids), 0, max(len(sorted_ids) - 1, 0))
        found = sorted_ids[at] == ids if len(sorted_ids) else np.zeros(len(ids), dtype=bool)
        return self.order[at[found]], found


def explorer_build_ids(*, build: ExplorerBuild) -> BuildIds:
    def load() -> BuildIds:
        raw_ids, raw_labels = (
            ExplorerBuild.objects.filter(pk=build.pk).values_list("example_ids", "cluster_labels").get()
        )
        ids = np.frombuffer(bytes(raw_ids), dtype="<i8")
        labels = np.frombuffer(bytes(raw_labels), dtype="<i4")
        return BuildIds(example_ids=ids, cluster_labels=labels, order=np.argsort(ids, kind="stable"))

    return _ids_cache.get(build.pk, load)


@dataclass(frozen=True)
class BuildVectors:
    vectors: np.ndarray  # unit float32 rows; zero for a text whose vector left the cache
    present: np.ndarray  # bool per point


def explorer_build_vectors(*, build: ExplorerBuild) -> BuildVectors:
    def load() -> BuildVectors:
        raw = bytes(ExplorerBuild.objects.filter(pk=build.pk).values_list("text_hashes", flat=True).get())
        hashes = [raw[i : i + 32].hex() for i in range(0, len(raw), 32)]
        found = embeddings_cached(hashes=hashes, model_fingerprint=build.embedder_info.get("fingerprint", ""))
        dimensions = len(next(iter(found.values()))) if found else 1
        vectors = np.zeros((len(hashes), dimensions), dtype=VECTOR_DTYPE)
        present = np.zeros(len(hashes), dtype=bool)
        for row, text_hash in enumerate(hashes):
            vector = found.get(text_hash)
            if vector is not None:
                vectors[row] = vector
                present[row] = True
        norms = np.linalg.norm(vectors, axis=1, keepdims=True)
        vectors /= np.where(norms > 0, norms, 1.0)
        return BuildVectors(vectors=vectors, present=present)

    return _vectors_cache.get(build.pk, load)


def _top(scores: np.ndarray, k: int) -> np.ndarray:
    """Indices of the k highest scores, highest first (ties by index, so results are stable)."""
    k = min(k, len(scores))
    if k <= 0:
        return np.zeros(0, dtype=np.int64)
    candidates = np.argpartition(-scores, k - 1)[:k]
    return candidates[np.lexsort((candidates, -scores[candidates]))]


def explorer_neighbours(*, build: ExplorerBuild, index: int, k: int = NEIGHBOURS) -> list[tuple[int, float]]:
    """The k points most similar to a point (cosine in the embedding space, not on the 2D map,
    where UMAP distorts distances), each with its similarity."""
    data = explorer_build_vectors(build=build)
    if not data.present[index]:
        return []
    scores = data.vectors @ data.vectors[index]
    scores[index] = -np.inf
    scores[~data.present] = -np.inf
    return [(int(i), float(scores[i])) for i in _top(scores, k) if np.isfinite(scores[i])]


# ----------------------------------------------------------------------------- semantic search

_embedder_lock = threading.Lock()
_embedder: Embedder | None = None


def query_embedder() -> Embedder:
    """The MiniLM model, loaded once per process on the first semantic search."""
    global _embedder
    with _embedder_lock:
        if _embedder is None:
            from generation.lm.embeddings import load_embedder

            _embedder = load_embedder()
        return _embedder


def explorer_semantic_search(
    *, build: ExplorerBuild, query: str, k: int, embedder: Embedder
) -> list[tuple[int, float]]:
    """The k points closest to the query's embedding, by the same model that embedded the map."""
    query = " ".join(query.split())
    if not query:
        raise ExplorerError("type something to search for")
    if len(query) > QUERY_CHARS_MAX:
        raise ExplorerError(f"a search is at most {QUERY_CHARS_MAX} characters")
    if not 1 <= k <= SEARCH_RESULTS_MAX:
        raise ExplorerError(f"the number of results must be between 1 and {SEARCH_RESULTS_MAX}")
    if embedder.info.fingerprint != build.embedder_info.get("fingerprint"):
        raise ExplorerError("this map was embedded by another model version; rebuild it to search it")
    vector = np.asarray(embedder.embed([query]), dtype=VECTOR_DTYPE)[0]
    vector /= np.linalg.norm(vector) or 1.0
    data = explorer_build_vectors(build=build)
    scores = data.vectors @ vector
    scores[~data.present] = -np.inf
    return [(int(i), float(scores[i])) for i in _top(scores, k) if np.isfinite(scores[i])]


# ----------------------------------------------------------------------------- overlays


def _responses():
    from annotation.models import Response

    return Response.objects


def explorer_has_agreement(*, build: ExplorerBuild) -> bool:
    responses = _responses()
    if build.dataset_id:
        responses = responses.filter(item__example__dataset_id=build.dataset_id)
    return responses.exists()


def explorer_agreement_values(*, build: ExplorerBuild) -> np.ndarray:
    """Per point, the share of human ratings that judged the example's label correct; NaN where no
    one rated it."""
    ids = explorer_build_ids(build=build)
    values = np.full(len(ids.example_ids), np.nan, dtype="<f4")
    responses = _responses()
    if build.dataset_id:
        responses = responses.filter(item__example__dataset_id=build.dataset_id)
    rows = list(
        responses.values("item__example_id")
        .annotate(total=Count("pk"), correct=Count("pk", filter=Q(label_correct=True)))
        .values_list("item__example_id", "total", "correct")
    )
    if rows:
        example_ids, totals, correct = (np.array(column) for column in zip(*rows, strict=True))
        indices, found = ids.indices_of(example_ids)
        values[indices] = correct[found] / totals[found]
    return values


@dataclass(frozen=True)
class ModelOption:
    model_spec: str
    prompt_format: str

    @property
    def label(self) -> str:
        return f"{self.model_spec} · {self.prompt_format}"


def _runs_for(build: ExplorerBuild):
    runs = EvaluationRun.objects.filter(status=EvaluationRun.Status.SUCCEEDED)
    if build.dataset_id:
        runs = runs.filter(dataset_id=build.dataset_id)
    return runs


def explorer_model_options(*, build: ExplorerBuild) -> list[ModelOption]:
    """The (model, prompt format) pairs with a finished evaluation on this map's datasets."""
    pairs = _runs_for(build).values_list("model_spec", "prompt_format").distinct()
    return sorted({ModelOption(model_spec=m, prompt_format=f) for m, f in pairs}, key=lambda o: o.label)


def explorer_p_match_values(*, build: ExplorerBuild, model_spec: str, prompt_format: str) -> np.ndarray:
    """Per point, the model's P(matching answer) from its newest finished run that scored the
    example; NaN where none did."""
    ids = explorer_build_ids(build=build)
    values = np.full(len(ids.example_ids), np.nan, dtype="<f4")
    runs = _runs_for(build).filter(model_spec=model_spec, prompt_format=prompt_format)
    rows = list(
        EvaluationItem.objects.filter(run__in=runs)
        .order_by("run__finished_at", "run_id")
        .values_list("example_id", "p_match")
    )
    if rows:
        example_ids, p_match = (np.array(column) for column in zip(*rows, strict=True))
        indices, found = ids.indices_of(example_ids)
        # Assignment in order: a later run's value overwrites an earlier one's.
        values[indices] = p_match[found]
    return values


def float_array_gzip(values: np.ndarray) -> bytes:
    return gzip.compress(np.ascontiguousarray(values, dtype="<f4").tobytes(), compresslevel=6, mtime=0)


# ----------------------------------------------------------------------------- one point


def _short(text: str) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= DETAIL_TEXT_CHARS else flat[: DETAIL_TEXT_CHARS - 1] + "…"


def explorer_point_detail(
    *, build: ExplorerBuild, index: int, include_projects: bool
) -> dict[str, Any] | None:
    """What the page's panel shows for one point; None when the example no longer exists. Every
    string from a dataset, a model or a person is returned as-is; the page sets it as text."""
    ids = explorer_build_ids(build=build)
    example = Example.objects.select_related("dataset").filter(pk=int(ids.example_ids[index])).first()
    if example is None:
        return None
    number = int(ids.cluster_labels[index])
    cluster = (
        ExplorerCluster.objects.filter(build=build, number=number)
        .values("number", "keywords", "summary")
        .first()
        if number >= 0
        else None
    )
    neighbours = explorer_neighbours(build=build, index=index)
    neighbour_examples = Example.objects.select_related("dataset").in_bulk(
        [int(ids.example_ids[i]) for i, _ in neighbours]
    )
    neighbour_rows = []
    for i, similarity in neighbours:
        other = neighbour_examples.get(int(ids.example_ids[i]))
        if other is not None:
            neighbour_rows.append(
                {
                    "index": i,
                    "similarity": round(similarity, 4),
                    "text": _short(other.text),
                    "dataset": other.dataset.slug,
                    "url": other.get_absolute_url(),
                }
            )
    return {
        "index": index,
        "example": {
            "id": example.pk,
            "url": example.get_absolute_url(),
            "dataset": example.dataset.slug,
            "dataset_url": example.dataset.get_absolute_url(),
            "behavior": example.dataset.behavior,
            "position": example.position,
            "text": example.text,
            "label": example.answer_matching_behavior.strip(),
            "not_matching": [a.strip() for a in example.not_matching_answers],
            "label_confidence": example.label_confidence,
        },
        "cluster": cluster,
        "neighbours": neighbour_rows,
        "ratings": _ratings(example=example, include_projects=include_projects),
        "evaluations": _evaluations(example=example),
    }


def _ratings(*, example: Example, include_projects: bool) -> dict[str, Any] | None:
    responses = _responses().filter(item__example=example)
    summary = responses.aggregate(
        count=Count("pk"),
        label_correct=Count("pk", filter=Q(label_correct=True)),
        ambiguous=Count("pk", filter=Q(ambiguous=True)),
        relevance=Avg("relevance"),
    )
    if not summary["count"]:
        return None
    result: dict[str, Any] = {
        "count": summary["count"],
        "label_correct_share": summary["label_correct"] / summary["count"],
        "ambiguous_share": summary["ambiguous"] / summary["count"],
        "relevance_mean": summary["relevance"],
    }
    if include_projects:
        projects = (
            responses.values("project__slug", "project__name")
            .annotate(n=Count("pk"))
            .order_by("project__slug")
        )
        result["projects"] = [
            {
                "name": p["project__name"],
                "count": p["n"],
                "url": reverse("annotation:project-detail", kwargs={"slug": p["project__slug"]}),
            }
            for p in projects
        ]
    return result


def _evaluations(*, example: Example) -> list[dict[str, Any]]:
    items = (
        EvaluationItem.objects.filter(example=example, run__status=EvaluationRun.Status.SUCCEEDED)
        .select_related("run")
        .order_by("-run__finished_at", "-run_id")[:20]
    )
    return [
        {
            "run": item.run_id,
            "url": item.run.get_absolute_url(),
            "model": item.run.model_spec,
            "format": item.run.prompt_format,
            "p_match": item.p_match,
            "matches": item.matches_behavior,
        }
        for item in items
    ]
