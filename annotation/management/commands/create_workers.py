"""Create crowdworkers for a project and write their invite links and API tokens to a CSV file."""

from __future__ import annotations

from pathlib import Path

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError
from django.db import transaction

from annotation import selectors
from annotation.management.projects import project_from_slug
from annotation.services import workers
from mwe_site.safe_csv import csv_write


def read_external_ids(path: Path, *, count: int) -> list[str]:
    """The file's ids, checked as workers.worker_external_ids_parse checks them."""
    try:
        text = path.read_bytes().decode("utf-8-sig")
    except OSError as exc:
        raise CommandError(f"cannot read {path}: {exc}") from None
    except UnicodeDecodeError as exc:
        raise CommandError(f"{path}: not UTF-8 text ({exc.reason} at byte {exc.start})") from None
    try:
        return workers.worker_external_ids_parse(text=text, count=count, source=str(path))
    except ValidationError as exc:
        raise CommandError("\n".join(exc.messages)) from None


class Command(BaseCommand):
    help = (
        "Create N workers for a project; writes worker id, external id, invite link, its expiry and API "
        "token as CSV."
    )

    def add_arguments(self, parser):
        parser.add_argument("--project", required=True, help="project slug")
        parser.add_argument("--count", type=int, required=True)
        parser.add_argument(
            "--out", required=True, type=Path, help="CSV file to write (secrets: keep private)"
        )
        parser.add_argument("--external-ids", type=Path, help="file with one external worker id per line")
        parser.add_argument("--base-url", default="", help="prefix for the invite links, e.g. https://host")

    def handle(self, *args, project, count, out, external_ids, base_url, **options):
        project = project_from_slug(project)
        if count < 1:
            raise CommandError("--count must be at least 1")
        out = Path(out)
        ids = [""] * count
        if external_ids:
            ids = read_external_ids(Path(external_ids), count=count)
        rows = []
        with transaction.atomic():
            try:
                made = workers.workers_create(project=project, external_ids=ids)
            except ValidationError as exc:
                raise CommandError(" ".join(exc.messages)) from None
            for worker in made:
                row = selectors.worker_invite_row(worker=worker, base_url=base_url)
                row["api_token"] = workers.worker_api_token(worker=worker)
                rows.append(row)
        with out.open("w", newline="") as handle:
            csv_write(handle, fieldnames=[*selectors.INVITE_FIELDS, "api_token"], rows=rows)
        self.stdout.write(
            f"Created {len(rows)} worker(s) for {project.slug}; wrote {out} (the invite links work for "
            f"{settings.MWE_INVITE_TTL_DAYS} days; `rotate_invites` makes new ones)"
        )
