"""The paper's method (Perez et al., 2022, sections 2-6), the same pipeline for every method: a
generator LM writes candidate examples for a behavior, p_g(x | y); a discriminator LM scores each
candidate's label, p_d(y | x), from answer log-probabilities, and each further requirement (e.g.
relevance); the best per label are kept, exact and near-duplicates removed, and every decision is
stored with its reason. What differs between persona statements, few-shot multiple choice,
sycophancy biographies and Winogender schemas (prompts, parsing, the discriminator's questions, the
released format) lives in generation.pipeline.methods, and how scores become decisions in
generation.pipeline.selection.

A run works in checkpoints: generation is stored a batch at a time under idempotent keys
(run, label, sample index), scores a chunk at a time, each phase's selection in one transaction, and
the dataset in one transaction at the end. A run interrupted anywhere resumes where it stopped, and
because every batch is sampled with its own seed, a resumed run writes what an uninterrupted one
would have.
"""

from __future__ import annotations

import hashlib
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from django.contrib.auth.models import AbstractBaseUser
from django.db import transaction
from django.utils import timezone

from generation.catalog.services import collection_get_or_create, dataset_refresh_stats
from generation.lm import LanguageModel, SamplingParams, choice_probabilities
from generation.models import Candidate, Collection, Dataset, Example, GenerationRun
from generation.pipeline.methods import BaseSpec, Method, method_for, spec_from_dict
from generation.pipeline.methods.base import GenerationError
from generation.pipeline.selection import ASKED, apply_scores, select_candidates

__all__ = [
    "GENERATED_COLLECTION",
    "GenerationCancelled",
    "GenerationError",
    "Models",
    "Progress",
    "batch_seed",
    "generation_run_create",
    "generation_run_execute",
    "run_sampling",
    "run_spec",
]

SCORE_CHUNK = 64
GENERATED_COLLECTION = "generated"


class GenerationCancelled(Exception):
    pass


def batch_seed(*, seed: int, label: str, start: int) -> int:
    """A seed per (label, batch), so any batch can be re-sampled on its own and come out the same."""
    digest = hashlib.sha256(f"{seed}|{label}|{start}".encode()).digest()
    return int.from_bytes(digest[:4], "big")


def run_spec(run: GenerationRun) -> BaseSpec:
    return spec_from_dict(method=run.method, data=run.spec)


def run_sampling(run: GenerationRun) -> dict[str, Any]:
    """A run's sampling profile and each phase's resolved values ({"profile", "phases": {phase:
    {temperature, top_p, max_tokens, stop, calibrate}}}): as the run recorded them, or, for a run made
    before runs recorded them, resolved from its stored spec."""
    recorded = (run.generator_info or {}).get("sampling")
    return recorded if recorded else method_for(run_spec(run)).sampling_record()


# ----------------------------------------------------------------------------- runs (writes)


def generation_run_create(*, spec: BaseSpec, created_by: AbstractBaseUser | None = None) -> GenerationRun:
    spec.validate()
    method = method_for(spec)
    if (
        Dataset.objects.filter(slug=spec.slug).exists()
        or GenerationRun.objects.filter(slug=spec.slug).in_progress().exists()
    ):
        raise GenerationError(f"the slug '{spec.slug}' is taken by a dataset or a run in progress")
    return GenerationRun.objects.create(
        method=spec.method,
        slug=spec.slug,
        behavior=spec.behavior.strip(),
        description=spec.description.strip(),
        spec=spec.as_dict(),
        # The profile's name and the values it resolves to, recorded before any model is loaded, so the
        # run's page says how it will sample; the worker records them again with the model's info.
        generator_info={"sampling": method.sampling_record()},
        created_by=created_by,
    )


@dataclass
class Models:
    generator: LanguageModel
    discriminator: LanguageModel
    embedder: Any  # generation.lm.embeddings.Embedder; anything with .embed(texts) and .info


@dataclass
class Progress:
    """What a run reports as it goes: (stage, done, total)."""

    report: Callable[[str, int, int], None] | None = None
    should_cancel: Callable[[], bool] | None = None
    counts: dict[str, int] = field(default_factory=dict)

    def __call__(self, stage: str, done: int, total: int) -> None:
        if self.report:
            self.report(stage, done, total)
        if self.should_cancel and self.should_cancel():
            raise GenerationCancelled()


