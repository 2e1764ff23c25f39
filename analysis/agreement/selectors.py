"""Reads for the agreement figures: a project's ratings as tables per dataset, per collection and
pooled, and the figures of each (analysis.agreement.figures computes them; nothing is stored).

The number of queries does not depend on the number of datasets: one for the project's items, one
for its responses, one for the gold answers (which workers fail gold) and one for the datasets; the
grouping into datasets and collections happens in memory. Gold items are never part of the figures.
Workers who fail the project's gold checks and workers a researcher excluded are left out by default.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
from django.db.models import Count, OuterRef, Q, Subquery
from django.db.models.functions import Coalesce

from analysis.agreement import figures as agreement
from analysis.agreement.figures import GroupFigures, RatingTable
from annotation.models import AnnotationProject, ProjectItem, Response, Worker
from annotation.selectors import project_gold_failing_worker_ids
from generation.catalog.formats import ADVANCED_AI_RISK_SUBSETS
from generation.models import Collection, Dataset, Example

# The categories import_evals gives the two halves of advanced-ai-risk (human_generated_evals and
# lm_generated_evals): datasets of one behavior in both are compared side by side.
# Why a worker's ratings are left out (read as "2 workers who failed the gold checks").
GOLD_FAILING = "who failed the gold checks"
EXCLUDED = "excluded by a researcher"
HUMAN_WRITTEN = ADVANCED_AI_RISK_SUBSETS["human_generated_evals"][1]
LM_WRITTEN = ADVANCED_AI_RISK_SUBSETS["lm_generated_evals"][1]


@dataclass(frozen=True)
class RatingOptions:
    include_gold_failing: bool = False
    include_excluded: bool = False
    replicates: int = agreement.DEFAULT_REPLICATES
    seed: int = agreement.DEFAULT_SEED

    def as_dict(self) -> dict[str, Any]:
        return {
            "include_gold_failing": self.include_gold_failing,
            "include_excluded": self.include_excluded,
            "bootstrap_replicates": self.replicates,
            "seed": self.seed,
            "confidence": agreement.CONFIDENCE,
        }


@dataclass(frozen=True)
class ProjectRatings:
    """A project's complete-example tables, one per dataset that has items in the project."""

    project: AnnotationProject
    options: RatingOptions
    datasets: list[Dataset]  # ordered by collection name, then slug; collection selected
    tables: dict[int, RatingTable]  # dataset id -> table
    left_out_workers: dict[str, int] = field(default_factory=dict)  # reason -> workers
    left_out_ratings: int = 0

    @property
    def k(self) -> int:
        return self.project.overlap

    def collections(self) -> list[tuple[Collection, list[Dataset]]]:
        grouped: dict[int, tuple[Collection, list[Dataset]]] = {}
        for dataset in self.datasets:
            grouped.setdefault(dataset.collection_id, (dataset.collection, []))[1].append(dataset)
        return list(grouped.values())

    def collection_table(self, datasets: list[Dataset]) -> RatingTable:
        return agreement.table_concat([self.tables[d.pk] for d in datasets], k=self.k)

    def pooled_table(self) -> RatingTable:
        return agreement.table_concat([self.tables[d.pk] for d in self.datasets], k=self.k)


