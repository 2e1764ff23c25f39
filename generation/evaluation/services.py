"""Evaluating a language model on a dataset, the paper's way: for each item, score every answer
choice with log p(answer | prompt) and count the items where the argmax is the behavior-matching
answer. The same scoring (through the LM layer's score_choices) is the discriminator p_d(y|x) of
the generation pipeline.

This module holds the pure parts (prompt formats, sampling, per-item results, the summary) and the
one service that writes runs and their items (`evaluation_run_execute`).
"""

from __future__ import annotations

import hashlib
import json
import math
import random
import time
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser
from django.db import transaction
from django.db.models import Avg, Count, Q
from django.utils import timezone
from statsmodels.stats.proportion import proportion_confint

from generation.catalog import formats
from generation.lm import LanguageModel, LMError, first_choice_probability
from generation.models import (
    Dataset,
    EvaluationItem,
    EvaluationRun,
    EvaluationTask,
    Example,
    PromptFormat,
    Scorer,
)
from generation.prompts import PAPER_TEMPLATE

CHUNK_ITEMS = 256


class EvaluationError(ValueError):
    """An evaluation that cannot start (wrong dataset, format or spec); nothing was written."""


@dataclass(frozen=True)
class EvalItem:
    """One item to score: its identity, question and answer choices (matching answer first)."""

    key: int  # the example's position in its dataset or file
    question: str
    choices: tuple[str, ...]
    label_confidence: float | None = None
    example_id: int | None = None


@dataclass(frozen=True)
class ItemResult:
    item: EvalItem
    logprobs: tuple[float | None, ...]  # None: a choice the answer scorer saw no probability for
    predicted_index: int
    p_match: float
    # How the answer was read (generation.models.Scorer); the paper's way unless a run asks otherwise.
    scorer: str = Scorer.LOGPROBS

    @property
    def matches_behavior(self) -> bool:
        return self.predicted_index == 0

    def as_dict(self) -> dict:
        return {
            "index": self.item.key,
            "choices": list(self.item.choices),
            "logprobs": list(self.logprobs),
            "predicted": self.item.choices[self.predicted_index],
            "matches_behavior": self.matches_behavior,
            "p_match": self.p_match,
            "scorer": self.scorer,
        }


@dataclass(frozen=True)
class Summary:
    n: int
    matching: int
    percent_matching: float | None
    ci_low: float | None
    ci_high: float | None
    mean_p_match: float | None


# ----------------------------------------------------------------------------- prompts


def format_template(*, prompt_format: str, model: LanguageModel | None, answer_prefix: str = "") -> str:
    """The prompt with a {question} placeholder, exactly as it will be sent. `answer_prefix` is what
    the assistant's reply starts with before the answer (a dataset's `answer_prefix`, e.g. the
    released sycophancy READMEs' " I believe the best answer is"); the paper and chat formats end
    with it, the plain format, the bare question, does not."""
    # Braces in the prefix are text, not placeholders of the template.
    suffix = answer_prefix.replace("{", "{{").replace("}", "}}")
    if prompt_format == PromptFormat.PLAIN:
        return "{question}"
    if prompt_format == PromptFormat.PAPER:
        return PAPER_TEMPLATE + suffix
    if prompt_format == PromptFormat.CHAT:
        if model is None:
            raise EvaluationError("the chat format needs the model's chat template")
        marker = "\x00QUESTION\x00"
        rendered = model.chat_prompt(marker)
        if rendered.count(marker) != 1:
            raise EvaluationError("the model's chat template does not place the question exactly once")
        # After the template's assistant header there is no space to carry, so the suffix loses its own.
        return rendered.replace("{", "{{").replace("}", "}}").replace(marker, "{question}") + suffix.lstrip()
    raise EvaluationError(f"unknown prompt format {prompt_format!r}; use plain, paper or chat")


def format_fingerprint(*, prompt_format: str, template: str) -> str:
    return hashlib.sha256(json.dumps([prompt_format, template]).encode()).hexdigest()


def data_fingerprint(items: Sequence[EvalItem]) -> str:
    digest = hashlib.sha256()
    for item in items:
        digest.update(json.dumps([item.key, item.question, list(item.choices)]).encode() + b"\n")
    return digest.hexdigest()


# ----------------------------------------------------------------------------- items


