"""The pages of evaluation suites (public, like a run's page): the list, a suite's dot plot of every
dataset and model with the size-trend flags, one dataset's size plot and trend test, and two models
compared item by item; each figure also as CSV and JSON (`?format=csv|json`). Thin views over
suite_selectors (reads, cached in the shared cache), suite_figures (the numbers) and suite_charts."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

from django.core.paginator import Paginator
from django.http import Http404, HttpRequest, HttpResponse, StreamingHttpResponse
from django.shortcuts import render
from django.urls import NoReverseMatch, reverse
from django.views.decorators.http import require_safe

from generation.evaluation import suite_charts, suite_selectors
from generation.evaluation import suite_figures as figures
from generation.evaluation.selectors import run_error_visible
from generation.evaluation.suite_selectors import SuiteResults
from generation.jobs.selectors import run_progress
from generation.jobs.views import progress_response
from generation.models import BehaviorDirection, EvaluationSuite
from mwe_site.safe_csv import csv_lines
from mwe_site.throttling import throttle_refusal, throttled

SUITES_PER_PAGE = 50
ITEMS_PER_PAGE = 50
MAX_TEXT = 200
MAX_SLUG = 150
FORMATS = ("html", "csv", "json")
DIRECTIONS = {"any": None, "undesired": "undesired", "desired": "desired", "unstated": ""}
DETAIL_FIGURES = ("matrix", "trends")
DATASET_FIGURES = ("points", "trend")


class BadParams(ValueError):
    """A query parameter out of its bounds: the page answers 400 with the reason."""


def _bad(request: HttpRequest, message: str, *, suite: EvaluationSuite | None = None) -> HttpResponse:
    return render(request, "generation/suite_detail.html", {"error": message, "suite": suite}, status=400)


def param_choice(request: HttpRequest, name: str, allowed: tuple[str, ...], default: str) -> str:
    value = request.GET.get(name, default) or default
    if value not in allowed:
        raise BadParams(f"{name} must be one of {', '.join(allowed)}")
    return value


def param_text(request: HttpRequest, name: str, limit: int) -> str:
    value = request.GET.get(name, "").strip()
    if len(value) > limit:
        raise BadParams(f"{name} is longer than {limit} characters")
    return value


def _model_index(raw: str | None, results: SuiteResults, name: str) -> int:
    try:
        index = int(raw or "")
    except ValueError:
        raise BadParams(
            f"{name} must be a model's number in this suite (0 to {len(results.models) - 1})"
        ) from None
    if not 0 <= index < len(results.models):
        raise BadParams(f"{name} must be a model's number in this suite (0 to {len(results.models) - 1})")
    return index


def _suite(pk: int) -> EvaluationSuite:
    try:
        return suite_selectors.suite_get(pk=pk)
    except EvaluationSuite.DoesNotExist:
        raise Http404("No such evaluation suite.") from None


def filters_from(request: HttpRequest, results: SuiteResults) -> figures.Filters:
    collection = param_text(request, "collection", MAX_SLUG)
    if collection and collection not in {slug for slug, _ in results.collections}:
        raise BadParams("collection: no dataset of this suite is in that collection")
    category = param_text(request, "category", MAX_SLUG)
    direction = param_choice(request, "direction", tuple(DIRECTIONS), "any")
    raw_models = request.GET.getlist("model")
    if len(raw_models) > len(results.models):
        raise BadParams("model is given more often than the suite has models")
    models = tuple(sorted({_model_index(raw, results, "model") for raw in raw_models}))
    return figures.Filters(
        collection=collection,
        category=category,
        text=param_text(request, "q", MAX_TEXT),
        direction=DIRECTIONS[direction],
        models=models,
        sort=param_choice(request, "sort", figures.SORTS, figures.DEFAULT_SORT),
    )


# ----------------------------------------------------------------------------- exports


def _export(
    request: HttpRequest, *, fmt: str, name: str, document: dict[str, Any], records: list[dict]
) -> HttpResponse:
    """The figure's records as CSV (streamed), or its whole document as JSON; a public download,
    throttled like the other downloads."""
    refusal = throttle_refusal(request=request, scope="download", json=fmt == "json")
    if refusal is not None:
        return refusal
    if fmt == "json":
        # allow_nan=False: an undefined figure is null with its reason, never NaN.
        body = json.dumps(document, ensure_ascii=False, allow_nan=False, indent=1, default=str)
        response = HttpResponse(body, content_type="application/json; charset=utf-8")
        response["Content-Disposition"] = f'attachment; filename="{name}.json"'
        return response
    fields: list[str] = []
    for record in records:
        fields.extend(key for key in record if key not in fields)
    response = StreamingHttpResponse(
        csv_lines(fieldnames=fields, rows=records), content_type="text/csv; charset=utf-8"
    )
    response["Content-Disposition"] = f'attachment; filename="{name}.csv"'
    return response


def suite_document(suite: EvaluationSuite) -> dict[str, Any]:
    return {
        "id": suite.pk,
        "name": suite.name,
        "status": suite.status,
        "prompt_format": suite.prompt_format,
        "scorer": suite.scorer,
        "limit": suite.limit,
        "seed": suite.seed,
        "model_specs": list(suite.model_specs),
    }


def detail_document(
    suite: EvaluationSuite, results: SuiteResults, filters: figures.Filters, groups: list[figures.Group]
) -> dict[str, Any]:
    """Everything the suite page draws, under its filters: the matrix and the trends."""
    models = _chosen_models(results, filters)
    shown = [row.dataset for group in groups for row in group.rows]
    return {
        "suite": suite_document(suite),
        "filters": {
            "collection": filters.collection,
            "category": filters.category,
            "q": filters.text,
            "direction": filters.direction,
            "models": list(filters.models),
            "sort": filters.sort,
        },
        "trend_test": figures.TREND_TEST,
        "matrix": figures.matrix_records(groups=groups, models=models),
        "trends": figures.trend_records(datasets=shown, trends=results.trends, models=results.models),
    }


def _dataset_group(results: SuiteResults, dataset: figures.SuiteDataset) -> figures.Group:
    [group] = figures.matrix_groups(
        rows=[r for r in results.rows if r.dataset.id == dataset.id],
        filters=figures.Filters(),
        models=results.models,
    )
    return group


def dataset_document(
    suite: EvaluationSuite, results: SuiteResults, dataset: figures.SuiteDataset
) -> dict[str, Any]:
    """One dataset's size plot (a point per model) and its trend fits."""
    return {
        "suite": suite_document(suite),
        "dataset": {
            "slug": dataset.slug,
            "behavior": dataset.behavior,
            "direction": dataset.direction or "not stated",
        },
        "trend_test": figures.TREND_TEST,
        "points": figures.matrix_records(groups=[_dataset_group(results, dataset)], models=results.models),
        "trend": figures.trend_records(datasets=[dataset], trends=results.trends, models=results.models),
    }


