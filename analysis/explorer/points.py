"""What a map is drawn from: the datasets it covers and their examples as points, in a fixed order."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from analysis.explorer.errors import ExplorerError
from generation.catalog import formats
from generation.models import Dataset, Example


@dataclass(frozen=True)
class Point:
    example_id: int
    dataset_id: int
    position: int
    text: str
    label: str  # the answer matching the behavior, stripped (" Yes" -> "Yes"); "" when none
    confidence: float | None


def explorer_points(*, datasets: Sequence[Dataset]) -> list[Point]:
    """The examples of those datasets, in dataset-slug then file order (a build's point order)."""
    order = {dataset.pk: rank for rank, dataset in enumerate(sorted(datasets, key=lambda d: d.slug))}
    examples = (
        Example.objects.filter(dataset__in=list(order))
        .only(
            "id",
            "dataset_id",
            "position",
            *formats.TEXT_COLUMNS,
            "answer_matching_behavior",
            "label_confidence",
        )
        .order_by("dataset_id", "position")
    )
    points = [
        Point(
            example_id=example.pk,
            dataset_id=example.dataset_id,
            position=example.position,
            text=example.text,
            label=example.answer_matching_behavior.strip(),
            confidence=example.label_confidence,
        )
        for example in examples.iterator(chunk_size=5000)
    ]
    points.sort(key=lambda p: (order[p.dataset_id], p.position))
    return points


def explorer_datasets(*, slugs: Sequence[str] | None = None) -> list[Dataset]:
    """The datasets maps are drawn for: every evaluation dataset with examples (few-shot prompts and
    reference lists are inputs to generation, not evaluations), or the named ones."""
    queryset = Dataset.objects.on_map()
    if slugs is None:
        return list(queryset.order_by("slug"))
    wanted = list(dict.fromkeys(slugs))
    found = {d.slug: d for d in Dataset.objects.filter(slug__in=wanted)}
    unknown = [slug for slug in wanted if slug not in found]
    if unknown:
        raise ExplorerError(f"no dataset with the slug {', '.join(repr(s) for s in unknown)}")
    return [found[slug] for slug in sorted(wanted)]
