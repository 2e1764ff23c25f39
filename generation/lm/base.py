"""The small interface every model backend implements, and the scoring rule they share.

Two operations cover everything the project asks of a model: write texts (the generator) and score
answer choices (the discriminator p_d(y|x) and the evaluator). Backends: `local` (transformers, CPU
or GPU) and `openai_compat` (any OpenAI-compatible server: vLLM, llama.cpp, Ollama).
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

ProgressCallback = Callable[[int], None]


class LMError(RuntimeError):
    """A model could not do what was asked; the message says why and what to change."""


class ModelSpecError(ValueError):
    """A model spec string that cannot be understood; raised before any model is loaded."""


@dataclass(frozen=True)
class SamplingParams:
    n: int = 1
    temperature: float = 1.0
    top_p: float = 1.0
    max_tokens: int = 128
    stop: tuple[str, ...] = ()
    seed: int | None = None

    def __post_init__(self) -> None:
        if self.n < 1:
            raise ValueError("n must be at least 1")
        if self.temperature < 0 or not math.isfinite(self.temperature):
            raise ValueError("temperature must be a finite number >= 0")
        if not 0 < self.top_p <= 1:
            raise ValueError("top_p must be in (0, 1]")
        if self.max_tokens < 1:
            raise ValueError("max_tokens must be at least 1")
        if any(not s for s in self.stop):
            raise ValueError("stop sequences must not be empty")


@dataclass(frozen=True)
class ChoiceScore:
    """log p(continuation | context): the total and one entry per continuation token."""

    logprob: float
    token_logprobs: tuple[float, ...]
    tokens: tuple[str, ...]
    # Whether greedy decoding from the context would produce exactly this continuation.
    is_greedy: bool


@dataclass(frozen=True)
class ModelInfo:
    """What a run records about the model that produced it."""

    spec: str
    backend: str
    name: str
    fingerprint: str
    versions: dict[str, str] = field(default_factory=dict)
    details: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {
            "spec": self.spec,
            "backend": self.backend,
            "name": self.name,
            "fingerprint": self.fingerprint,
            "versions": dict(self.versions),
            "details": dict(self.details),
        }


def split_whitespace(context: str, continuation: str) -> tuple[str, str]:
    """lm-evaluation-harness's rule: trailing whitespace of the context belongs to the continuation,
    so "Answer: " + "Yes" is scored as "Answer:" + " Yes"."""
    stripped = context.rstrip()
    if len(stripped) < len(context):
        return stripped, context[len(stripped) :] + continuation
    return context, continuation


def choice_probabilities(logprobs: Sequence[float]) -> list[float]:
    """The softmax over a question's answer choices, from their log-probs; shifted by the largest so
    that very negative totals do not underflow."""
    top = max(logprobs)
    exps = [math.exp(v - top) for v in logprobs]
    total = sum(exps)
    return [min(1.0, e / total) for e in exps]


def first_choice_probability(logprobs: Sequence[float]) -> float:
    """The softmax share of the first choice among all: P(match) for the evaluator (the matching
    answer comes first) and p_d(yes) for the discriminator."""
    return choice_probabilities(logprobs)[0]


def cut_at_stop(*, text: str, stop: Sequence[str]) -> str:
    """The text up to (not including) the first stop sequence. Servers usually cut already, but some
    return the stop sequence and some miss one that ends inside a multi-byte token."""
    cut = len(text)
    for sequence in stop:
        index = text.find(sequence)
        if index != -1:
            cut = min(cut, index)
    return text[:cut]


class LanguageModel(ABC):
    info: ModelInfo

    @abstractmethod
    def generate(self, prompts: Sequence[str], params: SamplingParams) -> list[list[str]]:
        """params.n completions for each prompt, with stop sequences cut off (not included)."""

    @abstractmethod
    def score_choices(
        self,
        requests: Sequence[tuple[str, Sequence[str]]],
        *,
        progress: ProgressCallback | None = None,
    ) -> list[list[ChoiceScore]]:
        """For each (context, continuations) pair, the score of every continuation given the
        context, by lm-evaluation-harness's rule (see split_whitespace)."""

    def chat_prompt(self, user_message: str) -> str:
        """The model's own chat template around one user turn, ready for the assistant's reply."""
        raise LMError(f"{self.info.spec} has no chat template here; use the plain or paper prompt format")

    def close(self) -> None:  # noqa: B027 - optional for backends that hold no resources
        """Releases what the model holds (memory, connections)."""