def generation_run_execute(
    *, run: GenerationRun, models: Models, progress: Progress | None = None
) -> GenerationRun:
    spec = run_spec(run)
    method = method_for(spec)
    progress = progress or Progress()
    if run.dataset_id is not None:
        return run  # a redelivered job of a finished run
    run.generator_info = {**models.generator.info.as_dict(), "sampling": method.sampling_record()}
    run.discriminator_info = {
        **models.discriminator.info.as_dict(),
        "embedder": models.embedder.info.as_dict(),
    }
    run.status = GenerationRun.Status.RUNNING
    run.error = ""
    run.save(update_fields=["generator_info", "discriminator_info", "status", "error"])
    phases = method.phases()
    try:
        kept: list[Candidate] = []
        for phase in phases:
            stage = "" if len(phases) == 1 else f" {phase}"
            labels = method.labels(phase=phase, kept_earlier=kept)
            _generate(
                run=run,
                method=method,
                phase=phase,
                labels=labels,
                generator=models.generator,
                progress=progress,
                stage=stage,
            )
            _score(
                run=run,
                method=method,
                phase=phase,
                discriminator=models.discriminator,
                progress=progress,
                stage=stage,
            )
            kept = _select(run=run, method=method, phase=phase, labels=labels, embedder=models.embedder)
        _publish(run=run, method=method, kept=kept)
    except GenerationCancelled:
        run.status = GenerationRun.Status.CANCELLED
        run.finished_at = timezone.now()
        run.save(update_fields=["status", "finished_at"])
        raise
    except Exception as exc:
        run.status = GenerationRun.Status.FAILED
        run.error = f"{type(exc).__name__}: {exc}"
        run.save(update_fields=["status", "error"])
        raise
    return run


def _phase_candidates(run: GenerationRun, method: Method, phase: str, **filters: Any) -> list[Candidate]:
    """A phase's candidates in their stable order. Filtered here rather than with label__in: a
    Winogender run has a label per occupation, more than SQLite's limit on query parameters."""
    candidates = run.candidates.filter(**filters).order_by("label", "sample_index")
    return [c for c in candidates if method.phase_of(c.label) == phase]


def _generate(
    *,
    run: GenerationRun,
    method: Method,
    phase: str,
    labels: Sequence[str],
    generator: LanguageModel,
    progress: Progress,
    stage: str,
) -> None:
    spec = method.spec
    per_label = method.samples_per_label(phase=phase)
    total = len(labels) * per_label
    wanted = set(labels)
    done_keys = {
        (label, index)
        for label, index in run.candidates.values_list("label", "sample_index")
        if label in wanted
    }
    done = len(done_keys)
    progress(f"generating{stage}", done, total)
    sampling = method.sampling_profile(phase=phase)
    for label in labels:
        for start in range(0, per_label, spec.batch_size):
            indices = range(start, min(start + spec.batch_size, per_label))
            if all((label, i) in done_keys for i in indices):
                continue
            seed = batch_seed(seed=spec.seed, label=label, start=start)
            prompt = method.prompt(generator=generator, phase=phase, label=label, seed=seed)
            params = SamplingParams(
                n=len(indices),
                temperature=sampling.temperature,
                top_p=sampling.top_p,
                max_tokens=sampling.max_tokens,
                stop=sampling.stop,
                seed=seed,
            )
            (outputs,) = generator.generate([prompt], params)
            candidates = []
            for index, raw in zip(indices, outputs, strict=True):
                parsed = method.parse(phase=phase, label=label, raw=raw, prompt=prompt)
                candidates.append(
                    Candidate(
                        run=run,
                        label=label,
                        sample_index=index,
                        seed=seed,
                        prompt=prompt,
                        raw_output=raw,
                        text=parsed.text,
                        parsed=parsed.parsed or {},
                        decision=Candidate.Decision.DROPPED if parsed.problem else Candidate.Decision.PENDING,
                        reason=Candidate.Reason.UNPARSEABLE if parsed.problem else "",
                        reason_detail={"problem": parsed.problem} if parsed.problem else {},
                    )
                )
            # A batch is stored whole or not at all, so a resumed run regenerates whole batches only.
            Candidate.objects.bulk_create(candidates, ignore_conflicts=True)
            done += len(candidates)
            progress(f"generating{stage}", done, total)


