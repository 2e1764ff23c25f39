"""Hugging Face datasets folders (the Hub's layout: README.md dataset card + data/<config>/validation.parquet,
one config per dataset) and the way back: Parquet files read into the released records and imported
through the same service as JSONL (services.evals_import).

Columns are the released fields in the file's key order. Arrow needs one type per column, so a field
whose values all have one JSON type (string, integer, float, boolean, or list of strings) is stored
as that type: answer_not_matching_behavior is a string column for the files that write a string
(persona, advanced-ai-risk) and a list of strings for those that write lists (PhilPapers sycophancy).
A field mixing types (or holding objects) is stored as JSON text and named in the file's metadata and
the card. The file's metadata (key "mwe") also keeps what the JSONL needs to come back byte for byte:
key order (per record where it differs), JSON escaping, slug, collection and provenance.
"""

from __future__ import annotations

import json
import re
import tempfile
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import yaml
from django.contrib.auth.models import AbstractBaseUser

from generation.catalog import formats
from generation.catalog.exports.lm_eval import SPLIT
from generation.catalog.exports.snapshot import DatasetSnapshot, ExportError
from generation.catalog.formats import EvalsFormatError

METADATA_KEY = b"mwe"
METADATA_VERSION = 1
DATA_FOLDER = "data"
NATIVE_TYPES = {str: pa.string(), int: pa.int64(), float: pa.float64(), bool: pa.bool_()}
CITATION = """@misc{perez2022discovering,
  title = {Discovering Language Model Behaviors with Model-Written Evaluations},
  author = {Perez, Ethan and Ringer, Sam and Luko\\v{s}i\\=ut\\.{e}, Kamil\\.{e} and others},
  year = {2022},
  eprint = {2212.09251},
  archivePrefix = {arXiv},
  url = {https://arxiv.org/abs/2212.09251}
}"""
SPLIT_FILE = re.compile(r"^(train|validation|test)([-_.].*)?$")


@dataclass(frozen=True)
class ParquetExport:
    folder: Path
    files: list[Path]


# ----------------------------------------------------------------------------- writing


def _column(values: list[Any]) -> tuple[pa.Array, bool]:
    """An Arrow column for one field's values (None where null or absent), and whether it is JSON text."""
    present = [value for value in values if value is not None]
    kinds = {type(value) for value in present}
    if not kinds:
        return pa.array(values, type=pa.string()), False
    if len(kinds) == 1:
        kind = next(iter(kinds))
        if kind in NATIVE_TYPES:
            return pa.array(values, type=NATIVE_TYPES[kind]), False
        if kind is list and all(isinstance(item, str) for value in present for item in value):
            return pa.array(values, type=pa.list_(pa.string())), False
    encoded = [None if value is None else json.dumps(value, ensure_ascii=False) for value in values]
    return pa.array(encoded, type=pa.string()), True


def records_table(snapshot: DatasetSnapshot) -> pa.Table:
    """The dataset's records as an Arrow table, with what restores the JSONL in its metadata."""
    records = snapshot.records
    columns: list[str] = list(snapshot.field_order)
    key_orders: dict[str, list[str]] = {}
    for position, record in enumerate(records):
        order = list(record)
        for key in order:
            if key not in columns:
                columns.append(key)
        if order != snapshot.field_order:
            key_orders[str(position)] = order
    arrays, json_columns = [], []
    for name in columns:
        array, is_json = _column([record.get(name) for record in records])
        arrays.append(array)
        if is_json:
            json_columns.append(name)
    metadata = {
        "version": METADATA_VERSION,
        "slug": snapshot.slug,
        "collection": snapshot.collection_slug,
        "source_path": snapshot.source_path,
        "source_sha256": snapshot.source_sha256,
        "upstream_commit": snapshot.upstream_commit,
        "field_order": snapshot.field_order,
        "ensure_ascii": snapshot.ensure_ascii,
        "key_orders": key_orders,
        "json_columns": json_columns,
    }
    table = pa.Table.from_arrays(arrays, names=columns) if columns else pa.table({})
    return table.replace_schema_metadata({METADATA_KEY: json.dumps(metadata).encode()})


def parquet_export_write(*, snapshots: list[DatasetSnapshot], folder: Path, title: str) -> ParquetExport:
    """Writes data/<slug>/validation.parquet per dataset and the README.md dataset card into folder."""
    if not snapshots:
        raise ExportError("nothing to export")
    files = []
    for snapshot in snapshots:
        path = folder / DATA_FOLDER / snapshot.slug / f"{SPLIT}.parquet"
        path.parent.mkdir(parents=True, exist_ok=True)
        pq.write_table(records_table(snapshot), path, compression="zstd")
        files.append(path)
    (folder / "README.md").write_text(dataset_card(snapshots=snapshots, title=title), encoding="utf-8")
    return ParquetExport(folder=folder, files=files)


def _size_category(count: int) -> str:
    for limit, name in ((1_000, "n<1K"), (10_000, "1K<n<10K"), (100_000, "10K<n<100K")):
        if count < limit:
            return name
    return "100K<n<1M" if count < 1_000_000 else "n>1M"


