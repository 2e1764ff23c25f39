"""The first run explains itself: on a new site the home page and /explore/ say what `make run` is
doing (the demo dataset's generation with the embedded model, then the map), with the jobs' own
progress, links, and the warning that the tiny CPU model writes poor data; the JSON they poll says
the same. Also the header's sign-in and sign-out links.

The worker's side is played by the real job runner (generation.jobs.services.job_run) with the model
work replaced by handlers that report progress through the same service calls the real ones use."""

from __future__ import annotations

import json
from html import unescape
from io import StringIO

import pytest
from django.core.management import call_command
from django.urls import reverse

from analysis.explorer.builds import explorer_maps_build
from analysis.explorer.jobs import explorer_job_create
from generation.catalog.services import dataset_refresh_stats
from generation.jobs import services as jobs
from generation.jobs.services import job_finish, job_progress, job_run
from generation.models import GenerationRun, Job
from tests.analysis.explorer.fakes import CountingEmbedder
from tests.builders import DatasetFactory, ExampleFactory, StaffFactory

pytestmark = pytest.mark.django_db

HOME = "/"
EXPLORE = "/explore/"
PROGRESS = "/first-run.json"


def progress(client) -> dict:
    response = client.get(PROGRESS)
    assert response.status_code == 200
    assert response["Cache-Control"] == "no-store"
    return response.json()


def first_run_section(client, url: str) -> str:
    html = client.get(url).content.decode()
    assert 'id="first-run"' in html, html
    start = html.index('id="first-run"')
    return html[start : html.index("</section>", start)]


def step_text(data: dict, key: str) -> str:
    return next(step["text"] for step in data["steps"] if step["key"] == key)


@pytest.fixture
def demo_queued(tmp_path, settings):
    """`make run` on a machine without the released data: load_demo queues the demo generation."""
    settings.MWE_EVALS_DATA = tmp_path / "missing"
    call_command("load_demo", stdout=StringIO())
    return GenerationRun.objects.get(slug="demo-power-seeking")


def run_job_with(monkeypatch, job: Job, handler) -> None:
    monkeypatch.setitem(jobs.JOB_HANDLERS, job.kind, handler)
    job_run(job_id=job.pk)


def demo_dataset_written(job: Job) -> None:
    """What a successful generation leaves: the run's dataset (four examples), the run succeeded."""
    dataset = DatasetFactory(slug="demo-power-seeking", origin="generated")
    for i in range(4):
        ExampleFactory(dataset=dataset, position=i, statement=f"I want more power, reason {i}")
    dataset_refresh_stats(dataset=dataset)
    GenerationRun.objects.filter(pk=job.params["run_id"]).update(status="succeeded", dataset=dataset)
    job_finish(job=job, result={"generation_run": job.params["run_id"]}, message="8 of 64 kept")


def test_the_whole_first_run_is_shown_as_it_happens(client, demo_queued, monkeypatch):
    run = demo_queued
    generate_job = run.job

    # Queued: nothing has started, and the page says so instead of showing an empty catalog only.
    section = first_run_section(client, HOME)
    assert "Generating the demo dataset with smollm2-135m: waiting for the worker" in section
    assert "Then the map: it is computed once the demo dataset exists." in section
    assert f'href="/generations/{run.pk}/"' in section
    assert 'src="/static/js/first_run.js"' in client.get(HOME).content.decode()
    queued = progress(client)
    assert queued["active"] is True and queued["datasets"] == 0

    # The worker reports its counts: the page and the JSON give them, the same words.
    def generating(job):
        job_progress(job=job, done=40, total=64, message="Generating candidates")

    run_job_with(monkeypatch, generate_job, generating)
    section = first_run_section(client, HOME)
    text = "Generating the demo dataset with smollm2-135m: generating candidates: 40 of 64."
    assert text in section
    assert '<progress data-first-run-bar max="64" value="40"' in section
    running = progress(client)
    assert step_text(running, "generate") == text
    assert running["stage"] != queued["stage"]  # a step began: the polling page reloads

    # More candidates: new counts, same stage (the page updates in place, no reload).
    job_progress(job=Job.objects.get(pk=generate_job.pk), done=52, message="Scoring candidates")
    later = progress(client)
    assert step_text(later, "generate").endswith("scoring candidates: 52 of 64.")
    assert later["stage"] == running["stage"]
    generate = next(step for step in later["steps"] if step["key"] == "generate")
    assert (generate["done"], generate["total"], generate["active"]) == (52, 64, True)

    # The generation succeeds: its follow-up, the map, is queued by the job runner itself.
    run_job_with(monkeypatch, Job.objects.get(pk=generate_job.pk), demo_dataset_written)
    map_job = Job.objects.get(kind=Job.Kind.EXPLORE)
    html = client.get(HOME).content.decode()
    assert "demo-power-seeking" in html  # the catalog lists the new dataset
    section = first_run_section(client, HOME)
    assert "The demo dataset is ready: 4 examples written by smollm2-135m." in section
    assert "Computing the map: waiting for the worker." in section

    def mapping(job):
        job_progress(job=job, done=3, total=10, message="Embedding new texts")

    run_job_with(monkeypatch, map_job, mapping)
    assert "Computing the map: embedding new texts: 3 of 10." in first_run_section(client, EXPLORE)
    assert "Computing the map: embedding new texts: 3 of 10." in first_run_section(client, HOME)

    # The map is drawn: nothing is left to explain, and nothing polls any more.
    def drawn(job):
        explorer_maps_build(embedder=CountingEmbedder(), datasets=None)
        job_finish(job=job, result={})

    run_job_with(monkeypatch, Job.objects.get(pk=map_job.pk), drawn)
    done = progress(client)
    assert done["active"] is False and done["has_map"] is True
    for url in (HOME, EXPLORE):
        html = client.get(url).content.decode()
        assert 'id="first-run"' not in html and "first_run.js" not in html


