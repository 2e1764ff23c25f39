"""Exports of datasets to the field's tools and back (docs/exports.md): lm-evaluation-harness task
folders (lm_eval), Inspect AI tasks (inspect_task), Hugging Face datasets Parquet folders with a
dataset card (parquet, which also imports them back) and the bulk JSONL archive of a collection or
the whole catalog in the released layout (archive). bundle.export_write is the one call behind both
`manage.py export_dataset` and the site's zipped downloads of the first three (bundle.bundle_file).

The writers are pure: they take `DatasetSnapshot`s (snapshot.dataset_snapshot reads one from the
database) and a folder, so a benchmark or a script can call them without the site.
"""

from generation.catalog.exports.snapshot import (
    DatasetSnapshot,
    ExportError,
    dataset_snapshot,
    datasets_for_export,
)

__all__ = ["DatasetSnapshot", "ExportError", "dataset_snapshot", "datasets_for_export"]
