"""Reads of evaluation runs and their items, shared by the evaluation pages, the API and the charts.

Every function here runs a fixed number of queries whatever the number of runs or items, so the pages
that use them stay flat as results accumulate."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from django.db.models import Count, QuerySet
from django.urls import reverse

from generation.evaluation.services import EvaluationError
from generation.models import Collection, EvaluationItem, EvaluationRun, Example, RunScorer, Scorer

# The overview table's sorts: a whitelist, so a query string never reaches order_by unchecked.
RUN_SORTS = {
    "dataset": ("dataset__slug", "model_spec", "prompt_format", "-created_at"),
    "-dataset": ("-dataset__slug", "model_spec", "prompt_format", "-created_at"),
    "model": ("model_spec", "prompt_format", "dataset__slug", "-created_at"),
    "-model": ("-model_spec", "prompt_format", "dataset__slug", "-created_at"),
    "format": ("prompt_format", "model_spec", "dataset__slug", "-created_at"),
    "-format": ("-prompt_format", "model_spec", "dataset__slug", "-created_at"),
    "percent": ("percent_matching", "dataset__slug", "-created_at"),
    "-percent": ("-percent_matching", "dataset__slug", "-created_at"),
    "items": ("item_count", "dataset__slug", "-created_at"),
    "-items": ("-item_count", "dataset__slug", "-created_at"),
    "finished": ("finished_at", "id"),
    "-finished": ("-finished_at", "-id"),
}
DEFAULT_RUN_SORT = "dataset"
# Enough to see what is in flight or went wrong without turning the overview into a job log.
UNFINISHED_RUNS_SHOWN = 20


def run_error_visible(*, user: Any) -> bool:
    """Whether a user may read why a run (evaluation or generation) or its job failed. Errors hold what
    a model server answered (up to 500 characters of whatever an internal URL returns) and the worker's
    file paths, so the public sees only that a run failed."""
    return bool(user is not None and user.is_active and user.is_staff)


def _filtered_runs(
    *, model_spec: str = "", prompt_format: str = "", collection: str = "", dataset: str = ""
) -> QuerySet[EvaluationRun]:
    runs = EvaluationRun.objects.select_related("dataset__collection")
    if model_spec:
        runs = runs.filter(model_spec=model_spec)
    if prompt_format:
        runs = runs.filter(prompt_format=prompt_format)
    if collection:
        runs = runs.filter(dataset__collection__slug=collection)
    if dataset:
        runs = runs.filter(dataset__slug=dataset)
    return runs


def run_list(
    *,
    model_spec: str = "",
    prompt_format: str = "",
    collection: str = "",
    dataset: str = "",
    sort: str = DEFAULT_RUN_SORT,
) -> QuerySet[EvaluationRun]:
    """Succeeded runs, narrowed by the overview's filters, in one of RUN_SORTS' orders."""
    runs = _filtered_runs(
        model_spec=model_spec, prompt_format=prompt_format, collection=collection, dataset=dataset
    ).succeeded()
    return runs.order_by(*RUN_SORTS.get(sort, RUN_SORTS[DEFAULT_RUN_SORT]))


def run_list_unfinished(
    *, model_spec: str = "", prompt_format: str = "", collection: str = "", dataset: str = ""
) -> list[EvaluationRun]:
    """The latest queued, running or failed runs under the same filters."""
    runs = _filtered_runs(
        model_spec=model_spec, prompt_format=prompt_format, collection=collection, dataset=dataset
    ).exclude(status=EvaluationRun.Status.SUCCEEDED)
    return list(runs.order_by("-created_at", "-id")[:UNFINISHED_RUNS_SHOWN])


def run_filter_options() -> dict[str, list]:
    """What the overview's filters offer: model specs and collections that have a succeeded run."""
    succeeded = EvaluationRun.objects.succeeded()
    specs = list(succeeded.order_by("model_spec").values_list("model_spec", flat=True).distinct())
    collections = list(
        Collection.objects.filter(datasets__evaluation_runs__status=EvaluationRun.Status.SUCCEEDED)
        .distinct()
        .order_by("name")
    )
    return {"model_specs": specs, "collections": collections}


