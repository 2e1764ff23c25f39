"""Builds the explorer's maps: every example embedded with all-MiniLM-L6-v2 (embeddings), projected
to 2D, clustered and labelled (projection), each cluster summarised when a model is configured
(summaries), and stored with the compressed binary payload the page downloads (payload).

One global map covers every evaluation dataset, and each dataset gets its own. A map whose inputs
did not change since its last build is skipped altogether unless forced. Each map is stored with its
parameters, seed, models and library versions.

The same work runs from `manage.py build_explorer` and as a background job (analysis.explorer.jobs).
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from django.db import transaction
from django.utils import timezone

from analysis.explorer.embeddings import (
    Embedder,
    EmbeddingStats,
    ProgressReport,
    embeddings_get_or_create,
    text_sha256,
    unit_rows,
)
from analysis.explorer.errors import ExplorerError
from analysis.explorer.payload import PAYLOAD_VERSION, payload_cluster, payload_encode
from analysis.explorer.points import Point, explorer_datasets, explorer_points
from analysis.explorer.projection import (
    KEYWORDS_PER_CLUSTER,
    MapParams,
    cluster_keywords,
    cluster_members_ranked,
    clusters_find,
    min_cluster_size_for,
    project,
)
from analysis.explorer.summaries import SUMMARY_EXAMPLES, cluster_summaries
from analysis.models import CLUSTER_DTYPE, ID_DTYPE, VECTOR_DTYPE, ExplorerBuild, ExplorerCluster
from generation.lm import LanguageModel, LMError, ModelInfo
from generation.lm.versions import library_versions
from generation.models import Dataset, Job

logger = logging.getLogger(__name__)

# Succeeded builds kept per map: the newest, and the one before it for pages opened before it landed.
BUILDS_KEPT = 2
# Libraries whose versions can change a map, recorded with each build.
MAP_PACKAGES = (
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


def _latest_build(scope: MapScope) -> ExplorerBuild | None:
    return (
        ExplorerBuild.objects.of_map(dataset=scope.dataset)
        .succeeded()
        .only("pk", "input_fingerprint")
        .order_by("-finished_at", "-pk")
        .first()
    )


def _builds_prune(scope: MapScope) -> None:
    """Keeps the newest BUILDS_KEPT succeeded builds of a map and nothing older."""
    builds = ExplorerBuild.objects.of_map(dataset=scope.dataset)
    kept = list(builds.succeeded().order_by("-finished_at", "-pk").values_list("pk", flat=True)[:BUILDS_KEPT])
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
        versions=library_versions(packages=MAP_PACKAGES),
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
            clusters=[payload_cluster(row) for row in cluster_rows],
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
    vectors = unit_rows(vectors)
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
