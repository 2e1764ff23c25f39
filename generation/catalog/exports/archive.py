"""The bulk download: a collection or the whole catalog as one zip of JSONL files in the released
layout (persona/narcissism.jsonl, advanced-ai-risk/human_generated_evals/...), each member the
bytes of that dataset's own download.

Built once per catalog version into the same write-once file cache as the per-dataset downloads
(services.dataset_export_files, whose files it packs), never per request: a version is named by the
export versions of every dataset in the scope, so an edit, import or deletion gives a new archive and
the old one is removed."""

from __future__ import annotations

import hashlib
import re
import shutil
import zipfile
from dataclasses import dataclass
from pathlib import Path

from generation.catalog import formats, selectors, services
from generation.catalog.exports.snapshot import ExportError
from generation.models import Collection, Dataset
from mwe_site.filecache import filecache_entry_get_or_build, filecache_prune, filecache_root

# Bump when the archive's layout changes for the same datasets.
ARCHIVE_FORMAT_VERSION = 1
ARCHIVE_NAME = "archive.zip"
CATALOG_SCOPE = "catalog"
# A fixed date in every member's header: the same datasets give the same archive bytes.
MEMBER_DATE = (1980, 1, 1, 0, 0, 0)


@dataclass(frozen=True)
class ArchiveScope:
    """What one archive holds: a collection's datasets or every dataset."""

    name: str  # "catalog" or "collection-<slug>"
    datasets: list[Dataset]

    @property
    def version(self) -> str:
        digest = hashlib.sha256(f"v{ARCHIVE_FORMAT_VERSION}".encode())
        for dataset in self.datasets:
            version = selectors.dataset_export_version(dataset=dataset)
            digest.update(f"{version}:{member_name(dataset)}\n".encode())
        return f"{self.name}-{digest.hexdigest()[:24]}"


def archive_scope(*, collection: Collection | None) -> ArchiveScope:
    """The datasets of a collection, or of the catalog, in one query."""
    queryset = Dataset.objects.select_related("collection").order_by("collection__slug", "slug")
    if collection is None:
        return ArchiveScope(name=CATALOG_SCOPE, datasets=list(queryset))
    return ArchiveScope(
        name=f"collection-{collection.slug}", datasets=list(queryset.filter(collection=collection))
    )


def member_name(dataset: Dataset) -> str:
    """Where a dataset's file goes: its released path when it came from the release, else
    <collection>/<slug>.jsonl."""
    parts = Path(dataset.source_path).parts
    if (
        parts
        and parts[0] in formats.COLLECTIONS
        and dataset.source_path.endswith(".jsonl")
        and ".." not in parts
        and parts[0] == dataset.collection.slug
    ):
        return dataset.source_path
    return f"{dataset.collection.slug}/{dataset.slug}.jsonl"


def archive_members(scope: ArchiveScope) -> list[tuple[str, Dataset]]:
    """(member name, dataset) in name order; two datasets claiming one released path (the same file
    imported twice under different slugs) are told apart by falling back to collection/slug."""
    taken: set[str] = set()
    members = []
    for dataset in scope.datasets:
        name = member_name(dataset)
        if name in taken:
            name = f"{dataset.collection.slug}/{dataset.slug}.jsonl"
        taken.add(name)
        members.append((name, dataset))
    return sorted(members, key=lambda member: member[0])


def _archive_write(*, scope: ArchiveScope, folder: Path) -> None:
    with zipfile.ZipFile(
        folder / ARCHIVE_NAME, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=6
    ) as archive:
        for name, dataset in archive_members(scope):
            info = zipfile.ZipInfo(name, date_time=MEMBER_DATE)
            info.compress_type = zipfile.ZIP_DEFLATED
            info.external_attr = 0o644 << 16
            source = services.dataset_export_files(dataset=dataset).plain
            # Copied in blocks: memory stays flat however large the catalog.
            with source.open("rb") as reader, archive.open(info, "w", force_zip64=True) as writer:
                shutil.copyfileobj(reader, writer, 1 << 20)


def archive_file(*, scope: ArchiveScope) -> Path:
    """The scope's archive, written on the first request for its version and a file read after."""
    if not scope.datasets:
        raise ExportError("nothing to download: no datasets here yet")
    key = scope.version
    root = filecache_root(name=services.EXPORTS_FOLDER)
    folder, built = filecache_entry_get_or_build(
        root=root,
        key=key,
        build=lambda folder: _archive_write(scope=scope, folder=folder),
        lock=scope.name,
    )
    if built:
        # Only this scope's older versions: "collection-a-<hash>" must not match collection "a-b".
        mine = re.compile(rf"{re.escape(scope.name)}-[0-9a-f]{{24}}")
        filecache_prune(root=root, keep=lambda name: name == key or not mine.fullmatch(name))
    return folder / ARCHIVE_NAME
