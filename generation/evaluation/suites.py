"""Suites: several models scored on several datasets as one experiment, the paper's Fig. 1 and 5 (how
a behavior changes across models). Each (model, dataset) pair is an EvaluationRun of the suite, so a
suite's runs show on the site and in the API like any run, and a suite resumes per (model, dataset,
item) as a single run does.

What a suite does better than one run per pair: each model is loaded once, and the requests of all its
datasets are scored together, in mixed-dataset chunks (each item rendered with its own dataset's
template and answer prefix): LocalModel.score_choices sorts and batches whatever it is handed,
dedupes identical inputs and shares prefixes, so bigger mixed chunks batch better than one call per
dataset. The per-run pieces (fingerprints, resume, failure, figures) are the single run's own
(generation.evaluation.services); Winogender datasets are scored their own way (their own task and
template, generation.evaluation.winogender) with the model already loaded.
"""

from __future__ import annotations

import dataclasses
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from django.contrib.auth.models import AbstractBaseUser
from django.db import transaction
from django.utils import timezone

from generation.evaluation import scorers, winogender
from generation.evaluation.services import (
    CHUNK_ITEMS,
    EvalItem,
    EvaluationError,
    data_fingerprint,
    evaluation_item_row,
    evaluation_run_begin,
    evaluation_run_fail,
    evaluation_run_finish,
    evaluation_run_summary_store,
    evaluation_run_todo,
    evaluation_task_for,
    format_template,
    items_from_dataset,
    stratified_sample,
)
from generation.lm import LanguageModel, LMError, ModelSpecError, parse_model_spec
from generation.lm.specs import EMBEDDED_MODELS
from generation.models import (
    Collection,
    Dataset,
    EvaluationItem,
    EvaluationRun,
    EvaluationSuite,
    EvaluationTask,
    PromptFormat,
    RunScorer,
)

# Bounds on what one suite may ask for: a model is loaded (or a server called) per spec, and each
# (model, dataset) pair is a run row; 20 x 500 is 10,000 runs, a few hours of a small model on 2 cores.
MAX_SUITE_MODELS = 20
MAX_SUITE_DATASETS = 500
MAX_SEED = 2**31 - 1
# The embedded models (smollm2-135m, gemma3-270m), the default of the suite form: a fresh clone has them.
EMBEDDED_SUITE_MODELS = tuple(EMBEDDED_MODELS)


class SuiteCancelled(Exception):
    """The suite's job was cancelled; it stopped between two chunks, with every stored item kept."""


@dataclass(frozen=True)
class SuiteProgress:
    """Where a suite is: items done of all items of all its models, and the model at work."""

    done: int
    total: int
    model_spec: str
    loading: bool = False

    @property
    def message(self) -> str:
        if self.loading:
            return f"Loading {self.model_spec}"
        return f"Scoring {self.model_spec}: {self.done:,} of {self.total:,} items"


# ----------------------------------------------------------------------------- choosing datasets


def suite_dataset_is_scorable(dataset: Dataset) -> bool:
    """Whether a suite can score the dataset: a labelled evaluation dataset, or Winogender sentences
    meant for evaluation (scored by their own task). From the dataset's stored statistics only, no
    query, so that checking hundreds of datasets stays cheap."""
    return dataset.is_scorable or evaluation_task_for(dataset) == EvaluationTask.WINOGENDER


def _unscorable_reason(dataset: Dataset) -> str:
    if dataset.purpose != Dataset.Purpose.EVALUATION:
        return dataset.get_purpose_display().lower()
    return "no gold answer per item"


def suite_datasets_select(
    *, slugs: Iterable[str] = (), collections: Iterable[str] = (), everything: bool = False
) -> list[Dataset]:
    """The datasets named (in the order given), then the scorable ones of the collections named, or
    every scorable evaluation dataset; each once. A slug or collection that does not exist is an
    error; so is a collection with nothing to score. A dataset named by slug is kept even when it
    cannot be scored, so that suite_create says why."""
    chosen: dict[int, Dataset] = {}
    slugs = [slug.strip() for slug in slugs]
    if slugs:
        found = {d.slug: d for d in Dataset.objects.select_related("collection").filter(slug__in=slugs)}
        missing = [slug for slug in slugs if slug not in found]
        if missing:
            raise EvaluationError(f"no dataset with slug {', '.join(map(repr, missing))}")
        for slug in slugs:
            chosen.setdefault(found[slug].pk, found[slug])
    collections = [slug.strip() for slug in collections]
    if collections:
        known = set(Collection.objects.filter(slug__in=collections).values_list("slug", flat=True))
        missing = [slug for slug in collections if slug not in known]
        if missing:
            raise EvaluationError(f"no collection with slug {', '.join(map(repr, missing))}")
        for slug in collections:
            members = [
                d
                for d in Dataset.objects.select_related("collection")
                .filter(collection__slug=slug, purpose=Dataset.Purpose.EVALUATION)
                .order_by("slug")
                if suite_dataset_is_scorable(d)
            ]
            if not members:
                raise EvaluationError(f"collection {slug!r} has no dataset that can be scored")
            for dataset in members:
                chosen.setdefault(dataset.pk, dataset)
    if everything:
        for dataset in (
            Dataset.objects.select_related("collection")
            .filter(purpose=Dataset.Purpose.EVALUATION)
            .order_by("collection__slug", "slug")
        ):
            if suite_dataset_is_scorable(dataset):
                chosen.setdefault(dataset.pk, dataset)
    return list(chosen.values())


