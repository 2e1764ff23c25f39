"""The exports for other tools as one call (export_write), shared by `manage.py export_dataset` and the
site's downloads, and those downloads: a dataset's, a collection's or the whole catalog's lm-eval task
folder, Inspect task or Parquet folder as one zip whose single folder is, file for file, what the
command writes for the same datasets.

Like the JSONL archive (archive.py), a zip is built once per version into the write-once file cache
(mwe_site.filecache), one build at a time so that parallel first requests build it once and
memory stays bounded by one scope's records, and served as a file after. A version is named by the format, the prompt format and every
dataset's export version; a Parquet card also carries the published annotation projects' agreement,
which moves without the datasets, so its version also covers their ratings (_agreement_stamp).
"""

from __future__ import annotations

import hashlib
import re
import shutil
import zipfile
from dataclasses import dataclass
from datetime import datetime
from functools import cached_property
from pathlib import Path

from django.conf import settings
from django.db.models import Count, Max

from generation.catalog import selectors
from generation.catalog.exports.archive import MEMBER_DATE
from generation.catalog.exports.inspect_task import inspect_export_write
from generation.catalog.exports.lm_eval import lm_eval_export_write
from generation.catalog.exports.parquet import parquet_export_write
from generation.catalog.exports.snapshot import ExportError, dataset_snapshot
from generation.models import Collection, Dataset, PromptFormat
from mwe_site.filecache import filecache_entry_get_or_build, filecache_prune, filecache_root

LM_EVAL, INSPECT, PARQUET = "lm-eval", "inspect", "parquet"
FORMATS = (LM_EVAL, INSPECT, PARQUET)
TASK_FORMATS = (LM_EVAL, INSPECT)  # only labelled evaluation datasets can be tasks
# Bump when a bundle's layout changes for the same datasets (the writers' own changes included).
BUNDLE_FORMAT_VERSION = 1
BUNDLES_FOLDER = "export-bundles"
BUNDLE_NAME = "bundle.zip"
CATALOG_GROUP = "catalog"
CATALOG_LABEL = "model-written-evals-catalog"
# One build at a time, site-wide: a build holds its scope's records in memory (the writers take them
# all at once), so parallel first requests for the catalog in three formats must not hold three
# copies. A built bundle is served without the lock.
BUILD_LOCK = "bundle-build"


@dataclass(frozen=True)
class ExportWritten:
    summary: str  # one line for the command's output
    skipped: list[str]  # slugs left out of a task export for having no gold answers


def _scorable(datasets: list[Dataset], *, kind: str, group: str | None) -> tuple[list[Dataset], list[str]]:
    """The datasets a `kind` export holds and the slugs it skips: a collection or the catalog (a
    group) skips the datasets without gold answers from a task export; named datasets are refused by
    the writer instead (scorable_records says which and why)."""
    if kind not in TASK_FORMATS or group is None:
        return datasets, []
    kept = [d for d in datasets if d.is_scorable]
    if not kept:
        raise ExportError("no labelled evaluation dataset to export as a task")
    return kept, [d.slug for d in datasets if not d.is_scorable]


def export_write(
    *,
    kind: str,
    datasets: list[Dataset],
    folder: Path,
    group: str | None,
    prompt_format: str = PromptFormat.PLAIN,
    include_private: bool = True,
) -> ExportWritten:
    """Writes the `kind` export of `datasets` into `folder` (which must exist). `group` is the
    collection's slug or "catalog" for a whole scope (the lm-eval group, the Parquet card's title),
    None for datasets named one by one. include_private=False (a public download) leaves unpublished
    annotation projects out of the Parquet card. Raises ExportError; the caller removes the folder."""
    if kind not in FORMATS:
        raise ExportError(f"unknown export format {kind!r}; use one of {', '.join(FORMATS)}")
    datasets, skipped = _scorable(datasets, kind=kind, group=group)
    snapshots = [
        dataset_snapshot(dataset=d, with_agreement=kind == PARQUET, include_private=include_private)
        for d in datasets
    ]
    if kind == LM_EVAL:
        export = lm_eval_export_write(
            snapshots=snapshots, folder=folder, prompt_format=prompt_format, group=group
        )
        summary = f"wrote {len(export.tasks)} lm-eval task(s) ({', '.join(export.task_names)})"
    elif kind == INSPECT:
        export = inspect_export_write(snapshots=snapshots, folder=folder)
        summary = f"wrote {len(export.tasks)} Inspect task(s) in {export.path.name}"
    else:
        title = f"Model-written evaluations: {group or ', '.join(d.slug for d in datasets)}"
        export = parquet_export_write(snapshots=snapshots, folder=folder, title=title)
        summary = f"wrote {len(export.files)} Parquet file(s) and a dataset card"
    return ExportWritten(summary=summary, skipped=skipped)


# ----------------------------------------------------------------------------- the site's downloads


@dataclass(frozen=True)
class BundleScope:
    """What a download holds: one dataset (as `--dataset SLUG`), a collection's datasets (as
    `--collection SLUG`) or every dataset (as `--all`)."""

    name: str  # "dataset-<slug>", "collection-<slug>" or "catalog": the cache's name for it
    label: str  # the zip's name and its folder's
    group: str | None  # the command's group: None for one dataset
    datasets: list[Dataset]


def bundle_scope(*, dataset: Dataset | None = None, collection: Collection | None = None) -> BundleScope:
    """A dataset's scope, a collection's, or (neither given) the catalog's, in one query; the datasets
    in the command's order."""
    if dataset is not None:
        return BundleScope(name=f"dataset-{dataset.slug}", label=dataset.slug, group=None, datasets=[dataset])
    queryset = Dataset.objects.select_related("collection").order_by("collection__slug", "slug")
    if collection is None:
        return BundleScope(
            name=CATALOG_GROUP, label=CATALOG_LABEL, group=CATALOG_GROUP, datasets=list(queryset)
        )
    return BundleScope(
        name=f"collection-{collection.slug}",
        label=collection.slug,
        group=collection.slug,
        datasets=list(queryset.filter(collection=collection)),
    )