def project_ratings(
    *,
    project: AnnotationProject,
    options: RatingOptions | None = None,
    dataset: Dataset | None = None,
    collection: Collection | None = None,
) -> ProjectRatings:
    """The project's ratings as tables, optionally for one dataset or one collection only."""
    options = options or RatingOptions()
    scope = Q(project=project, is_gold=False)
    rated = Q(project=project, item__is_gold=False)
    if dataset is not None:
        scope &= Q(example__dataset=dataset)
        rated &= Q(item__example__dataset=dataset)
    if collection is not None:
        scope &= Q(example__dataset__collection=collection)
        rated &= Q(item__example__dataset__collection=collection)
    items = list(
        ProjectItem.objects.filter(scope)
        .values_list(
            "example_id",
            "example__dataset_id",
            "example__label_confidence",
            "example__answer_matching_behavior",
            "example__answer_not_matching_behavior",
        )
        .order_by()
    )
    items.sort(key=lambda row: row[0])
    responses = list(
        Response.objects.filter(rated)
        .values_list(
            "item__example_id",
            "worker_id",
            "relevance",
            "label_correct",
            "ambiguous",
            "worker__excluded",
            "answer",
        )
        .order_by()
    )
    gold_failing = project_gold_failing_worker_ids(project=project)
    datasets = list(
        Dataset.objects.filter(pk__in=ProjectItem.objects.filter(scope).values("example__dataset_id"))
        .select_related("collection")
        .order_by("collection__name", "slug")
    )

    example_ids = np.array([row[0] for row in items], dtype=np.int64)
    item_dataset = np.array([row[1] for row in items], dtype=np.int64)
    confidence = np.array([np.nan if row[2] is None else row[2] for row in items], dtype=np.float64)
    # Each dataset's answer categories: its examples' options, in example order (the first
    # example's matching answer first), so a Yes/No dataset has the categories ("Yes", "No").
    dataset_options: dict[int, dict[str, None]] = {}
    for _, dataset_id, _, matching, not_matching in items:
        choices = dataset_options.setdefault(dataset_id, {})
        choices.setdefault(agreement.answer_text(matching or ""), None)
        for answer in not_matching if isinstance(not_matching, list) else [not_matching or ""]:
            choices.setdefault(agreement.answer_text(str(answer)), None)
    columns = list(zip(*responses, strict=True)) if responses else [[]] * 7
    rating_example = np.array(columns[0], dtype=np.int64)
    rating_worker = np.array(columns[1], dtype=np.int64)
    relevance = np.array(columns[2], dtype=np.int64)
    label_correct = np.array(columns[3], dtype=bool)
    ambiguous = np.array(columns[4], dtype=bool)
    excluded_worker = np.array(columns[5], dtype=bool)
    answers = np.array(columns[6], dtype=object)

    failing = np.isin(rating_worker, list(gold_failing)) if gold_failing else np.zeros(len(responses), bool)
    left_out = np.zeros(len(responses), dtype=bool)
    left_out_workers: dict[str, int] = {}
    if not options.include_gold_failing:
        left_out |= failing
        if count := len(np.unique(rating_worker[failing])):
            left_out_workers[GOLD_FAILING] = count
    if not options.include_excluded:
        left_out |= excluded_worker
        # A worker both failing gold and excluded is counted once, under gold.
        only_excluded = excluded_worker if options.include_gold_failing else excluded_worker & ~failing
        if count := len(np.unique(rating_worker[only_excluded])):
            left_out_workers[EXCLUDED] = count

    # Each rating's dataset, through its example; then one slice of items and ratings per dataset.
    order = np.argsort(example_ids)
    rating_dataset = item_dataset[order][np.searchsorted(example_ids[order], rating_example)]
    tables = {}
    for ds in datasets:
        in_items = item_dataset == ds.pk
        in_ratings = rating_dataset == ds.pk
        tables[ds.pk] = agreement.rating_table(
            k=project.overlap,
            example_ids=example_ids[in_items],
            label_confidence=confidence[in_items],
            rating_example=rating_example[in_ratings],
            rating_worker=rating_worker[in_ratings],
            relevance=relevance[in_ratings],
            label_correct=label_correct[in_ratings],
            ambiguous=ambiguous[in_ratings],
            answers=answers[in_ratings],
            answer_options=[option for option in dataset_options.get(ds.pk, {}) if option],
            left_out=left_out[in_ratings],
        )
    return ProjectRatings(
        project=project,
        options=options,
        datasets=datasets,
        tables=tables,
        left_out_workers=left_out_workers,
        left_out_ratings=int(left_out.sum()),
    )


# ----------------------------------------------------------------------------- reports


@dataclass(frozen=True)
class GroupReport:
    """The figures of one group of examples: a dataset, a collection or the whole project."""

    scope: str  # "dataset", "collection" or "pooled"
    slug: str
    name: str
    table: RatingTable
    figures: GroupFigures
    dataset: Dataset | None = None
    collection: Collection | None = None

    def as_dict(self) -> dict[str, Any]:
        head: dict[str, Any] = {"scope": self.scope, "slug": self.slug, "name": self.name}
        if self.dataset is not None:
            head.update(
                collection=self.dataset.collection.slug,
                behavior=self.dataset.behavior,
                category=self.dataset.category,
            )
        return {**head, **self.figures.as_dict()}


@dataclass(frozen=True)
class Comparison:
    """An LM-written and a human-written dataset for the same behavior (advanced-ai-risk)."""

    behavior: str
    lm: GroupReport
    human: GroupReport

    def as_dict(self) -> dict[str, Any]:
        return {"behavior": self.behavior, "lm": self.lm.slug, "human": self.human.slug}


