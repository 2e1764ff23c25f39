"""How an item's answer is read from a model, by the run's scorer (generation.models.RunScorer):
`logprobs` scores every answer choice with log p(answer | prompt), the paper's way
(services.score_items); `answer` asks the model for its answer, for servers that give no log-probs of
the prompt's tokens. Every caller that scores items goes through score_items_by, so that a run's items
are all read the way the run says."""

from __future__ import annotations

from collections.abc import Callable, Sequence

from generation.evaluation.services import EvalItem, EvaluationError, ItemResult, score_items
from generation.lm import LanguageModel
from generation.models import RunScorer


def score_items_by(
    *,
    scorer: str,
    model: LanguageModel,
    items: Sequence[EvalItem],
    template: str,
    progress: Callable[[int], None] | None = None,
) -> list[ItemResult]:
    if scorer == RunScorer.LOGPROBS:
        return score_items(model=model, items=items, template=template, progress=progress)
    raise EvaluationError(f"unknown scorer {scorer!r}; use {' or '.join(RunScorer.values)}")
