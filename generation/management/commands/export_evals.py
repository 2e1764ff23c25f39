from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from generation.catalog.selectors import dataset_export_lines
from generation.models import Dataset


class Command(BaseCommand):
    help = "Write a dataset back in the released JSONL format (same fields, same key order)."

    def add_arguments(self, parser):
        parser.add_argument("--dataset", required=True, help="dataset slug")
        parser.add_argument("--out", required=True, help="output file, or - for standard output")

    def handle(self, *args, **options):
        try:
            dataset = Dataset.objects.get(slug=options["dataset"])
        except Dataset.DoesNotExist:
            raise CommandError(f"no dataset with slug {options['dataset']!r}") from None
        if options["out"] == "-":
            for line in dataset_export_lines(dataset=dataset):
                self.stdout.write(line, ending="")
            return
        out = Path(options["out"])
        if not out.parent.is_dir():
            raise CommandError(f"folder {out.parent} does not exist")
        # Written to a temporary name first so a failed export never leaves half a file.
        partial = out.with_name(out.name + ".partial")
        count = 0
        with partial.open("w", encoding="utf-8", newline="\n") as handle:
            for line in dataset_export_lines(dataset=dataset):
                handle.write(line)
                count += 1
        partial.replace(out)
        self.stderr.write(f"wrote {count} records of {dataset.slug} to {out}")
