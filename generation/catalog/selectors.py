"""Reads of datasets and examples, shared by the pages, the API and the export command."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

from django.db.models import Prefetch, Q, QuerySet

from generation.catalog import formats
from generation.models import Collection, Dataset, Example

# Bump when dataset_export_lines writes different bytes for the same examples: the files cached by
# generation.catalog.services.dataset_export_files are named by dataset_export_version.
EXPORT_FORMAT_VERSION = 1

EXAMPLE_SORTS = {
    "position": ("position",),
    "confidence": ("label_confidence", "position"),
    "-confidence": ("-label_confidence", "position"),
}


def collection_list_with_datasets() -> QuerySet[Collection]:
    """Collections with their datasets in two queries, whatever the size of the catalog."""
    return Collection.objects.prefetch_related(
        Prefetch("datasets", queryset=Dataset.objects.order_by("purpose", "slug"))
    ).order_by("-is_released", "name")


def matching_answer_q(label: str) -> Q:
    """Matches a label given with or without the leading space the released answers carry
    (" Yes", " (A)"), since query strings and forms often strip it."""
    label = label.strip()
    return Q(answer_matching_behavior=label) | Q(answer_matching_behavior=f" {label}")


def example_text_q(*, search: str) -> Q:
    """Examples whose text (formats.TEXT_LOOKUPS, wherever a format keeps it) contains `search`,
    ignoring case."""
    condition = Q()
    for lookup in formats.TEXT_LOOKUPS:
        condition |= Q(**{f"{lookup}__icontains": search})
    return condition


def example_list(
    *,
    dataset: Dataset,
    search: str = "",
    label: str = "",
    sort: str = "position",
) -> QuerySet[Example]:
    """A dataset's examples, narrowed by a text search and a matching answer, in a known order."""
    queryset = Example.objects.filter(dataset=dataset)
    search = search.strip()
    if search:
        queryset = queryset.filter(example_text_q(search=search))
    if label.strip():
        queryset = queryset.filter(matching_answer_q(label))
    return queryset.order_by(*EXAMPLE_SORTS.get(sort, EXAMPLE_SORTS["position"]))


def example_record(*, dataset: Dataset, example: Example) -> dict[str, Any]:
    """An example as a record of the released format, in the file's key order."""
    return formats.record_from_columns(
        field_order=dataset.field_order,
        key_order=example.key_order,
        question=example.question,
        statement=example.statement,
        answer_matching_behavior=example.answer_matching_behavior,
        answer_not_matching_behavior=example.answer_not_matching_behavior,
        label_confidence=example.label_confidence,
        extra=example.extra,
    )


def dataset_export_lines(*, dataset: Dataset, chunk_size: int = 2000) -> Iterator[str]:
    """The dataset as JSONL lines (each ending in a newline), in position order, streamed so a
    large dataset never sits in memory whole."""
    examples = Example.objects.filter(dataset=dataset).order_by("position")
    for example in examples.iterator(chunk_size=chunk_size):
        record = example_record(dataset=dataset, example=example)
        yield (formats.record_to_json_line(record, ensure_ascii=dataset.json_ensure_ascii) + "\n")


def dataset_export_version(*, dataset: Dataset) -> str:
    """A name for the content of the dataset's JSONL export, which changes whenever that content
    can: `updated_at` moves on every save of the dataset, and every change of its examples saves it
    (through dataset_refresh_stats). EXPORT_FORMAT_VERSION moves when the export code changes."""
    stamp = int(dataset.updated_at.timestamp() * 1_000_000)
    return f"{dataset.pk}-{stamp}-v{EXPORT_FORMAT_VERSION}"


# ----------------------------------------------------------------------------- an example's life

# Each list on an example's or a dataset's page is cut at this many rows (newest first).
LINKS_MAX = 20


@dataclass(frozen=True)
class RatingsLink:
    """One annotation project's ratings of an example: the page that lists them (staff only)."""

    name: str
    count: int
    label_correct: int
    published: bool
    url: str  # "" where the reader may not open the project's page


