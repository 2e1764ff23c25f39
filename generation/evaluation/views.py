"""Pages of model evaluation: starting a run (staff), a run's results, the overview of all results
and the item-by-item comparison of two runs (public). Thin views over generation.evaluation.services (writes),
generation.evaluation.selectors (reads) and generation.evaluation.charts (figures)."""

from __future__ import annotations

import json
from functools import cached_property
from urllib.parse import urlencode

from django.core.paginator import Paginator
from django.db import transaction
from django.http import Http404, HttpResponseBadRequest, StreamingHttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.template.loader import render_to_string
from django.urls import reverse
from django.views.decorators.http import require_safe
from django.views.generic import FormView, ListView, TemplateView

from generation.evaluation import charts, selectors
from generation.evaluation.forms import EvaluateForm, SuiteForm
from generation.evaluation.jobs import evaluation_job_create, suite_start
from generation.evaluation.services import EvaluationError, evaluation_run_create, evaluation_task_for
from generation.jobs.selectors import run_progress
from generation.jobs.views import progress_response
from generation.lm import ModelSpecError
from generation.models import Dataset, EvaluationRun, EvaluationTask, PromptFormat, RunScorer
from mwe_site.pagination import LastPageOnOverflowMixin
from mwe_site.permissions import StaffRequiredMixin
from mwe_site.throttling import throttled

ITEMS_PER_PAGE = 50
RUNS_PER_PAGE = 200
DISAGREEMENTS_PER_PAGE = 100
# The run table's columns that sort, with their headings, in display order.
RUN_SORT_COLUMNS = [
    ("dataset", "Dataset"),
    ("model", "Model spec"),
    ("format", "Prompt format"),
    ("percent", "% matching"),
    ("items", "Items"),
    ("finished", "Finished"),
]


def _query_without(request, *names: str) -> str:
    query = request.GET.copy()
    for name in names:
        query.pop(name, None)
    return query.urlencode()


def _with_query(base_query: str, **params: str) -> str:
    extra = urlencode(params)
    return f"?{base_query}&{extra}" if base_query else f"?{extra}"


def _paginate(request, objects, per_page: int):
    """A page of a list; a page number past the end shows the last page, a malformed one the first."""
    return Paginator(objects, per_page).get_page(request.GET.get("page"))


# ----------------------------------------------------------------------------- starting a run


class EvaluateView(StaffRequiredMixin, FormView):
    template_name = "generation/evaluate_form.html"
    form_class = EvaluateForm

    @cached_property
    def dataset(self) -> Dataset:
        return get_object_or_404(Dataset.objects.select_related("collection"), slug=self.kwargs["slug"])

    @cached_property
    def winogender(self) -> bool:
        return evaluation_task_for(self.dataset) == EvaluationTask.WINOGENDER

    @property
    def scorable(self) -> bool:
        return self.winogender or self.dataset.is_scorable

    def get_context_data(self, **kwargs):
        context = super().get_context_data(**kwargs)
        context.update(dataset=self.dataset, scorable=self.scorable, winogender=self.winogender)
        return context

    def post(self, request, *args, **kwargs):
        if not self.scorable:
            return self.render_to_response(self.get_context_data(), status=400)
        return super().post(request, *args, **kwargs)

    def form_valid(self, form):
        data = form.cleaned_data
        try:
            # One transaction: a run is never left queued without the job that would run it, and the
            # job is handed to Celery only once both rows are committed.
            with transaction.atomic():
                run = evaluation_run_create(
                    dataset=self.dataset,
                    model_spec=data["model_spec"],
                    prompt_format=data["prompt_format"],
                    limit=data["limit"],
                    seed=data["seed"],
                    created_by=self.request.user,
                    scorer=data["scorer"],
                )
                evaluation_job_create(run=run, created_by=self.request.user)
        except (EvaluationError, ModelSpecError) as exc:
            form.add_error(None, str(exc))
            return self.form_invalid(form)
        return redirect(run)


# ----------------------------------------------------------------------------- one run


@require_safe
@throttled("progress", json=True)
def run_progress_json(request, pk: int):
    """A run's progress as its page polls it (public, like the page)."""
    run = get_object_or_404(EvaluationRun.objects.select_related("job"), pk=pk)
    return progress_response(run_progress(run=run))