# ----------------------------------------------------------------------------- creating


def suite_create(
    *,
    model_specs: Sequence[str],
    datasets: Sequence[Dataset],
    prompt_format: str = PromptFormat.PAPER,
    scorer: str = RunScorer.LOGPROBS,
    limit: int | None = None,
    seed: int = 0,
    name: str = "",
    created_by: AbstractBaseUser | None = None,
) -> EvaluationSuite:
    """Checks everything that can be checked without loading a model, then records the suite and one
    queued run per (model, dataset), models first, in one transaction. Raises EvaluationError with the
    reason, having written nothing."""
    if prompt_format not in PromptFormat.values:
        raise EvaluationError(f"unknown prompt format {prompt_format!r}; use plain, paper or chat")
    scorers.scorer_run_check(scorer=scorer, prompt_format=prompt_format)
    specs = [spec.strip() for spec in model_specs]
    if not specs:
        raise EvaluationError("a suite needs at least one model")
    if len(specs) > MAX_SUITE_MODELS:
        raise EvaluationError(f"a suite takes at most {MAX_SUITE_MODELS} models; {len(specs)} given")
    for spec in specs:
        if not spec:
            raise EvaluationError("a model spec is empty")
        try:
            parse_model_spec(spec)
        except ModelSpecError as exc:
            raise EvaluationError(f"model {spec!r}: {exc}") from None
    repeated = [spec for spec, count in Counter(specs).items() if count > 1]
    if repeated:
        raise EvaluationError(f"model {', '.join(map(repr, repeated))} given more than once")

    datasets = list(datasets)
    if not datasets:
        raise EvaluationError("a suite needs at least one dataset")
    if len(datasets) > MAX_SUITE_DATASETS:
        raise EvaluationError(f"a suite takes at most {MAX_SUITE_DATASETS} datasets; {len(datasets)} given")
    repeated_ds = [slug for slug, count in Counter(d.slug for d in datasets).items() if count > 1]
    if repeated_ds:
        raise EvaluationError(f"dataset {', '.join(map(repr, repeated_ds))} given more than once")
    unscorable = [d for d in datasets if not suite_dataset_is_scorable(d)]
    if unscorable:
        raise EvaluationError(
            "only labelled evaluation datasets can be scored; not "
            + ", ".join(f"'{d.slug}' ({_unscorable_reason(d)})" for d in unscorable[:10])
            + (f" and {len(unscorable) - 10} more" if len(unscorable) > 10 else "")
        )

    if scorer != RunScorer.LOGPROBS and any(
        evaluation_task_for(d) == EvaluationTask.WINOGENDER for d in datasets
    ):
        raise EvaluationError("Winogender runs compare pronoun log-probs: use the logprobs scorer")
    if limit is not None and limit < 1:
        raise EvaluationError("the sample size must be at least 1")
    if not 0 <= seed <= MAX_SEED:
        raise EvaluationError(f"the seed must be between 0 and {MAX_SEED}")
    name = name.strip()
    if len(name) > EvaluationSuite._meta.get_field("name").max_length:
        raise EvaluationError("the name is longer than 200 characters")

    with transaction.atomic():
        suite = EvaluationSuite.objects.create(
            name=name,
            model_specs=specs,
            prompt_format=prompt_format,
            scorer=scorer,
            limit=limit,
            seed=seed,
            created_by=created_by,
        )
        suite.datasets.set(datasets)
        EvaluationRun.objects.bulk_create(
            [
                EvaluationRun(
                    suite=suite,
                    dataset=dataset,
                    model_spec=spec,
                    prompt_format=prompt_format,
                    task=evaluation_task_for(dataset),
                    scorer=scorer,
                    limit=limit,
                    seed=seed,
                    created_by=created_by,
                )
                for spec in specs
                for dataset in datasets
            ]
        )
    return suite


