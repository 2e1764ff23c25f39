"""Create an annotation project over one or more datasets: what the researchers' "New project" page
does, from a shell. The arguments go through the page's own form, so both accept and refuse the same
input; on any error nothing is created."""

from __future__ import annotations

from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from annotation.forms import ProjectCreateForm


class Command(BaseCommand):
    help = (
        "Create an annotation project over datasets (all examples; --per-dataset N: a random sample of N "
        "per dataset, balanced over labels, as the paper's 100 per dataset; or --per-label N: N per dataset "
        "and label)."
    )

    def add_arguments(self, parser):
        parser.add_argument("--name", required=True)
        parser.add_argument("--slug", required=True, help="the project's slug (in URLs and create_workers)")
        parser.add_argument(
            "--dataset",
            dest="datasets",
            action="append",
            required=True,
            help="a dataset slug; repeat for several",
        )
        parser.add_argument(
            "--per-dataset", help="sample this many examples per dataset, balanced over its labels"
        )
        parser.add_argument("--per-label", help="or: sample this many examples per dataset and label")
        parser.add_argument("--seed", default="0", help="seed of the sample (default 0)")
        parser.add_argument("--overlap", default="3", help="workers who rate each example, k (default 3)")
        parser.add_argument("--lease-seconds", default="300", help="lease length in seconds (default 300)")
        instructions = parser.add_mutually_exclusive_group()
        instructions.add_argument("--instructions", default="", help="instructions for workers (Markdown)")
        instructions.add_argument("--instructions-file", type=Path, help="a Markdown file of instructions")
        parser.add_argument("--gold-rate", default="0", help="share of tasks that are gold items (0-1)")
        parser.add_argument(
            "--gold-threshold", default="0.7", help="gold accuracy below which workers are flagged"
        )
        parser.add_argument(
            "--max-sessions-per-worker",
            default="1",
            help="browsers a worker may be signed in on at once with their invite link (default 1)",
        )

    def handle(self, *args, **options):
        instructions = options["instructions"]
        if options["instructions_file"] is not None:
            try:
                instructions = options["instructions_file"].read_text(encoding="utf-8")
            except (OSError, UnicodeDecodeError) as exc:
                raise CommandError(f"cannot read {options['instructions_file']}: {exc}") from None
        form = ProjectCreateForm(
            data={
                "name": options["name"],
                "slug": options["slug"],
                "datasets": options["datasets"],
                "per_dataset": options["per_dataset"] or "",
                "per_label": options["per_label"] or "",
                "seed": options["seed"],
                "overlap": options["overlap"],
                "lease_seconds": options["lease_seconds"],
                "instructions": instructions,
                "gold_rate": options["gold_rate"],
                "gold_threshold": options["gold_threshold"],
                "max_sessions_per_worker": options["max_sessions_per_worker"],
            }
        )
        if not form.is_valid():
            raise CommandError(_errors(form))
        project = form.create()
        if project is None:
            raise CommandError(_errors(form))
        self.stdout.write(
            f"Created project {project.slug}: {project.items.count()} items over "
            f"{', '.join(d.slug for d in form.cleaned_data['datasets'])}, overlap {project.overlap}"
        )


def _errors(form: ProjectCreateForm) -> str:
    """The form's errors, one line each, named by the command's options."""
    lines = []
    for field, errors in form.errors.items():
        option = (
            ""
            if field == "__all__"
            else "--" + ("dataset" if field == "datasets" else field.replace("_", "-"))
        )
        for error in errors:
            lines.append(f"{option}: {error}" if option else error)
    return "\n".join(lines)
