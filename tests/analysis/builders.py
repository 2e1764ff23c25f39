"""Rated projects for the analysis tests: datasets, a project over them and ratings written through
annotation's own import (so every rating is a submitted assignment within the items' overlap)."""

from __future__ import annotations

import random

import numpy as np

from annotation.models import AnnotationProject, Worker
from annotation.services.imports import ratings_import_text
from annotation.services.leases import assignment_submit, task_claim
from annotation.services.projects import project_create
from generation.catalog.formats import text_hash
from generation.models import Collection, Dataset, Example
from tests.builders import CollectionFactory, DatasetFactory

HEADER = "dataset,position,worker_id,relevance,label_correct,ambiguous\n"


def examples_create(
    dataset: Dataset, count: int, *, confidence: list[float | None] | None = None
) -> list[Example]:
    """`count` persona-style examples in one insert; `confidence` sets each label confidence."""
    confidence = (
        confidence if confidence is not None else [0.5 + 0.5 * i / max(count, 1) for i in range(count)]
    )
    examples = [
        Example(
            dataset=dataset,
            position=i,
            statement=f"Statement {i} of {dataset.slug}",
            question=f'Is the following statement something you would say?\n"Statement {i} of {dataset.slug}"',
            answer_matching_behavior=" Yes",
            answer_not_matching_behavior=" No",
            label_confidence=confidence[i],
            text_hash=text_hash(f"Statement {i} of {dataset.slug}"),
        )
        for i in range(count)
    ]
    return Example.objects.bulk_create(examples)


def ratings_text(rows) -> str:
    """CSV of (dataset slug, position, worker, relevance, label_correct, ambiguous) rows."""
    lines = [
        f"{slug},{position},{worker},{relevance},{'yes' if label else 'no'},{'yes' if ambiguous else 'no'}\n"
        for slug, position, worker, relevance, label, ambiguous in rows
    ]
    return HEADER + "".join(lines)


def rate(project: AnnotationProject, rows) -> None:
    ratings_import_text(text=ratings_text(rows), project_slug=project.slug)


def synthetic_rows(datasets, *, examples: int, k: int = 3, workers: int = 12, seed: int = 0):
    """k ratings of each of the first `examples` examples of each dataset by distinct random workers,
    mostly agreeing that the label is correct and the example is not ambiguous."""
    rng = np.random.default_rng(seed)
    rows = []
    for dataset in datasets:
        for position in range(examples):
            for worker in rng.choice(workers, size=k, replace=False):
                rows.append(
                    (
                        dataset.slug,
                        position,
                        f"crowd-{worker}",
                        int(rng.choice([2, 3, 4, 5], p=[0.05, 0.15, 0.3, 0.5])),
                        bool(rng.random() < 0.85),
                        bool(rng.random() < 0.1),
                    )
                )
    return rows


def rated_project(
    *,
    datasets: int = 3,
    examples: int = 6,
    rated: int | None = None,
    k: int = 3,
    slug: str = "crowd",
    collection: Collection | None = None,
    seed: int = 0,
) -> AnnotationProject:
    """A project over `datasets` new datasets of `examples` examples each, the first `rated`
    (default all) of each rated by k workers."""
    collection = collection or CollectionFactory()
    made = [DatasetFactory(collection=collection) for _ in range(datasets)]
    for dataset in made:
        examples_create(dataset, examples)
    project = project_create(name=slug.title(), slug=slug, datasets=made, overlap=k)
    rate(project, synthetic_rows(made, examples=examples if rated is None else rated, k=k, seed=seed))
    return project


def answer_gold(project: AnnotationProject, worker: Worker, *, right: bool, times: int) -> None:
    """The worker answers `times` gold items of the project, rightly or wrongly, through the site's
    own claim and submit (the project must have that many gold items and gold_rate 1)."""
    for _ in range(times):
        assignment = task_claim(worker=worker, project=project, rng=random.Random(0))
        item = assignment.item
        assert item.is_gold
        label = item.gold_label_correct if right else not item.gold_label_correct
        assignment_submit(
            assignment_id=assignment.pk, worker=worker, relevance=3, label_correct=label, ambiguous=False
        )
