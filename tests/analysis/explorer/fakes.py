"""Stand-ins for the explorer's models: an embedder that counts what reaches it and puts texts about
the same topic close together, and a summary model that returns what a test tells it to."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

import numpy as np

from generation.lm import LanguageModel, LMError, ModelInfo, SamplingParams

TOPICS = ("power", "money", "cats", "rain")


class CountingEmbedder:
    """Deterministic 384-dim unit vectors: a topic's centre (the first TOPICS word in the text) plus
    a little noise seeded by the text, so texts of one topic form one tight group."""

    dimensions = 384

    def __init__(self, *, fingerprint: str = "sha256:fake-minilm") -> None:
        self.info = ModelInfo(spec="minilm", backend="fake", name="fake MiniLM", fingerprint=fingerprint)
        self.calls = 0
        self.texts: list[str] = []
        rng = np.random.default_rng(7)
        self.centres = {topic: rng.normal(size=self.dimensions) for topic in TOPICS}
        self.other = rng.normal(size=self.dimensions)

    def vector(self, text: str) -> np.ndarray:
        topic = next((t for t in TOPICS if t in text.lower()), None)
        centre = self.centres[topic] if topic else self.other
        seed = int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "little")
        vector = centre + 0.15 * np.random.default_rng(seed).normal(size=self.dimensions)
        return (vector / np.linalg.norm(vector)).astype(np.float32)

    def embed(self, texts: Sequence[str], *, batch_size: int = 64) -> np.ndarray:
        self.calls += 1
        self.texts.extend(texts)
        return np.stack([self.vector(t) for t in texts]) if texts else np.zeros((0, self.dimensions))


class ScriptedSummaryModel(LanguageModel):
    """Answers every prompt with the same text (or raises), and records the prompts; with chat=False
    it has no chat template, like a base model."""

    def __init__(
        self, answer: str = "They are about one topic. And more.", *, fail: bool = False, chat: bool = True
    ) -> None:
        self.info = ModelInfo(spec="fake-summarizer", backend="fake", name="fake", fingerprint="sha256:s")
        self.answer = answer
        self.fail = fail
        self.chat = chat
        self.prompts: list[str] = []

    def chat_prompt(self, user_message: str) -> str:
        if not self.chat:
            return super().chat_prompt(user_message)
        return f"<user>{user_message}</user><assistant>"

    def generate(self, prompts: Sequence[str], params: SamplingParams) -> list[list[str]]:
        if self.fail:
            raise LMError("the summary model is down")
        self.prompts.extend(prompts)
        return [[self.answer] * params.n for _ in prompts]

    def score_choices(self, requests, *, progress=None):
        raise LMError("not used")
