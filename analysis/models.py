"""The embedding explorer's data: a cache of sentence embeddings and the maps built from them.

Arrays are stored as raw little-endian bytes (float32 vectors and coordinates, int64 example ids,
int32 cluster numbers), not JSON: a global map of the released data has 133k points, and a JSON list
of 384 floats per text would be ten times larger and slow to parse.
"""

from __future__ import annotations

import numpy as np
from django.db import models
from django.db.models import Q

from generation.models import Dataset, Example, Job

VECTOR_DTYPE = np.dtype("<f4")
ID_DTYPE = np.dtype("<i8")
CLUSTER_DTYPE = np.dtype("<i4")


class TextEmbedding(models.Model):
    """One text's embedding under one model. The key is the sha256 of the exact text that was
    embedded (no normalisation: two texts that differ only in case embed differently) and the
    model's fingerprint (the sha256 of its weights), so a new model version never reads stale
    vectors."""

    text_hash = models.CharField(max_length=64)
    model_fingerprint = models.CharField(max_length=200)
    dimensions = models.PositiveSmallIntegerField()
    vector = models.BinaryField(help_text="float32, little-endian, unit length")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["text_hash", "model_fingerprint"], name="text_embedding_unique"),
            models.CheckConstraint(condition=Q(dimensions__gte=1), name="text_embedding_dimensions_min"),
        ]

    def __str__(self) -> str:
        return f"{self.text_hash[:12]} ({self.dimensions}d)"

    def as_array(self) -> np.ndarray:
        return np.frombuffer(bytes(self.vector), dtype=VECTOR_DTYPE)


class BuildScope(models.TextChoices):
    GLOBAL = "global", "All datasets"
    DATASET = "dataset", "One dataset"


class BuildStatus(models.TextChoices):
    RUNNING = "running", "Running"
    SUCCEEDED = "succeeded", "Succeeded"
    FAILED = "failed", "Failed"


class ExplorerBuildQuerySet(models.QuerySet):
    def of_map(self, *, dataset: Dataset | None) -> ExplorerBuildQuerySet:
        """The builds of one map: a dataset's, or the global map's when dataset is None."""
        return self.filter(scope=BuildScope.DATASET if dataset else BuildScope.GLOBAL, dataset=dataset)

    def succeeded(self) -> ExplorerBuildQuerySet:
        return self.filter(status=BuildStatus.SUCCEEDED)


class ExplorerBuild(models.Model):
    """One map: the 2D UMAP projection of a set of examples' embeddings, its clusters, and the
    compressed payload the explorer page downloads. Everything needed to reproduce it is stored with
    it: the UMAP and clustering parameters, the seed, the embedding model and the library versions."""

    Scope = BuildScope
    Status = BuildStatus

    scope = models.CharField(max_length=10, choices=BuildScope.choices)
    dataset = models.ForeignKey(
        Dataset, null=True, blank=True, on_delete=models.CASCADE, related_name="explorer_builds"
    )
    status = models.CharField(max_length=10, choices=BuildStatus.choices, default=BuildStatus.RUNNING)
    job = models.ForeignKey(Job, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    params = models.JSONField(default=dict, blank=True)
    seed = models.IntegerField(default=0)
    versions = models.JSONField(default=dict, blank=True)
    embedder_info = models.JSONField(default=dict, blank=True)
    summary_model_info = models.JSONField(default=dict, blank=True)
    # sha256 of the inputs (points, texts, labels, parameters, models): a build whose inputs match
    # the latest one of its scope is skipped, since it would draw the same map.
    input_fingerprint = models.CharField(max_length=64, blank=True)

    point_count = models.PositiveIntegerField(default=0)
    cluster_count = models.PositiveIntegerField(default=0)
    embedded_count = models.PositiveIntegerField(default=0, help_text="Texts embedded by the model.")
    cached_count = models.PositiveIntegerField(default=0, help_text="Texts read from the cache.")
    example_ids = models.BinaryField(default=bytes, blank=True, help_text="int64 per point")
    # The sha256 digests (32 bytes each) of the texts as embedded: the keys of the points' vectors in
    # the embedding cache, so neighbours and semantic search use the vectors this map was drawn from.
    text_hashes = models.BinaryField(default=bytes, blank=True)
    coordinates = models.BinaryField(default=bytes, blank=True, help_text="float32 (x, y) per point")
    cluster_labels = models.BinaryField(default=bytes, blank=True, help_text="int32 per point; -1 noise")
    # The page's download: gzip-compressed binary (see analysis.explorer.payload.payload_encode).
    payload = models.BinaryField(default=bytes, blank=True)
    payload_bytes = models.PositiveIntegerField(default=0)
    timings = models.JSONField(default=dict, blank=True)
    error = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    objects = ExplorerBuildQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at", "-pk"]
        constraints = [
            models.CheckConstraint(
                condition=Q(scope__in=BuildScope.values), name="explorer_build_scope_valid"
            ),
            models.CheckConstraint(
                condition=Q(status__in=BuildStatus.values), name="explorer_build_status_valid"
            ),
            models.CheckConstraint(
                condition=(Q(scope=BuildScope.GLOBAL) & Q(dataset__isnull=True))
                | (Q(scope=BuildScope.DATASET) & Q(dataset__isnull=False)),
                name="explorer_build_scope_dataset",
            ),
        ]
        indexes = [models.Index(fields=["scope", "dataset", "status"], name="explorer_build_current")]

    def __str__(self) -> str:
        return f"explorer build #{self.pk} ({self.scope_name}, {self.status})"

    @property
    def scope_name(self) -> str:
        return self.dataset.slug if self.scope == BuildScope.DATASET and self.dataset else "all datasets"

    def example_id_array(self) -> np.ndarray:
        return np.frombuffer(bytes(self.example_ids), dtype=ID_DTYPE)

    def text_hash_list(self) -> list[str]:
        raw = bytes(self.text_hashes)
        return [raw[i : i + 32].hex() for i in range(0, len(raw), 32)]

    def coordinate_array(self) -> np.ndarray:
        return np.frombuffer(bytes(self.coordinates), dtype=VECTOR_DTYPE).reshape(-1, 2)

    def cluster_label_array(self) -> np.ndarray:
        return np.frombuffer(bytes(self.cluster_labels), dtype=CLUSTER_DTYPE)


class ExplorerCluster(models.Model):
    """A region of a map: its c-TF-IDF keywords, an optional one-sentence summary written by a
    language model (untrusted text), and the medoid its label is anchored on."""

    build = models.ForeignKey(ExplorerBuild, on_delete=models.CASCADE, related_name="clusters")
    number = models.PositiveIntegerField(help_text="The cluster's label in the build's cluster array.")
    size = models.PositiveIntegerField()
    keywords = models.JSONField(default=list, blank=True)
    summary = models.TextField(blank=True)
    # The member whose embedding is closest to all the others (cosine); the label sits on it, so it
    # is always on a point of the cluster, which a centroid of a curved region need not be.
    medoid_index = models.PositiveIntegerField()
    medoid = models.ForeignKey(Example, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    x = models.FloatField()
    y = models.FloatField()

    class Meta:
        ordering = ["build", "number"]
        constraints = [
            models.UniqueConstraint(fields=["build", "number"], name="explorer_cluster_unique"),
        ]

    def __str__(self) -> str:
        return f"build {self.build_id} cluster {self.number}"

    @property
    def label(self) -> str:
        return ", ".join(self.keywords[:3])
