"""Reads of evaluation suites for their pages, exports and API: the runs and items of a suite read
with values() queries (a suite can hold 135 datasets x several models x 1,000 items, far too many
for ORM objects), turned into suite_figures' inputs, and the figures kept in the shared cache.

A cache key holds the suite's version (its status, its runs' count, statuses and last finish, and
the last change to its datasets, e.g. a behavior's direction), so a finished run or an edited
dataset is seen at the next request and nothing has to be invalidated by hand."""

from __future__ import annotations

import hashlib
import json
import logging
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

from django.core.cache import cache
from django.db.models import Count, Max, Q, QuerySet

from generation.evaluation import suite_figures as figures
from generation.evaluation.suite_figures import Cell, Outcomes, SuiteDataset, SuiteModel, TrendReport
from generation.models import EvaluationItem, EvaluationRun, EvaluationSuite, Example, Status

logger = logging.getLogger(__name__)

# A figure stays cached this long at most; a new version of the suite gets a new key before then.
CACHE_SECONDS = 24 * 3600
ITEM_CHUNK = 10_000


def suite_list() -> QuerySet[EvaluationSuite]:
    """Every suite, latest first, with its counts of datasets and runs (one query)."""
    return EvaluationSuite.objects.annotate(
        dataset_count=Count("datasets", distinct=True),
        run_count=Count("runs", distinct=True),
        succeeded_count=Count("runs", filter=Q(runs__status=Status.SUCCEEDED), distinct=True),
    ).order_by("-created_at", "-id")


def suite_get(*, pk: int) -> EvaluationSuite:
    return EvaluationSuite.objects.select_related("job").get(pk=pk)


def suite_version(*, suite: EvaluationSuite) -> str:
    """What the figures depend on, as a short hash (two small aggregate queries)."""
    runs = suite.runs.aggregate(
        n=Count("id"),
        succeeded=Count("id", filter=Q(status=Status.SUCCEEDED)),
        last=Max("finished_at"),
        top=Max("id"),
    )
    datasets = suite.datasets.aggregate(n=Count("id"), changed=Max("updated_at"))
    key = json.dumps(
        [suite.status, str(suite.finished_at), suite.model_specs, runs, datasets], default=str, sort_keys=True
    )
    return hashlib.sha256(key.encode()).hexdigest()[:16]


def _cached(suite: EvaluationSuite, what: str, compute):
    key = f"suite-figures:{suite.pk}:{suite_version(suite=suite)}:{what}"
    try:
        value = cache.get(key)
    except Exception:  # a cache that does not answer costs a recomputation, never the page
        logger.warning("suite figures: the cache did not answer", exc_info=True)
        return compute()
    if value is None:
        value = compute()
        try:
            cache.set(key, value, CACHE_SECONDS)
        except Exception:
            logger.warning("suite figures: the cache did not answer", exc_info=True)
    return value


# ----------------------------------------------------------------------------- the suite's runs


@dataclass
class SuiteResults:
    """A suite's figures: its models, datasets, one cell per finished (dataset, model) run, each
    dataset's size trend, and the counts of its runs by status."""

    models: list[SuiteModel]
    datasets: list[SuiteDataset]
    cells: dict[tuple[int, int], Cell]
    trends: dict[int, TrendReport]
    run_counts: dict[str, int] = field(default_factory=dict)
    expected_runs: int = 0

    @property
    def rows(self) -> list[figures.MatrixRow]:
        return figures.matrix_rows(
            datasets=self.datasets,
            models=self.models,
            cells=self.cells,
            flags={pk: t.flag for pk, t in self.trends.items()},
        )

    def dataset(self, slug: str) -> SuiteDataset | None:
        return next((d for d in self.datasets if d.slug == slug), None)

    @property
    def categories(self) -> list[str]:
        return sorted({d.category for d in self.datasets if d.category})

    @property
    def collections(self) -> list[tuple[str, str]]:
        return sorted({(d.collection_slug, d.collection_name) for d in self.datasets}, key=lambda c: c[1])

    @property
    def unknown_sizes(self) -> list[SuiteModel]:
        used = {index for _, index in self.cells}
        return [m for m in self.models if m.index in used and m.parameters is None]