@dataclass(frozen=True)
class ExampleLinks:
    """Where an example came from and what became of it: the generation candidate it was kept as
    (and so its run), its ratings, the evaluations that scored it and its point on the map."""

    candidate: Any  # generation.models.Candidate with its run, or None
    ratings: list[RatingsLink]
    evaluations: list[Any]  # generation.models.EvaluationItem with its run, newest first
    evaluation_count: int
    map_url: str


def _visible_responses(*, include_private: bool):
    # The one rule of who sees which ratings, the explorer's (see analysis.explorer.selectors): the
    # public only published projects' ratings of regular items, staff every rating.
    from analysis.explorer.selectors import _responses

    return _responses(include_private=include_private)


def example_links(*, example: Example, include_private: bool) -> ExampleLinks:
    """What an example's page links to (a handful of bounded queries). include_private (staff):
    ratings of unpublished projects and gold items too, each project's page linked."""
    from django.db.models import Count
    from django.urls import reverse

    from generation.models import Candidate, EvaluationItem

    candidate = Candidate.objects.select_related("run").filter(example=example).first()
    rows = (
        _visible_responses(include_private=include_private)
        .filter(item__example=example)
        .values("project__slug", "project__name", "project__published_at")
        .annotate(n=Count("pk"), correct=Count("pk", filter=Q(label_correct=True)))
        .order_by("project__slug")[:LINKS_MAX]
    )
    ratings = [
        RatingsLink(
            name=row["project__name"],
            count=row["n"],
            label_correct=row["correct"],
            published=row["project__published_at"] is not None,
            url=reverse("annotation:project-detail", kwargs={"slug": row["project__slug"]})
            if include_private
            else "",
        )
        for row in rows
    ]
    items = EvaluationItem.objects.filter(example=example)
    return ExampleLinks(
        candidate=candidate,
        ratings=ratings,
        evaluations=list(items.select_related("run").order_by("-run__created_at", "-run_id")[:LINKS_MAX]),
        evaluation_count=items.count(),
        map_url=example_map_url(example=example),
    )


def example_map_url(*, example: Example) -> str:
    """The explorer with the example's point selected: on its dataset's map, else on the map of all
    datasets; "" when no map has it. The point's index is read from the map's memory-mapped ids."""
    import numpy as np
    from django.urls import reverse

    from analysis.explorer.selectors import explorer_build_current, explorer_build_ids

    for dataset in (example.dataset, None):
        build = explorer_build_current(dataset=dataset)
        if build is None:
            continue
        indices, found = explorer_build_ids(build=build).indices_of(np.array([example.pk]))
        if found.any():
            query = {"point": int(indices[0])}
            if dataset is not None:
                query = {"dataset": dataset.slug, **query}
            return f"{reverse('explorer:explorer')}?{urlencode(query)}"
    return ""


@dataclass(frozen=True)
class AgreementLink:
    project: str
    url: str


@dataclass(frozen=True)
class DatasetLinks:
    map_url: str
    agreement: list[AgreementLink]  # staff only: the agreement pages are researchers'


def dataset_links(*, dataset: Dataset, include_private: bool) -> DatasetLinks:
    """A dataset's map, and (staff) its agreement page in each annotation project that rates it."""
    from django.urls import reverse

    from analysis.explorer.selectors import explorer_build_current

    map_url = ""
    if explorer_build_current(dataset=dataset) is not None:
        map_url = f"{reverse('explorer:explorer')}?{urlencode({'dataset': dataset.slug})}"
    agreement = []
    if include_private:
        projects = dataset.annotation_projects.order_by("name").values_list("slug", "name")[:LINKS_MAX]
        agreement = [
            AgreementLink(
                project=name,
                url=reverse("analysis:dataset", kwargs={"project": slug, "slug": dataset.slug}),
            )
            for slug, name in projects
        ]
    return DatasetLinks(map_url=map_url, agreement=agreement)
