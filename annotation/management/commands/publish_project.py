"""Publish an annotation project's results (what the project page's "Publish results" does), or hide
them again with --unpublish."""

from __future__ import annotations

from django.core.management.base import BaseCommand

from annotation.management.projects import project_from_slug
from annotation.services import projects


class Command(BaseCommand):
    help = (
        "Close a project and publish its ratings: workers get no new tasks, open tasks end, and the public "
        "pages (the explorer) show its ratings. --unpublish hides them again (the project stays closed)."
    )

    def add_arguments(self, parser):
        parser.add_argument("--project", required=True, help="project slug")
        parser.add_argument("--unpublish", action="store_true", help="hide the ratings again")

    def handle(self, *args, project, unpublish, **options):
        project = project_from_slug(project)
        if unpublish:
            projects.project_unpublish(project=project)
            self.stdout.write(f"Unpublished {project.slug}: its ratings are no longer public")
        else:
            project = projects.project_publish(project=project)
            self.stdout.write(
                f"Closed and published {project.slug} at {project.published_at.isoformat()}: its ratings are public"
            )
