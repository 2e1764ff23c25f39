"""Importing a file from the site: a staff-only form that queues a background job."""

import json
from pathlib import Path

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import override_settings
from django.urls import reverse

from generation.jobs import services as jobs
from generation.jobs.services import JOB_CLEANUPS, JOB_HANDLERS, job_run
from generation.models import Dataset, Example, Job
from tests.builders import StaffFactory, UserFactory

pytestmark = pytest.mark.django_db


def persona_jsonl(n: int = 6) -> bytes:
    lines = []
    for i in range(n):
        statement = f"I enjoy statement {i}"
        lines.append(
            json.dumps(
                {
                    "question": f'Is the following statement something you would say?\n"{statement}"',
                    "statement": statement,
                    "label_confidence": 0.9 - i / 100,
                    "answer_matching_behavior": " Yes" if i % 2 == 0 else " No",
                    "answer_not_matching_behavior": " No" if i % 2 == 0 else " Yes",
                }
            )
        )
    return ("\n".join(lines) + "\n").encode()


def upload(content: bytes, name: str = "my-behavior.jsonl") -> SimpleUploadedFile:
    return SimpleUploadedFile(name, content, content_type="application/jsonl")


@pytest.fixture
def staff_client(client):
    client.force_login(StaffFactory())
    return client


def test_staff_upload_imports_through_a_job(staff_client, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        response = staff_client.post(reverse("generation:import"), {"file": upload(persona_jsonl())})
    job = Job.objects.get()
    assert response.status_code == 302
    assert response["Location"] == job.get_absolute_url()
    assert job.status == Job.Status.SUCCEEDED, job.error
    assert job.progress_done == job.progress_total == 1
    dataset = Dataset.objects.get(slug="my-behavior")
    assert dataset.example_count == 6
    assert dataset.collection.slug == "imported"
    assert job.result["files"][0]["dataset"] == "my-behavior"
    page = staff_client.get(job.get_absolute_url()).content.decode()
    assert (
        "Succeeded" in page and reverse("generation:dataset-detail", kwargs={"slug": "my-behavior"}) in page
    )
    # The upload was only an input; nothing is left on disk.
    assert not Path(job.params["path"]).exists()
    assert not Path(job.params["path"]).parent.exists()


def test_upload_of_a_bad_file_fails_the_job_and_writes_nothing(
    staff_client, django_capture_on_commit_callbacks
):
    content = persona_jsonl(3) + b'{"question": "Is it?", "statement": 5}\n'
    with django_capture_on_commit_callbacks(execute=True):
        staff_client.post(reverse("generation:import"), {"file": upload(content, "broken.jsonl")})
    job = Job.objects.get()
    assert job.status == Job.Status.FAILED
    assert "broken.jsonl, line 4" in job.error
    assert Dataset.objects.count() == 0 and Example.objects.count() == 0
    page = staff_client.get(job.get_absolute_url()).content.decode()
    assert "broken.jsonl, line 4" in page


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({}, "This field is required"),
        ({"file": upload(b"", "empty.jsonl")}, "The submitted file is empty"),
        ({"file": upload(b"{}", "data.csv")}, "Upload a .jsonl file"),
        ({"file": upload(persona_jsonl()), "slug": "not a slug!"}, "Enter a valid"),
    ],
)
def test_upload_form_rejects_bad_input_and_queues_nothing(staff_client, data, message):
    response = staff_client.post(reverse("generation:import"), data)
    assert response.status_code == 200
    assert message in response.content.decode()
    assert Job.objects.count() == 0


@override_settings(MWE_UPLOAD_MAX_BYTES=100)
def test_upload_over_the_size_limit_is_refused(staff_client):
    response = staff_client.post(reverse("generation:import"), {"file": upload(persona_jsonl())})
    assert "the limit is 100" in response.content.decode()
    assert Job.objects.count() == 0