# ----------------------------------------------------------------------------- executing


@dataclass
class _DatasetItems:
    """A dataset's items as every model of the suite scores them (the sample depends on the seed, not
    the model); for a Winogender dataset only their number (its own task reads them again)."""

    items: list[EvalItem]
    count: int
    fingerprint: str = ""
    error: str = ""


def _dataset_items(run: EvaluationRun) -> _DatasetItems:
    dataset = run.dataset
    if run.task == EvaluationTask.WINOGENDER:
        found = winogender.items_from_dataset(dataset)
        count = len(winogender.sample(found.items, limit=run.limit, seed=run.seed))
        return _DatasetItems(items=[], count=count)
    try:
        items = stratified_sample(items_from_dataset(dataset), limit=run.limit, seed=run.seed)
    except EvaluationError as exc:
        return _DatasetItems(items=[], count=0, error=str(exc))
    if not items:
        # The single run's reason (evaluation_run_execute): examples deleted or unlabelled since.
        return _DatasetItems(
            items=[], count=0, error=f"'{dataset.slug}' has no items with an answer to score"
        )
    return _DatasetItems(items=items, count=len(items), fingerprint=data_fingerprint(items))


@dataclass
class _ModelTiming:
    load_seconds: float = 0.0
    scoring_seconds: float = 0.0
    items_scored: int = 0


