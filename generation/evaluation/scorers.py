"""How an item's answer is read from a model, by the run's scorer (generation.models.RunScorer):
`logprobs` scores every answer choice with log p(answer | prompt), the paper's way
(services.score_items); `answer` asks the model for its answer, for servers that give no log-probs of
the prompt's tokens (chat APIs), and reads it from the top log-probs of the reply's first answer token,
else from the reply's text (generation.lm.base.answer_score). Every caller that scores items goes
through score_items_by, so that a run's items are all read the way the run says.

The contract, for every caller (single runs, suites):

    scored = score_items_by(scorer=..., model=..., items=..., template=..., progress=...)
    scored.results     # list[ItemResult], to store; each with its own .scorer:
                       # "logprobs", or "top-logprobs" / "parsed" (the answer scorer, item by item)
    scored.unanswered  # list[Unanswered] (answer scorer only): items whose reply names no choice
                       # unambiguously; not stored as results. Record them with
                       # unanswered_record(...) in run.results["unanswered"].

`template` is the completion prompt of the logprobs scorer (services.format_template). The answer scorer
sends instead each question, with one instruction line, as a chat user turn (the server applies the
model's own template: answer_prompt), so it takes the plain prompt format only (scorer_run_check) and
runs record ANSWER_TEMPLATE as their format. progress(n) is called as n more items are done.

The answer scorer's figures: logprobs holds log p of each choice renormalised over the choices (null
where p is 0: a choice absent from the top log-probs; JSON has no -inf), p_match the matching answer's
renormalised probability. A parsed answer is taken as certain: p 1 for the named choice, 0 for the others.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

from generation.evaluation.services import EvalItem, EvaluationError, ItemResult, score_items
from generation.lm import LanguageModel
from generation.lm.base import AnswerScore, answer_instruction, answer_prompt
from generation.models import PromptFormat, RunScorer

# What a run of the answer scorer records as its prompt (its format fingerprint): the message and the
# instruction lines, so that a change of wording gives runs another fingerprint.
ANSWER_TEMPLATE = json.dumps(
    {
        "chat_user_turn": "{question}\n\n{instruction}",
        "instructions": [answer_instruction(["Yes", "No"]), answer_instruction(["A", "B"])],
    }
)
# How many unanswered replies a run keeps to show (each cut to REPLY_CHARS): enough to see why.
UNANSWERED_SHOWN = 5
REPLY_CHARS = 300


@dataclass(frozen=True)
class Unanswered:
    """An item whose reply named no answer choice unambiguously; `reply` is LM-written (untrusted)."""

    item: EvalItem
    reply: str


class Scored(NamedTuple):
    results: list[ItemResult]
    unanswered: list[Unanswered]


def scorer_run_check(*, scorer: str, prompt_format: str) -> None:
    """What can be checked of a run's scorer before any model is loaded (EvaluationError otherwise)."""
    if scorer not in RunScorer.values:
        raise EvaluationError(f"unknown scorer {scorer!r}; use {' or '.join(RunScorer.values)}")
    if scorer != RunScorer.ANSWER:
        return
    if prompt_format != PromptFormat.PLAIN:
        raise EvaluationError(
            "the answer scorer sends each question as a chat message, in the model's own chat template "
            "(applied by the server, or here for a local model); choose the plain prompt format with it"
        )


def score_items_by(
    *,
    scorer: str,
    model: LanguageModel,
    items: Sequence[EvalItem],
    template: str,
    progress: Callable[[int], None] | None = None,
) -> Scored:
    if scorer == RunScorer.LOGPROBS:
        return Scored(score_items(model=model, items=items, template=template, progress=progress), [])
    if scorer == RunScorer.ANSWER:
        return score_items_by_answer(model=model, items=items, progress=progress)
    raise EvaluationError(f"unknown scorer {scorer!r}; use {' or '.join(RunScorer.values)}")


def score_items_by_answer(
    *,
    model: LanguageModel,
    items: Sequence[EvalItem],
    progress: Callable[[int], None] | None = None,
) -> Scored:
    requests = [(answer_prompt(question=item.question, choices=item.choices), item.choices) for item in items]
    answers = model.answer_distribution(requests, progress=progress)
    results: list[ItemResult] = []
    unanswered: list[Unanswered] = []
    for item, answer in zip(items, answers, strict=True):
        if answer.chosen is None:
            unanswered.append(Unanswered(item=item, reply=answer.reply))
        else:
            results.append(answer_result(item=item, answer=answer))
    return Scored(results, unanswered)


def answer_result(*, item: EvalItem, answer: AnswerScore) -> ItemResult:
    """An answered item as the result stored for it (see the module's docstring for the figures)."""
    if answer.chosen is None:
        raise EvaluationError(f"item {item.key} has no answer to store")
    probabilities = answer.probabilities or tuple(
        1.0 if i == answer.chosen else 0.0 for i in range(len(item.choices))
    )
    return ItemResult(
        item=item,
        logprobs=tuple(math.log(p) if p > 0 else None for p in probabilities),
        predicted_index=answer.chosen,
        p_match=min(1.0, max(0.0, probabilities[0])),
        scorer=answer.scorer,
    )


def unanswered_record(*, unanswered: Sequence[Unanswered]) -> dict[str, Any]:
    """What a run stores in results["unanswered"]: how many items, and the first few replies."""
    return {
        "count": len(unanswered),
        "replies": [
            {"index": u.item.key, "reply": u.reply[:REPLY_CHARS]} for u in unanswered[:UNANSWERED_SHOWN]
        ],
    }
