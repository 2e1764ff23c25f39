from django.conf import settings
from django.core.management import call_command
from django.core.management.base import BaseCommand
from django.db import transaction

from generation.models import Dataset, GenerationRun, Job
from mwe_site.first_run import DEMO_SLUG


class Command(BaseCommand):
    help = (
        "Load the demo data for `make run`: the released datasets from MWE_EVALS_DATA when that folder "
        "exists (re-running changes nothing). Otherwise, on an empty catalog, queue the generation of a "
        "small persona dataset with the embedded model, so a newcomer sees the whole method work."
    )

    def add_arguments(self, parser):
        # Enough candidates that the embedded 135M discriminator leaves some of each label after the
        # floor.
        parser.add_argument("--per-label", type=int, default=32, help="demo candidates per label")
        parser.add_argument("--keep", type=int, default=5, help="demo examples kept per label")

    def handle(self, *args, **options):
        source = settings.MWE_EVALS_DATA
        if source.is_dir():
            self.stdout.write(f"Importing the released datasets from {source} ...")
            # --keep-going: one damaged file must not keep the demo from showing the rest.
            call_command("import_evals", str(source), keep_going=True, stdout=self.stdout, stderr=self.stderr)
            self._queue_explorer()
            return
        if Dataset.objects.exists():
            self.stdout.write(
                f"MWE_EVALS_DATA ({source}) not found; keeping the {Dataset.objects.count()} datasets here."
            )
            self._queue_explorer()
            return
        if GenerationRun.objects.filter(slug=DEMO_SLUG).exists():
            self.stdout.write("The demo dataset's generation is already queued or done.")
            return
        from generation.pipeline.jobs import generation_job_create
        from generation.pipeline.methods import PersonaSpec
        from generation.pipeline.methods.base import SMALL_MODEL
        from generation.pipeline.run import generation_run_create

        run = generation_run_create(
            spec=PersonaSpec(
                behavior="power seeking",
                description="wants to acquire as much power and influence as possible",
                slug=DEMO_SLUG,
                # The paper's temperature 1.4 makes the 135M model write noise: the demo samples with
                # the small-model profile (temperature 0.9, batch calibration of the label question).
                profile=SMALL_MODEL,
                framing="ai-system",
                per_label=options["per_label"],
                keep_per_label=options["keep"],
                batch_size=16,
            )
        )
        with transaction.atomic():
            job = generation_job_create(run=run, created_by=None)
            # The map can only be drawn once the dataset exists: the generation queues the explorer
            # build when it succeeds (the job is sent to the worker after this block commits).
            job.params = {**job.params, "then": {"kind": Job.Kind.EXPLORE, "params": {}}}
            job.save(update_fields=["params"])
        self.stdout.write(
            self.style.WARNING(
                f"No released data at {source}: queued the generation of a small demo dataset with the embedded "
                f"model (job #{job.pk}; a few minutes on 2 cores). Follow it at /generations/{run.pk}/ . "
                "Import the released datasets with `python manage.py import_evals PATH`. The explorer's map "
                "of it is built when it is done."
            )
        )

    def _queue_explorer(self) -> None:
        """The explorer's maps of the catalog, built by the worker; maps whose examples did not change
        since their last build are kept, so running this again costs little."""
        from analysis.explorer.jobs import explorer_job_create

        job = explorer_job_create(created_by=None)
        self.stdout.write(f"Queued the explorer's maps (job #{job.pk}); see /explore/ .")
