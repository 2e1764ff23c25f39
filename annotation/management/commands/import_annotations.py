"""manage.py import_annotations FILE.csv --project SLUG: ratings collected on an external crowd platform;
with --format label-studio, a Label Studio JSON export; with --format argilla, an Argilla dataset
(the folder rg.Dataset.to_disk wrote, its zip, or its records.json)."""

from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from annotation.services import interop
from annotation.services.imports import AnnotationImportError, ratings_import


class Command(BaseCommand):
    help = (
        "Import ratings from a CSV (columns: dataset and position, or example_id; worker_id; relevance; "
        "answer, the option the worker chose (or label_correct, for ratings of the older task; both: they "
        "must agree); ambiguous; optional time_on_task_ms) into an annotation project, created if missing. "
        "The whole file is validated first; nothing is written unless all of it is valid; importing the "
        "same file again changes nothing. --format label-studio: a Label Studio JSON export (tasks with "
        "annotations); --format argilla: an Argilla dataset folder (rg.Dataset.to_disk), its zip or its "
        "records.json."
    )

    def add_arguments(self, parser):
        parser.add_argument("file", help="CSV file with a header line (or see --format)")
        parser.add_argument(
            "--format",
            default="csv",
            choices=["csv", *interop.FORMATS],
            help="the file's format (default csv)",
        )
        parser.add_argument("--project", required=True, help="slug of the project (created if missing)")
        parser.add_argument("--name", help="name of the project when it is created (default: the slug)")
        parser.add_argument(
            "--overlap",
            type=int,
            help="k, the ratings per example, for a new project (default: the most ratings of one example in "
            "the file); more ratings of an example than k is an error",
        )

    def handle(self, *args, **options):
        try:
            summary = self._import(options)
        except FileNotFoundError:
            raise CommandError(f"{options['file']}: no such file") from None
        except AnnotationImportError as exc:
            raise CommandError(f"nothing imported from {options['file']}:\n{exc}") from None
        self.stdout.write(summary.describe())

    def _import(self, options):
        target = {"project_slug": options["project"], "overlap": options["overlap"], "name": options["name"]}
        path = Path(options["file"])
        if options["format"] == interop.LABEL_STUDIO:
            if path.stat().st_size > interop.MAX_IMPORT_BYTES:
                raise AnnotationImportError(
                    [f"{path}: larger than {interop.MAX_IMPORT_BYTES // (1024 * 1024)} MB"]
                )
            return interop.ratings_import_label_studio(data=path.read_bytes(), **target)
        if options["format"] == interop.ARGILLA:
            if not path.exists():
                raise FileNotFoundError(path)
            records, users = interop.argilla_files_from_path(path=path)
            return interop.ratings_import_argilla(records=records, users=users, **target)
        return ratings_import(path=path, **target)