class _Suite:
    """One execution of a suite: its runs, their items, and the count of items done over all models."""

    def __init__(
        self,
        *,
        suite: EvaluationSuite,
        progress: Callable[[SuiteProgress], None] | None,
        should_cancel: Callable[[], bool] | None,
    ) -> None:
        self.suite = suite
        self.runs = list(suite.runs.select_related("dataset").order_by("id"))
        self.progress = progress
        self.should_cancel = should_cancel
        self.items: dict[int, _DatasetItems] = {}
        for run in self.runs:
            if run.dataset_id not in self.items:
                self.items[run.dataset_id] = _dataset_items(run)
        self.total = sum(self.items[run.dataset_id].count for run in self.runs)
        self.done = EvaluationItem.objects.filter(run__suite=suite).count()

    def report(self, model_spec: str, *, loading: bool = False) -> None:
        if self.progress:
            self.progress(
                SuiteProgress(
                    done=min(self.done, self.total), total=self.total, model_spec=model_spec, loading=loading
                )
            )

    def check_cancel(self) -> None:
        if self.should_cancel is not None and self.should_cancel():
            raise SuiteCancelled(f"suite #{self.suite.pk} was cancelled")

    def score_behavior(self, *, spec: str, model: LanguageModel, runs: list[EvaluationRun], timing) -> None:
        """The behavior runs of one model: their not-yet-stored items in mixed-dataset chunks, each item
        rendered with its own run's template, each result stored to its run; a run is finished as soon
        as its last item is scored. Scoring time is shared among a chunk's runs by their items in it."""
        answer = self.suite.scorer == RunScorer.ANSWER
        queue: list[tuple[EvaluationRun, EvalItem]] = []
        remaining: dict[int, int] = {}
        seconds: dict[int, float] = defaultdict(float)
        todo_counts: dict[int, int] = {}
        unanswered: dict[int, list[scorers.Unanswered]] = defaultdict(list)
        templates: dict[str, str] = {}
        for run in runs:
            entry = self.items[run.dataset_id]
            if entry.error:
                evaluation_run_fail(run=run, error=entry.error)
                continue
            prefix = run.dataset.answer_prefix
            if answer:
                # Each question goes as a chat message of its own (scorers.answer_prompt), as in a
                # single run: no completion prompt to render.
                template = scorers.ANSWER_TEMPLATE
            elif prefix not in templates:
                # The chat format needs the model's template: an EvaluationError here fails the model.
                template = templates[prefix] = format_template(
                    prompt_format=run.prompt_format, model=model, answer_prefix=prefix
                )
            else:
                template = templates[prefix]
            evaluation_run_begin(run=run, model=model, template=template, items_fingerprint=entry.fingerprint)
            todo = evaluation_run_todo(run=run, items=entry.items)
            todo_counts[run.pk] = remaining[run.pk] = len(todo)
            if not todo:
                self.finish(run=run, scored=0, seconds=0.0, unanswered=[])
                continue
            if answer:
                queue.extend((run, item) for item in todo)
            else:
                queue.extend(
                    (run, dataclasses.replace(item, question=template.format(question=item.question)))
                    for item in todo
                )

        for start in range(0, len(queue), CHUNK_ITEMS):
            self.check_cancel()
            chunk = queue[start : start + CHUNK_ITEMS]
            base = self.done

            def tick(finished: int) -> None:
                self.done += finished
                self.report(spec)

            started = time.perf_counter()
            # Rendered already (each with its dataset's template), so the scorer's template is the
            # bare question and one call carries the requests of every dataset in the chunk (the
            # answer scorer sends the questions as they are, as in a single run).
            scored = scorers.score_items_by(
                scorer=self.suite.scorer,
                model=model,
                items=[item for _, item in chunk],
                template="{question}",
                progress=tick,
            )
            elapsed = time.perf_counter() - started
            timing.scoring_seconds += elapsed
            timing.items_scored += len(chunk)
            # Example ids are unique across datasets: each result goes back to its own run.
            run_of = {item.example_id: run for run, item in chunk}
            EvaluationItem.objects.bulk_create(
                [evaluation_item_row(run=run_of[r.item.example_id], result=r) for r in scored.results],
                ignore_conflicts=True,
            )
            for missed in scored.unanswered:
                unanswered[run_of[missed.item.example_id].pk].append(missed)
            self.done = base + len(chunk)
            self.report(spec)
            in_chunk = Counter(run.pk for run, _ in chunk)
            chunk_runs = {run.pk: run for run, _ in chunk}
            for pk, count in in_chunk.items():
                seconds[pk] += elapsed * count / len(chunk)
                remaining[pk] -= count
                if remaining[pk] == 0:
                    self.finish(
                        run=chunk_runs[pk],
                        scored=todo_counts[pk],
                        seconds=seconds[pk],
                        unanswered=unanswered[pk],
                    )

    def finish(
        self, *, run: EvaluationRun, scored: int, seconds: float, unanswered: list[scorers.Unanswered]
    ) -> None:
        """A behavior run's end, written as a single run writes it (evaluation_run_execute)."""

        def store_figures(run: EvaluationRun) -> None:
            evaluation_run_summary_store(run)
            if run.scorer == RunScorer.ANSWER:
                run.results = {**run.results, "unanswered": scorers.unanswered_record(unanswered=unanswered)}

        evaluation_run_finish(run=run, store_figures=store_figures, scored=scored, scoring_seconds=seconds)
        if not run.item_count:
            # Every reply was unanswered (the answer scorer): a share of nothing is no result.
            evaluation_run_fail(
                run=run,
                error=f"none of the {scored} items got a reply that names one answer choice; "
                "the run's page shows some of the replies",
            )

    def score_winogender(self, *, spec: str, model: LanguageModel, runs: list[EvaluationRun], timing) -> None:
        """Winogender runs, one after the other through their own task with the loaded model. A run
        that cannot be scored (no sentence with a BLS figure) fails alone; a model error fails the model."""
        for run in runs:
            self.check_cancel()
            stored = run.items.count()
            base = self.done - stored
            count = self.items[run.dataset_id].count

            def progress(done: int, total: int, base: int = base) -> None:
                self.done = base + done
                self.report(spec)

            started = time.perf_counter()
            try:
                winogender.evaluation_run_execute_any(run=run, model=model, progress=progress)
            except EvaluationError:
                continue  # the run is marked failed with the reason; the suite lists it
            finally:
                timing.scoring_seconds += time.perf_counter() - started
            timing.items_scored += count - stored
            self.done = base + count


