"""Publishing a project's results (issue 13): the researcher closes the project, and only then do the
public pages show its ratings (`AnnotationProject.published_at`)."""

import io

import pytest
from django.core.management import CommandError, call_command
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from annotation.models import AnnotationProject, Assignment
from annotation.services.errors import AssignmentConflict
from annotation.services.leases import assignment_submit, task_claim
from annotation.services.projects import project_publish, project_unpublish
from tests.builders import StaffFactory, WorkerFactory

pytestmark = pytest.mark.django_db


def test_publishing_closes_the_project_and_returns_live_leases(project):
    worker, other = WorkerFactory.create_batch(2, projects=[project])
    lease = task_claim(worker=worker, project=project)
    before = timezone.now()
    published = project_publish(project=project)
    assert published.published_at is not None and published.published_at >= before
    assert not published.is_active
    stored = AnnotationProject.objects.get(pk=project.pk)
    assert (stored.published_at, stored.is_active) == (published.published_at, False)
    # No new claims on the site, and no late answers into published results.
    assert Assignment.objects.get(pk=lease.pk).status == Assignment.Status.RELEASED
    client = Client()
    client.force_login(other.user)
    assert client.get(reverse("annotation:work")).context["project"] is None
    with pytest.raises(AssignmentConflict):
        assignment_submit(assignment_id=lease.pk, worker=worker, relevance=3, answer=" Yes", ambiguous=False)


def assert_a_stale_look_up_claims_nothing(project) -> None:
    """A web process reuses its look-up of a worker's project for a few seconds
    (MWE_API_TOKEN_CACHE_SECONDS): the claim itself must refuse a closed project."""
    worker = WorkerFactory(projects=[project])
    stale = AnnotationProject.objects.get(pk=project.pk)  # as cached before publishing
    project_publish(project=project)
    assert stale.is_active
    assert task_claim(worker=worker, project=stale) is None
    assert not Assignment.objects.filter(project=project).exists()


def test_a_process_that_still_thinks_the_project_open_claims_nothing(project):
    assert_a_stale_look_up_claims_nothing(project)


@pytest.mark.postgres
def test_a_process_that_still_thinks_the_project_open_claims_nothing_on_postgres(project):
    # The one-statement claim of PostgreSQL, not the ORM steps above.
    assert_a_stale_look_up_claims_nothing(project)


def test_publishing_twice_keeps_the_first_date_and_unpublishing_hides_again(project):
    first = project_publish(project=project).published_at
    assert project_publish(project=project).published_at == first
    unpublished = project_unpublish(project=project)
    assert unpublished.published_at is None
    # Still closed: reopening for work is a separate decision (the admin's "is active").
    assert not AnnotationProject.objects.get(pk=project.pk).is_active


def test_the_project_page_publishes_with_a_confirmation(project):
    client = Client()
    client.force_login(StaffFactory())
    page = client.get(project.get_absolute_url())
    assert b"ratings become public" in page.content
    url = reverse("annotation:project-publication", args=[project.slug])
    # Without the confirmation box nothing changes.
    response = client.post(url, {"action": "publish"}, follow=True)
    assert b"Tick the box" in response.content
    assert AnnotationProject.objects.get(pk=project.pk).published_at is None
    response = client.post(url, {"action": "publish", "confirm": "on"})
    assert response.status_code == 302 and response["Location"] == project.get_absolute_url()
    stored = AnnotationProject.objects.get(pk=project.pk)
    assert stored.published_at is not None and not stored.is_active
    page = client.get(project.get_absolute_url())
    assert b"Published" in page.content and b"Unpublish" in page.content
    client.post(url, {"action": "unpublish"})
    assert AnnotationProject.objects.get(pk=project.pk).published_at is None
    assert client.post(url, {"action": "delete", "confirm": "on"}).status_code == 400


def test_only_staff_publish(project):
    worker = WorkerFactory(projects=[project])
    client = Client()
    client.force_login(worker.user)
    url = reverse("annotation:project-publication", args=[project.slug])
    assert client.post(url, {"action": "publish", "confirm": "on"}).status_code == 403
    assert Client().post(url, {"action": "publish", "confirm": "on"}).status_code == 302  # to log in
    assert AnnotationProject.objects.get(pk=project.pk).published_at is None


def test_publish_project_command(project):
    out = io.StringIO()
    call_command("publish_project", project=project.slug, stdout=out)
    assert AnnotationProject.objects.get(pk=project.pk).published_at is not None
    assert "published" in out.getvalue()
    call_command("publish_project", project=project.slug, unpublish=True, stdout=out)
    assert AnnotationProject.objects.get(pk=project.pk).published_at is None
    with pytest.raises(CommandError, match="no annotation project"):
        call_command("publish_project", project="missing")
