"""Stand-ins for the models of a generation run: a scripted language model and embedders whose
duplicates are known in advance, so whole runs can be compared and their decisions predicted."""

import hashlib

import numpy as np

from generation.catalog import formats
from generation.lm import ChoiceScore, LanguageModel, ModelInfo


class ScriptedModel(LanguageModel):
    """Writes what `write(prompt, seed, index)` returns and scores each choice with `score(context,
    choice)`; deterministic, so whole runs can be compared."""

    def __init__(self, write, score, *, info: ModelInfo | None = None):
        self.info = info or ModelInfo(spec="scripted", backend="fake", name="scripted", fingerprint="fake:1")
        self.write, self.score = write, score
        self.prompts = []
        self.params = []

    def generate(self, prompts, params):
        self.prompts.extend(prompts)
        self.params.append(params)
        return [[self.write(p, params.seed, i) for i in range(params.n)] for p in prompts]

    def score_choices(self, requests, *, progress=None):
        return [
            [
                ChoiceScore(logprob=self.score(ctx, c), token_logprobs=(), tokens=(), is_greedy=False)
                for c in choices
            ]
            for ctx, choices in requests
        ]

    def chat_prompt(self, user_message):
        return f"<user>{user_message}</user><assistant>"


class HashEmbedder:
    """Distinct texts get orthogonal vectors (barring a hash collision in 8192 slots, fixed for a
    fixed set of texts), so only exact duplicates collapse."""

    info = ModelInfo(spec="hash", backend="fake", name="hash", fingerprint="fake:1")

    def embed(self, texts):
        rows = np.zeros((len(texts), 8192), dtype=np.float32)
        for row, text in enumerate(texts):
            digest = hashlib.sha256(formats.normalize_text(text).encode()).digest()
            rows[row, int.from_bytes(digest[:4], "big") % 8192] = 1.0
        return rows


class FirstWordEmbedder:
    """Texts that share their first word are near duplicates (cosine 1), all others orthogonal."""

    def __init__(self, info: ModelInfo | None = None):
        self.info = info or ModelInfo(
            spec="first-word", backend="fake", name="first-word", fingerprint="fake:1"
        )

    def embed(self, texts):
        words = sorted({t.split()[0].casefold() for t in texts})
        vectors = np.zeros((len(texts), len(words)), dtype=np.float32)
        for row, text in enumerate(texts):
            vectors[row, words.index(text.split()[0].casefold())] = 1.0
        return vectors
