"""The researchers' agreement pages: the projects, a project's dashboard (every dataset's figures in a
sortable table, the relevance small multiples, LM-written against human-written), one group's page
(a dataset, a collection or everything: charts, Dawid-Skene, calibration) and the CSV/JSON exports.
Staff only, like annotation's researcher pages. Thin views over analysis.agreement.selectors and
analysis.agreement.charts."""

from __future__ import annotations

import io
import json
import math
from collections.abc import Callable
from dataclasses import dataclass
from functools import cached_property
from typing import Any
from urllib.parse import urlencode

from django.conf import settings
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404
from django.urls import reverse
from django.views import View
from django.views.generic import TemplateView
from drf_spectacular.openapi import AutoSchema
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema

from analysis.agreement import charts, disputes, selectors
from analysis.agreement import figures as agreement
from analysis.agreement.figures import Figure, GroupFigures
from analysis.agreement.selectors import GroupReport, RatingOptions
from analysis.agreement.serializers import GroupDetailSerializer, ProjectFiguresSerializer
from analysis.documented import DocumentedView
from annotation.models import AnnotationProject
from generation.models import Collection, Dataset
from mwe_site.permissions import StaffRequiredMixin
from mwe_site.safe_csv import csv_write

# Examples drawn one by one on a dataset's calibration chart (beyond that, only the bins).
CALIBRATION_POINTS = 5000


@dataclass(frozen=True)
class Column:
    key: str
    label: str
    get: Callable[[GroupFigures], Figure | int]
    style: str = "decimal"  # percent, decimal, count
    title: str = ""


COLUMNS = [
    Column("examples", "Examples (k ratings)", lambda f: f.examples, "count"),
    Column(
        "excluded",
        "Left out",
        lambda f: sum(f.excluded.values()),
        "count",
        "examples without exactly k ratings",
    ),
    Column(
        "answer_kappa",
        "Fleiss' κ (chosen answers)",
        lambda f: f.answers.fleiss_kappa,
        title="the paper's agreement: kappa on the answers the workers chose, the categories being the "
        "answer options",
    ),
    Column(
        "answer_raw",
        "Raw agreement (answers)",
        lambda f: f.answers.raw_agreement,
        "percent",
        "share of worker pairs who chose the same answer",
    ),
    Column(
        "majority",
        "Majority chose the label's answer",
        lambda f: f.majority_agrees,
        "percent",
        "more than k/2 workers chose the label's answer (k = 3: 2+ of 3)",
    ),
    Column(
        "label_kappa",
        "κ on agree-with-label votes",
        lambda f: f.label.fleiss_kappa,
        title="secondary: kappa on the votes 'chose the label's answer' or not; near 0 when nearly every "
        "vote agrees, whatever the agreement",
    ),
    Column("label_randolph", "Randolph's κ (agree-with-label votes)", lambda f: f.label.randolph_kappa),
    Column("label_alpha", "α (agree-with-label votes, nominal)", lambda f: f.label.krippendorff_alpha),
    Column("ambiguity_kappa", "Ambiguity κ (Fleiss)", lambda f: f.ambiguity.fleiss_kappa),
    Column(
        "ambiguous_none",
        "No one: ambiguous",
        lambda f: f.ambiguity_share(0),
        "percent",
        "0/k call it ambiguous",
    ),
    Column(
        "ambiguous_all",
        "All: ambiguous",
        lambda f: f.ambiguity_share(f.k),
        "percent",
        "k/k call it ambiguous",
    ),
    Column("relevance_mean", "Relevance mean", lambda f: f.relevance_mean),
    Column("relevance_sd", "Relevance sd", lambda f: f.relevance_sd),
    Column("relevance_alpha", "Relevance α (ordinal)", lambda f: f.relevance_alpha),
    Column("spearman", "Spearman ρ (confidence)", lambda f: f.spearman),
    Column("auc", "AUC (confidence)", lambda f: f.auc),
]
SORT_KEYS = {"dataset", "collection", *(c.key for c in COLUMNS)}
DEFAULT_SORT = "collection"


