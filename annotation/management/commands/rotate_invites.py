"""New invite links for a project's workers (the old links stop working and sign their browsers out),
or --revoke to cut workers off. Writes the new links as CSV."""

from __future__ import annotations

from pathlib import Path

from django.core.management.base import BaseCommand, CommandError
from django.db import transaction

from annotation import selectors
from annotation.management.projects import project_from_slug
from annotation.services.workers import worker_invite_revoke, worker_invite_rotate
from mwe_site.safe_csv import csv_write


class Command(BaseCommand):
    help = (
        "Rotate the invite links of a project's workers (all, or --worker ID ...): each gets a new link "
        "valid for MWE_INVITE_TTL_DAYS, written to --out; the old links stop working and every browser "
        "they signed in is signed out. --revoke instead leaves the workers without a working link and "
        "deletes their API tokens."
    )

    def add_arguments(self, parser):
        parser.add_argument("--project", required=True, help="project slug")
        parser.add_argument(
            "--worker",
            dest="workers",
            type=int,
            action="append",
            default=[],
            help="a worker id (the worker_id column of create_workers' file); repeat for several",
        )
        parser.add_argument("--revoke", action="store_true", help="revoke the links instead of rotating")
        parser.add_argument("--out", type=Path, help="CSV file of the new links (secrets: keep private)")
        parser.add_argument("--base-url", default="", help="prefix for the invite links, e.g. https://host")

    def handle(self, *args, project, workers, revoke, out, base_url, **options):
        project = project_from_slug(project)
        if not revoke and out is None:
            raise CommandError("--out is required: the new links are written there")
        chosen = project.workers.order_by("pk")
        if workers:
            chosen = chosen.filter(pk__in=workers)
            missing = sorted(set(workers) - set(chosen.values_list("pk", flat=True)))
            if missing:
                raise CommandError(
                    f"not a worker of project {project.slug}: {', '.join(str(pk) for pk in missing)}"
                )
        change = worker_invite_revoke if revoke else worker_invite_rotate
        with transaction.atomic():
            rows = [
                selectors.worker_invite_row(worker=change(worker=worker), base_url=base_url)
                for worker in chosen
            ]
        if out is not None:
            with Path(out).open("w", newline="") as handle:
                csv_write(handle, fieldnames=selectors.INVITE_FIELDS, rows=rows)
        verb = "Revoked" if revoke else "Rotated"
        self.stdout.write(
            f"{verb} the invite links of {len(rows)} worker(s) of {project.slug}"
            + (f"; wrote {out}" if out is not None else "")
        )
