"""Starting a suite from the site (staff): the form and the API both create the suite and its job;
the job's page follows it; the API reads suites for everyone."""

import pytest
from django.conf import settings
from django.urls import reverse

from generation.evaluation import jobs as evaluation_jobs
from generation.lm import LMError
from generation.models import Dataset, EvaluationRun, EvaluationSuite, Job
from tests.builders import CollectionFactory, DatasetFactory, StaffFactory, UserFactory
from tests.generation.evaluation.fakes import FakeLoader, FunctionModel
from tests.generation.evaluation.test_suites import OTHER, SMOL, hashed, hashed_other, labelled

pytestmark = pytest.mark.django_db

FORM_URL = reverse("generation:suite-create")
API_URL = "/api/evaluation-suites/"


@pytest.fixture
def catalog(db):
    persona = CollectionFactory(slug="persona")
    return {
        "a": labelled("a", 6, collection=persona),
        "b": labelled("b", 4, collection=persona),
        "c": labelled("c", 3),
        "reference": DatasetFactory(slug="reference", purpose=Dataset.Purpose.REFERENCE),
        "unlabelled": DatasetFactory(slug="unlabelled"),
    }


@pytest.fixture
def loader(monkeypatch):
    fake = FakeLoader({SMOL: FunctionModel(hashed), OTHER: FunctionModel(hashed_other)})
    monkeypatch.setattr(evaluation_jobs, "worker_model", fake)
    return fake


def form_data(**change) -> dict:
    return {
        "model_specs": f"{SMOL}\n{OTHER}\n",
        "datasets": ["c"],
        "collections": ["persona"],
        "prompt_format": "paper",
        "scorer": "logprobs",
        "limit": "3",
        "seed": "0",
        "name": "<b>first</b>",
        **change,
    }


def test_the_form_is_for_staff_only(client, catalog, loader):
    response = client.get(FORM_URL)
    assert response.status_code == 302 and response["Location"].startswith(reverse(settings.LOGIN_URL))
    assert client.post(FORM_URL, form_data()).status_code == 302
    client.force_login(UserFactory())
    assert client.get(FORM_URL).status_code == 403
    assert client.post(FORM_URL, form_data()).status_code == 403
    assert not EvaluationSuite.objects.exists() and not Job.objects.exists() and loader.loads == []


def test_the_form_offers_both_embedded_models_and_the_datasets(client, catalog):
    client.force_login(StaffFactory())
    html = client.get(FORM_URL).content.decode()
    assert "smollm2-135m\ngemma3-270m</textarea>" in html
    for slug in ("a", "b", "c"):
        assert f'<option value="{slug}">' in html
    assert 'value="persona"' in html and 'name="all_datasets"' in html


def test_staff_start_a_suite_that_runs_as_one_job(
    client, catalog, loader, django_capture_on_commit_callbacks
):
    staff = StaffFactory()
    client.force_login(staff)
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(FORM_URL, form_data())
    suite = EvaluationSuite.objects.get()
    job = Job.objects.get()
    assert response.status_code == 302 and response["Location"] == reverse(
        "generation:job-detail", args=[job.pk]
    )
    assert suite.job_id == job.pk and job.kind == Job.Kind.SUITE and suite.created_by == staff
    assert suite.model_specs == [SMOL, OTHER] and suite.limit == 3 and suite.name == "<b>first</b>"
    assert set(suite.datasets.values_list("slug", flat=True)) == {"a", "b", "c"}
    job.refresh_from_db()
    assert job.status == Job.Status.SUCCEEDED, job.error
    assert job.progress_done == job.progress_total == 2 * 9
    assert loader.loads == [SMOL, OTHER]

    page = client.get(response["Location"]).content.decode()
    assert reverse("generation:suite-detail", args=[suite.pk]) in page
    assert f"Suite #{suite.pk}" in page


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"model_specs": "gpt-9"}, "unknown model spec"),
        ({"model_specs": "  \n"}, "This field is required"),
        ({"model_specs": f"{SMOL}\n{SMOL}"}, "given more than once"),
        ({"datasets": [], "collections": []}, "Choose datasets, collections or all datasets."),
        ({"datasets": ["unlabelled"], "collections": []}, "not &#x27;unlabelled&#x27; (no gold answer"),
        # Only evaluation datasets are offered.
        ({"datasets": ["reference"]}, "Select a valid choice"),
        ({"datasets": ["nope"]}, "Select a valid choice"),
        ({"scorer": "answer"}, "choose the plain prompt format"),
        ({"limit": "0"}, "greater than or equal to 1"),
    ],
)
def test_bad_input_shows_the_reason_and_starts_nothing(client, catalog, loader, change, message):
    client.force_login(StaffFactory())
    response = client.post(FORM_URL, form_data(**change))
    assert response.status_code == 200
    assert message in response.content.decode()
    assert not EvaluationSuite.objects.exists() and not EvaluationRun.objects.exists()
    assert not Job.objects.exists() and loader.loads == []