def suite_execute(
    *,
    suite: EvaluationSuite,
    load_model: Callable[[str], LanguageModel],
    progress: Callable[[SuiteProgress], None] | None = None,
    should_cancel: Callable[[], bool] | None = None,
    release_model: Callable[[LanguageModel], None] | None = None,
) -> EvaluationSuite:
    """Scores every run of the suite not yet succeeded, model by model in the suite's order: each
    model loaded once (`load_model(spec)`; `release_model(model)` once its runs are done, for callers
    that own what they loaded), the not-yet-stored items of all its runs scored together. Progress
    counts items over the whole suite. A model that fails to load or to score fails its unfinished
    runs with the reason, and the suite goes on with the next; the suite ends failed (with the
    reasons) if any run failed, else succeeded. `should_cancel` is asked between chunks: when it says
    yes, the unfinished runs and the suite are marked cancelled and SuiteCancelled is raised."""
    suite.status = EvaluationSuite.Status.RUNNING
    suite.error = ""
    suite.finished_at = None
    suite.save(update_fields=["status", "error", "finished_at"])
    state = _Suite(suite=suite, progress=progress, should_cancel=should_cancel)
    suite.item_count = state.total
    suite.save(update_fields=["item_count"])
    entries: dict[str, dict[str, Any]] = {
        entry["model_spec"]: entry for entry in (suite.results or {}).get("models", [])
    }
    failures: list[str] = []
    try:
        for spec in suite.model_specs:
            pending = [
                r for r in state.runs if r.model_spec == spec and r.status != EvaluationRun.Status.SUCCEEDED
            ]
            if not pending:
                continue
            state.check_cancel()
            entry = _model_execute(
                state=state, spec=spec, runs=pending, load_model=load_model, release_model=release_model
            )
            entries[spec] = entry
            suite.results = {"models": [entries[s] for s in suite.model_specs if s in entries]}
            suite.save(update_fields=["results"])
            if entry["error"]:
                failures.append(f"{spec}: {entry['error']}")
    except SuiteCancelled:
        _suite_cancel(suite=suite)
        raise
    failed_runs = EvaluationRun.objects.filter(suite=suite, status=EvaluationRun.Status.FAILED)
    for run in failed_runs.select_related("dataset").order_by("id"):
        if not any(failure.startswith(f"{run.model_spec}: ") for failure in failures):
            failures.append(f"{run.model_spec} on {run.dataset.slug}: {run.error}")
    suite.status = EvaluationSuite.Status.FAILED if failures else EvaluationSuite.Status.SUCCEEDED
    suite.error = "\n".join(failures)
    suite.finished_at = timezone.now()
    suite.save(update_fields=["status", "error", "finished_at"])
    return suite


def _model_execute(
    *,
    state: _Suite,
    spec: str,
    runs: list[EvaluationRun],
    load_model: Callable[[str], LanguageModel],
    release_model: Callable[[LanguageModel], None] | None,
) -> dict[str, Any]:
    """One model's part of a suite; returns its entry of suite.results."""
    timing = _ModelTiming()
    entry: dict[str, Any] = {"model_spec": spec, "model_name": "", "model_fingerprint": "", "error": ""}
    state.report(spec, loading=True)
    started = time.perf_counter()
    try:
        model = load_model(spec)
    except LMError as exc:
        error = f"could not load the model: {exc}"
        for run in runs:
            evaluation_run_fail(run=run, error=error)
        return {**entry, "error": error, **_timing_entry(timing)}
    timing.load_seconds = time.perf_counter() - started
    entry.update(model_name=model.info.name, model_fingerprint=model.info.fingerprint)
    state.report(spec)
    try:
        behavior = [r for r in runs if r.task == EvaluationTask.BEHAVIOR]
        state.score_behavior(spec=spec, model=model, runs=behavior, timing=timing)
        state.score_winogender(
            spec=spec,
            model=model,
            runs=[r for r in runs if r.task == EvaluationTask.WINOGENDER],
            timing=timing,
        )
    except (LMError, EvaluationError) as exc:
        # A model error (a server gone, a chat format without a chat template) would fail every
        # remaining run of this model the same way: they fail now, with the reason, and the suite
        # goes on with the next model. Runs already finished keep their results.
        entry["error"] = str(exc)
        finished = set(
            EvaluationRun.objects.filter(
                pk__in=[r.pk for r in runs], status=EvaluationRun.Status.SUCCEEDED
            ).values_list("pk", flat=True)
        )
        for run in runs:
            if run.pk not in finished:
                evaluation_run_fail(run=run, error=str(exc))
    finally:
        if release_model is not None:
            release_model(model)
    return {**entry, **_timing_entry(timing)}


def _timing_entry(timing: _ModelTiming) -> dict[str, Any]:
    return {
        "load_seconds": round(timing.load_seconds, 3),
        "scoring_seconds": round(timing.scoring_seconds, 3),
        "items_scored": timing.items_scored,
        "items_per_second": (
            round(timing.items_scored / timing.scoring_seconds, 3) if timing.scoring_seconds > 0 else None
        ),
    }


def _suite_cancel(*, suite: EvaluationSuite) -> None:
    now = timezone.now()
    EvaluationRun.objects.filter(
        suite=suite, status__in=[EvaluationRun.Status.QUEUED, EvaluationRun.Status.RUNNING]
    ).update(status=EvaluationRun.Status.CANCELLED, finished_at=now)
    suite.status = EvaluationSuite.Status.CANCELLED
    suite.finished_at = now
    suite.save(update_fields=["status", "finished_at"])
