from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from generation.catalog import formats
from generation.catalog.exports.parquet import parquet_file_paths, parquet_import
from generation.catalog.formats import EvalsFormatError
from generation.catalog.services import evals_import


class Command(BaseCommand):
    help = (
        "Import files in the format released with the paper (persona, advanced-ai-risk, sycophancy, "
        "winogenerated), detecting each file's format from its fields. Folders are searched for .jsonl "
        "files, and for .parquet files (a Hugging Face datasets folder as export_dataset writes it). Every "
        "file is validated before anything is written."
    )

    def add_arguments(self, parser):
        parser.add_argument("paths", nargs="+", type=Path, help="files or folders")
        parser.add_argument("--slug", help="dataset slug (one file only); default: from the file name")
        parser.add_argument(
            "--collection",
            help="collection slug; default: from the folder, else 'imported'",
        )
        parser.add_argument("--format", choices=sorted(formats.FORMATS), help="skip detection")
        parser.add_argument("--upstream-commit", help="commit of the release the files come from")
        parser.add_argument(
            "--replace",
            action="store_true",
            help="replace a dataset whose file changed",
        )
        parser.add_argument("--dry-run", action="store_true", help="validate and report; write nothing")
        parser.add_argument(
            "--keep-going",
            action="store_true",
            help="import the valid files even when some are invalid",
        )

    def handle(self, *args, **options):
        # Parquet files (or Hugging Face datasets folders of them, as export_dataset --format parquet
        # writes) go through the same import as JSONL, as the files they were exported from.
        parquet = parquet_file_paths(paths=options["paths"])
        jsonl_paths = [
            path
            for path in options["paths"]
            if (path.is_dir() and any(path.rglob("*.jsonl")))
            or (not path.is_dir() and path.suffix != ".parquet")
        ]
        if parquet and (options["slug"] or options["format"] or options["collection"]):
            raise CommandError(
                "--slug, --collection and --format apply to JSONL; a Parquet file names its own"
            )
        try:
            results = []
            if parquet:
                results += parquet_import(
                    paths=parquet,
                    upstream_commit=options["upstream_commit"],
                    replace=options["replace"],
                    dry_run=options["dry_run"],
                    keep_going=options["keep_going"],
                )
            if not parquet or jsonl_paths:
                results += self._import_jsonl(jsonl_paths if parquet else options["paths"], options)
        except EvalsFormatError as exc:
            raise CommandError(str(exc)) from None
        self._report(results, options)

    def _import_jsonl(self, paths, options):
        return evals_import(
            paths=paths,
            slug=options["slug"],
            collection_slug=options["collection"],
            format_name=options["format"],
            upstream_commit=options["upstream_commit"],
            replace=options["replace"],
            dry_run=options["dry_run"],
            keep_going=options["keep_going"],
        )

    def _report(self, results, options):
        counts: dict[str, int] = {}
        total_seconds = 0.0
        for result in results:
            counts[result.status] = counts.get(result.status, 0) + 1
            total_seconds += result.seconds
            if result.status == "failed":
                self.stderr.write(self.style.ERROR(f"FAILED   {result.message}"))
                continue
            style = (
                self.style.SUCCESS
                if result.status in {"imported", "replaced", "valid"}
                else self.style.NOTICE
            )
            line = (
                f"{result.status:<10}{result.display_path} -> {result.dataset_slug} "
                f"({result.format}, {result.example_count} examples, {result.seconds:.2f}s)"
            )
            self.stdout.write(style(line))
            if result.message:
                self.stdout.write(f"          {result.message}")
            for warning in result.warnings:
                self.stdout.write(self.style.WARNING(f"          warning: {warning}"))
        summary = ", ".join(f"{n} {status}" for status, n in sorted(counts.items()))
        self.stdout.write(f"{len(results)} file(s): {summary} in {total_seconds:.2f}s")
        if counts.get("failed"):
            if not options["keep_going"] and not options["dry_run"]:
                self.stderr.write("Nothing was written because some files are invalid (see --keep-going).")
            raise CommandError(f"{counts['failed']} file(s) could not be imported")