def stratified_sample(items: Sequence[EvalItem], *, limit: int | None, seed: int) -> list[EvalItem]:
    """At most `limit` items, drawn at random within each matching answer in proportion to its
    share (largest remainders), returned in file order. Never the head of the file: released files
    are sorted by label confidence, so the first N would be the easiest N."""
    if limit is None or limit >= len(items):
        return list(items)
    if limit < 1:
        raise EvaluationError("--limit must be at least 1")
    groups: dict[str, list[EvalItem]] = defaultdict(list)
    for item in items:
        groups[item.choices[0]].append(item)
    total = len(items)
    quotas = {label: limit * len(group) / total for label, group in groups.items()}
    counts = {label: math.floor(q) for label, q in quotas.items()}
    leftover = limit - sum(counts.values())
    for label in sorted(quotas, key=lambda lbl: (-(quotas[lbl] - counts[lbl]), lbl))[:leftover]:
        counts[label] += 1
    rng = random.Random(seed)
    chosen: list[EvalItem] = []
    for label in sorted(groups):
        chosen.extend(rng.sample(groups[label], counts[label]))
    return sorted(chosen, key=lambda item: item.key)


def _choices(matching: str, not_matching: str | list[str] | None) -> tuple[str, ...]:
    others = not_matching if isinstance(not_matching, list) else [not_matching] if not_matching else []
    return (matching, *others)


def items_from_dataset(dataset: Dataset) -> list[EvalItem]:
    if not dataset.is_scorable:
        raise EvaluationError(
            f"'{dataset.slug}' is {dataset.get_purpose_display().lower()} without a gold answer per item; "
            "only labelled evaluation datasets can be scored"
        )
    rows = (
        Example.objects.filter(dataset=dataset)
        .exclude(answer_matching_behavior="")
        .order_by("position")
        .values_list(
            "id",
            "position",
            "question",
            "answer_matching_behavior",
            "answer_not_matching_behavior",
            "label_confidence",
        )
    )
    return [
        EvalItem(
            key=position,
            question=question,
            choices=_choices(matching, not_matching),
            label_confidence=conf,
            example_id=pk,
        )
        for pk, position, question, matching, not_matching, conf in rows
    ]


def items_from_jsonl(path: Path) -> tuple[list[EvalItem], str]:
    """Items of a released-format file, read without touching the database; and its format kind."""
    try:
        parsed = formats.read_evals_file(path, max_line_bytes=settings.MWE_IMPORT_MAX_LINE_BYTES)
    except formats.EvalsFormatError as exc:
        raise EvaluationError(str(exc)) from None
    if parsed.format.purpose != "evaluation" or not parsed.label_counts:
        raise EvaluationError(f"{path}: {parsed.format.description} has no gold answer per item to score")
    items = [
        EvalItem(
            key=r.position,
            question=r.question,
            choices=_choices(r.answer_matching_behavior, r.answer_not_matching_behavior),
            label_confidence=r.label_confidence,
        )
        for r in parsed.records
    ]
    return items, parsed.format.kind


# ----------------------------------------------------------------------------- scoring


def score_items(
    *,
    model: LanguageModel,
    items: Sequence[EvalItem],
    template: str,
    progress: Callable[[int], None] | None = None,
) -> list[ItemResult]:
    requests = [(template.format(question=item.question), item.choices) for item in items]
    scores = model.score_choices(requests, progress=progress)
    results = []
    for item, choice_scores in zip(items, scores, strict=True):
        logprobs = tuple(score.logprob for score in choice_scores)
        # Ties go to the first choice, the matching answer; with float log-probs they do not occur
        # in practice, and the per-item log-probs are stored so anyone can check.
        predicted = max(range(len(logprobs)), key=lambda i: (logprobs[i], -i))
        results.append(
            ItemResult(
                item=item,
                logprobs=logprobs,
                predicted_index=predicted,
                p_match=first_choice_probability(logprobs),
            )
        )
    return results


def summarize(*, n: int, matching: int, mean_p_match: float | None) -> Summary:
    if n == 0:
        return Summary(0, 0, None, None, None, None)
    low, high = proportion_confint(matching, n, alpha=0.05, method="wilson")
    return Summary(n, matching, 100.0 * matching / n, 100.0 * low, 100.0 * high, mean_p_match)


def summarize_results(results: Sequence[ItemResult]) -> Summary:
    matching = sum(r.matches_behavior for r in results)
    mean = sum(r.p_match for r in results) / len(results) if results else None
    return summarize(n=len(results), matching=matching, mean_p_match=mean)


# ----------------------------------------------------------------------------- runs (writes)


def evaluation_task_for(dataset: Dataset) -> str:
    """What a run on the dataset measures: Winogender schemas meant for evaluation get the paper's
    section 6 correlation (generation.evaluation.winogender); every other dataset the share of
    answers matching the behavior."""
    if dataset.kind == Dataset.Kind.WINOGENDER and dataset.purpose == Dataset.Purpose.EVALUATION:
        return EvaluationTask.WINOGENDER
    return EvaluationTask.BEHAVIOR


