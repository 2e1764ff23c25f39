"""The small interface every model backend implements, and the scoring rule they share.

Two operations cover everything the project asks of a model: write texts (the generator) and score
answer choices (the discriminator p_d(y|x) and the evaluator). Backends: `local` (transformers, CPU
or GPU) and `openai_compat` (any OpenAI-compatible server: vLLM, llama.cpp, Ollama).
"""

from __future__ import annotations

import json
import math
import re
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Sequence
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


# ----------------------------------------------------------------------------- the answer scorer
# For servers that give no log-probs of the prompt's tokens (chat APIs): the model is asked for its answer,
# and the answer is read from the top log-probs of the reply's first answer token, or else from the
# reply's text, as Inspect AI's and OpenAI evals' multiple-choice scorers do. Not the paper's way (it
# scores each answer's log-prob after the prompt); docs/model-servers.md describes the format.

ANSWER_TOP_LOGPROBS = "top-logprobs"
ANSWER_PARSED = "parsed"
_LETTER = re.compile(r"\(?([A-Z])\)?")
# What a token or a reply may carry around the answer itself: whitespace, parentheses, markdown emphasis
# and quotes. A first token made only of these ("(", " ", "**") carries no answer, so the next one is read.
_WRAPPING = " \t\r\n\u00a0()*\"'`"


# The answer scorer's reply: long enough to get past "The answer is" to the answer, short enough to stay
# cheap; and how many alternatives of each reply token it reads (OpenAI's API gives at most 20).
ANSWER_MAX_TOKENS = 16
TOP_LOGPROBS_ASKED = 20


@dataclass(frozen=True)
class AnswerScore:
    """How a model answered one question of the answer scorer.

    `probabilities`: one per choice, from the top log-probs of the reply's first answer token, summed per
    answer key and renormalised over the choices (a choice absent from the top log-probs gets 0); None when
    the answer was parsed from the text instead. `chosen`: the index of the answer (the likeliest choice,
    ties to the first; or the parsed one), None when the reply names no choice unambiguously. `scorer`:
    ANSWER_TOP_LOGPROBS or ANSWER_PARSED. `reply`: the model's text (LM-written: untrusted). `top`: the
    first answer token's top log-probs as the server gave them (token -> log-prob), empty without them."""

    probabilities: tuple[float, ...] | None
    chosen: int | None
    scorer: str
    reply: str
    top: dict[str, float] = field(default_factory=dict)


def answer_keys(choices: Sequence[str]) -> tuple[str, ...]:
    """What the model is asked to answer for each choice: " (A)", "(A)", "A" -> "A"; " yes" -> "Yes",
    " No" -> "No"; any other choice its stripped text. Two choices with the same key cannot be told
    apart in a reply, so they are refused rather than guessed."""
    if len(choices) < 2:
        raise LMError(f"the answer scorer needs at least two answer choices, got {list(choices)!r}")
    keys: list[str] = []
    for choice in choices:
        text = choice.strip()
        letter = _LETTER.fullmatch(text)
        if letter:
            key = letter.group(1)
        elif text.casefold() in {"yes", "no"}:
            key = text.capitalize()
        elif text:
            key = text
        else:
            raise LMError(f"the answer choice {choice!r} is empty; the answer scorer cannot ask for it")
        keys.append(key)
    folded = [_fold(key) for key in keys]
    for i, key in enumerate(folded):
        if key in folded[:i]:
            first = folded.index(key)
            raise LMError(
                f"the answer choices {choices[first]!r} and {choices[i]!r} both read as the answer "
                f"{keys[i]!r}, so a reply cannot tell them apart; score this item with the logprobs scorer"
            )
    return tuple(keys)


def _fold(key: str) -> str:
    # Letters are case-sensitive ("a" is usually the article); Yes/No and other texts are not.
    return key if len(key) == 1 and key.isupper() else key.casefold()


def answer_instruction(keys: Sequence[str]) -> str:
    """The one line put after the question, listing the answers the reply may give."""

    def listed(words: Sequence[str]) -> str:
        return ", ".join(words[:-1]) + " or " + words[-1]

    if all(_LETTER.fullmatch(key) and len(key) == 1 for key in keys):
        return f"Answer with only the letter of your choice: {listed(keys)}."
    return f"Answer with only {listed([json.dumps(key, ensure_ascii=False) for key in keys])}."


def answer_prompt(*, question: str, choices: Sequence[str]) -> str:
    """The user message of the answer scorer: the question as the dataset has it (multiple-choice questions
    already list their choices) and the instruction line."""
    return f"{question.rstrip()}\n\n{answer_instruction(answer_keys(choices))}"


def _token_key(token: str, keys: Sequence[str]) -> int | None:
    text = token.strip(" \t\r\n\u00a0()")
    if not text:
        return None
    folded = _fold(text)
    for index, key in enumerate(keys):
        if _fold(key) == folded:
            return index
    return None