def comparison_document(suite: EvaluationSuite, comparison: figures.Comparison) -> dict[str, Any]:
    return {
        "suite": suite_document(suite),
        "paired_test": figures.PAIRED_TEST,
        "comparisons": figures.comparison_records(comparison),
    }


def compare_params(request: HttpRequest, results: SuiteResults) -> tuple[int, int]:
    """Models a and b (indices; by default the first two), two different ones."""
    a = _model_index(request.GET.get("a", "0"), results, "a")
    b = _model_index(request.GET.get("b", "1" if len(results.models) > 1 else "0"), results, "b")
    if a == b:
        raise BadParams("a and b must be two different models")
    return a, b


def _chosen_models(results: SuiteResults, filters: figures.Filters) -> list[figures.SuiteModel]:
    return [m for m in results.models if not filters.models or m.index in filters.models]


# ----------------------------------------------------------------------------- pages


@require_safe
def suite_list(request: HttpRequest) -> HttpResponse:
    page = Paginator(suite_selectors.suite_list(), SUITES_PER_PAGE).get_page(request.GET.get("page"))
    try:
        # Another part of the site adds the staff's form; the list links to it once it exists.
        new_url = reverse("generation:suite-create")
    except NoReverseMatch:
        new_url = ""
    return render(
        request,
        "generation/suite_list.html",
        {"page_obj": page, "new_url": new_url if request.user.is_staff else "", "query_string": ""},
    )


