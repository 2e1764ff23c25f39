"""What a job's and its run's pages say about where the work stands: a queued job that is cancelled
ends its run as cancelled on every page and in the API (it never starts, so nothing else would), a
queued job says which job it waits behind, and "waiting for a worker to load the models" only when
it is next; the progress endpoints the pages poll say the same as the pages."""

import pytest
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from generation.catalog.services import dataset_refresh_stats
from generation.evaluation.jobs import evaluation_job_create, suite_start
from generation.evaluation.services import evaluation_run_create
from generation.jobs.services import job_cancel, job_create, job_finish, job_progress, job_start
from generation.models import EvaluationRun, EvaluationSuite, GenerationRun, Job
from generation.pipeline.jobs import generation_job_create
from tests.builders import DatasetFactory, ExampleFactory, GenerationRunFactory, StaffFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def staff():
    staff = Client()
    staff.force_login(StaffFactory())
    return staff


def labelled_dataset(slug: str = "power"):
    dataset = DatasetFactory(slug=slug)
    for i in range(4):
        ExampleFactory(
            dataset=dataset,
            position=i,
            answer_matching_behavior=" Yes" if i % 2 else " No",
            answer_not_matching_behavior=" No" if i % 2 else " Yes",
        )
    return dataset_refresh_stats(dataset=dataset)


def queued_generation(slug: str = "queued-run") -> tuple[GenerationRun, Job]:
    run = GenerationRunFactory(slug=slug)
    job = generation_job_create(run=run, created_by=None)
    return run, job


def queued_evaluation(dataset) -> tuple[EvaluationRun, Job]:
    run = evaluation_run_create(dataset=dataset, model_spec="smollm2-135m", prompt_format="paper", limit=None)
    job = evaluation_job_create(run=run, created_by=None)
    run.refresh_from_db()
    return run, job


def text(response) -> str:
    assert response.status_code == 200
    return response.content.decode()


# ----------------------------------------------------------------------------- cancelling a queued job


def test_a_cancelled_queued_generation_reads_cancelled_everywhere(client, staff):
    run, job = queued_generation()
    response = staff.post(reverse("generation:generation-cancel", args=[run.pk]))
    assert response.status_code == 302

    run.refresh_from_db()
    job.refresh_from_db()
    assert (run.status, job.status) == (GenerationRun.Status.CANCELLED, Job.Status.CANCELLED)
    assert run.finished_at is not None

    listing = text(client.get(reverse("generation:generation-list")))
    row = listing.split(f'href="{run.get_absolute_url()}"', 1)[1].split("</tr>")[0]
    assert "Cancelled" in row and "Queued" not in row
    page = text(client.get(run.get_absolute_url()))
    assert "The run was cancelled." in page
    assert 'class="status-queued"' not in page and ">Queued<" not in page
    # Nothing polls a run that has ended.
    assert "data-progress-url" not in page and "job_progress.js" not in page
    assert "Cancelled" in text(staff.get(job.get_absolute_url()))
    api = client.get(reverse("api-generation-run-detail", args=[run.pk])).json()
    assert api["status"] == "cancelled"
    progress = client.get(reverse("generation:generation-progress", args=[run.pk])).json()
    assert progress["status"] == "cancelled" and progress["finished"] is True


def test_a_cancelled_queued_evaluation_and_suite_end_their_runs():
    dataset = labelled_dataset()
    run, job = queued_evaluation(dataset)
    job_cancel(job=job)
    run.refresh_from_db()
    assert run.status == EvaluationRun.Status.CANCELLED

    suite, suite_job = suite_start(
        model_specs=["smollm2-135m", "gemma3-270m"],
        dataset_slugs=[dataset.slug],
        prompt_format="paper",
        scorer="logprobs",
        limit=None,
        seed=0,
        name="cancelled suite",
        created_by=None,
    )
    job_cancel(job=suite_job)
    suite.refresh_from_db()
    assert suite.status == EvaluationSuite.Status.CANCELLED
    assert set(suite.runs.values_list("status", flat=True)) == {EvaluationRun.Status.CANCELLED}


def test_cancelling_a_running_job_leaves_its_run_to_stop_at_a_checkpoint():
    run, job = queued_generation()
    job_start(job_id=job.pk)
    GenerationRun.objects.filter(pk=run.pk).update(status=GenerationRun.Status.RUNNING)
    job_cancel(job=job)
    run.refresh_from_db()
    job.refresh_from_db()
    # The handler records the cancellation when it reaches its next checkpoint, not the request.
    assert (job.status, job.cancel_requested) == (Job.Status.RUNNING, True)
    assert run.status == GenerationRun.Status.RUNNING


def test_cancelling_an_ended_job_changes_nothing():
    run, job = queued_generation()
    job_start(job_id=job.pk)
    job_finish(job=job, result={"generation_run": run.pk})
    GenerationRun.objects.filter(pk=run.pk).update(status=GenerationRun.Status.SUCCEEDED)
    job_cancel(job=job)
    run.refresh_from_db()
    job.refresh_from_db()
    assert (job.status, run.status) == (Job.Status.SUCCEEDED, GenerationRun.Status.SUCCEEDED)


# ----------------------------------------------------------------------------- where a queued job stands