class RunDetailView(LastPageOnOverflowMixin, ListView):
    """A run's summary, provenance and live progress, and one page of its items."""

    template_name = "generation/run_detail.html"
    context_object_name = "items"
    paginate_by = ITEMS_PER_PAGE

    def get_queryset(self):
        try:
            self.run = selectors.run_get(pk=self.kwargs["pk"])
        except EvaluationRun.DoesNotExist:
            raise Http404("No such evaluation run.") from None
        self.only_mismatches = self.request.GET.get("mismatch") == "1"
        return selectors.run_item_list(run=self.run, only_mismatches=self.only_mismatches)

    def get_context_data(self, **kwargs):
        context = super().get_context_data(**kwargs)
        run = self.run
        job = run.job
        in_progress = run.is_in_progress
        # The job's error explains a stalled run; the page stops waiting for it.
        stalled = run.is_stalled
        for item in context["items"]:
            # The "matching" answer: the behavior's, first; in a Winogender run the pronoun of the
            # occupation's BLS majority gender (male first, female second).
            matching = 1 if (item.details or {}).get("majority") == "female" else 0
            item.choice_rows = [
                {
                    "choice": choice,
                    "logprob": logprob,
                    "predicted": i == item.predicted_index,
                    "matching": i == matching,
                }
                for i, (choice, logprob) in enumerate(zip(item.choices, item.logprobs, strict=False))
            ]
        figure = winogender_figure = None
        winogender = run.task == EvaluationTask.WINOGENDER
        if winogender:
            if not in_progress and run.item_count:
                winogender_figure = charts.winogender_figure(selectors.winogender_points(run=run))
        elif not in_progress and run.item_count and run.dataset.mean_label_confidence is not None:
            figure = charts.confidence_figure(selectors.run_item_points(run=run))
        info = run.model_info or {}
        context.update(
            run=run,
            dataset=run.dataset,
            job=job,
            in_progress=in_progress and not stalled,
            progress=run_progress(run=run) if in_progress and not stalled else None,
            job_failed=stalled,
            show_errors=selectors.run_error_visible(user=self.request.user),
            versions=sorted((info.get("versions") or {}).items()),
            details=[
                (key, value if isinstance(value, str) else json.dumps(value, ensure_ascii=False))
                for key, value in sorted((info.get("details") or {}).items())
            ],
            only_mismatches=self.only_mismatches,
            query_string=_query_without(self.request, "page"),
            figure=figure,
            winogender=winogender,
            winogender_figure=winogender_figure,
            winogender_runs=selectors.winogender_runs_on_dataset(run=run) if winogender else [],
            compare_candidates=selectors.run_compare_candidates(run=run) if not in_progress else [],
            answer_scorer=run.scorer == RunScorer.ANSWER,
            item_scorers=sorted(selectors.run_item_scorer_counts(run=run).items())
            if run.scorer == RunScorer.ANSWER
            else [],
            unanswered=(run.results or {}).get("unanswered"),
        )
        return context