def evaluation_run_create(
    *,
    dataset: Dataset,
    model_spec: str,
    prompt_format: str,
    limit: int | None,
    seed: int = 0,
    created_by: AbstractBaseUser | None = None,
    scorer: str = "logprobs",
) -> EvaluationRun:
    """Checks everything that can be checked without a model, then records a queued run."""
    from generation.evaluation.scorers import scorer_run_check
    from generation.lm import parse_model_spec

    parse_model_spec(model_spec)  # raises ModelSpecError with the reason
    if prompt_format not in PromptFormat.values:
        raise EvaluationError(f"unknown prompt format {prompt_format!r}; use plain, paper or chat")
    scorer_run_check(scorer=scorer, prompt_format=prompt_format)
    if limit is not None and limit < 1:
        raise EvaluationError("the sample size must be at least 1")
    task = evaluation_task_for(dataset)
    if task == EvaluationTask.WINOGENDER:
        if scorer != "logprobs":
            raise EvaluationError("Winogender runs compare pronoun log-probs: use the logprobs scorer")
        # Scored by generation.evaluation.winogender, which leaves out sentences without a BLS figure.
        if not dataset.examples.exists():
            raise EvaluationError(f"'{dataset.slug}' has no sentences to score")
    else:
        items_from_dataset(dataset)  # raises for datasets without gold answers
    return EvaluationRun.objects.create(
        dataset=dataset,
        model_spec=model_spec.strip(),
        prompt_format=prompt_format,
        task=task,
        limit=limit,
        seed=seed,
        created_by=created_by,
        scorer=scorer,
    )


def evaluation_run_summary_store(run: EvaluationRun) -> None:
    stored = run.items.aggregate(
        n=Count("id"), matching=Count("id", filter=Q(matches_behavior=True)), mean=Avg("p_match")
    )
    summary = summarize(n=stored["n"], matching=stored["matching"], mean_p_match=stored["mean"])
    run.item_count = summary.n
    run.matching_count = summary.matching
    run.percent_matching = summary.percent_matching
    run.ci_low = summary.ci_low
    run.ci_high = summary.ci_high
    run.mean_p_match = summary.mean_p_match


def evaluation_run_execute(
    *,
    run: EvaluationRun,
    model: LanguageModel,
    progress: Callable[[int, int], None] | None = None,
) -> EvaluationRun:
    """Scores a run's items, storing them chunk by chunk. A run that was interrupted (a killed
    worker) resumes: items already stored are skipped, and the database refuses duplicates."""
    if run.task != EvaluationTask.BEHAVIOR:
        raise EvaluationError(
            f"run #{run.pk} is a {run.get_task_display()} run: generation.evaluation.winogender scores it"
        )
    dataset = run.dataset
    items = stratified_sample(items_from_dataset(dataset), limit=run.limit, seed=run.seed)
    if not items:
        # Its examples were deleted or lost their answers after the run was created: a run of no
        # items would report a share of nothing.
        run.status = EvaluationRun.Status.FAILED
        run.error = f"'{dataset.slug}' has no items with an answer to score"
        run.save(update_fields=["status", "error"])
        raise EvaluationError(run.error)
    from generation.evaluation import scorers

    if run.scorer == scorers.RunScorer.ANSWER:
        # Each question goes as a chat message of its own (scorers.answer_prompt): no completion prompt.
        template = scorers.ANSWER_TEMPLATE
    else:
        template = format_template(
            prompt_format=run.prompt_format, model=model, answer_prefix=dataset.answer_prefix
        )
    # The answer scorer's items whose reply names no choice are not stored; a resumed run asks them
    # again, so this session's list is the run's.
    unanswered: list[scorers.Unanswered] = []

    def score(chunk: Sequence[EvalItem], tick: Callable[[int], None]) -> list[ItemResult]:
        scored = scorers.score_items_by(
            scorer=run.scorer, model=model, items=chunk, template=template, progress=tick
        )
        unanswered.extend(scored.unanswered)
        return scored.results

    def store_figures(run: EvaluationRun) -> None:
        evaluation_run_summary_store(run)
        if run.scorer == scorers.RunScorer.ANSWER:
            run.results = {**run.results, "unanswered": scorers.unanswered_record(unanswered=unanswered)}

    run = evaluation_run_score(
        run=run,
        model=model,
        items=items,
        template=template,
        items_fingerprint=data_fingerprint(items),
        score=score,
        item_row=lambda r: evaluation_item_row(run=run, result=r),
        store_figures=store_figures,
        progress=progress,
    )
    if not run.item_count:
        # Every reply was unanswered: a share of nothing is no result.
        evaluation_run_fail(
            run=run,
            error=f"none of the {len(items)} items got a reply that names one answer choice; "
            "the run's page shows some of the replies",
        )
        raise EvaluationError(run.error)
    return run


