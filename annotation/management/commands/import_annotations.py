"""manage.py import_annotations FILE.csv --project SLUG: ratings collected on an external crowd platform."""

from django.core.management.base import BaseCommand, CommandError

from annotation.services.imports import AnnotationImportError, ratings_import


class Command(BaseCommand):
    help = (
        "Import ratings from a CSV (columns: dataset and position, or example_id; worker_id; relevance; "
        "answer, the option the worker chose (or label_correct, for ratings of the older task; both: they "
        "must agree); ambiguous; optional time_on_task_ms) into an annotation project, created if missing. "
        "The whole file is validated first; nothing is written unless all of it is valid; importing the "
        "same file again changes nothing."
    )

    def add_arguments(self, parser):
        parser.add_argument("file", help="CSV file with a header line")
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
            summary = ratings_import(
                path=options["file"],
                project_slug=options["project"],
                overlap=options["overlap"],
                name=options["name"],
            )
        except FileNotFoundError:
            raise CommandError(f"{options['file']}: no such file") from None
        except AnnotationImportError as exc:
            raise CommandError(f"nothing imported from {options['file']}:\n{exc}") from None
        self.stdout.write(summary.describe())