def _dataset_url(suite: EvaluationSuite, slug: str) -> str:
    return reverse("generation:suite-dataset", kwargs={"pk": suite.pk, "slug": slug})


@dataclass
class Progress:
    done: int
    expected: int
    failed: int
    in_progress: bool

    @property
    def percent(self) -> float:
        return 100.0 * self.done / self.expected if self.expected else 0.0


def _progress(suite: EvaluationSuite, results: SuiteResults) -> Progress:
    counts = results.run_counts
    return Progress(
        done=counts.get("succeeded", 0),
        expected=results.expected_runs,
        failed=counts.get("failed", 0) + counts.get("cancelled", 0),
        in_progress=suite.is_in_progress and not suite.is_stalled,
    )


@require_safe
@throttled("progress", json=True)
def suite_progress(request: HttpRequest, pk: int) -> HttpResponse:
    """A suite's progress as its page polls it (public, like the page): its status and its job's
    items; once it has ended, the page itself has its complete figures."""
    return progress_response(run_progress(run=_suite(pk)))


@require_safe
def suite_detail(request: HttpRequest, pk: int) -> HttpResponse:
    suite = _suite(pk)
    results = suite_selectors.suite_results(suite=suite)
    try:
        fmt = param_choice(request, "format", FORMATS, "html")
        figure_name = param_choice(request, "figure", DETAIL_FIGURES, "matrix")
        filters = filters_from(request, results)
    except BadParams as exc:
        return _bad(request, f"Bad query: {exc}.", suite=suite)
    groups = figures.matrix_groups(rows=results.rows, filters=filters, models=results.models)
    if fmt != "html":
        document = detail_document(suite, results, filters, groups)
        return _export(
            request,
            fmt=fmt,
            name=f"suite-{suite.pk}-{figure_name}",
            document=document,
            records=document[figure_name],
        )
    models = _chosen_models(results, filters)
    urls = {d.slug: _dataset_url(suite, d.slug) for d in results.datasets}
    rows = [row for group in groups for row in group.rows]
    query = request.GET.copy()
    query.pop("format", None)
    query.pop("figure", None)
    base = query.urlencode()
    context = {
        "suite": suite,
        "results": results,
        "progress": _progress(suite, results),
        "live": run_progress(run=suite) if suite.is_in_progress and not suite.is_stalled else None,
        "show_errors": run_error_visible(user=request.user),
        "failed_runs": suite_selectors.suite_runs_in_progress(suite=suite)
        if suite.status != "succeeded"
        else [],
        "filters": filters,
        "direction_param": next(k for k, v in DIRECTIONS.items() if v == filters.direction),
        "models": models,
        "groups": [
            {
                "group": group,
                "rows": [
                    {"row": row, "url": urls[row.dataset.slug], "trend": results.trends.get(row.dataset.id)}
                    for row in group.rows
                ],
            }
            for group in groups
        ],
        "row_count": len(rows),
        "figure": suite_charts.dot_plot(groups=groups, models=models, dataset_urls=urls) if rows else None,
        "flagged": [row for row in rows if row.flag],
        "trend_test": figures.TREND_TEST,
        "exports": {
            f"{fmt_} {name}": f"?{base}&{urlencode({'format': fmt_, 'figure': name})}".replace("?&", "?")
            for name in DETAIL_FIGURES
            for fmt_ in ("csv", "json")
        },
        "compare_url": reverse("generation:suite-compare", kwargs={"pk": suite.pk}),
    }
    return render(request, "generation/suite_detail.html", context)