def _text(value: Any) -> str:
    # Card text from the data (behaviors, descriptions, LM-written specs) goes into Markdown as code
    # or plain text on one line: no raw HTML or links from an untrusted source reach a Hub page.
    return re.sub(r"[\r\n`<>]+", " ", str(value)).strip()


def dataset_card(*, snapshots: list[DatasetSnapshot], title: str) -> str:
    licenses = sorted({snapshot.license for snapshot in snapshots})
    header = {
        "license": licenses[0] if len(licenses) == 1 else "other",
        "language": ["en"],
        "pretty_name": title,
        "task_categories": ["multiple-choice", "question-answering"],
        "size_categories": [_size_category(sum(len(s.records) for s in snapshots))],
        "tags": ["model-written-evaluations", "ai-safety", "persona", "sycophancy"],
        "configs": [
            {
                "config_name": snapshot.slug,
                "data_files": [{"split": SPLIT, "path": f"{DATA_FOLDER}/{snapshot.slug}/{SPLIT}.parquet"}],
            }
            for snapshot in snapshots
        ],
    }
    if len(licenses) > 1:
        header["license_name"] = "mixed"
        header["license_details"] = "Per dataset, see the table below: " + ", ".join(licenses)
    lines = [
        "---",
        yaml.safe_dump(header, sort_keys=False, allow_unicode=True, width=10_000).rstrip(),
        "---",
        "",
        f"# {_text(title)}",
        "",
        "Model-written evaluation datasets in the format released with Perez et al. (2022),",
        '"Discovering Language Model Behaviors with Model-Written Evaluations" (anthropics/evals).',
        "One config per dataset, one split (`validation`, as lm-eval's persona tasks read it).",
        "",
        "Columns are the released JSONL fields. `answer_matching_behavior` is the answer a model",
        "exhibiting the behavior gives; `answer_not_matching_behavior` is a string, or a list of strings",
        "in datasets with several other answers (one type per dataset). Released answers keep their",
        'leading space (" Yes", " (A)"). `python manage.py import_evals <this folder>` imports it back',
        "and re-exports the original JSONL byte for byte.",
        "",
        "| config | examples | source | sha256 | upstream commit | license |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for s in snapshots:
        source = _text(s.source_path) if s.source_path else f"generated on the site ({_text(s.url_path)})"
        lines.append(
            f"| {s.slug} | {len(s.records)} | {source} | {s.source_sha256 or '-'} | "
            f"{s.upstream_commit or '-'} | {s.license} |"
        )
    for s in snapshots:
        lines += ["", f"## {s.slug}", "", f"- Behavior: {_text(s.behavior)}"]
        if s.description:
            lines.append(f"- Description: {_text(s.description)}")
        lines.append(f"- Collection: {_text(s.collection_name)}; kind {s.kind}; purpose {s.purpose}")
        if s.answer_prefix:
            lines.append(f"- Answer prefix used in the paper's prompt format: `{_text(s.answer_prefix)}`")
        if s.source_path:
            lines.append(
                f"- Provenance: `{_text(s.source_path)}` (sha256 `{s.source_sha256 or 'unknown'}`)"
                + (f" of anthropics/evals at commit `{s.upstream_commit}`" if s.upstream_commit else "")
            )
        if s.generation:
            g = s.generation
            lines += [
                f"- Generated by the site's {_text(g['method'])} pipeline, run #{g['run']} ({g['status']}, "
                f"finished {g['finished_at'] or '-'})",
                f"- Generator: `{_text(json.dumps(g['generator'], sort_keys=True))}`",
                f"- Discriminator: `{_text(json.dumps(g['discriminator'], sort_keys=True))}`",
                "- Generation spec:",
                "",
                "```json",
                json.dumps(g["spec"], indent=2, sort_keys=True).replace("```", "'''"),
                "```",
            ]
        for a in s.agreement:
            kappa = "undefined" if a["fleiss_kappa"] is None else f"{a['fleiss_kappa']:.3f}"
            ci = f" (95% CI {a['ci'][0]:.3f} to {a['ci'][1]:.3f})" if a["ci"] else ""
            lines.append(
                f"- Agreement ({_text(a['project'])}): Fleiss' kappa on chosen answers {kappa}{ci} over "
                f"{a['examples']} examples rated by {a['k']} workers each ({a['ratings']} ratings)"
            )
    lines += ["", "## Citation", "", "```bibtex", CITATION, "```", ""]
    return "\n".join(lines)


# ----------------------------------------------------------------------------- reading back


@dataclass(frozen=True)
class ParquetDataset:
    """A Parquet file read back: its records in file order, and where they belong."""

    path: Path
    records: list[dict[str, Any]]
    ensure_ascii: bool
    slug: str | None
    collection: str | None
    source_path: str
    upstream_commit: str


def parquet_read(path: Path) -> ParquetDataset:
    """A Parquet file's rows as released records. With this export's metadata, exactly the records
    exported (key order, absent keys, JSON text columns); without (another tool's Parquet), every
    column in schema order, nulls left out."""
    try:
        table = pq.read_table(path)
    except (OSError, pa.ArrowException) as exc:
        raise EvalsFormatError(str(path), f"not a readable Parquet file: {exc}") from None
    raw = (table.schema.metadata or {}).get(METADATA_KEY)
    rows = table.to_pylist()
    if raw is None:
        records = [{key: value for key, value in row.items() if value is not None} for row in rows]
        slug = path.parent.name if SPLIT_FILE.match(path.stem) else path.stem
        return ParquetDataset(
            path=path,
            records=records,
            ensure_ascii=True,
            slug=None,
            collection=None,
            source_path=f"{slug}.jsonl",
            upstream_commit="",
        )
    try:
        meta = json.loads(raw)
        field_order = list(meta["field_order"])
        key_orders = {int(k): list(v) for k, v in meta.get("key_orders", {}).items()}
        json_columns = set(meta.get("json_columns", []))
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        raise EvalsFormatError(str(path), f"unreadable export metadata: {exc}") from None
    records = []
    for position, row in enumerate(rows):
        order = key_orders.get(position, field_order)
        record = {}
        for key in order:
            if key not in row:
                raise EvalsFormatError(str(path), f"column {key!r} is missing", line=position + 1)
            value = row[key]
            if key in json_columns and value is not None:
                value = json.loads(value)
            record[key] = value
        records.append(record)
    return ParquetDataset(
        path=path,
        records=records,
        ensure_ascii=bool(meta.get("ensure_ascii", True)),
        slug=meta.get("slug") or None,
        collection=meta.get("collection") or None,
        source_path=meta.get("source_path") or f"{meta.get('slug') or path.stem}.jsonl",
        upstream_commit=meta.get("upstream_commit") or "",
    )


def parquet_file_paths(*, paths: Iterable[Path]) -> list[Path]:
    """The .parquet files among paths, folders searched (an HF datasets folder: data/<config>/*.parquet)."""
    found: list[Path] = []
    for path in paths:
        if path.is_dir():
            found.extend(sorted(p for p in path.rglob("*.parquet") if p.is_file()))
        elif path.suffix == ".parquet":
            found.append(path)
    return found


def parquet_as_jsonl(dataset: ParquetDataset, *, folder: Path) -> Path:
    """Writes the records as a released JSONL file under folder, at its source path (so the importer
    places it as it placed the original: persona/narcissism.jsonl lands in the persona collection)."""
    relative = Path(dataset.source_path)
    if relative.is_absolute() or ".." in relative.parts or relative.suffix != ".jsonl":
        relative = Path(f"{dataset.slug or dataset.path.stem}.jsonl")
    target = folder / relative
    target.parent.mkdir(parents=True, exist_ok=True)
    with target.open("w", encoding="utf-8", newline="\n") as handle:
        for record in dataset.records:
            handle.write(formats.record_to_json_line(record, ensure_ascii=dataset.ensure_ascii) + "\n")
    return target


def parquet_import(
    *,
    paths: Iterable[Path],
    upstream_commit: str | None = None,
    replace: bool = False,
    dry_run: bool = False,
    keep_going: bool = False,
    created_by: AbstractBaseUser | None = None,
):
    """Imports Parquet files (or HF datasets folders of them) through services.evals_import, each as
    the JSONL it was exported from, under the slug and collection its metadata names. Like a JSONL
    import, every file is validated before anything is written unless keep_going is set."""
    from generation.catalog import services

    files = parquet_file_paths(paths=paths)
    if not files:
        raise EvalsFormatError(", ".join(str(p) for p in paths) or "(no paths)", "no .parquet files found")
    with tempfile.TemporaryDirectory(prefix="mwe-parquet-") as temporary:
        prepared = []
        # A file that cannot be read is reported as failed beside the others' results, as an
        # invalid JSONL file is: --keep-going then imports the rest, and without it nothing is written.
        unreadable: list[services.ImportResult] = []
        for index, path in enumerate(files):
            try:
                dataset = parquet_read(path)
            except EvalsFormatError as exc:
                unreadable.append(
                    services.ImportResult(display_path=str(path), status="failed", message=str(exc))
                )
                continue
            jsonl = parquet_as_jsonl(dataset, folder=Path(temporary) / str(index))
            commit = upstream_commit if upstream_commit is not None else dataset.upstream_commit
            options = dict(
                paths=[jsonl], slug=dataset.slug, collection_slug=dataset.collection, upstream_commit=commit
            )
            prepared.append((path, options))

        def run(*, dry: bool) -> list[services.ImportResult]:
            results = []
            for path, options in prepared:
                for result in services.evals_import(
                    **options, replace=replace, dry_run=dry, keep_going=keep_going, created_by=created_by
                ):
                    result.message = result.message.replace(str(options["paths"][0]), str(path))
                    result.display_path = str(path)
                    results.append(result)
            return results

        checked = unreadable + run(dry=True)
        if dry_run or (any(r.status == "failed" for r in checked) and not keep_going):
            return checked
        return unreadable + run(dry=False)