@dataclass(frozen=True)
class ProjectReport:
    project: AnnotationProject
    options: RatingOptions
    left_out_workers: dict[str, int]
    left_out_ratings: int
    datasets: list[GroupReport]
    collections: list[GroupReport]
    pooled: GroupReport
    comparisons: list[Comparison]

    def as_dict(self) -> dict[str, Any]:
        return {
            "project": self.project.slug,
            "k": self.project.overlap,
            "options": self.options.as_dict(),
            "left_out": {"workers": dict(self.left_out_workers), "ratings": self.left_out_ratings},
            "pooled": self.pooled.as_dict(),
            "collections": [group.as_dict() for group in self.collections],
            "datasets": [group.as_dict() for group in self.datasets],
            "lm_vs_human": [comparison.as_dict() for comparison in self.comparisons],
        }

    def groups(self) -> list[GroupReport]:
        return [self.pooled, *self.collections, *self.datasets]


def _figures(table: RatingTable, options: RatingOptions) -> GroupFigures:
    return agreement.group_figures(table, replicates=options.replicates, seed=options.seed)


def dataset_group(ratings: ProjectRatings, dataset: Dataset) -> GroupReport:
    table = ratings.tables[dataset.pk]
    return GroupReport(
        scope="dataset",
        slug=dataset.slug,
        name=dataset.behavior or dataset.slug,
        table=table,
        figures=_figures(table, ratings.options),
        dataset=dataset,
        collection=dataset.collection,
    )


def collection_group(ratings: ProjectRatings, collection: Collection, datasets: list[Dataset]) -> GroupReport:
    table = ratings.collection_table(datasets)
    return GroupReport(
        scope="collection",
        slug=collection.slug,
        name=collection.name,
        table=table,
        figures=_figures(table, ratings.options),
        collection=collection,
    )


def pooled_group(ratings: ProjectRatings) -> GroupReport:
    table = ratings.pooled_table()
    return GroupReport(
        scope="pooled",
        slug=ratings.project.slug,
        name=f"All datasets of {ratings.project.name}",
        table=table,
        figures=_figures(table, ratings.options),
    )


def lm_human_pairs(groups: list[GroupReport]) -> list[Comparison]:
    """Datasets of one collection and behavior, one LM-written and one human-written."""
    by_key: dict[tuple[int, str], dict[str, GroupReport]] = {}
    for group in groups:
        dataset = group.dataset
        if dataset is None or dataset.category not in (LM_WRITTEN, HUMAN_WRITTEN):
            continue
        by_key.setdefault((dataset.collection_id, dataset.behavior), {})[dataset.category] = group
    return [
        Comparison(behavior=behavior, lm=pair[LM_WRITTEN], human=pair[HUMAN_WRITTEN])
        for (_, behavior), pair in sorted(by_key.items(), key=lambda item: item[0][1])
        if len(pair) == 2
    ]


def project_report(*, project: AnnotationProject, options: RatingOptions | None = None) -> ProjectReport:
    """Every figure of the project: per dataset, per collection and pooled, and the LM-written
    against human-written comparisons."""
    ratings = project_ratings(project=project, options=options)
    datasets = [dataset_group(ratings, dataset) for dataset in ratings.datasets]
    collections = [collection_group(ratings, c, members) for c, members in ratings.collections()]
    return ProjectReport(
        project=project,
        options=ratings.options,
        left_out_workers=ratings.left_out_workers,
        left_out_ratings=ratings.left_out_ratings,
        datasets=datasets,
        collections=collections,
        pooled=pooled_group(ratings),
        comparisons=lm_human_pairs(datasets),
    )