@require_safe
@throttled("download")  # a public whole-run export, like a dataset's download
def run_items_download(request, pk: int) -> StreamingHttpResponse:
    """The run's items as JSONL, one `evaluate_model --out` row per line."""
    run = get_object_or_404(EvaluationRun.objects.select_related("dataset"), pk=pk)
    lines = (json.dumps(row, ensure_ascii=False) + "\n" for row in selectors.run_item_records(run=run))
    response = StreamingHttpResponse(lines, content_type="application/jsonl; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="run-{run.pk}-{run.dataset.slug}-items.jsonl"'
    return response


# ----------------------------------------------------------------------------- all results


class RunListView(TemplateView):
    """Every succeeded run in a sortable table, and the paper-style chart of the latest per series."""

    template_name = "generation/run_list.html"

    def get_context_data(self, **kwargs):
        context = super().get_context_data(**kwargs)
        get = self.request.GET
        filters = {
            "model_spec": get.get("model_spec", "").strip()[:500],
            "prompt_format": get.get("prompt_format", "")
            if get.get("prompt_format") in PromptFormat.values
            else "",
            "collection": get.get("collection", "").strip()[:100],
            "dataset": get.get("dataset", "").strip()[:150],
        }
        sort = get.get("sort", selectors.DEFAULT_RUN_SORT)
        sort = sort if sort in selectors.RUN_SORTS else selectors.DEFAULT_RUN_SORT
        runs = list(selectors.run_list(sort=sort, **filters))
        # The chart is the share matching the behavior; a Winogender run's figure is its r, shown in
        # the table and on its page.
        # Runs of the answer scorer are left out of it: one chart would set them beside the paper's
        # log-prob scores as if they measured the same (selectors.runs_scorer_check).
        series = selectors.latest_per_series(runs)
        charted = [
            r
            for r in series
            if r.percent_matching is not None
            and r.task == EvaluationTask.BEHAVIOR
            and r.scorer == RunScorer.LOGPROBS
        ]
        base_query = _query_without(self.request, "sort", "page")
        context.update(
            filters=filters,
            filtered=any(filters.values()),
            options=selectors.run_filter_options(),
            prompt_formats=PromptFormat.choices,
            sort=sort,
            sort_columns=[
                {
                    "key": key,
                    "label": label,
                    # A second click on the current column reverses it.
                    "url": _with_query(base_query, sort="-" + key if sort == key else key),
                    "current": sort.lstrip("-") == key,
                    "descending": sort.startswith("-"),
                }
                for key, label in RUN_SORT_COLUMNS
            ],
            run_count=len(runs),
            page_obj=_paginate(self.request, runs, RUNS_PER_PAGE),
            query_string=_query_without(self.request, "page"),
            figure=charts.overview_figure(charted, run_urls={r.pk: r.get_absolute_url() for r in charted})
            if charted
            else None,
            unfinished=selectors.run_list_unfinished(**filters),
            answer_runs_not_charted=sum(r.scorer == RunScorer.ANSWER for r in series),
        )
        return context


# ----------------------------------------------------------------------------- two runs


def _bad_compare(request, message: str) -> HttpResponseBadRequest:
    return HttpResponseBadRequest(
        render_to_string("generation/run_compare.html", {"error": message}, request=request)
    )


def _run_id(raw: str | None) -> int | None:
    try:
        value = int(raw or "")
    except ValueError:
        return None
    return value if value > 0 else None


@require_safe
def run_compare(request):
    """Two runs on one dataset, item by item: /evaluations/compare/?a=ID&b=ID."""
    id_a, id_b = _run_id(request.GET.get("a")), _run_id(request.GET.get("b"))
    if id_a is None or id_b is None:
        return _bad_compare(request, "Choose two runs to compare: give their numbers as ?a=ID&b=ID.")
    runs = EvaluationRun.objects.select_related("dataset__collection").in_bulk([id_a, id_b])
    if id_a not in runs or id_b not in runs:
        raise Http404("No such evaluation run.")
    run_a, run_b = runs[id_a], runs[id_b]
    try:
        # run_comparison refuses runs of different scorers (selectors.runs_scorer_check) too.
        comparison = selectors.run_comparison(run_a=run_a, run_b=run_b)
    except (selectors.DifferentDatasets, selectors.MixedScorers) as exc:
        return _bad_compare(request, f"These runs cannot be compared: {exc}.")
    figure = (
        charts.comparison_figure(comparison.pairs, run_a=run_a, run_b=run_b) if comparison.pairs else None
    )
    context = {
        "comparison": comparison,
        "run_a": run_a,
        "run_b": run_b,
        "dataset": run_a.dataset,
        "figure": figure,
        "page_obj": _paginate(request, comparison.disagreements, DISAGREEMENTS_PER_PAGE),
        "query_string": _query_without(request, "page"),
        "swap_url": reverse("generation:run-compare") + f"?a={run_b.pk}&b={run_a.pk}",
    }
    return render(request, "generation/run_compare.html", context)


# ----------------------------------------------------------------------------- starting a suite


class SuiteCreateView(StaffRequiredMixin, FormView):
    """Several models on several datasets as one background job (generation.evaluation.suites); the
    job's page shows its progress, and links to the suite's page."""

    template_name = "generation/suite_form.html"
    form_class = SuiteForm

    def form_valid(self, form):
        data = form.cleaned_data
        try:
            _, job = suite_start(
                model_specs=data["model_specs"],
                dataset_slugs=[dataset.slug for dataset in data["datasets"]],
                collection_slugs=[collection.slug for collection in data["collections"]],
                all_datasets=data["all_datasets"],
                prompt_format=data["prompt_format"],
                scorer=data["scorer"],
                limit=data["limit"],
                seed=data["seed"],
                name=data["name"],
                created_by=self.request.user,
            )
        except EvaluationError as exc:
            form.add_error(None, str(exc))
            return self.form_invalid(form)
        return redirect("generation:job-detail", pk=job.pk)