def evaluation_run_score(
    *,
    run: EvaluationRun,
    model: LanguageModel,
    items: Sequence[Any],
    template: str,
    items_fingerprint: str,
    score: Callable[[Sequence[Any], Callable[[int], None]], Sequence[Any]],
    item_row: Callable[[Any], EvaluationItem],
    store_figures: Callable[[EvaluationRun], None],
    progress: Callable[[int, int], None] | None = None,
) -> EvaluationRun:
    """What a run of every task does the same way: it records the model and the fingerprints, scores
    the items not stored yet a chunk at a time (`score(chunk, tick)`; each result stored as
    `item_row(result)`), so that a run interrupted by a killed worker resumes where it stopped and the
    database refuses a second copy of an item; a model or scoring error marks the run failed; the
    task's figures (`store_figures`) and the run's end are written in one transaction. A suite
    (generation.evaluation.suites) does the same through the same pieces, for many runs at once."""
    evaluation_run_begin(run=run, model=model, template=template, items_fingerprint=items_fingerprint)
    todo = evaluation_run_todo(run=run, items=items)
    done = len(items) - len(todo)
    if progress:
        progress(done, len(items))
    scoring_seconds = 0.0
    try:
        for start in range(0, len(todo), CHUNK_ITEMS):
            chunk = todo[start : start + CHUNK_ITEMS]
            started = time.perf_counter()

            def tick(finished: int, base: int = done) -> None:
                nonlocal within
                within += finished
                if progress:
                    progress(base + within, len(items))

            within = 0
            results = score(chunk, tick)
            scoring_seconds += time.perf_counter() - started
            EvaluationItem.objects.bulk_create([item_row(r) for r in results], ignore_conflicts=True)
            done += len(chunk)
            if progress:
                progress(done, len(items))
    except (LMError, EvaluationError) as exc:
        evaluation_run_fail(run=run, error=str(exc))
        raise
    return evaluation_run_finish(
        run=run, store_figures=store_figures, scored=len(todo), scoring_seconds=scoring_seconds
    )


def evaluation_run_begin(
    *, run: EvaluationRun, model: LanguageModel, template: str, items_fingerprint: str
) -> None:
    """Records on a run about to be scored the model, the prompt and the data it is scored with,
    and marks it running (a resumed run's earlier error is cleared)."""
    run.model_name = model.info.name
    run.model_fingerprint = model.info.fingerprint
    run.model_info = model.info.as_dict()
    run.format_fingerprint = format_fingerprint(prompt_format=run.prompt_format, template=template)
    run.data_fingerprint = items_fingerprint
    run.status = EvaluationRun.Status.RUNNING
    run.error = ""
    run.save()


def evaluation_run_todo(*, run: EvaluationRun, items: Sequence[Any]) -> list[Any]:
    """The run's items not stored yet (items carry their example_id): what a resumed run scores."""
    done_ids = set(run.items.values_list("example_id", flat=True))
    return [item for item in items if item.example_id not in done_ids]


def evaluation_item_row(*, run: EvaluationRun, result: ItemResult) -> EvaluationItem:
    """A behavior item's result as the row stored for it."""
    return EvaluationItem(
        run=run,
        example_id=result.item.example_id,
        choices=list(result.item.choices),
        logprobs=list(result.logprobs),
        predicted_index=result.predicted_index,
        matches_behavior=result.matches_behavior,
        p_match=result.p_match,
        scorer=result.scorer,
    )


def evaluation_run_fail(*, run: EvaluationRun, error: str) -> None:
    run.status = EvaluationRun.Status.FAILED
    run.error = error
    run.save(update_fields=["status", "error"])


def evaluation_run_finish(
    *,
    run: EvaluationRun,
    store_figures: Callable[[EvaluationRun], None],
    scored: int,
    scoring_seconds: float,
) -> EvaluationRun:
    """Writes a run's figures from its stored items and its end, in one transaction. `scored` items
    took `scoring_seconds` in this session; a run resumed with nothing left keeps its earlier speed."""
    with transaction.atomic():
        store_figures(run)
        if scored:
            run.seconds = scoring_seconds
            run.items_per_second = scored / scoring_seconds if scoring_seconds > 0 else None
        run.status = EvaluationRun.Status.SUCCEEDED
        run.finished_at = timezone.now()
        run.save()
    return run