def rating_options(request: HttpRequest) -> RatingOptions:
    """The rating options a request's query asks for (the pages', the JSON's and the researcher API's)."""
    return RatingOptions(
        include_gold_failing=request.GET.get("include_gold_failing") == "1",
        include_excluded=request.GET.get("include_excluded") == "1",
        # A setting only so that tests of pages can ask for fewer resamples.
        replicates=getattr(settings, "ANALYSIS_BOOTSTRAP_REPLICATES", agreement.DEFAULT_REPLICATES),
    )


def _options_query(options: RatingOptions) -> str:
    params = {}
    if options.include_gold_failing:
        params["include_gold_failing"] = "1"
    if options.include_excluded:
        params["include_excluded"] = "1"
    return urlencode(params)


def _sort_value(group: GroupReport, key: str):
    if key == "dataset":
        return group.slug
    if key == "collection":
        return (group.collection.name if group.collection else "", group.slug)
    value = next(c for c in COLUMNS if c.key == key).get(group.figures)
    if isinstance(value, Figure):
        return value.value
    return value


def sort_groups(groups: list[GroupReport], *, key: str, descending: bool) -> list[GroupReport]:
    """Groups ordered by one column; undefined figures last whichever the direction."""
    defined = [g for g in groups if _sort_value(g, key) is not None]
    undefined = [g for g in groups if _sort_value(g, key) is None]
    return sorted(defined, key=lambda g: _sort_value(g, key), reverse=descending) + undefined


def group_url(project: AnnotationProject, group: GroupReport, *, query: str = "", suffix: str = "") -> str:
    if group.scope == "dataset":
        url = reverse(f"analysis:dataset{suffix}", args=[project.slug, group.slug])
    elif group.scope == "collection":
        url = reverse(f"analysis:collection{suffix}", args=[project.slug, group.slug])
    else:
        url = reverse(f"analysis:pooled{suffix}", args=[project.slug])
    return f"{url}?{query}" if query else url


def _cells(group: GroupReport) -> list[dict[str, Any]]:
    return [{"column": c, "value": c.get(group.figures)} for c in COLUMNS]


class ProjectListView(StaffRequiredMixin, TemplateView):
    template_name = "analysis/project_list.html"

    def get_context_data(self, **kwargs):
        context = super().get_context_data(**kwargs)
        context["projects"] = selectors.analysis_projects()
        return context


class ProjectMixin(StaffRequiredMixin):
    @cached_property
    def project(self) -> AnnotationProject:
        return get_object_or_404(AnnotationProject, slug=self.kwargs["project"])

    @cached_property
    def options(self) -> RatingOptions:
        return rating_options(self.request)