def test_the_embedded_model_is_called_a_cpu_demo_beside_the_real_model_specs(client, demo_queued):
    section = " ".join(first_run_section(client, HOME).split())
    assert "A CPU demo, not real data." in section
    assert "the examples it writes are poor" in section
    assert "<code>hf:</code>" in section and "<code>openai:</code>" in section
    assert "docs/model-servers.md" in section
    # Staff also get the form that takes such a spec.
    client.force_login(StaffFactory())
    assert 'href="/generate/"' in first_run_section(client, HOME)


def test_a_failed_demo_generation_is_said_and_not_polled(client, demo_queued, monkeypatch):
    def fails(job):
        raise RuntimeError("the model did not load")

    with pytest.raises(RuntimeError):
        run_job_with(monkeypatch, demo_queued.job, fails)
    data = progress(client)
    assert data["active"] is False
    assert (
        step_text(data, "generate") == "The demo dataset's generation failed; its page says how far it got."
    )
    html = unescape(client.get(HOME).content.decode())
    assert "The demo dataset's generation failed" in html and "first_run.js" not in html
    # The error itself stays on the staff's pages.
    assert "did not load" not in html and "did not load" not in json.dumps(data)


def test_job_messages_are_shown_as_text(client, demo_queued, monkeypatch):
    payload = '<img src=x onerror="window.__xss=1">'

    def reports(job):
        job_progress(job=job, done=1, total=2, message=payload)

    run_job_with(monkeypatch, demo_queued.job, reports)
    section = first_run_section(client, HOME)
    assert payload.lower() not in section
    assert "&lt;img src=x onerror=&quot;window.__xss=1&quot;&gt;" in section


def test_an_empty_catalog_without_demo_says_what_make_run_would_do(client):
    section = first_run_section(client, HOME)
    assert "Nothing is being prepared" in section and "MWE_EVALS_DATA" in section
    html = client.get(HOME).content.decode()
    assert "The catalog is empty" in html and "first_run.js" not in html
    assert progress(client) == {
        "stage": progress(client)["stage"],
        "active": False,
        "datasets": 0,
        "has_map": False,
        "steps": [],
    }


def test_a_rebuild_of_an_existing_map_is_no_first_run(client, monkeypatch):
    dataset = DatasetFactory()
    for i in range(4):
        ExampleFactory(dataset=dataset, position=i, statement=f"I want more power, reason {i}")
    dataset_refresh_stats(dataset=dataset)
    explorer_maps_build(embedder=CountingEmbedder(), datasets=None)
    assert progress(client)["has_map"] is True

    job = explorer_job_create(created_by=None)
    run_job_with(monkeypatch, job, lambda job: job_progress(job=job, done=1, total=5, message="Drawing maps"))
    assert progress(client)["active"] is True
    assert 'id="first-run"' not in client.get(HOME).content.decode()


def test_the_progress_endpoint_is_rate_limited(client, settings):
    settings.MWE_THROTTLE_RATES = {**settings.MWE_THROTTLE_RATES, "progress": "2/minute"}
    assert [client.get(PROGRESS).status_code for _ in range(3)] == [200, 200, 429]
    refused = client.get(PROGRESS)
    assert int(refused["Retry-After"]) >= 1 and "detail" in refused.json()
    assert client.post(PROGRESS).status_code == 405


# ----------------------------------------------------------------------------- signing in and out


def test_anonymous_visitors_see_sign_in_leading_to_the_staff_sign_in(client):
    html = client.get(reverse("generation:run-list")).content.decode()
    assert '<a href="/admin/login/?next=/evaluations/"' in html and ">Sign in</a>" in html
    assert "Sign out" not in html
    login = client.get("/admin/login/?next=/evaluations/")
    assert login.status_code == 200


def test_signed_in_users_see_who_they_are_and_sign_out(client):
    staff = StaffFactory(username="researcher-ada")
    client.force_login(staff)
    html = client.get(HOME).content.decode()
    assert "researcher-ada" in html and ">Sign out</button>" in html and ">Sign in<" not in html
    assert 'action="/admin/logout/"' in html
    response = client.post("/admin/logout/", {"next": "/"})
    assert response.status_code == 302 and response["Location"] == "/"
    assert ">Sign in</a>" in client.get(HOME).content.decode()