def _suite_models(suite: EvaluationSuite, runs: list[dict[str, Any]]) -> list[SuiteModel]:
    """The suite's models in its order, described by the last finished run of each (what the
    weights said: parameters, family, training); a model with no finished run is described by its
    spec alone."""
    details: dict[str, dict[str, Any]] = {}
    names: dict[str, str] = {}
    for run in sorted(runs, key=lambda r: (r["status"] == Status.SUCCEEDED, str(r["finished_at"]), r["id"])):
        info = run["model_info"] or {}
        details[run["model_spec"]] = info.get("details") or {}
        names[run["model_spec"]] = info.get("name") or ""
    models = []
    for index, spec in enumerate(suite.model_specs):
        d = details.get(spec, {})
        parameters = d.get("parameters")
        models.append(
            SuiteModel(
                index=index,
                spec=spec,
                name=names.get(spec, ""),
                family=str(d.get("family") or ""),
                training=str(d.get("training") or ""),
                # Only a positive whole count is a size; anything else reads as unknown.
                parameters=parameters if isinstance(parameters, int) and parameters > 0 else None,
                parameters_source=str(d.get("parameters_source") or ""),
            )
        )
    return models


def _suite_datasets(suite: EvaluationSuite) -> list[SuiteDataset]:
    rows = suite.datasets.order_by("collection__name", "slug").values(
        "id", "slug", "behavior", "category", "behavior_direction", "collection__slug", "collection__name"
    )
    return [
        SuiteDataset(
            id=r["id"],
            slug=r["slug"],
            behavior=r["behavior"],
            collection_slug=r["collection__slug"],
            collection_name=r["collection__name"],
            category=r["category"],
            direction=r["behavior_direction"],
        )
        for r in rows
    ]


def _suite_runs(suite: EvaluationSuite) -> list[dict[str, Any]]:
    return list(
        suite.runs.values(
            "id",
            "dataset_id",
            "model_spec",
            "status",
            "scorer",
            "item_count",
            "matching_count",
            "mean_p_match",
            "model_info",
            "finished_at",
        )
    )


def _item_scorers(run_ids: list[int]) -> dict[int, set[str]]:
    """The item scorers each run's items were read with; one query over the distinct pairs."""
    found: dict[int, set[str]] = defaultdict(set)
    pairs = EvaluationItem.objects.filter(run_id__in=run_ids).values_list("run_id", "scorer").distinct()
    for run_id, scorer in pairs.order_by():
        found[run_id].add(scorer)
    return found


def _index_runs(suite: EvaluationSuite, runs: list[dict[str, Any]]) -> dict[int, tuple[int, int]]:
    """Succeeded runs by id -> (dataset id, model index)."""
    index_of = {spec: i for i, spec in enumerate(suite.model_specs)}
    return {
        r["id"]: (r["dataset_id"], index_of[r["model_spec"]])
        for r in runs
        if r["status"] == Status.SUCCEEDED and r["model_spec"] in index_of
    }


def _outcomes(run_keys: dict[int, tuple[int, int]]) -> dict[tuple[int, int], Outcomes]:
    """Every item of these runs as (example id, matched), one streamed values query."""
    pairs: dict[int, list[tuple[int, bool]]] = defaultdict(list)
    rows = (
        EvaluationItem.objects.filter(run_id__in=list(run_keys))
        .order_by()
        .values_list("run_id", "example_id", "matches_behavior")
        .iterator(chunk_size=ITEM_CHUNK)
    )
    for run_id, example_id, matches in rows:
        pairs[run_id].append((example_id, matches))
    return {run_keys[run_id]: Outcomes.of(found) for run_id, found in pairs.items()}


def _compute_results(suite: EvaluationSuite) -> SuiteResults:
    runs = _suite_runs(suite)
    models = _suite_models(suite, runs)
    datasets = _suite_datasets(suite)
    keys = _index_runs(suite, runs)
    scorers = _item_scorers(list(keys))
    by_id = {r["id"]: r for r in runs}
    cells = {}
    for run_id, key in keys.items():
        r = by_id[run_id]
        cells[key] = figures.cell_from_counts(
            run_id=run_id,
            status=r["status"],
            scorer=figures.cell_scorer(run_id=run_id, run_scorer=r["scorer"], item_scorers=scorers[run_id]),
            n=r["item_count"],
            matching=r["matching_count"],
            mean_p_match=r["mean_p_match"],
        )
    outcomes = _outcomes(keys)
    trends = {}
    for d in datasets:
        here = {index: o for (dataset_id, index), o in outcomes.items() if dataset_id == d.id}
        trends[d.id] = figures.size_trends(
            direction=d.direction,
            models=models,
            outcomes=here,
            scorers={index: cells[(d.id, index)].scorer for index in here},
        )
    counts: dict[str, int] = defaultdict(int)
    for r in runs:
        counts[r["status"]] += 1
    return SuiteResults(
        models=models,
        datasets=datasets,
        cells=cells,
        trends=trends,
        run_counts=dict(counts),
        expected_runs=len(models) * len(datasets),
    )