class DisputedView(ProjectMixin, TemplateView):
    """The project's disputed examples (split votes, open flags, gold misses), a page at a time."""

    template_name = "analysis/disputed.html"

    def get(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        self.include_excluded = request.GET.get("include_excluded") == "1"
        try:
            self.disputes = disputes.project_disputes(
                project=self.project,
                reason=request.GET.get("reason", ""),
                page=request.GET.get("page"),
                include_excluded=self.include_excluded,
            )
        except disputes.UnknownReason as exc:
            return HttpResponse(str(exc), status=400, content_type="text/plain; charset=utf-8")
        return super().get(request, *args, **kwargs)

    def get_context_data(self, **kwargs):
        context = super().get_context_data(**kwargs)
        found = self.disputes

        def query(*, reason: str, include_excluded: bool) -> str:
            return urlencode(
                {
                    **({"reason": reason} if reason else {}),
                    **({"include_excluded": "1"} if include_excluded else {}),
                }
            )

        context.update(
            project=self.project,
            disputes=found,
            page_obj=found.page,
            all_query=query(reason="", include_excluded=self.include_excluded),
            reasons=[
                {
                    "key": key,
                    "label": label,
                    "count": found.counts[key],
                    "current": key == found.reason,
                    "query": query(reason=key, include_excluded=self.include_excluded),
                }
                for key, label in disputes.REASONS.items()
            ],
            include_excluded=self.include_excluded,
            toggle_query=query(reason=found.reason, include_excluded=not self.include_excluded),
            reason_query=query(reason=found.reason, include_excluded=self.include_excluded),
            dashboard_url=reverse("analysis:dashboard", args=[self.project.slug]),
        )
        return context


class DashboardView(ProjectMixin, TemplateView):
    template_name = "analysis/dashboard.html"

    def get_context_data(self, **kwargs):
        context = super().get_context_data(**kwargs)
        report = selectors.project_report(project=self.project, options=self.options)
        query = _options_query(self.options)
        sort = self.request.GET.get("sort", DEFAULT_SORT)
        sort = sort if sort in SORT_KEYS else DEFAULT_SORT
        descending = self.request.GET.get("dir") == "desc"
        datasets = sort_groups(report.datasets, key=sort, descending=descending)
        urls = {g.slug: group_url(self.project, g, query=query) for g in report.datasets}

        def sort_link(key: str) -> dict[str, Any]:
            current = key == sort
            flip = "asc" if current and descending else "desc" if current else "asc"
            params = {**dict(self.request.GET.items()), "sort": key, "dir": flip}
            return {"url": "?" + urlencode(params), "current": current, "descending": current and descending}

        context.update(
            project=self.project,
            report=report,
            options=self.options,
            query=query,
            sort=sort if sort != DEFAULT_SORT or descending else "",
            descending=descending,
            columns=[{"column": c, **sort_link(c.key)} for c in COLUMNS],
            sort_dataset=sort_link("dataset"),
            sort_collection=sort_link("collection"),
            pooled={
                "group": report.pooled,
                "cells": _cells(report.pooled),
                "url": group_url(self.project, report.pooled, query=query),
            },
            collections=[
                {"group": g, "cells": _cells(g), "url": group_url(self.project, g, query=query)}
                for g in report.collections
            ],
            rows=[{"group": g, "cells": _cells(g), "url": urls[g.slug]} for g in datasets],
            comparisons=[
                {"comparison": c, "lm_url": urls[c.lm.slug], "human_url": urls[c.human.slug]}
                for c in report.comparisons
            ],
            small_multiples=charts.relevance_small_multiples(report.datasets, urls=urls)
            if report.datasets
            else None,
            lm_human=charts.lm_human_figure(report.comparisons, urls=urls) if report.comparisons else None,
            disputed_url=reverse("analysis:disputed", args=[self.project.slug]),
            disputed_count=disputes.project_dispute_count(project=self.project),
            csv_url=reverse("analysis:figures-csv", args=[self.project.slug])
            + (f"?{query}" if query else ""),
            json_url=reverse("analysis:figures-json", args=[self.project.slug])
            + (f"?{query}" if query else ""),
        )
        return context


def _flatten(prefix: str, value: Any, out: dict[str, Any]) -> None:
    """A group's figures as flat CSV columns: each figure gives value, ci_low, ci_high, undefined."""
    if isinstance(value, dict) and "value" in value and "undefined" in value:
        ci = value["ci"] or [None, None]
        out[prefix] = value["value"]
        out[f"{prefix}_ci_low"], out[f"{prefix}_ci_high"] = ci
        out[f"{prefix}_undefined"] = value["undefined"] or ""
    elif isinstance(value, dict):
        for key, item in value.items():
            _flatten(f"{prefix}_{key}" if prefix else str(key), item, out)
    else:
        out[prefix] = value


def figures_rows(report: selectors.ProjectReport) -> list[dict[str, Any]]:
    rows = []
    for group in report.groups():
        document = group.as_dict()
        excluded = document.pop("excluded")
        answers = document["answers"]
        answer_excluded = answers.pop("excluded")
        options = answers.pop("options")
        row: dict[str, Any] = {}
        _flatten("", document, row)
        row["answers_options"] = " | ".join(options)
        row["answers_excluded_examples"] = sum(answer_excluded.values())
        row["answers_excluded_reasons"] = "; ".join(f"{reason}: {n}" for reason, n in answer_excluded.items())
        row["excluded_examples"] = sum(excluded.values())
        row["excluded_reasons"] = "; ".join(f"{reason}: {n}" for reason, n in excluded.items())
        rows.append(row)
    return rows


class FiguresCsvView(ProjectMixin, View):
    def get(self, request: HttpRequest, project: str) -> HttpResponse:
        report = selectors.project_report(project=self.project, options=self.options)
        rows = figures_rows(report)
        fields: list[str] = []
        for row in rows:
            fields.extend(key for key in row if key not in fields)
        buffer = io.StringIO()
        csv_write(buffer, fieldnames=fields, rows=rows)
        response = HttpResponse(buffer.getvalue(), content_type="text/csv; charset=utf-8")
        response["Content-Disposition"] = f'attachment; filename="{self.project.slug}-agreement.csv"'
        return response


def _json_response(document: dict[str, Any], filename: str) -> HttpResponse:
    # allow_nan=False: an undefined figure is null with its reason, never NaN.
    body = json.dumps(document, ensure_ascii=False, allow_nan=False, indent=1)
    response = HttpResponse(body, content_type="application/json; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="{filename}"'
    return response


# The query of every agreement page and document.
RATING_OPTIONS = [
    OpenApiParameter(
        "include_gold_failing",
        str,
        enum=["1"],
        description="1: count the ratings of workers below their project's gold threshold too.",
    ),
    OpenApiParameter(
        "include_excluded", str, enum=["1"], description="1: count excluded workers' ratings too."
    ),
]
STAFF_ONLY = {
    302: OpenApiResponse(description="Not signed in: to the sign-in page."),
    403: OpenApiResponse(description="Signed in, but not staff."),
}


# DRF views only to be documented in the API schema (analysis.documented): the same response as a
# plain view, from the staff session.
class FiguresJsonView(ProjectMixin, DocumentedView):
    @extend_schema(
        operation_id="analysis_project_figures",
        summary="A project's agreement figures (staff session)",
        description="Every dataset's, collection's and the pooled figures of the project's complete "
        "examples, with bootstrap intervals; an undefined figure is null with its reason. A download "
        "(Content-Disposition: attachment). The researcher API serves the same document with a token: "
        "/api/projects/{slug}/figures/.",
        parameters=RATING_OPTIONS,
        responses={
            200: ProjectFiguresSerializer,
            **STAFF_ONLY,
            404: OpenApiResponse(description="No such project."),
        },
        tags=["analysis"],
    )
    def get(self, request: HttpRequest, project: str) -> HttpResponse:
        report = selectors.project_report(project=self.project, options=self.options)
        return _json_response(report.as_dict(), f"{self.project.slug}-agreement.json")


# ----------------------------------------------------------------------------- one group


class GroupMixin(ProjectMixin):
    """The group a URL names: a dataset, a collection, or everything (pooled)."""

    scope = "pooled"

    def group(self) -> tuple[GroupReport, selectors.ProjectRatings]:
        if self.scope == "dataset":
            dataset = get_object_or_404(
                Dataset.objects.select_related("collection"), slug=self.kwargs["slug"]
            )
            ratings = selectors.project_ratings(project=self.project, options=self.options, dataset=dataset)
            if dataset.pk not in ratings.tables:
                raise Http404("This dataset is not part of the project.")
            return selectors.dataset_group(ratings, dataset), ratings
        if self.scope == "collection":
            collection = get_object_or_404(Collection, slug=self.kwargs["slug"])
            ratings = selectors.project_ratings(
                project=self.project, options=self.options, collection=collection
            )
            if not ratings.datasets:
                raise Http404("No dataset of this collection is part of the project.")
            return selectors.collection_group(ratings, collection, ratings.datasets), ratings
        ratings = selectors.project_ratings(project=self.project, options=self.options)
        return selectors.pooled_group(ratings), ratings


class GroupView(GroupMixin, TemplateView):
    template_name = "analysis/group.html"

    def get_context_data(self, **kwargs):
        context = super().get_context_data(**kwargs)
        group, ratings = self.group()
        detail = selectors.group_detail(group, project=self.project)
        figures = group.figures
        query = _options_query(self.options)
        points = []
        if group.dataset is not None:
            texts = selectors.example_texts(
                project=self.project, dataset=group.dataset, limit=CALIBRATION_POINTS
            )
            table = group.table
            for i, example_id in enumerate(table.example_ids.tolist()):
                confidence = float(table.label_confidence[i])
                if example_id in texts and math.isfinite(confidence):
                    example = texts[example_id]
                    points.append(
                        {
                            "confidence": confidence,
                            "share": float(table.label_correct[i].mean()),
                            "text": example.text,
                            "url": example.get_absolute_url(),
                        }
                    )
        ds = detail.dawid_skene
        context.update(
            project=self.project,
            group=group,
            figures=figures,
            left_out_workers=ratings.left_out_workers,
            left_out_ratings=ratings.left_out_ratings,
            detail=detail,
            options=self.options,
            query=query,
            dashboard_url=reverse("analysis:dashboard", args=[self.project.slug])
            + (f"?{query}" if query else ""),
            disputed_url=reverse("analysis:disputed", args=[self.project.slug]),
            disputed_count=disputes.project_dispute_count(project=self.project),
            json_url=group_url(self.project, group, query=query, suffix="-json"),
            csv_url=group_url(self.project, group, query=query, suffix="-examples"),
            workers=sorted(
                (
                    {"reliability": w, "name": detail.worker_names.get(w.worker_id, str(w.worker_id))}
                    for w in ds.workers
                ),
                key=lambda row: row["reliability"].ds_accuracy,
            ),
            relevance_chart=charts.distribution_figure(
                [(str(level), f) for level, f in figures.relevance_distribution],
                x_title="relevance (1 Horrible – 5 Amazing)",
                y_title="% of ratings",
                what="ratings",
            )
            if figures.examples
            else None,
            ambiguity_chart=charts.distribution_figure(
                figures.ambiguity_distribution,
                x_title="workers who call the example ambiguous",
                y_title="% of examples",
                what="examples",
            )
            if figures.examples
            else None,
            calibration_chart=charts.calibration_figure(detail.calibration, k=figures.k, points=points)
            if detail.calibration
            else None,
        )
        return context


class _GroupJsonSchema(AutoSchema):
    def get_operation_id(self) -> str:
        # One view for three paths: named by its scope, not by its path (".json" and all).
        return f"analysis_{self.view.scope}_figures"


class GroupJsonView(GroupMixin, DocumentedView):
    schema = _GroupJsonSchema()

    @extend_schema(
        summary="One group's agreement figures (staff session)",
        description="The figures of a dataset, a collection or the whole project (pooled), with the "
        "calibration bins and Dawid-Skene's aggregate and worker reliabilities. A download.",
        parameters=RATING_OPTIONS,
        responses={
            200: GroupDetailSerializer,
            **STAFF_ONLY,
            404: OpenApiResponse(description="No such project, or the group is not part of it."),
        },
        tags=["analysis"],
    )
    def get(self, request: HttpRequest, project: str, slug: str | None = None) -> HttpResponse:
        group, _ = self.group()
        detail = selectors.group_detail(group, project=self.project)
        document = {"project": self.project.slug, "options": self.options.as_dict(), **detail.as_dict()}
        return _json_response(document, f"{self.project.slug}-{group.slug}-agreement.json")


EXAMPLE_FIELDS = [
    "example_id",
    "dataset",
    "position",
    "label_confidence",
    "answers",
    "label_correct_votes",
    "ambiguous_votes",
    "mean_relevance",
    "majority_vote",
    "ds_p_correct",
]


class GroupExamplesCsvView(GroupMixin, View):
    """Per example: the answers chosen, the votes, the majority vote and Dawid-Skene's posterior that
    the label is correct."""

    def get(self, request: HttpRequest, project: str, slug: str | None = None) -> HttpResponse:
        group, _ = self.group()
        detail = selectors.group_detail(group, project=self.project)
        buffer = io.StringIO()
        csv_write(buffer, fieldnames=EXAMPLE_FIELDS, rows=detail.example_rows())
        response = HttpResponse(buffer.getvalue(), content_type="text/csv; charset=utf-8")
        response["Content-Disposition"] = (
            f'attachment; filename="{self.project.slug}-{group.slug}-examples.csv"'
        )
        return response
