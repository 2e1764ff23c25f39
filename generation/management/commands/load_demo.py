from django.conf import settings
from django.core.management import call_command
from django.core.management.base import BaseCommand

from generation.models import Dataset


class Command(BaseCommand):
    help = (
        "Load the demo data for `make run`: the released datasets from MWE_EVALS_DATA when that folder "
        "exists (re-running changes nothing). Otherwise explain how to import or generate data."
    )

    def handle(self, *args, **options):
        source = settings.MWE_EVALS_DATA
        if source.is_dir():
            self.stdout.write(f"Importing the released datasets from {source} ...")
            # --keep-going: one damaged file must not keep the demo from showing the rest.
            call_command("import_evals", str(source), keep_going=True, stdout=self.stdout, stderr=self.stderr)
            return
        if Dataset.objects.exists():
            self.stdout.write(
                f"MWE_EVALS_DATA ({source}) not found; keeping the {Dataset.objects.count()} datasets already here."
            )
            return
        self.stdout.write(
            self.style.WARNING(
                f"No demo data: {source} does not exist. The catalog starts empty. Import the released "
                "datasets with `python manage.py import_evals PATH` or set MWE_EVALS_DATA to their folder."
            )
        )
