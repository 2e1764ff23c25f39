"""Writes of annotation projects: creation (all examples of some datasets, or a stratified sample),
gold items, publishing and unpublishing."""

from __future__ import annotations

import random
from collections import defaultdict
from collections.abc import Iterable

from django.contrib.auth.models import AbstractBaseUser
from django.db import transaction
from django.utils import timezone

from annotation.models import GOLD_ITEM_CAPACITY, AnnotationProject, Assignment, ProjectItem
from annotation.services.errors import AssignmentConflict
from annotation.services.leases import assignments_end_live
from generation.models import Dataset, Example

BULK_BATCH = 1000


def _by_label(examples: list[Example]) -> dict[str, list[Example]]:
    by_label: dict[str, list[Example]] = defaultdict(list)
    for example in examples:
        by_label[example.answer_matching_behavior.strip()].append(example)
    return by_label


def _stratified_sample(examples: list[Example], *, per_label: int, rng: random.Random) -> list[Example]:
    by_label = _by_label(examples)
    chosen: list[Example] = []
    for label in sorted(by_label):
        group = by_label[label]
        chosen.extend(group if len(group) <= per_label else rng.sample(group, per_label))
    return chosen


def label_quotas(sizes: dict[str, int], *, total: int) -> dict[str, int]:
    """How many of `total` examples to take per label, as evenly as the labels allow: each label
    gets an equal share, a label with fewer examples than its share gives what it lacks to the
    others, and what does not divide evenly goes to the larger labels. E.g. 100 over labels of
    500 and 500 examples: 50 and 50; over 20 and 500: 20 and 80; 101 over 500 and 600: 50 and 51."""
    quotas: dict[str, int] = {}
    remaining = total
    # Smallest first (ties by label, so the split never depends on dict order): each takes at most
    # an equal share of what is left, so remainders and shortfalls flow to the larger labels.
    order = sorted(sizes, key=lambda label: (sizes[label], label))
    for index, label in enumerate(order):
        share = remaining // (len(order) - index)
        quotas[label] = min(sizes[label], share)
        remaining -= quotas[label]
    return quotas


def _balanced_sample(examples: list[Example], *, per_dataset: int, rng: random.Random) -> list[Example]:
    by_label = _by_label(examples)
    quotas = label_quotas({label: len(group) for label, group in by_label.items()}, total=per_dataset)
    chosen: list[Example] = []
    for label in sorted(by_label):
        group = by_label[label]
        chosen.extend(group if len(group) <= quotas[label] else rng.sample(group, quotas[label]))
    return chosen


@transaction.atomic
def project_create(
    *,
    name: str,
    slug: str,
    datasets: Iterable[Dataset],
    overlap: int = 3,
    lease_seconds: int = 300,
    instructions: str = "",
    gold_rate: float = 0.0,
    gold_threshold: float = 0.7,
    per_dataset: int | None = None,
    per_label: int | None = None,
    seed: int = 0,
    max_sessions_per_worker: int = 1,
    created_by: AbstractBaseUser | None = None,
) -> AnnotationProject:
    """A project over all examples of `datasets`, or a random sample of each dataset, reproducible
    from `seed`:

    - `per_dataset`: up to N examples per dataset, balanced over its labels (the behavior-matching
      answers; see `label_quotas`). The paper rated 100 examples per dataset for 122 of its
      datasets and every example of 11 (Perez et al., 2022, §3.3);
    - `per_label`: up to N examples per dataset and label (a dataset with two labels gives 2N).

    Not both."""
    if per_dataset is not None and per_label is not None:
        raise ValueError("give per_dataset or per_label, not both")
    datasets = list(datasets)
    project = AnnotationProject.objects.create(
        name=name,
        slug=slug,
        overlap=overlap,
        lease_seconds=lease_seconds,
        instructions=instructions,
        gold_rate=gold_rate,
        gold_threshold=gold_threshold,
        max_sessions_per_worker=max_sessions_per_worker,
        created_by=created_by if created_by is not None and created_by.is_authenticated else None,
    )
    project.datasets.set(datasets)
    rng = random.Random(seed)
    for dataset in sorted(datasets, key=lambda d: d.pk):
        examples = dataset.examples.order_by("position")
        if per_dataset is None and per_label is None:
            ids = list(examples.values_list("pk", flat=True))
        else:
            fields = list(examples.only("pk", "answer_matching_behavior"))
            if per_dataset is not None:
                sample = _balanced_sample(fields, per_dataset=per_dataset, rng=rng)
            else:
                sample = _stratified_sample(fields, per_label=per_label, rng=rng)
            ids = sorted(e.pk for e in sample)
        ProjectItem.objects.bulk_create(
            [ProjectItem(project=project, example_id=pk, overlap=overlap) for pk in ids],
            batch_size=BULK_BATCH,
        )
    return project


@transaction.atomic
def project_item_mark_gold(
    *, item: ProjectItem, label_correct: bool | None, ambiguous: bool | None
) -> ProjectItem:
    """Make an item a gold item with the expected answers. Only before anyone rated it: its counters
    would otherwise describe a different capacity."""
    item = ProjectItem.objects.select_for_update().get(pk=item.pk)
    if item.reserved_count:
        raise AssignmentConflict("an item becomes gold only before any worker has taken it")
    item.is_gold = True
    item.gold_label_correct = label_correct
    item.gold_ambiguous = ambiguous
    item.overlap = GOLD_ITEM_CAPACITY
    item.save(update_fields=["is_gold", "gold_label_correct", "gold_ambiguous", "overlap"])
    return item


@transaction.atomic
def project_publish(*, project: AnnotationProject, now=None) -> AnnotationProject:
    """Close the project and publish its results: the public pages show its ratings from now on.
    No new claims (the project is no longer active) and no late answers: live leases end at once,
    so nothing changes the published ratings. Publishing again keeps the first date."""
    project = AnnotationProject.objects.select_for_update().get(pk=project.pk)
    now = now or timezone.now()
    if project.published_at is None:
        project.published_at = now
    project.is_active = False
    project.save(update_fields=["published_at", "is_active"])
    assignments_end_live(
        assignments=Assignment.objects.filter(project=project), status=Assignment.Status.RELEASED, now=now
    )
    return project


@transaction.atomic
def project_unpublish(*, project: AnnotationProject) -> AnnotationProject:
    """Hide the project's ratings from the public pages again. The project stays closed: reopening
    it for work is a decision of its own (`is_active`, in the admin)."""
    project = AnnotationProject.objects.select_for_update().get(pk=project.pk)
    project.published_at = None
    project.save(update_fields=["published_at"])
    return project
