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


def _stratified_sample(examples: list[Example], *, per_label: int, rng: random.Random) -> list[Example]:
    by_label: dict[str, list[Example]] = defaultdict(list)
    for example in examples:
        by_label[example.answer_matching_behavior.strip()].append(example)
    chosen: list[Example] = []
    for label in sorted(by_label):
        group = by_label[label]
        chosen.extend(group if len(group) <= per_label else rng.sample(group, per_label))
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
    per_label: int | None = None,
    seed: int = 0,
    max_sessions_per_worker: int = 1,
    created_by: AbstractBaseUser | None = None,
) -> AnnotationProject:
    """A project over all examples of `datasets`, or, with `per_label`, a stratified random sample of
    up to `per_label` examples per dataset and label (the behavior-matching answer), reproducible
    from `seed`."""
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
        if per_label is None:
            ids = list(examples.values_list("pk", flat=True))
        else:
            fields = examples.only("pk", "answer_matching_behavior")
            ids = sorted(e.pk for e in _stratified_sample(list(fields), per_label=per_label, rng=rng))
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