def test_upload_with_a_taken_slug_is_refused(staff_client, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        staff_client.post(reverse("generation:import"), {"file": upload(persona_jsonl()), "slug": "mine"})
    response = staff_client.post(
        reverse("generation:import"), {"file": upload(persona_jsonl(4)), "slug": "mine"}
    )
    assert "already exists" in response.content.decode()
    assert Job.objects.count() == 1


def test_import_pages_are_staff_only(client):
    job = Job.objects.create(kind=Job.Kind.IMPORT)
    for url in (reverse("generation:import"), job.get_absolute_url()):
        anonymous = client.get(url)
        assert anonymous.status_code == 302 and "/admin/login/" in anonymous["Location"]
    client.force_login(UserFactory())
    for url in (reverse("generation:import"), job.get_absolute_url()):
        assert client.get(url).status_code == 403
    assert client.post(reverse("generation:import"), {"file": upload(persona_jsonl())}).status_code == 403
    assert Job.objects.count() == 1


def test_running_page_refreshes_until_finished(staff_client):
    job = Job.objects.create(
        kind=Job.Kind.IMPORT, status=Job.Status.RUNNING, progress_done=1, progress_total=4
    )
    html = staff_client.get(job.get_absolute_url()).content.decode()
    assert 'http-equiv="refresh"' in html and "1 / 4" in html
    job.status = Job.Status.SUCCEEDED
    job.save()
    assert 'http-equiv="refresh"' not in staff_client.get(job.get_absolute_url()).content.decode()


def test_a_redelivered_finished_job_does_not_run_again():
    job = Job.objects.create(
        kind=Job.Kind.IMPORT, status=Job.Status.SUCCEEDED, params={"path": "/nonexistent"}
    )
    job_run(job_id=job.pk)  # would fail on the missing path if it ran
    job.refresh_from_db()
    assert job.status == Job.Status.SUCCEEDED


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("kind", "params", "link"),
    [
        ("explore", {}, "/explore/"),
        ("generate", {"run_id": 5}, "/generations/5/"),
        ("suite", {"suite_id": 5}, "/evaluations/suites/5/"),
    ],
)
def test_a_job_page_links_to_what_the_job_makes(staff_client, kind, params, link):
    job = Job.objects.create(kind=kind, params=params)
    response = staff_client.get(reverse("generation:job-detail", kwargs={"pk": job.pk}))
    assert response.status_code == 200
    assert f'href="{link}"' in response.content.decode()


def test_model_work_is_sent_to_its_own_queue(monkeypatch, django_capture_on_commit_callbacks):
    """Workers on machines with accelerators take the "models" queue; imports go to "default"."""
    from generation.jobs.tasks import run_job

    sent = []
    # The job machinery sends the task by its name; what it finds under that name is this task.
    monkeypatch.setattr(run_job, "apply_async", lambda args, kwargs, queue: sent.append((args[0], queue)))
    with django_capture_on_commit_callbacks(execute=True):
        created = {kind: jobs.job_create(kind=kind, params={}, created_by=None) for kind in Job.Kind.values}
    assert sorted(sent) == sorted(
        [
            (created["import"].pk, "default"),
            (created["evaluate"].pk, "models"),
            (created["suite"].pk, "models"),
            (created["generate"].pk, "models"),
            (created["explore"].pk, "models"),
        ]
    )


def test_every_kind_of_job_has_a_handler_once_django_is_loaded():
    # The apps register them from AppConfig.ready; a kind left out would fail each of its jobs.
    assert set(JOB_HANDLERS) == set(Job.Kind.values)
    assert set(JOB_CLEANUPS) == {Job.Kind.IMPORT}


def test_a_handler_is_registered_for_a_known_kind_only(monkeypatch):
    handlers, cleanups = {}, {Job.Kind.IMPORT: print}
    monkeypatch.setattr(jobs, "JOB_HANDLERS", handlers)
    monkeypatch.setattr(jobs, "JOB_CLEANUPS", cleanups)
    with pytest.raises(ValueError, match="unknown job kind 'sing'"):
        jobs.job_handler_register(kind="sing", handler=print)
    # Registering a kind again replaces its handler and its cleanup, a missing cleanup included.
    jobs.job_handler_register(kind=Job.Kind.IMPORT, handler=repr)
    assert handlers == {Job.Kind.IMPORT: repr} and cleanups == {}


def test_a_job_that_fails_is_tidied_by_its_kinds_cleanup(monkeypatch):
    tidied = []

    def crash(job: Job) -> None:
        raise RuntimeError("boom")

    monkeypatch.setitem(JOB_HANDLERS, Job.Kind.IMPORT, crash)
    monkeypatch.setitem(JOB_CLEANUPS, Job.Kind.IMPORT, lambda job: tidied.append(job.pk))
    job = Job.objects.create(kind=Job.Kind.IMPORT)
    with pytest.raises(RuntimeError, match="boom"):
        job_run(job_id=job.pk)
    job.refresh_from_db()
    assert job.status == Job.Status.FAILED and job.error == "RuntimeError: boom"
    assert tidied == [job.pk]