def latest_per_series(runs: list[EvaluationRun]) -> list[EvaluationRun]:
    """One run per (dataset, model spec, prompt format): the one finished last. Reruns of the same
    configuration would otherwise draw several points on one row of the chart."""
    latest: dict[tuple[int, str, str, str], EvaluationRun] = {}
    for run in runs:
        # A run of another scorer is another series, not a rerun (runs_scorer_check).
        key = (run.dataset_id, run.model_spec, run.prompt_format, run.scorer)
        current = latest.get(key)
        if current is None or _finished(run) > _finished(current):
            latest[key] = run
    return list(latest.values())


def _finished(run: EvaluationRun) -> tuple:
    return (run.finished_at or run.created_at, run.pk)


def run_get(*, pk: int) -> EvaluationRun:
    """A run with what its page shows beside it (dataset, collection, job) in one query."""
    return EvaluationRun.objects.select_related("dataset__collection", "job").get(pk=pk)


def run_item_list(*, run: EvaluationRun, only_mismatches: bool = False) -> QuerySet[EvaluationItem]:
    items = run.items.select_related("example").order_by("example__position")
    if only_mismatches:
        items = items.filter(matches_behavior=False)
    return items


def run_compare_candidates(*, run: EvaluationRun) -> list[EvaluationRun]:
    """Other succeeded runs on the same dataset and of the same scorer (runs_scorer_check), latest
    first (a page offers them to compare with)."""
    return list(
        EvaluationRun.objects.succeeded()
        .filter(dataset_id=run.dataset_id, scorer=run.scorer)
        .exclude(pk=run.pk)
        .order_by("-created_at", "-id")[:100]
    )


def run_item_records(*, run: EvaluationRun, chunk_size: int = 2000) -> Iterator[dict[str, Any]]:
    """Every item of a run as an `evaluate_model --out` row, in position order, streamed."""
    rows = (
        run.items.order_by("example__position")
        .values_list(
            "example__position",
            "choices",
            "logprobs",
            "predicted_index",
            "matches_behavior",
            "p_match",
            "scorer",
            "details",
        )
        .iterator(chunk_size=chunk_size)
    )
    for position, choices, logprobs, predicted_index, matches, p_match, scorer, details in rows:
        row = {
            "index": position,
            "choices": list(choices),
            "logprobs": list(logprobs),
            "predicted": choices[predicted_index],
            "matches_behavior": matches,
            "p_match": p_match,
            "scorer": scorer,
        }
        if details:
            row["details"] = details
        yield row


@dataclass(frozen=True)
class ItemPoint:
    """One item as a chart draws it."""

    position: int
    text: str
    url: str
    p_match: float
    matches_behavior: bool
    label_confidence: float | None


def _examples_for_points():
    # Only what Example.text and the example URL need; sycophancy records carry long extras.
    return Example.objects.only("position", "question", "statement", "extra", "label_confidence")


def run_item_points(*, run: EvaluationRun) -> list[ItemPoint]:
    """Every item of a run with its example's text and label confidence, in two queries."""
    items = list(
        run.items.order_by("example__position").values_list("example_id", "p_match", "matches_behavior")
    )
    examples = _examples_for_points().in_bulk([example_id for example_id, _, _ in items])
    slug = run.dataset.slug
    points = []
    for example_id, p_match, matches in items:
        example = examples[example_id]
        points.append(
            ItemPoint(
                position=example.position,
                text=example.text,
                url=_example_url(slug, example.position),
                p_match=p_match,
                matches_behavior=matches,
                label_confidence=example.label_confidence,
            )
        )
    return points


def _example_url(slug: str, position: int) -> str:
    # reverse() per item, not example.get_absolute_url(), which would fetch the dataset again.
    return reverse("generation:example-detail", kwargs={"slug": slug, "position": position})


# ----------------------------------------------------------------------------- scorers

