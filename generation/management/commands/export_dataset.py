import shutil
import tempfile
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from generation.catalog.exports import ExportError, datasets_for_export
from generation.catalog.exports.archive import archive_file, archive_scope
from generation.catalog.exports.bundle import FORMATS as BUNDLE_FORMATS
from generation.catalog.exports.bundle import export_write
from generation.catalog.exports.lm_eval import PROMPT_FORMATS
from generation.models import Collection

FORMATS = (*BUNDLE_FORMATS, "jsonl-archive")


class Command(BaseCommand):
    help = (
        "Export datasets for other tools (docs/exports.md): an lm-evaluation-harness task folder, an "
        "Inspect AI task, a Hugging Face datasets Parquet folder with a dataset card, or the JSONL "
        "archive in the released layout (the site's bulk download)."
    )

    def add_arguments(self, parser):
        which = parser.add_mutually_exclusive_group(required=True)
        which.add_argument("--dataset", action="append", default=[], help="dataset slug (repeatable)")
        which.add_argument("--collection", help="every dataset of a collection")
        which.add_argument("--all", action="store_true", help="every dataset of the catalog")
        parser.add_argument("--format", required=True, choices=FORMATS)
        parser.add_argument(
            "--prompt-format",
            default="plain",
            choices=[str(f) for f in PROMPT_FORMATS],
            help="lm-eval only: plain (the bare question, lm-eval's persona template; default) or paper "
            "(the Human/Assistant dialogue and the dataset's answer prefix)",
        )
        parser.add_argument("--out", required=True, type=Path, help="output folder (new or empty)")
        parser.add_argument("--force", action="store_true", help="replace a non-empty output folder")

    def handle(self, *args, **options):
        out = Path(options["out"])
        if out.exists() and not out.is_dir():
            raise CommandError(f"{out} exists and is not a folder")
        if out.is_dir() and any(out.iterdir()) and not options["force"]:
            raise CommandError(f"{out} is not empty; pass --force to replace it")
        if not out.parent.is_dir():
            raise CommandError(f"folder {out.parent} does not exist")
        try:
            datasets = datasets_for_export(
                slugs=options["dataset"], collection_slug=options["collection"], everything=options["all"]
            )
            # Written into a temporary folder beside the target, then renamed: a failed export never
            # leaves half a folder, and a replaced one is swapped in whole.
            partial = Path(tempfile.mkdtemp(prefix=f".{out.name}.partial-", dir=out.parent))
            try:
                summary = self._write(options, datasets, partial)
                if out.exists():
                    shutil.rmtree(out)
                partial.rename(out)
            finally:
                shutil.rmtree(partial, ignore_errors=True)
        except ExportError as exc:
            raise CommandError(str(exc)) from None
        self.stderr.write(f"{summary} to {out}")

    def _write(self, options, datasets, folder: Path) -> str:
        kind = options["format"]
        scope_name = options["collection"] or ("catalog" if options["all"] else None)
        if kind == "jsonl-archive":
            collection = Collection.objects.get(slug=options["collection"]) if options["collection"] else None
            if options["dataset"]:
                raise ExportError("the JSONL archive is of a collection (--collection) or everything (--all)")
            source = archive_file(scope=archive_scope(collection=collection))
            shutil.copyfile(source, folder / f"{scope_name}.zip")
            return f"wrote the {scope_name} archive ({len(datasets)} datasets)"
        # The same function writes the site's downloads (exports.bundle), so a downloaded bundle
        # unzipped is this folder.
        written = export_write(
            kind=kind,
            datasets=datasets,
            folder=folder,
            group=scope_name,
            prompt_format=options["prompt_format"],
        )
        if written.skipped:
            self.stderr.write(
                f"skipped {len(written.skipped)} datasets without gold answers: {', '.join(written.skipped)}"
            )
        return written.summary
