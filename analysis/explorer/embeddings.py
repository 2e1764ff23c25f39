"""Sentence embeddings of the examples' texts, cached by the sha256 of the exact text and the
model's fingerprint (analysis.models.TextEmbedding), so a rebuild embeds only texts it has not seen.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Protocol

import numpy as np

from analysis.explorer.errors import ExplorerError
from analysis.models import VECTOR_DTYPE, TextEmbedding
from generation.lm import ModelInfo

ProgressReport = Callable[[str, int, int], None]

# Texts embedded per call: small enough for steady progress reports and cache writes that a
# crashed build keeps, large enough that the model's own batching is unaffected.
EMBED_CHUNK = 1024
EMBED_BATCH_SIZE = 64
CACHE_READ_CHUNK = 500


class Embedder(Protocol):
    """What the build needs of an embedding model (generation.lm.embeddings.Embedder)."""

    dimensions: int
    info: ModelInfo

    def embed(self, texts: Sequence[str], *, batch_size: int = EMBED_BATCH_SIZE) -> np.ndarray: ...


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


def unit_rows(vectors: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    return (vectors / np.where(norms > 0, norms, 1.0)).astype(VECTOR_DTYPE, copy=False)