def _public_responses(datasets: list[Dataset]):
    from annotation.models import Response

    return Response.objects.filter(
        project__published_at__isnull=False,
        item__is_gold=False,
        item__example__dataset__in=[d.pk for d in datasets],
    )


@dataclass(frozen=True)
class Bundle:
    """One download: a scope in one format (and, for lm-eval, one prompt format)."""

    scope: BundleScope
    kind: str
    prompt_format: str = PromptFormat.PLAIN

    def __post_init__(self) -> None:
        if self.kind not in FORMATS:
            raise ExportError(f"unknown export format {self.kind!r}; use one of {', '.join(FORMATS)}")
        if self.kind == LM_EVAL and self.prompt_format not in (PromptFormat.PLAIN, PromptFormat.PAPER):
            raise ExportError("the prompt format is plain or paper")
        if self.kind != LM_EVAL and self.prompt_format != PromptFormat.PLAIN:
            raise ExportError("only the lm-eval export has a prompt format")
        # Checked here, before any work: a scope with nothing to export is refused, never built.
        if not self.scope.datasets:
            raise ExportError("nothing to download: no datasets here yet")
        if self.kind in TASK_FORMATS and not any(d.is_scorable for d in self.scope.datasets):
            raise ExportError("no labelled evaluation dataset here to export as a task")

    @property
    def label(self) -> str:
        """The zip's name without .zip, and the one folder inside it."""
        paper = "-paper" if self.prompt_format == PromptFormat.PAPER else ""
        return f"{self.scope.label}-{self.kind}{paper}"

    @property
    def _prefix(self) -> str:
        paper = "-paper" if self.prompt_format == PromptFormat.PAPER else ""
        return f"{self.kind}{paper}-{self.scope.name}"

    @cached_property
    def _agreement_stamp(self) -> str:
        """What the card's agreement figures are computed from, cheaply: the published projects'
        ratings of the scope's datasets (any rating added, edited or withdrawn, or a project
        published or withdrawn, changes it) and the settings the figures and the card read."""
        if self.kind != PARQUET:
            return ""
        rated = _public_responses(self.scope.datasets).aggregate(
            n=Count("pk"), last=Max("pk"), edited=Max("edited_at"), published=Max("project__published_at")
        )
        replicates = getattr(settings, "ANALYSIS_BOOTSTRAP_REPLICATES", None)
        return f"{rated}:{replicates}:{settings.MWE_GENERATED_DATA_LICENSE}"

    @cached_property
    def version(self) -> str:
        """The cache's name for this bundle's content (also the download's ETag)."""
        digest = hashlib.sha256(f"v{BUNDLE_FORMAT_VERSION}:{self.label}:{self._agreement_stamp}\n".encode())
        for dataset in self.scope.datasets:
            version = selectors.dataset_export_version(dataset=dataset)
            # The collection's name is in the card and is not part of the dataset's version.
            digest.update(f"{version}:{dataset.slug}:{dataset.collection.name}\n".encode())
        return f"{self._prefix}-{digest.hexdigest()[:24]}"

    @cached_property
    def last_modified(self) -> datetime:
        latest = max(dataset.updated_at for dataset in self.scope.datasets)
        if self.kind == PARQUET:
            rated = _public_responses(self.scope.datasets).aggregate(
                created=Max("created_at"), edited=Max("edited_at"), published=Max("project__published_at")
            )
            latest = max([latest, *(value for value in rated.values() if value is not None)])
        return latest


def _bundle_write(*, bundle: Bundle, folder: Path) -> None:
    """The command's output folder for the bundle's datasets, zipped as one folder named by its
    label, in name order with fixed dates: the same content gives the same bytes."""
    export = folder / bundle.label
    export.mkdir()
    export_write(
        kind=bundle.kind,
        datasets=bundle.scope.datasets,
        folder=export,
        group=bundle.scope.group,
        prompt_format=bundle.prompt_format,
        include_private=False,
    )
    with zipfile.ZipFile(folder / BUNDLE_NAME, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=6) as out:
        for path in sorted(p for p in export.rglob("*") if p.is_file()):
            info = zipfile.ZipInfo(path.relative_to(folder).as_posix(), date_time=MEMBER_DATE)
            info.compress_type = zipfile.ZIP_DEFLATED
            info.external_attr = 0o644 << 16
            with path.open("rb") as reader, out.open(info, "w", force_zip64=True) as writer:
                shutil.copyfileobj(reader, writer, 1 << 20)
    shutil.rmtree(export)


def bundle_file(*, bundle: Bundle) -> Path:
    """The bundle's zip, written on the first request for its version and a file read after; the
    scope's older versions in this format are removed."""
    key = bundle.version
    root = filecache_root(name=BUNDLES_FOLDER)
    folder, built = filecache_entry_get_or_build(
        root=root,
        key=key,
        build=lambda folder: _bundle_write(bundle=bundle, folder=folder),
        lock=BUILD_LOCK,
    )
    if built:
        # Only this scope's and format's: "lm-eval-collection-a-<hash>" must not match "...-a-b".
        mine = re.compile(rf"{re.escape(bundle._prefix)}-[0-9a-f]{{24}}")
        filecache_prune(root=root, keep=lambda name: name == key or not mine.fullmatch(name))
    return folder / BUNDLE_NAME
