"""What the annotation commands share: the project a --project slug names."""

from __future__ import annotations

from django.core.management.base import CommandError

from annotation.models import AnnotationProject


def project_from_slug(slug: str) -> AnnotationProject:
    """The project, or a CommandError naming the slug."""
    try:
        return AnnotationProject.objects.get(slug=slug)
    except AnnotationProject.DoesNotExist:
        raise CommandError(f"no annotation project {slug!r}") from None
