"""Sends again the task message of every job the broker may have lost; see
generation.jobs.services.job_requeue_stale. Workers do the same each time they (re)connect to the broker; run
this from cron every few minutes as the backstop (docs/operations.md)."""

from datetime import timedelta

from django.core.management.base import BaseCommand

from generation.jobs.services import REQUEUE_AFTER, job_requeue_stale


class Command(BaseCommand):
    help = "Send again the jobs whose task message the broker lost (a Redis restart without persistence)."

    def add_arguments(self, parser):
        parser.add_argument(
            "--older-than",
            type=float,
            default=REQUEUE_AFTER.total_seconds(),
            metavar="SECONDS",
            help="only queued jobs created this long ago or more (default %(default)s): a younger "
            "job's message may still be on its way to the broker",
        )

    def handle(self, *args, **options):
        sent = job_requeue_stale(older_than=timedelta(seconds=options["older_than"]))
        self.stdout.write(f"{sent} job{'' if sent == 1 else 's'} sent again")
