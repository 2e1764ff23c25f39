"""Reads for the explorer page: which maps exist, a map's payload, the colour overlays computed at
request time (human agreement from annotation responses, a model's P(match) from evaluation items),
a point's details with its nearest neighbours in the 384-dim embedding space, and semantic search.

Neighbours and semantic search need a map's vectors (133k x 384 float32 is 200 MB for the global map
of the released data). Each web process keeping its own copy cost every gunicorn process hundreds
of megabytes per map it had served, so the per-point arrays are written once per machine to .npy
files under VAR_DIR/explorer-maps (the first request that needs them writes them, streaming from the
embedding cache) and every process memory-maps them read-only: the pages live in the OS page cache,
shared by all processes and reclaimable under memory pressure, and a process's own heap holds none
of them. Builds never change once written, so nothing here goes stale: a new build is a new file.

Who sees human ratings: the public (anyone not staff) sees the ratings of projects a researcher has
published (AnnotationProject.published_at), and never those of gold items, so a worker cannot read
the crowd's answers, or a gold item's expected one, for an item they are rating. Staff see every
project's ratings, gold items included.
"""

from __future__ import annotations

import gzip
import hashlib
import sys
import threading
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from django.db.models import Avg, Count, Q
from django.urls import reverse

from analysis.explorer.embeddings import CACHE_READ_CHUNK, Embedder
from analysis.explorer.errors import ExplorerError
from analysis.models import (
    CLUSTER_DTYPE,
    ID_DTYPE,
    VECTOR_DTYPE,
    ExplorerBuild,
    ExplorerCluster,
    TextEmbedding,
)
from generation.models import Dataset, EvaluationItem, EvaluationRun, Example
from mwe_site.filecache import filecache_entry_get_or_build, filecache_prune, filecache_root

# Fields a page never needs from a build row; deferred so that listing builds stays cheap.
HEAVY_FIELDS = ("payload", "example_ids", "coordinates", "cluster_labels", "text_hashes")
NEIGHBOURS = 10
SEARCH_RESULTS_MAX = 500
QUERY_CHARS_MAX = 300
DETAIL_TEXT_CHARS = 300
QUERY_THREADS = 1
# Maps a process keeps open: memory maps cost no heap, only address space and a file descriptor per
# array, so this bounds descriptors, not memory.
MAPS_OPEN = 8
MAP_FOLDER = "explorer-maps"


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


_open_maps = _Lru(MAPS_OPEN)


def explorer_caches_clear() -> None:
    """Forgets the maps this process has open (the files stay; the next request maps them again)."""
    _open_maps.clear()


# ----------------------------------------------------------------------------- maps


def _succeeded() -> Any:
    return (
        ExplorerBuild.objects.succeeded()
        .defer(*HEAVY_FIELDS)
        .select_related("dataset")
        .order_by("-finished_at", "-pk")
    )


def explorer_build_current(*, dataset: Dataset | None) -> ExplorerBuild | None:
    """The newest succeeded map of a dataset, or the global map when dataset is None."""
    return _succeeded().of_map(dataset=dataset).first()


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
        ExplorerBuild.objects.succeeded()
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


def _build_key(build: ExplorerBuild) -> str:
    # Not the id alone: ids restart in a new database (a test's, a restored backup's) that may
    # share VAR_DIR with files written for another.
    identity = f"{build.pk}|{build.created_at.isoformat()}|{build.input_fingerprint}"
    return f"{build.pk}-{hashlib.sha256(identity.encode()).hexdigest()[:16]}"


def _arrays_mapped(*, build: ExplorerBuild, kind: str, write) -> dict[str, np.ndarray]:
    """The build's arrays of one kind, memory-mapped read-only from their files, which `write(folder)`
    creates on first use (mwe_site.filecache). Each process maps the same files, so the OS keeps one
    copy; when two processes write the same folder at once, one copy is kept."""
    root = filecache_root(name=MAP_FOLDER)
    key = f"{_build_key(build)}.{kind}"

    def load() -> dict[str, np.ndarray]:
        for attempt in range(2):
            folder, built = filecache_entry_get_or_build(root=root, key=key, build=write)
            if built:
                _arrays_prune(root=root)
            try:
                return {path.stem: np.load(path, mmap_mode="r") for path in sorted(folder.glob("*.npy"))}
            except FileNotFoundError:
                # Removed between the check and the load (the build was pruned meanwhile): write again.
                if attempt:
                    raise
        raise AssertionError("unreachable")

    return _open_maps.get(str(root / key), load)


def _arrays_prune(*, root: Path) -> None:
    """Removes the files of builds that no longer exist (two builds of each map are kept)."""
    current = {
        _build_key(build)
        for build in ExplorerBuild.objects.succeeded().only("pk", "created_at", "input_fingerprint")
    }
    filecache_prune(root=root, keep=lambda name: name.split(".")[0] in current)


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