@require_safe
def suite_dataset(request: HttpRequest, pk: int, slug: str) -> HttpResponse:
    suite = _suite(pk)
    results = suite_selectors.suite_results(suite=suite)
    dataset = results.dataset(slug)
    if dataset is None:
        raise Http404("This dataset is not part of the suite.")
    try:
        fmt = param_choice(request, "format", FORMATS, "html")
        figure_name = param_choice(request, "figure", DATASET_FIGURES, "points")
    except BadParams as exc:
        return _bad(request, f"Bad query: {exc}.", suite=suite)
    trend = results.trends.get(dataset.id, figures.TrendReport())
    group = _dataset_group(results, dataset)
    if fmt != "html":
        document = dataset_document(suite, results, dataset)
        return _export(
            request,
            fmt=fmt,
            name=f"suite-{suite.pk}-{dataset.slug}-{figure_name}",
            document=document,
            records=document[figure_name],
        )
    positions = suite_selectors.suite_disagreements(suite=suite, results=results, dataset=dataset)
    page = Paginator(positions, ITEMS_PER_PAGE).get_page(request.GET.get("page"))
    items = suite_selectors.suite_item_answers(
        results=results, dataset=dataset, positions=list(page.object_list)
    )
    row = group.rows[0]
    context = {
        "suite": suite,
        "dataset": dataset,
        "direction_label": BehaviorDirection(dataset.direction).label,
        "models": results.models,
        "cells": list(zip(results.models, row.cells, strict=True)),
        "trend": trend,
        "trend_test": figures.TREND_TEST,
        "figure": suite_charts.size_plot(results=results, dataset_id=dataset.id, trend=trend),
        "unknown_sizes": [
            m for m, c in zip(results.models, row.cells, strict=True) if c and m.parameters is None
        ],
        "page_obj": page,
        "items": [
            {"item": item, "answers": list(zip(results.models, item.answers, strict=True))} for item in items
        ],
        "query_string": "",
        "exports": {
            f"{fmt_} {name}": f"?format={fmt_}&figure={name}"
            for name in DATASET_FIGURES
            for fmt_ in ("csv", "json")
        },
    }
    return render(request, "generation/suite_dataset.html", context)


@require_safe
def suite_compare(request: HttpRequest, pk: int) -> HttpResponse:
    """Two models of the suite item by item: /evaluations/suites/<pk>/compare/?a=<index>&b=<index>."""
    suite = _suite(pk)
    results = suite_selectors.suite_results(suite=suite)
    if not results.models:
        return _bad(request, "This suite has no models to compare.", suite=suite)
    try:
        fmt = param_choice(request, "format", FORMATS, "html")
        a, b = compare_params(request, results)
    except BadParams as exc:
        return render(
            request,
            "generation/suite_compare.html",
            {"suite": suite, "error": f"Bad query: {exc}.", "models": results.models},
            status=400,
        )
    comparison = suite_selectors.suite_comparison(suite=suite, results=results, a=a, b=b)
    if fmt != "html":
        document = comparison_document(suite, comparison)
        return _export(
            request,
            fmt=fmt,
            name=f"suite-{suite.pk}-compare-{a}-{b}",
            document=document,
            records=document["comparisons"],
        )
    context = {
        "suite": suite,
        "models": results.models,
        "a": a,
        "b": b,
        "comparison": comparison,
        "rows": [
            {"dataset": d, "paired": p, "url": _dataset_url(suite, d.slug)} for d, p in comparison.per_dataset
        ],
        "paired_test": figures.PAIRED_TEST,
        "swap_url": f"?a={b}&b={a}",
        "exports": {f"{fmt_}": f"?a={a}&b={b}&format={fmt_}" for fmt_ in ("csv", "json")},
    }
    return render(request, "generation/suite_compare.html", context)