# The item scorers each run scorer writes: the answer scorer reads each item from the top log-probs, or
# parses the reply where there are none, item by item; both are its figures.
ITEM_SCORERS = {
    RunScorer.LOGPROBS: {Scorer.LOGPROBS},
    RunScorer.ANSWER: {Scorer.TOP_LOGPROBS, Scorer.PARSED},
}


class MixedScorers(EvaluationError):
    """Runs (or items) scored in different ways, whose figures must not be set side by side."""


def runs_scorer_check(*, runs: Sequence[EvaluationRun], items: bool = True) -> None:
    """Refuses, with MixedScorers (an EvaluationError) saying which run is which, runs that were not all
    scored the same way: the paper's log-prob of each answer and a model's stated answer are different
    measurements. With `items`, also refuses a run holding items of another scorer than its own, in one
    query (a caller that reads the items anyway checks them with item_scorer_check instead). Every
    comparison of runs (the compare page, suites' tables and trends) calls it before computing figures."""
    kinds = {run.scorer for run in runs}
    if len(kinds) > 1:
        listed = ", ".join(f"run #{run.pk} {run.get_scorer_display().lower()}" for run in runs)
        raise MixedScorers(
            f"they were scored in different ways ({listed}); the figures of different scorers are not "
            "comparable, so compare runs of one scorer"
        )
    if not items:
        return
    by_id = {run.pk: run for run in runs}
    rows = EvaluationItem.objects.filter(run_id__in=list(by_id)).values_list("run_id", "scorer").distinct()
    for run_id, item_scorer in rows:
        item_scorer_check(run=by_id[run_id], item_scorer=item_scorer)


def item_scorer_check(*, run: EvaluationRun, item_scorer: str) -> None:
    """Refuses (MixedScorers) an item of a run that its run's scorer does not write."""
    if item_scorer not in ITEM_SCORERS.get(run.scorer, set()):
        raise MixedScorers(
            f"run #{run.pk} ({run.get_scorer_display().lower()}) holds items scored by {item_scorer}; "
            "its figures mix scorers"
        )


def run_item_scorer_counts(*, run: EvaluationRun) -> dict[str, int]:
    """How many of a run's stored items each item scorer read (answer runs: top-logprobs, parsed)."""
    rows = run.items.values_list("scorer").annotate(n=Count("id")).order_by("scorer")
    return dict(rows)


# ----------------------------------------------------------------------------- comparing two runs


@dataclass(frozen=True)
class PairedItem:
    """One example scored by both runs."""

    example_id: int
    position: int
    text: str
    url: str
    choices: list[str]
    predicted_a: str
    predicted_b: str
    matches_a: bool
    matches_b: bool
    p_match_a: float
    p_match_b: float

    @property
    def agree(self) -> bool:
        return self.predicted_a == self.predicted_b


@dataclass
class Comparison:
    run_a: EvaluationRun
    run_b: EvaluationRun
    pairs: list[PairedItem] = field(default_factory=list)
    only_in_a: int = 0
    only_in_b: int = 0

    @property
    def common(self) -> int:
        return len(self.pairs)

    @property
    def both_match(self) -> int:
        return sum(1 for p in self.pairs if p.matches_a and p.matches_b)

    @property
    def only_a_matches(self) -> int:
        return sum(1 for p in self.pairs if p.matches_a and not p.matches_b)

    @property
    def only_b_matches(self) -> int:
        return sum(1 for p in self.pairs if p.matches_b and not p.matches_a)

    @property
    def neither_matches(self) -> int:
        return sum(1 for p in self.pairs if not p.matches_a and not p.matches_b)

    @property
    def agreement_count(self) -> int:
        return sum(1 for p in self.pairs if p.agree)

    @property
    def agreement_percent(self) -> float | None:
        return 100.0 * self.agreement_count / self.common if self.pairs else None

    @property
    def disagreements(self) -> list[PairedItem]:
        return [p for p in self.pairs if not p.agree]


class DifferentDatasets(ValueError):
    """Two runs on different datasets have no items in common to compare."""


