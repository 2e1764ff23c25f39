"""Rated projects for the analysis tests: datasets, a project over them and ratings written through
annotation's own import or its submit service (so every rating is a submitted assignment within the
items' overlap, with the answer the worker chose and the verdict derived from it)."""

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

HEADER = "dataset,position,worker_id,relevance,answer,ambiguous\n"
# Ratings of the older task (the worker judged the label shown): no answer column.
LEGACY_HEADER = "dataset,position,worker_id,relevance,label_correct,ambiguous\n"


def examples_create(
    dataset: Dataset,
    count: int,
    *,
    confidence: list[float | None] | None = None,
    matching: list[str] | None = None,
) -> list[Example]:
    """`count` persona-style examples in one insert; `confidence` sets each label confidence,
    `matching` each behavior-matching answer (" Yes" or " No"; default " Yes"), the other one being
    the not-matching answer."""
    confidence = (
        confidence if confidence is not None else [0.5 + 0.5 * i / max(count, 1) for i in range(count)]
    )
    matching = matching if matching is not None else [" Yes"] * count
    examples = [
        Example(
            dataset=dataset,
            position=i,
            statement=f"Statement {i} of {dataset.slug}",
            question=f'Is the following statement something you would say?\n"Statement {i} of {dataset.slug}"',
            answer_matching_behavior=matching[i],
            answer_not_matching_behavior=" No" if matching[i] == " Yes" else " Yes",
            label_confidence=confidence[i],
            text_hash=text_hash(f"Statement {i} of {dataset.slug}"),
        )
        for i in range(count)
    ]
    return Example.objects.bulk_create(examples)


def _answers_of(rows) -> dict[tuple[str, int], tuple[str, str]]:
    """(slug, position) -> (the label's answer, the first other answer), for the rows' examples."""
    slugs = {row[0] for row in rows}
    return {
        (example.dataset.slug, example.position): (
            example.answer_matching_behavior,
            example.not_matching_answers[0] if example.not_matching_answers else "",
        )
        for example in Example.objects.filter(dataset__slug__in=slugs).select_related("dataset")
    }


def ratings_text(rows) -> str:
    """CSV of (dataset slug, position, worker, relevance, answer, ambiguous) rows. The answer is the
    option's text, or a bool: True for the label's answer, False for the example's first other
    answer (the answer a worker gives who disagrees with a Yes/No label)."""
    answers = _answers_of(rows) if any(isinstance(row[4], bool) for row in rows) else {}
    lines = []
    for slug, position, worker, relevance, answer, ambiguous in rows:
        if isinstance(answer, bool):
            answer = answers[(slug, position)][0 if answer else 1]
        # As a crowd platform's export writes it: the option's text, without the leading space.
        lines.append(
            f"{slug},{position},{worker},{relevance},{answer.strip()},{'yes' if ambiguous else 'no'}\n"
        )
    return HEADER + "".join(lines)


def rate(project: AnnotationProject, rows) -> None:
    ratings_import_text(text=ratings_text(rows), project_slug=project.slug)


def rate_legacy(project: AnnotationProject, rows) -> None:
    """Ratings of the older task, (slug, position, worker, relevance, label_correct, ambiguous):
    the importer recovers the answer where it can (the label, or the one other answer) and leaves it
    empty where it cannot (a wrong label with several other answers)."""
    lines = [
        f"{slug},{position},{worker},{relevance},{'yes' if label else 'no'},{'yes' if ambiguous else 'no'}\n"
        for slug, position, worker, relevance, label, ambiguous in rows
    ]
    ratings_import_text(text=LEGACY_HEADER + "".join(lines), project_slug=project.slug)


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


def answer_for(example: Example, *, agrees: bool) -> str:
    """The option a worker picks who agrees with the example's label (its answer), or who does not
    (its first other answer)."""
    return example.answer_matching_behavior if agrees else example.not_matching_answers[0]


def answer_gold(project: AnnotationProject, worker: Worker, *, right: bool, times: int) -> None:
    """The worker answers `times` gold items of the project, rightly or wrongly, through the site's
    own claim and submit (the project must have that many gold items and gold_rate 1)."""
    for _ in range(times):
        assignment = task_claim(worker=worker, project=project, rng=random.Random(0))
        item = assignment.item
        assert item.is_gold
        agrees = item.gold_label_correct if right else not item.gold_label_correct
        answer = answer_for(item.example, agrees=agrees)
        assignment_submit(
            assignment_id=assignment.pk, worker=worker, relevance=3, answer=answer, ambiguous=False
        )


def submit_all(project: AnnotationProject, workers: list[Worker], choose) -> dict[tuple[int, int], str]:
    """The workers take turns claiming and submitting one task each through the site's own
    services until none is left for any of them; `choose(worker, example)` gives (answer,
    relevance, ambiguous), the answer one of the example's options. Returns what was submitted:
    (example id, worker id) -> answer."""
    submitted: dict[tuple[int, int], str] = {}
    rng = random.Random(0)
    busy = list(workers)
    while busy:
        for worker in list(busy):
            assignment = task_claim(worker=worker, project=project, rng=rng)
            if assignment is None:
                busy.remove(worker)
                continue
            example = assignment.item.example
            answer, relevance, ambiguous = choose(worker, example)
            assignment_submit(
                assignment_id=assignment.pk,
                worker=worker,
                relevance=relevance,
                answer=answer,
                ambiguous=ambiguous,
            )
            submitted[(example.pk, worker.pk)] = answer
    return submitted