def _score(
    *,
    run: GenerationRun,
    method: Method,
    phase: str,
    discriminator: LanguageModel,
    progress: Progress,
    stage: str,
) -> None:
    """Stores the discriminator's raw answer probabilities for each question, and the questions
    themselves (prompt and choices, the candidate's provenance); label probabilities come from these
    at selection, once the whole phase is scored (calibration needs all of them)."""
    parsed = _phase_candidates(run, method, phase, text__gt="")
    todo = [c for c in parsed if not c.scores]
    total = len(parsed)
    done = total - len(todo)
    progress(f"scoring{stage}", done, total)
    for start in range(0, len(todo), SCORE_CHUNK):
        chunk = todo[start : start + SCORE_CHUNK]
        asked = [method.questions(phase=phase, label=c.label, text=c.text, parsed=c.parsed) for c in chunk]
        requests = [(q.prompt, list(q.choices)) for questions in asked for q in questions]
        answers = iter(discriminator.score_choices(requests))
        for candidate, questions in zip(chunk, asked, strict=True):
            candidate.scores = {
                "raw_p": {
                    q.name: choice_probabilities([s.logprob for s in next(answers)]) for q in questions
                },
                ASKED: {q.name: {"prompt": q.prompt, "choices": list(q.choices)} for q in questions},
            }
        Candidate.objects.bulk_update(chunk, ["scores"])
        done += len(chunk)
        progress(f"scoring{stage}", done, total)


def _select(
    *, run: GenerationRun, method: Method, phase: str, labels: Sequence[str], embedder: Any
) -> list[Candidate]:
    """Scores become decisions for one phase, saved in one transaction; returns the kept ones.
    Re-running it gives the same decisions, so a resumed run may repeat it safely."""
    candidates = _phase_candidates(run, method, phase)
    scoring = apply_scores(candidates=candidates, spec=method.spec, phase=phase)
    select_candidates(
        candidates=candidates,
        spec=method.spec,
        embed=embedder.embed,
        failing=scoring.failing,
        phase=phase,
        labels=labels,
        describe=method.describe_label,
    )
    with transaction.atomic():
        Candidate.objects.bulk_update(
            candidates,
            ["decision", "reason", "reason_detail", "duplicate_of", "scores", "label_probability", "parsed"],
        )
        calibration = dict(run.discriminator_info.get("calibration") or {})
        calibration[phase] = {"method": "batch", "mean_answer": scoring.bias} if scoring.bias else None
        run.discriminator_info = {**run.discriminator_info, "calibration": calibration}
        run.save(update_fields=["discriminator_info"])
    return [c for c in candidates if c.decision == Candidate.Decision.KEPT]


def _publish(*, run: GenerationRun, method: Method, kept: list[Candidate]) -> None:
    spec = method.spec
    # File order is shuffled with the run's seed: released files sorted by confidence invite
    # "take the first N" samples that are all easy.
    kept = sorted(kept, key=lambda c: (c.label, c.sample_index))
    random.Random(spec.seed).shuffle(kept)
    records = method.records(kept=kept)
    with transaction.atomic():
        collection = collection_get_or_create(slug=GENERATED_COLLECTION)
        if collection.name == GENERATED_COLLECTION.capitalize():
            Collection.objects.filter(pk=collection.pk).update(
                name="Generated", description="Datasets written on this site by the generation pipeline."
            )
        dataset = Dataset.objects.create(
            collection=collection,
            slug=spec.slug,
            behavior=spec.behavior.strip(),
            description=records.description,
            kind=records.kind,
            origin=Dataset.Origin.GENERATED,
            purpose=Dataset.Purpose.EVALUATION,
            field_order=records.field_order,
            answer_prefix=records.answer_prefix,
            json_ensure_ascii=True,
            import_report={"format": method.name, "generation_run": run.pk, "warnings": []},
            created_by=run.created_by,
        )
        examples = Example.objects.bulk_create(
            [
                Example(
                    dataset=dataset,
                    position=position,
                    question=row.get("question", ""),
                    statement=row.get("statement", ""),
                    answer_matching_behavior=row.get("answer_matching_behavior", ""),
                    answer_not_matching_behavior=row.get("answer_not_matching_behavior"),
                    label_confidence=row.get("label_confidence"),
                    extra=row.get("extra", {}),
                    text_hash=row["text_hash"],
                )
                for position, row in enumerate(records.rows)
            ]
        )
        sources = range(len(kept)) if records.sources is None else records.sources
        first_example: dict[int, Example] = {}
        for source, example in zip(sources, examples, strict=True):
            first_example.setdefault(source, example)
        for index, candidate in enumerate(kept):
            candidate.example = first_example.get(index)
        Candidate.objects.bulk_update(kept, ["example"])
        dataset_refresh_stats(dataset=dataset)
        run.dataset = dataset
        run.status = GenerationRun.Status.SUCCEEDED
        run.finished_at = timezone.now()
        run.save(update_fields=["dataset", "status", "finished_at"])