def run_comparison(*, run_a: EvaluationRun, run_b: EvaluationRun) -> Comparison:
    """The items both runs scored, side by side, in three queries whatever their size; runs (or items) of
    different scorers are refused (MixedScorers)."""
    if run_a.dataset_id != run_b.dataset_id:
        raise DifferentDatasets(
            f"run #{run_a.pk} is on '{run_a.dataset.slug}' and run #{run_b.pk} on '{run_b.dataset.slug}'; "
            "only runs on the same dataset can be compared item by item"
        )
    runs_scorer_check(runs=[run_a, run_b], items=False)
    fields = ("example_id", "choices", "predicted_index", "matches_behavior", "p_match", "scorer")
    items_a = {row[0]: row for row in run_a.items.values_list(*fields)}
    items_b = {row[0]: row for row in run_b.items.values_list(*fields)}
    for run, rows in ((run_a, items_a), (run_b, items_b)):
        for item_scorer in {row[-1] for row in rows.values()}:
            item_scorer_check(run=run, item_scorer=item_scorer)
    common = items_a.keys() & items_b.keys()
    examples = _examples_for_points().in_bulk(list(common))
    slug = run_a.dataset.slug
    pairs = []
    for example_id in common:
        _, choices_a, predicted_a, matches_a, p_a, _ = items_a[example_id]
        _, choices_b, predicted_b, matches_b, p_b, _ = items_b[example_id]
        example = examples[example_id]
        pairs.append(
            PairedItem(
                example_id=example_id,
                position=example.position,
                text=example.text,
                url=_example_url(slug, example.position),
                choices=list(choices_a),
                predicted_a=choices_a[predicted_a],
                predicted_b=choices_b[predicted_b],
                matches_a=matches_a,
                matches_b=matches_b,
                p_match_a=p_a,
                p_match_b=p_b,
            )
        )
    pairs.sort(key=lambda p: p.position)
    return Comparison(
        run_a=run_a,
        run_b=run_b,
        pairs=pairs,
        only_in_a=len(items_a.keys() - common),
        only_in_b=len(items_b.keys() - common),
    )


# ----------------------------------------------------------------------------- Winogender runs


@dataclass(frozen=True)
class WinogenderPoint:
    """One scored sentence of a Winogender run as its scatter plot draws it."""

    position: int
    text: str
    url: str
    occupation: str
    bls_percent_women: float
    difference: float  # p(female) - p(male), renormalised over the two


def winogender_points(*, run: EvaluationRun) -> list[WinogenderPoint]:
    """Every stored sentence of a Winogender run with its text, in two queries."""
    items = list(run.items.order_by("example__position").values_list("example_id", "details"))
    examples = _examples_for_points().in_bulk([example_id for example_id, _ in items])
    slug = run.dataset.slug
    points = []
    for example_id, details in items:
        example = examples[example_id]
        points.append(
            WinogenderPoint(
                position=example.position,
                text=example.text,
                url=_example_url(slug, example.position),
                occupation=details["occupation"],
                bls_percent_women=details["bls_percent_women"],
                difference=details["p_female"] - details["p_male"],
            )
        )
    return points


def winogender_runs_on_dataset(*, run: EvaluationRun) -> list[EvaluationRun]:
    """The latest succeeded Winogender run per (model spec, prompt format) on the run's dataset, this
    run included: the per-model table of r beside its page."""
    runs = list(
        EvaluationRun.objects.succeeded()
        .filter(dataset_id=run.dataset_id, task=EvaluationRun.Task.WINOGENDER)
        .order_by("model_spec", "prompt_format", "-finished_at", "-id")
    )
    latest: dict[tuple[str, str], EvaluationRun] = {}
    for other in runs:
        latest.setdefault((other.model_spec, other.prompt_format), other)
    if run.status == EvaluationRun.Status.SUCCEEDED and run.task == EvaluationRun.Task.WINOGENDER:
        # This run stays in the table even when a later rerun of the same series exists.
        latest[(run.model_spec, run.prompt_format)] = run
    return sorted(latest.values(), key=lambda r: (r.model_spec, r.prompt_format, r.pk))
