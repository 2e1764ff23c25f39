"""In a real browser: on a new site whose demo dataset is being generated, the home page shows the
worker's progress and keeps it current by itself (static/js/first_run.js), in place while only the
counts change, and shows the outcome once a step ends, all under the site's Content Security Policy.

Headless Chromium from the system, driven by Playwright against pytest-django's live_server; the
worker's side is the real job runner with the model work replaced by a handler that reports progress
through the same service the real one uses."""

from io import StringIO

import pytest
from django.core.management import call_command

from generation.jobs import services as jobs
from generation.jobs.services import job_finish, job_progress
from generation.models import GenerationRun, Job
from tests.browser import browser_page

expect = pytest.importorskip("playwright.sync_api").expect

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def page(browser):
    page = browser_page(browser, timeout_ms=15_000)
    yield page
    page.context.close()
    assert page.csp_violations == []
    assert page.js_errors == []


def test_the_home_page_follows_the_demo_generation_live(live_server, page, settings, tmp_path, monkeypatch):
    def generating(job):  # the worker has loaded the models and written 8 candidates
        job_progress(job=job, done=8, total=64, message="Generating candidates")

    monkeypatch.setitem(jobs.JOB_HANDLERS, Job.Kind.GENERATE, generating)
    settings.MWE_EVALS_DATA = tmp_path / "missing"
    call_command("load_demo", stdout=StringIO())  # the job runs at once (the test settings run jobs inline)
    run = GenerationRun.objects.get(slug="demo-power-seeking")
    job = Job.objects.get(pk=run.job_id)
    assert job.status == Job.Status.RUNNING

    page.goto(live_server.url + "/")
    step = page.locator('[data-step="generate"]')
    text = step.locator("[data-first-run-text]")
    assert (
        text.inner_text() == "Generating the demo dataset with smollm2-135m: generating candidates: 8 of 64."
    )
    bar = step.locator("progress")
    assert bar.is_visible()
    assert page.locator("#first-run").get_by_text("A CPU demo, not real data.").is_visible()
    assert (
        page.get_by_role("link", name="the generation's page").get_attribute("href")
        == f"/generations/{run.pk}/"
    )
    page.evaluate("window.__samePage = true")

    # The worker goes on: the sentence and the bar change in place, the page is not reloaded.
    job_progress(job=job, done=40, total=64, message="Scoring candidates")
    expect(text).to_contain_text("40 of 64", timeout=10_000)
    assert text.inner_text() == "Generating the demo dataset with smollm2-135m: scoring candidates: 40 of 64."
    assert bar.evaluate("node => [node.value, node.max]") == [40, 64]
    assert page.evaluate("window.__samePage") is True

    # The generation ends: the page reloads once to show the outcome, and polls no more.
    job_finish(job=job, result={"generation_run": run.pk}, message="done")
    GenerationRun.objects.filter(pk=run.pk).update(status="succeeded")
    expect(page.locator('[data-step="generate"]')).to_contain_text(
        "The demo dataset is ready", timeout=10_000
    )
    assert page.evaluate("window.__samePage") is None
    assert page.locator('script[src$="first_run.js"]').count() == 0