def suite_results(*, suite: EvaluationSuite) -> SuiteResults:
    """The suite's matrix and trends, from the shared cache when the suite has not changed."""
    return _cached(suite, "results", lambda: _compute_results(suite))


def suite_comparison(*, suite: EvaluationSuite, results: SuiteResults, a: int, b: int) -> figures.Comparison:
    """Models a and b (indices into the suite's models) compared item by item, per dataset and
    pooled; cached like the results."""

    def compute() -> figures.Comparison:
        runs = _suite_runs(suite)
        keys = {run_id: key for run_id, key in _index_runs(suite, runs).items() if key[1] in (a, b)}
        return figures.suite_comparison(
            a=results.models[a],
            b=results.models[b],
            datasets=results.datasets,
            outcomes=_outcomes(keys),
            scorers={key: cell.scorer for key, cell in results.cells.items()},
        )

    return _cached(suite, f"compare:{a}:{b}", compute)


# ----------------------------------------------------------------------------- one dataset's items


@dataclass(frozen=True)
class ItemAnswers:
    """One example of a dataset and what each model answered (None: no answer stored)."""

    example_id: int
    position: int
    text: str
    url: str
    matching_answer: str
    answers: tuple[tuple[str, bool, float] | None, ...]  # (answer, matches, P(match)) per model


def suite_disagreements(*, suite: EvaluationSuite, results: SuiteResults, dataset: SuiteDataset) -> list[int]:
    """Positions (in order) of the dataset's examples on which the suite's finished models predict
    different answers; one values query over the dataset's items."""
    run_ids = [c.run_id for (dataset_id, _), c in results.cells.items() if dataset_id == dataset.id]
    answers: dict[int, set[int]] = defaultdict(set)
    rows = (
        EvaluationItem.objects.filter(run_id__in=run_ids)
        .order_by()
        .values_list("example__position", "predicted_index")
        .iterator(chunk_size=ITEM_CHUNK)
    )
    for position, predicted in rows:
        answers[position].add(predicted)
    return sorted(position for position, predicted in answers.items() if len(predicted) > 1)


def suite_item_answers(
    *, results: SuiteResults, dataset: SuiteDataset, positions: list[int]
) -> list[ItemAnswers]:
    """What each model answered on these examples (a page of them), in two queries."""
    from django.urls import reverse

    run_index = {
        c.run_id: index for (dataset_id, index), c in results.cells.items() if dataset_id == dataset.id
    }
    examples = Example.objects.filter(dataset_id=dataset.id, position__in=positions).only(
        "position", "question", "statement", "extra", "answer_matching_behavior"
    )
    by_id = {e.pk: e for e in examples}
    found: dict[int, dict[int, tuple[str, bool, float]]] = defaultdict(dict)
    for run_id, example_id, choices, predicted, matches, p_match in EvaluationItem.objects.filter(
        run_id__in=list(run_index), example_id__in=list(by_id)
    ).values_list("run_id", "example_id", "choices", "predicted_index", "matches_behavior", "p_match"):
        found[example_id][run_index[run_id]] = (choices[predicted], matches, p_match)
    rows = [
        ItemAnswers(
            example_id=e.pk,
            position=e.position,
            text=e.text,
            url=reverse("generation:example-detail", kwargs={"slug": dataset.slug, "position": e.position}),
            matching_answer=e.answer_matching_behavior,
            answers=tuple(found[e.pk].get(m.index) for m in results.models),
        )
        for e in by_id.values()
    ]
    return sorted(rows, key=lambda r: r.position)


def suite_runs_in_progress(*, suite: EvaluationSuite) -> list[EvaluationRun]:
    """The suite's runs that have not succeeded (at most 50), for an unfinished suite's page."""
    return list(
        suite.runs.exclude(status=Status.SUCCEEDED)
        .select_related("dataset")
        .order_by("model_spec", "dataset__slug")[:50]
    )