def _ids_write(build: ExplorerBuild, folder: Path) -> None:
    raw_ids, raw_labels = (
        ExplorerBuild.objects.filter(pk=build.pk).values_list("example_ids", "cluster_labels").get()
    )
    ids = np.frombuffer(bytes(raw_ids), dtype=ID_DTYPE)
    np.save(folder / "example_ids.npy", ids)
    np.save(folder / "cluster_labels.npy", np.frombuffer(bytes(raw_labels), dtype=CLUSTER_DTYPE))
    np.save(folder / "order.npy", np.argsort(ids, kind="stable"))


def explorer_build_ids(*, build: ExplorerBuild) -> BuildIds:
    arrays = _arrays_mapped(build=build, kind="ids", write=lambda folder: _ids_write(build, folder))
    return BuildIds(
        example_ids=arrays["example_ids"], cluster_labels=arrays["cluster_labels"], order=arrays["order"]
    )


@dataclass(frozen=True)
class BuildVectors:
    vectors: np.ndarray  # unit float32 rows; zero for a text whose vector left the cache
    present: np.ndarray  # bool per point


def _vectors_write(build: ExplorerBuild, folder: Path) -> None:
    """Streams the points' vectors from the embedding cache into the file a chunk at a time, so
    writing a 200 MB map does not need 200 MB of this process's memory."""
    raw = bytes(ExplorerBuild.objects.filter(pk=build.pk).values_list("text_hashes", flat=True).get())
    count = len(raw) // 32
    fingerprint = build.embedder_info.get("fingerprint", "")
    present = np.zeros(count, dtype=bool)
    vectors = None
    for start in range(0, count, CACHE_READ_CHUNK):
        hashes = [
            raw[i * 32 : (i + 1) * 32].hex() for i in range(start, min(start + CACHE_READ_CHUNK, count))
        ]
        found = dict(
            TextEmbedding.objects.filter(
                model_fingerprint=fingerprint, text_hash__in=set(hashes)
            ).values_list("text_hash", "vector")
        )
        rows = [start + i for i, text_hash in enumerate(hashes) if text_hash in found]
        if not rows:
            continue
        block = np.stack(
            [np.frombuffer(bytes(found[hashes[row - start]]), dtype=VECTOR_DTYPE) for row in rows]
        )
        if vectors is None:
            vectors = np.lib.format.open_memmap(
                folder / "vectors.npy", mode="w+", dtype=VECTOR_DTYPE, shape=(count, block.shape[1])
            )
        norms = np.linalg.norm(block, axis=1, keepdims=True)
        vectors[rows] = block / np.where(norms > 0, norms, 1.0)
        present[rows] = True
    if vectors is None:
        np.save(folder / "vectors.npy", np.zeros((count, 1), dtype=VECTOR_DTYPE))
    else:
        vectors.flush()
        del vectors
    np.save(folder / "present.npy", present)


def explorer_build_vectors(*, build: ExplorerBuild) -> BuildVectors:
    arrays = _arrays_mapped(build=build, kind="vectors", write=lambda folder: _vectors_write(build, folder))
    return BuildVectors(vectors=arrays["vectors"], present=arrays["present"])


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
    """The MiniLM model, loaded once per process on the first valid semantic search (it costs
    seconds and a few hundred megabytes: callers check the request first)."""
    global _embedder
    with _embedder_lock:
        if _embedder is None:
            from generation.lm.embeddings import load_embedder

            _embedder = load_embedder()
            _query_threads_limit()
        return _embedder


def _query_threads_limit() -> None:
    """One torch thread per web process. A query is one short sentence (about 15 ms of work), too
    little to split across cores; torch's default of one thread per core made each search spin
    every core of the machine, which other processes' requests (the annotation API) then waited for.
    Not imported here when the loaded model did not import it (a stand-in in tests)."""
    torch = sys.modules.get("torch")
    if torch is not None:
        torch.set_num_threads(QUERY_THREADS)


@dataclass(frozen=True)
class SearchQuery:
    text: str  # whitespace collapsed
    k: int


def explorer_search_query_clean(*, query: str, k: str | int) -> SearchQuery:
    """A semantic search's parameters, checked without reading anything (raises ExplorerError
    naming the problem), so a bad request costs no model, map or database work."""
    if isinstance(k, str):
        try:
            k = int(k)
        except ValueError:  # also digits beyond int()'s limit
            raise ExplorerError(f"k={k[:20]!r} is not a whole number") from None
    if not 1 <= k <= SEARCH_RESULTS_MAX:
        raise ExplorerError(f"the number of results must be between 1 and {SEARCH_RESULTS_MAX}")
    text = " ".join(query.split())
    if not text:
        raise ExplorerError("type something to search for")
    if len(text) > QUERY_CHARS_MAX:
        raise ExplorerError(f"a search is at most {QUERY_CHARS_MAX} characters")
    return SearchQuery(text=text, k=k)


