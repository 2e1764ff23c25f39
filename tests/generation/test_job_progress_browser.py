"""A job's and a run's page follow the work in place: static/js/job_progress.js polls the page's
progress endpoint and rewrites the status, the message, the bar and the count, so a reader who has
scrolled down stays where they are (the page is never reloaded), and once the work has ended the
page shows the link to its result and stops polling. All under the site's Content Security Policy.

Headless Chromium from the system (`/usr/bin/chromium`) driven by Playwright's sync API against
pytest-django's `live_server`, as in tests/annotation/test_e2e_browser.py. Waits are selectors,
never page.wait_for_function (the policy rightly refuses its eval). Deselect with `-m "not browser"`."""

import pytest
from django.conf import settings
from django.test import Client
from django.utils import timezone

from generation.jobs import services as job_services
from generation.jobs.services import job_finish, job_progress, job_start
from generation.models import GenerationRun
from generation.pipeline.jobs import generation_job_create
from tests.browser import browser_page
from tests.builders import CandidateFactory, GenerationRunFactory, StaffFactory

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

PAYLOAD = '<img src=x onerror="window.__xss = 1">'


@pytest.fixture(autouse=True)
def no_worker(monkeypatch):
    """Jobs stay queued until the test moves them: no Celery worker, eager or not, takes them."""
    monkeypatch.setattr(job_services, "_send", lambda job: None)


@pytest.fixture
def page(browser):
    page = browser_page(browser, timeout_ms=15_000, viewport={"width": 1280, "height": 800})
    yield page
    page.context.close()
    assert page.csp_violations == []


def running_generation(candidates: int = 60):
    """A generation run whose job has started and reported progress, with enough candidates that its
    page is several screens long."""
    run = GenerationRunFactory(slug="live-run", created_by=None)
    job = generation_job_create(run=run, created_by=None)
    job_start(job_id=job.pk)
    GenerationRun.objects.filter(pk=run.pk).update(status=GenerationRun.Status.RUNNING)
    job_progress(job=job, done=3, total=400, message="writing candidates")
    for i in range(candidates):
        CandidateFactory(run=run, sample_index=i, text=f"I believe statement number {i} is true")
    return run, job


def updates(page, selector: str) -> int:
    return int(page.get_attribute(selector, "data-progress-updates") or 0)


def wait_for_update_after(page, selector: str, seen: int) -> None:
    page.wait_for_selector(f"{selector}:not([data-progress-updates='{seen}'])")


def test_the_run_page_updates_in_place_and_keeps_the_scroll_position(live_server, page):
    run, job = running_generation()
    page.goto(f"{live_server.url}{run.get_absolute_url()}")
    root = "section.progress[data-progress-url]"
    assert page.inner_text(f"{root} [data-progress=count]") == "3 / 400"
    assert "writing candidates" in page.inner_text(root)
    # No reload: the page is the same document from here on.
    page.evaluate("window.__samePage = true")

    page.evaluate("window.scrollTo(0, 1500)")
    # A row the reader is looking at, and where it is on their screen.
    row = next(
        row for row in page.locator("table.candidates tbody tr").all() if 100 < row.bounding_box()["y"] < 700
    )
    scrolled = page.evaluate("window.scrollY")
    assert scrolled > 1000

    def on_screen() -> float:
        return row.bounding_box()["y"]

    where = on_screen()
    assert 0 < where < 800

    seen = updates(page, root)
    job_progress(job=job, done=250, total=400, message=f"scoring {PAYLOAD}")
    page.wait_for_selector(f"{root} [data-progress=count]:text-is('250 / 400')")
    assert page.evaluate("window.scrollY") == scrolled and on_screen() == where
    assert page.evaluate("window.__samePage") is True
    assert updates(page, root) > seen
    assert page.get_attribute(f"{root} progress", "value") == "250"
    # The message is model-adjacent text: shown as text, never markup.
    assert page.inner_text(f"{root} [data-progress=message]") == f" — scoring {PAYLOAD}"
    assert page.locator(f"{root} img").count() == 0 and page.evaluate("window.__xss") is None

    # The run ends: the page says so, offers the results, and stops asking.
    job_finish(job=job, result={"generation_run": run.pk})
    GenerationRun.objects.filter(pk=run.pk).update(
        status=GenerationRun.Status.SUCCEEDED, finished_at=timezone.now()
    )
    page.wait_for_selector(f"{root}[data-progress-state=finished]")
    # The section above grew by a line (the link to the results); the browser's scroll anchoring
    # keeps what the reader looks at where it was, and the page was not reloaded to the top.
    assert abs(on_screen() - where) <= 1 and page.evaluate("window.scrollY") >= scrolled
    assert page.evaluate("window.__samePage") is True
    link = page.locator(f"{root} [data-progress=result]")
    assert link.is_visible() and link.get_attribute("href") == run.get_absolute_url()
    assert page.inner_text(f"{root} [data-progress=status]") == "Succeeded"
    assert not page.locator(f"{root} [data-progress=note]").is_visible()
    finished_at = updates(page, root)
    page.wait_for_timeout(4500)  # two polling intervals: nothing more is asked
    assert updates(page, root) == finished_at
    assert page.js_errors == []


def test_the_job_page_shows_the_wait_then_the_progress_then_the_result(live_server, page):
    ahead = GenerationRunFactory(slug="ahead", created_by=None)
    ahead_job = generation_job_create(run=ahead, created_by=None)
    job_start(job_id=ahead_job.pk)
    run = GenerationRunFactory(slug="behind", created_by=None)
    job = generation_job_create(run=run, created_by=None)

    staff = Client()
    staff.force_login(StaffFactory())
    page.context.add_cookies(
        [
            {
                "name": settings.SESSION_COOKIE_NAME,
                "value": staff.cookies[settings.SESSION_COOKIE_NAME].value,
                "url": live_server.url,
            }
        ]
    )
    page.goto(f"{live_server.url}{job.get_absolute_url()}")
    root = "[data-progress-url]"
    waiting = f"{root} [data-progress=waiting]"
    assert page.inner_text(waiting) == f"Queued behind generate a dataset #{ahead_job.pk}."
    assert not page.locator(f"{root} [data-progress=bar-row]").is_visible()

    # The job ahead ends: this one is next, and says what it waits for now.
    job_finish(job=ahead_job, result={})
    page.wait_for_selector(f"{waiting}:text-is('Waiting for a worker to load the models.')")

    job_start(job_id=job.pk)
    job_progress(job=job, done=1200, total=4000, message="scoring")
    page.wait_for_selector(f"{root} [data-progress=count]:text-is('1,200 / 4,000')")
    assert not page.locator(waiting).is_visible()
    assert page.inner_text(f"{root} [data-progress=status]") == "Running"
    assert page.get_attribute(f"{root} [data-progress=status]", "class") == "status-running"

    job_finish(job=job, result={"generation_run": run.pk})
    page.wait_for_selector(f"{root}[data-progress-state=finished]")
    link = page.locator("[data-progress=result]")
    assert link.is_visible() and link.get_attribute("href") == run.get_absolute_url()
    assert link.inner_text() == f"Generation run #{run.pk}"
    assert page.get_attribute(f"{root} [data-progress=status]", "class") == "status-succeeded"
    assert page.js_errors == []