def test_a_job_queued_behind_a_running_one_says_so(client):
    first, first_job = queued_generation("first")
    job_start(job_id=first_job.pk)
    second, second_job = queued_evaluation(labelled_dataset())
    third, third_job = queued_generation("third")

    page = text(client.get(second.get_absolute_url()))
    assert f"Queued behind generate a dataset #{first_job.pk}." in page
    assert "Waiting for a worker" not in page
    # Behind the running job and the evaluation queued before it.
    page = text(client.get(third.get_absolute_url()))
    assert f"Queued behind generate a dataset #{first_job.pk} and 1 more." in page

    # The running job has not reported a total yet: its worker is loading the models.
    page = text(client.get(first.get_absolute_url()))
    assert "A worker is loading the models." in page and "Queued behind" not in page

    # Once the first has ended, the evaluation is next: now it waits for the worker to load its model.
    job_finish(job=first_job, result={})
    progress = client.get(reverse("generation:run-progress", args=[second.pk])).json()
    assert progress["waiting"] == "Waiting for a worker to load the model."
    assert text(client.get(second.get_absolute_url())).count("Waiting for a worker to load the model.") == 1
    progress = client.get(reverse("generation:generation-progress", args=[third.pk])).json()
    assert progress["waiting"] == f"Queued behind evaluate a model #{second_job.pk}."


def test_jobs_of_another_queue_are_not_in_the_way(staff):
    running, running_job = queued_generation("running")
    job_start(job_id=running_job.pk)
    # Imports run on the default queue's workers, beside model work.
    imported = job_create(kind=Job.Kind.IMPORT, params={}, created_by=None)
    page = text(staff.get(imported.get_absolute_url()))
    assert "Waiting for a worker." in page and "Queued behind" not in page


def test_a_job_with_progress_shows_its_counts_not_a_wait(client, staff):
    run, job = queued_generation()
    job_start(job_id=job.pk)
    GenerationRun.objects.filter(pk=run.pk).update(status=GenerationRun.Status.RUNNING)
    job_progress(job=job, done=1234, total=5000, message="scoring candidates")
    page = text(client.get(run.get_absolute_url()))
    assert "1,234 / 5,000" in page and "scoring candidates" in page
    assert "Waiting for a worker" not in page and "is loading" not in page

    progress = client.get(reverse("generation:generation-progress", args=[run.pk])).json()
    assert progress == {
        "status": "running",
        "status_display": "Running",
        "finished": False,
        "done": 1234,
        "total": 5000,
        "message": "scoring candidates",
        "waiting": "",
        "cancel_requested": False,
        "result": None,
    }
    job_data = staff.get(reverse("generation:job-progress", args=[job.pk])).json()
    assert (job_data["done"], job_data["total"], job_data["result"]) == (1234, 5000, None)


def test_a_finished_job_points_at_its_result(client, staff):
    run, job = queued_generation()
    job_start(job_id=job.pk)
    job_finish(job=job, result={"generation_run": run.pk})
    GenerationRun.objects.filter(pk=run.pk).update(
        status=GenerationRun.Status.SUCCEEDED, finished_at=timezone.now()
    )
    data = staff.get(reverse("generation:job-progress", args=[job.pk])).json()
    assert data["finished"] is True and data["status"] == "succeeded"
    assert data["result"] == {"url": run.get_absolute_url(), "label": f"Generation run #{run.pk}"}
    data = client.get(reverse("generation:generation-progress", args=[run.pk])).json()
    assert data["result"] == {"url": run.get_absolute_url(), "label": "Show the results"}


def test_the_progress_endpoints_refuse_what_the_pages_refuse(client):
    run, job = queued_generation()
    assert client.get(reverse("generation:generation-progress", args=[run.pk + 100])).status_code == 404
    # The job's page is staff's, and so is its progress.
    response = client.get(reverse("generation:job-progress", args=[job.pk]))
    assert response.status_code == 302
    assert client.post(reverse("generation:generation-progress", args=[run.pk])).status_code == 405
    assert client.get(reverse("generation:generation-progress", args=[run.pk]))["Cache-Control"] == "no-store"


def test_the_public_progress_endpoint_is_rate_limited(client, settings):
    settings.MWE_THROTTLE_RATES = {**settings.MWE_THROTTLE_RATES, "progress": "3/minute"}
    run, _ = queued_generation()
    url = reverse("generation:generation-progress", args=[run.pk])
    assert [client.get(url).status_code for _ in range(4)] == [200, 200, 200, 429]


def test_a_suite_page_follows_its_job_in_place(client):
    dataset = labelled_dataset()
    suite, job = suite_start(
        model_specs=["smollm2-135m"],
        dataset_slugs=[dataset.slug],
        prompt_format="paper",
        scorer="logprobs",
        limit=None,
        seed=0,
        name="live suite",
        created_by=None,
    )
    url = reverse("generation:suite-progress", args=[suite.pk])
    page = text(client.get(suite.get_absolute_url()))
    assert f'data-progress-url="{url}"' in page and "job_progress.js" in page
    assert "Waiting for a worker to load the models." in page

    job_start(job_id=job.pk)
    EvaluationSuite.objects.filter(pk=suite.pk).update(status=EvaluationSuite.Status.RUNNING)
    job_progress(job=job, done=2, total=4, message="Scoring power")
    data = client.get(url).json()
    assert (data["status"], data["done"], data["total"], data["finished"]) == ("running", 2, 4, False)
    assert "2 / 4" in text(client.get(suite.get_absolute_url()))

    job_finish(job=job, result={"suite": suite.pk})
    EvaluationSuite.objects.filter(pk=suite.pk).update(
        status=EvaluationSuite.Status.SUCCEEDED, finished_at=timezone.now()
    )
    data = client.get(url).json()
    assert data["finished"] is True
    assert data["result"] == {"url": suite.get_absolute_url(), "label": "Show the results"}
    assert "data-progress-url" not in text(client.get(suite.get_absolute_url()))
