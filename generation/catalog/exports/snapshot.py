"""What the export writers need of a dataset, read from the database once: its released records (the
same dicts the JSONL download writes, in the same key order), provenance, the generation run that
made it and the annotators' agreement on it. The writers never touch the database."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from django.conf import settings

from generation.catalog import selectors
from generation.models import Collection, Dataset, Example

# The licence of the released data (anthropics/evals is CC BY 4.0). Datasets this site generated carry
# the site's own choice, MWE_GENERATED_DATA_LICENSE (an SPDX-style id as the Hub's cards take it).
RELEASED_LICENSE = "cc-by-4.0"


class ExportError(ValueError):
    """An export that cannot be made (unknown dataset, nothing scorable, bad folder); nothing written."""


@dataclass(frozen=True)
class DatasetSnapshot:
    slug: str
    collection_slug: str
    collection_name: str
    behavior: str
    description: str
    category: str
    kind: str
    purpose: str
    origin: str
    source_path: str
    source_sha256: str
    upstream_commit: str
    answer_prefix: str
    field_order: list[str]
    ensure_ascii: bool
    is_scorable: bool
    license: str
    # The released records, in position order and each in its own key order.
    records: list[dict[str, Any]]
    # The run that generated it: method, spec, generator and discriminator (None for imported data).
    generation: dict[str, Any] | None = None
    # Per annotation project that rated it: Fleiss' kappa on chosen answers and what it is over.
    agreement: list[dict[str, Any]] = field(default_factory=list)
    url_path: str = ""

    @property
    def is_released(self) -> bool:
        return self.origin == Dataset.Origin.IMPORTED and self.collection_slug in _released_slugs()


def _released_slugs() -> set[str]:
    from generation.catalog.formats import COLLECTIONS

    return set(COLLECTIONS)


def datasets_for_export(
    *, slugs: Iterable[str] = (), collection_slug: str | None = None, everything: bool = False
) -> list[Dataset]:
    """The datasets named by slugs, or a collection's, or all of them; exactly one of the three.
    Raises ExportError naming what is unknown."""
    slugs = list(dict.fromkeys(slugs))
    if sum([bool(slugs), collection_slug is not None, everything]) != 1:
        raise ExportError("name datasets, one collection or everything (exactly one of them)")
    queryset = Dataset.objects.select_related("collection").order_by("collection__slug", "slug")
    if everything:
        datasets = list(queryset)
    elif collection_slug is not None:
        collection = Collection.objects.filter(slug=collection_slug).first()
        if collection is None:
            raise ExportError(f"no collection with slug {collection_slug!r}")
        datasets = list(queryset.filter(collection=collection))
    else:
        found = {dataset.slug: dataset for dataset in queryset.filter(slug__in=slugs)}
        missing = [slug for slug in slugs if slug not in found]
        if missing:
            raise ExportError(f"no dataset with slug {', '.join(repr(s) for s in missing)}")
        datasets = [found[slug] for slug in slugs]
    if not datasets:
        raise ExportError("nothing to export: the selection has no datasets")
    return datasets


def _generation(dataset: Dataset) -> dict[str, Any] | None:
    run = getattr(dataset, "generation_run", None)
    if run is None:
        return None
    return {
        "run": run.pk,
        "method": run.method,
        "behavior": run.behavior,
        "description": run.description,
        "status": run.status,
        "finished_at": run.finished_at.isoformat() if run.finished_at else None,
        "spec": run.spec,
        "generator": run.generator_info,
        "discriminator": run.discriminator_info,
    }


def _agreement(dataset: Dataset, *, include_private: bool) -> list[dict[str, Any]]:
    """The paper's inter-rater figure (Fleiss' kappa on the answers workers chose) per annotation
    project with complete ratings of the dataset, as the agreement pages compute it. Without
    include_private, only published projects count: the public sees no unpublished project's ratings
    (analysis.explorer.selectors._responses), nor its name."""
    # Imported here: analysis depends on generation, not the other way round.
    from analysis.agreement import figures as agreement
    from analysis.agreement.selectors import project_ratings
    from annotation.models import AnnotationProject

    projects = AnnotationProject.objects.filter(
        items__example__dataset=dataset, items__is_gold=False
    ).distinct()
    if not include_private:
        projects = projects.filter(published_at__isnull=False)
    found = []
    for project in projects.order_by("pk"):
        ratings = project_ratings(project=project, dataset=dataset)
        table = ratings.tables.get(dataset.pk)
        if table is None or not table.n:
            continue
        replicates = getattr(settings, "ANALYSIS_BOOTSTRAP_REPLICATES", agreement.DEFAULT_REPLICATES)
        figures = agreement.group_figures(table, replicates=replicates)
        kappa = figures.answers.fleiss_kappa
        found.append(
            {
                "project": project.name,
                "k": figures.k,
                "examples": figures.answers.examples,
                "ratings": figures.ratings,
                "workers": figures.workers,
                "fleiss_kappa": kappa.value,
                "ci": [kappa.ci_low, kappa.ci_high] if kappa.has_ci else None,
                "undefined": kappa.undefined or None,
            }
        )
    return found


def dataset_snapshot(
    *, dataset: Dataset, with_agreement: bool = True, include_private: bool = True
) -> DatasetSnapshot:
    """The dataset as the writers need it. include_private=False (a public download) keeps only
    published annotation projects' agreement."""
    examples = Example.objects.filter(dataset=dataset).order_by("position")
    records = [
        selectors.example_record(dataset=dataset, example=example) for example in examples.iterator(2000)
    ]
    released = dataset.origin == Dataset.Origin.IMPORTED and dataset.collection.is_released
    license_id = RELEASED_LICENSE if released else settings.MWE_GENERATED_DATA_LICENSE
    return DatasetSnapshot(
        slug=dataset.slug,
        collection_slug=dataset.collection.slug,
        collection_name=dataset.collection.name,
        behavior=dataset.behavior,
        description=dataset.description,
        category=dataset.category,
        kind=dataset.kind,
        purpose=dataset.purpose,
        origin=dataset.origin,
        source_path=dataset.source_path,
        source_sha256=dataset.source_sha256,
        upstream_commit=dataset.upstream_commit,
        answer_prefix=dataset.answer_prefix,
        field_order=list(dataset.field_order),
        ensure_ascii=dataset.json_ensure_ascii,
        is_scorable=dataset.is_scorable,
        license=license_id,
        records=records,
        generation=_generation(dataset),
        agreement=_agreement(dataset, include_private=include_private) if with_agreement else [],
        url_path=dataset.get_absolute_url(),
    )
