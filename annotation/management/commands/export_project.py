"""manage.py export_project SLUG --format label-studio|argilla --out DIR: an annotation project as a
Label Studio project (config.xml, tasks.json) or an Argilla dataset (the rg.Dataset.to_disk layout),
what the project page's export buttons download as a .zip."""

from django.core.management.base import BaseCommand, CommandError

from annotation.models import AnnotationProject
from annotation.services.interop import FORMATS, project_export_write


class Command(BaseCommand):
    help = (
        "Export an annotation project, with its responses, for Label Studio (a labeling config and tasks "
        "with annotations) or as an Argilla dataset (settings, records with responses); README.txt in DIR "
        "says how to load it and how to bring the ratings back (import_annotations --format)."
    )

    def add_arguments(self, parser):
        parser.add_argument("project", help="slug of the project")
        parser.add_argument("--format", required=True, choices=FORMATS)
        parser.add_argument("--out", required=True, help="folder to write into (created if missing)")

    def handle(self, *args, **options):
        project = AnnotationProject.objects.filter(slug=options["project"]).first()
        if project is None:
            raise CommandError(f"no annotation project with the slug {options['project']!r}")
        try:
            written = project_export_write(project=project, format=options["format"], out=options["out"])
        except FileExistsError as exc:
            raise CommandError(f"nothing written: {exc}") from None
        for path in written:
            self.stdout.write(str(path))