def explorer_semantic_search(
    *, build: ExplorerBuild, query: str, k: int, embedder: Embedder
) -> list[tuple[int, float]]:
    """The k points closest to the query's embedding, by the same model that embedded the map."""
    clean = explorer_search_query_clean(query=query, k=k)
    query, k = clean.text, clean.k
    if embedder.info.fingerprint != build.embedder_info.get("fingerprint"):
        raise ExplorerError("this map was embedded by another model version; rebuild it to search it")
    vector = np.asarray(embedder.embed([query]), dtype=VECTOR_DTYPE)[0]
    vector /= np.linalg.norm(vector) or 1.0
    data = explorer_build_vectors(build=build)
    scores = data.vectors @ vector
    scores[~data.present] = -np.inf
    return [(int(i), float(scores[i])) for i in _top(scores, k) if np.isfinite(scores[i])]


# ----------------------------------------------------------------------------- overlays


def _responses(*, include_private: bool):
    """The annotation responses a reader may see (see the module docstring): with include_private
    (staff), every project's, gold items' included; else published projects' regular items' only."""
    from annotation.models import Response

    if include_private:
        return Response.objects.all()
    return Response.objects.filter(project__published_at__isnull=False, item__is_gold=False)


def _responses_on(*, build: ExplorerBuild, include_private: bool):
    responses = _responses(include_private=include_private)
    if build.dataset_id:
        responses = responses.filter(item__example__dataset_id=build.dataset_id)
    return responses


def explorer_has_agreement(*, build: ExplorerBuild, include_private: bool) -> bool:
    return _responses_on(build=build, include_private=include_private).exists()


def explorer_agreement_values(*, build: ExplorerBuild, include_private: bool) -> np.ndarray:
    """Per point, the share of human ratings that judged the example's label correct; NaN where no
    one rated it (or no rating may be shown)."""
    ids = explorer_build_ids(build=build)
    values = np.full(len(ids.example_ids), np.nan, dtype="<f4")
    rows = list(
        _responses_on(build=build, include_private=include_private)
        .values("item__example_id")
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
    runs = EvaluationRun.objects.succeeded()
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
    *, build: ExplorerBuild, index: int, include_private: bool
) -> dict[str, Any] | None:
    """What the page's panel shows for one point; None when the example no longer exists. Every
    string from a dataset, a model or a person is returned as-is; the page sets it as text.
    include_private (staff): ratings of every project, each project listed."""
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
        "ratings": _ratings(example=example, include_private=include_private),
        "evaluations": _evaluations(example=example),
    }


def _ratings(*, example: Example, include_private: bool) -> dict[str, Any] | None:
    responses = _responses(include_private=include_private).filter(item__example=example)
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
        # The share whose chosen answer is the label's answer.
        "label_correct_share": summary["label_correct"] / summary["count"],
        "ambiguous_share": summary["ambiguous"] / summary["count"],
        "relevance_mean": summary["relevance"],
        **_answers_chosen(example=example, responses=responses, count=summary["count"]),
    }
    if include_private:
        # Staff see which projects the ratings come from, whether each is public yet, and how many
        # of its ratings are of the example as a gold item (those never reach the public).
        projects = (
            responses.values("project__slug", "project__name", "project__published_at")
            .annotate(n=Count("pk"), gold=Count("pk", filter=Q(item__is_gold=True)))
            .order_by("project__slug")
        )
        result["projects"] = [
            {
                "name": p["project__name"],
                "count": p["n"],
                "published": p["project__published_at"] is not None,
                "gold": p["gold"],
                "url": reverse("annotation:project-detail", kwargs={"slug": p["project__slug"]}),
            }
            for p in projects
        ]
    return result


def _answers_chosen(*, example: Example, responses, count: int) -> dict[str, Any]:
    """How many ratings chose each answer ({"answer", "count"}, the example's options in order, the
    behavior-matching one first; spelled without surrounding spaces), and how many have no recorded
    answer (made before workers chose answers)."""
    chosen = {str(answer).strip(): 0 for answer in example.answer_choices if answer and str(answer).strip()}
    rows = responses.exclude(answer="").values("answer").annotate(n=Count("pk")).order_by("answer")
    for answer, n in rows.values_list("answer", "n"):
        text = answer.strip()
        if text:
            chosen[text] = chosen.get(text, 0) + n
    recorded = sum(chosen.values())
    return {
        "answers": [{"answer": answer, "count": n} for answer, n in chosen.items() if n],
        "answers_not_recorded": count - recorded,
    }


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