# ----------------------------------------------------------------------------- API


def test_the_api_starts_a_suite_for_staff_only(client, catalog, loader, django_capture_on_commit_callbacks):
    body = {"model_specs": [SMOL, OTHER], "datasets": ["a"], "collections": [], "limit": 2}
    assert client.post(API_URL, body, content_type="application/json").status_code == 403
    client.force_login(UserFactory())
    assert client.post(API_URL, body, content_type="application/json").status_code == 403
    assert not EvaluationSuite.objects.exists()

    client.force_login(StaffFactory())
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(API_URL, body, content_type="application/json")
    assert response.status_code == 201, response.content
    created = response.json()
    suite = EvaluationSuite.objects.get()
    assert created["id"] == suite.pk and created["job"] == Job.objects.get().pk
    assert created["model_specs"] == [SMOL, OTHER] and created["datasets"] == ["a"]
    assert created["page_url"] == reverse("generation:suite-detail", args=[suite.pk])
    assert [(r["model_spec"], r["dataset"]) for r in created["runs"]] == [(SMOL, "a"), (OTHER, "a")]
    assert Job.objects.get().status == Job.Status.SUCCEEDED


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"model_specs": [SMOL]}, "give datasets, collections or all_datasets"),
        ({"model_specs": [], "datasets": ["a"]}, "model_specs"),
        ({"model_specs": ["gpt-9"], "datasets": ["a"]}, "unknown model spec"),
        ({"model_specs": [SMOL], "datasets": ["nope"]}, "no dataset with slug 'nope'"),
        ({"model_specs": [SMOL], "datasets": ["a"], "seed": -1}, "seed"),
        ({"model_specs": [f"hf:org/m{i}" for i in range(21)], "datasets": ["a"]}, "model_specs"),
    ],
)
def test_the_api_refuses_bad_input_with_the_reason(client, catalog, loader, body, message):
    client.force_login(StaffFactory())
    response = client.post(API_URL, body, content_type="application/json")
    assert response.status_code == 400
    assert message in response.content.decode()
    assert not EvaluationSuite.objects.exists() and not Job.objects.exists()


def test_the_api_reads_suites_with_their_runs_for_everyone(client, catalog, loader):
    from generation.evaluation.suites import suite_create, suite_execute

    suite = suite_create(model_specs=[SMOL, OTHER], datasets=[catalog["a"], catalog["c"]], limit=2)
    suite_execute(
        suite=suite, load_model=FakeLoader({SMOL: FunctionModel(hashed), OTHER: LMError("no weights")})
    )
    listed = client.get(API_URL).json()
    [row] = listed["results"]
    assert row["id"] == suite.pk and row["run_counts"] == {"succeeded": 2, "failed": 2}
    assert row["error"] is None  # why a run failed is for staff
    assert "runs" not in row
    detail = client.get(f"{API_URL}{suite.pk}/").json()
    assert [(r["model_spec"], r["dataset"], r["status"]) for r in detail["runs"]] == [
        (SMOL, "a", "succeeded"),
        (SMOL, "c", "succeeded"),
        (OTHER, "a", "failed"),
        (OTHER, "c", "failed"),
    ]
    assert [m["model_spec"] for m in detail["results"]["models"]] == [SMOL, OTHER]
    client.force_login(StaffFactory())
    assert "could not load the model" in client.get(f"{API_URL}{suite.pk}/").json()["error"]
