"""Create crowdworkers for a project and write their invite links and API tokens to a CSV file."""

from __future__ import annotations

import csv
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError
from django.db import transaction
from django.urls import reverse

from annotation import services
from annotation.models import AnnotationProject


class Command(BaseCommand):
    help = "Create N workers for a project; writes external_id, invite path and API token as CSV."

    def add_arguments(self, parser):
        parser.add_argument("--project", required=True, help="project slug")
        parser.add_argument("--count", type=int, required=True)
        parser.add_argument(
            "--out", required=True, type=Path, help="CSV file to write (secrets: keep private)"
        )
        parser.add_argument("--external-ids", type=Path, help="file with one external worker id per line")
        parser.add_argument("--base-url", default="", help="prefix for the invite links, e.g. https://host")

    def handle(self, *args, project, count, out, external_ids, base_url, **options):
        try:
            project = AnnotationProject.objects.get(slug=project)
        except AnnotationProject.DoesNotExist:
            raise CommandError(f"no annotation project {project!r}") from None
        if count < 1:
            raise CommandError("--count must be at least 1")
        out = Path(out)
        ids = [""] * count
        if external_ids:
            external_ids = Path(external_ids)
            lines = [line.strip() for line in external_ids.read_text().splitlines() if line.strip()]
            if len(lines) != count:
                raise CommandError(f"{external_ids} has {len(lines)} ids, --count is {count}")
            if len(set(lines)) != len(lines):
                raise CommandError(f"{external_ids} repeats an id")
            ids = lines
        rows = []
        with transaction.atomic():
            for external_id in ids:
                worker = services.worker_create(project=project, external_id=external_id)
                token = services.worker_api_token(worker=worker)
                link = base_url.rstrip("/") + reverse(
                    "annotation:join", kwargs={"token": worker.invite_token}
                )
                rows.append(
                    {
                        "worker_id": worker.pk,
                        "external_id": external_id,
                        "invite_url": link,
                        "api_token": token,
                    }
                )
        with out.open("w", newline="") as handle:
            writer = csv.DictWriter(
                handle, fieldnames=["worker_id", "external_id", "invite_url", "api_token"]
            )
            writer.writeheader()
            writer.writerows(rows)
        self.stdout.write(f"Created {len(rows)} worker(s) for {project.slug}; wrote {out}")