def answer_from_top(*, top: Iterable[tuple[str, float]], keys: Sequence[str]) -> tuple[float, ...] | None:
    """The choices' probabilities from one token's top log-probs: each token that, stripped of whitespace
    and parentheses, is a choice's key adds its probability to that choice (" Yes", "Yes" and "yes" all
    count for "Yes"); the sums are renormalised over the choices. None when no choice is among them."""
    sums = [0.0] * len(keys)
    found = False
    for token, logprob in top:
        if not isinstance(token, str) or not isinstance(logprob, int | float) or math.isnan(logprob):
            continue
        index = _token_key(token, keys)
        if index is not None:
            sums[index] += math.exp(min(0.0, float(logprob)))
            found = True
    total = sum(sums)
    if not found or total <= 0:
        return None
    return tuple(s / total for s in sums)


def _patterns(key: str) -> list[re.Pattern[str]]:
    """How a reply may give the answer `key`, from the most to the least specific."""
    escaped = re.escape(key)
    if len(key) == 1 and key.isupper():
        # "A", "A)", "(A)", "A." at the start; "Answer: A" / "the answer is (A)"; "(A)" anywhere. A bare
        # capital letter elsewhere is not an answer ("I think...", "A good choice").
        # "A" and "I" are also words: "A good choice", "I think" do not answer A or I.
        word = r"(?!\s+[a-z])" if key in {"A", "I"} else ""
        return [
            re.compile(rf"^\(?{escaped}(?:\)|(?=[\s.,:;!*\"'`]|$){word})"),
            re.compile(rf"\b(?i:answer)\s*(?:is\s*)?[:\-]?\s*\(?{escaped}\b"),
            re.compile(rf"\({escaped}\)", re.IGNORECASE),
        ]
    return [
        re.compile(rf"^{escaped}(?!\w)", re.IGNORECASE),
        re.compile(rf"\banswer\s*(?:is\s*)?[:\-]?\s*{escaped}(?!\w)", re.IGNORECASE),
        re.compile(rf"(?<!\w){escaped}(?!\w)", re.IGNORECASE),
    ]


def answer_from_text(*, reply: str, keys: Sequence[str]) -> int | None:
    """The choice a reply names: the first of the patterns (the reply starts with the answer; "Answer: X";
    the answer anywhere) that finds exactly one choice. None when a pattern finds several (the reply
    names more than one) or none finds any."""
    # Leading emphasis and quotes go ("**B**"); an opening parenthesis stays for the patterns.
    text = reply.lstrip(_WRAPPING.replace("(", "").replace(")", ""))
    for level in range(3):
        found = {index for index, key in enumerate(keys) if _patterns(key)[level].search(text)}
        if len(found) == 1:
            return found.pop()
        if len(found) > 1:
            return None
    return None


def answer_score(*, reply: str, top: Sequence[tuple[str, float]] | None, keys: Sequence[str]) -> AnswerScore:
    """The answer scorer's reading of one reply: the top log-probs of its first answer token when a choice
    is among them, else the choice its text names."""
    probabilities = answer_from_top(top=top, keys=keys) if top else None
    record = {}
    for token, logprob in top or ():
        if isinstance(token, str) and isinstance(logprob, int | float) and math.isfinite(logprob):
            record.setdefault(token, float(logprob))
    if probabilities is not None:
        # Ties go to the first choice, the matching answer, as in the logprobs scorer.
        chosen = max(range(len(probabilities)), key=lambda i: (probabilities[i], -i))
        return AnswerScore(probabilities, chosen, ANSWER_TOP_LOGPROBS, reply, record)
    return AnswerScore(None, answer_from_text(reply=reply, keys=keys), ANSWER_PARSED, reply, record)


def first_answer_token(tokens: Sequence[str]) -> int | None:
    """The position of a reply's first token that may carry the answer: leading tokens of whitespace, an
    opening parenthesis, markdown emphasis or quotes carry none."""
    return next((i for i, token in enumerate(tokens) if token.strip(_WRAPPING)), None)


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

    def answer_distribution(
        self,
        requests: Sequence[tuple[str, Sequence[str]]],
        *,
        progress: ProgressCallback | None = None,
    ) -> list[AnswerScore]:
        """The answer scorer: for each (user message, choices) pair (the message from answer_prompt), the
        model's answer to the message as one chat turn, read by answer_score. The local and
        OpenAI-compatible backends implement it; a backend that does not is scored with score_choices."""
        raise LMError(
            f"{self.info.spec}: this backend cannot be asked for its answer (the answer scorer is implemented "
            "for local models and OpenAI-compatible servers); score this model with the logprobs scorer"
        )

    def chat_prompt(self, user_message: str) -> str:
        """The model's own chat template around one user turn, ready for the assistant's reply."""
        raise LMError(f"{self.info.spec} has no chat template here; use the plain or paper prompt format")

    def close(self) -> None:  # noqa: B027 - optional for backends that hold no resources
        """Releases what the model holds (memory, connections)."""
