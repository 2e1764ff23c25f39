"""Reads of datasets and examples, shared by the pages, the API and the export command."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

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