@dataclass(frozen=True)
class GroupDetail:
    """What a group's own page adds to its figures: calibration bins, Dawid-Skene beside the majority
    vote, and the examples with their aggregated labels."""

    group: GroupReport
    calibration: list[agreement.CalibrationBin]
    dawid_skene: agreement.DawidSkeneResult
    worker_names: dict[int, str]
    references: dict[int, tuple[str, int]]  # example id -> (dataset slug, position)
    disagreements: list[Example]  # where Dawid-Skene and the majority vote differ (the first 200)

    def as_dict(self) -> dict[str, Any]:
        return {
            **self.group.as_dict(),
            "calibration": [asdict(calibration_bin) for calibration_bin in self.calibration],
            "dawid_skene": self.dawid_skene.as_dict(worker_names=self.worker_names),
        }

    def example_rows(self) -> list[dict[str, Any]]:
        """Per example: its ratings summed up (the answers chosen, the votes agreeing with the label),
        the majority vote and Dawid-Skene's posterior."""
        table = self.group.table
        ds = self.dawid_skene
        majority = agreement.majority_vote(table)
        label_yes = table.label_correct.sum(axis=1)
        amb_yes = table.ambiguous.sum(axis=1)
        rows = []
        for i, example_id in enumerate(table.example_ids.tolist()):
            slug, position = self.references.get(example_id, ("", None))
            confidence = table.label_confidence[i]
            rows.append(
                {
                    "example_id": example_id,
                    "dataset": slug,
                    "position": position,
                    "label_confidence": None if np.isnan(confidence) else float(confidence),
                    "answers": answers_text(table, i),
                    "label_correct_votes": int(label_yes[i]),
                    "ambiguous_votes": int(amb_yes[i]),
                    "mean_relevance": float(table.relevance[i].mean()),
                    "majority_vote": {1: "correct", 0: "incorrect", -1: "tie"}[int(majority[i])],
                    "ds_p_correct": float(ds.p_correct[i]) if len(ds.p_correct) else None,
                }
            )
        return rows


def answers_text(table: RatingTable, row: int) -> str:
    """The answers the k workers chose for one example, e.g. "Yes: 2; No: 1" (options in the table's
    order; ratings made before workers chose answers as "not recorded")."""
    chosen = Counter(table.answers[row].tolist())
    parts = [
        f"{table.answer_options[code]}: {count}"
        for code, count in sorted(chosen.items())
        if code != agreement.NOT_RECORDED
    ]
    if missing := chosen.get(agreement.NOT_RECORDED):
        parts.append(f"not recorded: {missing}")
    return "; ".join(parts)


DISAGREEMENTS_SHOWN = 200


def group_detail(group: GroupReport, *, project: AnnotationProject) -> GroupDetail:
    """Calibration, Dawid-Skene and where each example lives (three queries: workers, example
    references, and the texts of the examples where Dawid-Skene and the majority vote differ)."""
    table = group.table
    worker_ids = np.unique(table.workers).tolist() if table.n else []
    names = {
        pk: external_id or f"worker {pk}"
        for pk, external_id in Worker.objects.filter(pk__in=worker_ids).values_list("pk", "external_id")
    }
    examples = Example.objects.filter(annotation_items__project=project, annotation_items__is_gold=False)
    if group.dataset is not None:
        examples = examples.filter(dataset=group.dataset)
    elif group.collection is not None:
        examples = examples.filter(dataset__collection=group.collection)
    references = {
        pk: (slug, position)
        for pk, slug, position in examples.values_list("pk", "dataset__slug", "position").order_by()
    }
    ds = agreement.dawid_skene(table)
    differing: list[Example] = []
    if ds.undefined == "":
        majority = ds.majority
        differs = (majority >= 0) & ((ds.p_correct > 0.5).astype(int) != majority)
        ids = table.example_ids[differs][:DISAGREEMENTS_SHOWN].tolist()
        differing = list(
            Example.objects.filter(pk__in=ids).select_related("dataset").order_by("dataset", "position")
        )
    return GroupDetail(
        group=group,
        calibration=agreement.calibration_bins(table),
        dawid_skene=ds,
        worker_names=names,
        references=references,
        disagreements=differing,
    )


def analysis_projects() -> list[AnnotationProject]:
    """Every annotation project with its numbers of datasets and responses (one query)."""
    datasets = (
        ProjectItem.objects.filter(project=OuterRef("pk"), is_gold=False)
        .order_by()
        .values("project")
        .annotate(n=Count("example__dataset", distinct=True))
        .values("n")
    )
    responses = (
        Response.objects.filter(project=OuterRef("pk"))
        .order_by()
        .values("project")
        .annotate(n=Count("pk"))
        .values("n")
    )
    return list(
        AnnotationProject.objects.annotate(
            dataset_count=Coalesce(Subquery(datasets), 0), response_count=Coalesce(Subquery(responses), 0)
        ).order_by("-created_at", "-pk")
    )


def example_texts(*, project: AnnotationProject, dataset: Dataset, limit: int) -> dict[int, Example]:
    """The dataset's regular examples in the project, for charts that show texts (one query)."""
    examples = (
        Example.objects.filter(
            dataset=dataset, annotation_items__project=project, annotation_items__is_gold=False
        )
        .select_related("dataset")
        .order_by("position")[:limit]
    )
    return {example.pk: example for example in examples}
