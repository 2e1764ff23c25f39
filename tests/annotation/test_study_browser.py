"""End to end in a real browser (issue 17's "done when"): a participant opens a project's Prolific
study link, starts, rates five examples (the study's quota), sees the completion code in large
text and is taken back to Prolific's completion URL by annotation/study_complete.js, all under
the site's Content Security Policy.

Headless Chromium from the system, driven by Playwright against pytest-django's `live_server`;
Prolific itself is never reached: the browser's requests to it are answered by the test."""

import pytest

from annotation.models import Response, StudySession, Worker
from tests.annotation.builders import build_study_project, prolific_ids
from tests.browser import browser_page

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

PROLIFIC = "https://app.prolific.com/submissions/complete?cc=BROWSER5"


@pytest.fixture
def page(browser):
    # A phone's width: many participants take studies on one.
    page = browser_page(browser, timeout_ms=15_000, viewport={"width": 390, "height": 844})
    # Prolific, as far as this test is concerned: the request the redirect makes is recorded and
    # answered here.
    page.prolific_requests = []

    def prolific(route):
        page.prolific_requests.append(route.request.url)
        route.fulfill(status=200, content_type="text/html", body="<h1>Submission complete</h1>")

    page.route("https://app.prolific.com/**", prolific)
    yield page
    page.context.close()
    assert page.csp_violations == []


def choose(form, selector: str) -> None:
    """Click the label of a choice, as a person does (the radio itself is drawn by its label)."""
    radio = form.locator(selector).first
    form.locator(f"label[for='{radio.get_attribute('id')}']").click()
    assert radio.is_checked()


def rate_shown_task(page) -> None:
    """Answer the three questions with the mouse and submit; wait for the next page."""
    form = page.locator("#rating-form")
    choose(form, "input[name=relevance][value='4']")
    choose(form, "input[name=answer]")
    choose(form, "input[name=ambiguous][value=no]")
    with page.expect_navigation():
        form.locator("button[type=submit]").first.click()


def test_a_participant_goes_from_the_prolific_link_through_five_tasks_to_the_completion_code(
    live_server, page
):
    project = build_study_project(
        items=8, overlap=2, study_quota=5, completion_code="BROWSER5", slug="prolific"
    )
    ids = prolific_ids(7)
    query = "&".join(f"{name}={value}" for name, value in ids.items())
    page.goto(f"{live_server.url}/annotate/study/{project.study_token}/?{query}")
    assert "up to 5 examples" in page.locator("main").inner_text()
    with page.expect_navigation():
        page.get_by_role("button", name="Start").click()
    assert page.url.endswith(f"/annotate/?project={project.slug}")

    for _ in range(5):
        assert page.locator("#rating-form").is_visible()
        assert page.locator("#example-text").inner_text().strip()
        rate_shown_task(page)

    # The fifth submit ends the quota: the worker page sends the participant to their code.
    assert page.url.endswith("/annotate/study/done/")
    code = page.locator("#completion-code")
    assert code.inner_text() == "BROWSER5"
    assert float(code.evaluate("element => parseFloat(getComputedStyle(element).fontSize)")) >= 32
    back = page.get_by_role("link", name="Back to Prolific")
    assert back.get_attribute("href") == PROLIFIC
    assert page.locator("#study-redirect-note").is_visible()
    assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")
    assert page.js_errors == []

    # A few seconds later the page takes them back to Prolific with the code.
    page.wait_for_url(PROLIFIC, timeout=10_000)
    assert page.prolific_requests == [PROLIFIC]
    assert "Submission complete" in page.content()

    worker = Worker.objects.get(platform="prolific", external_id=ids["PROLIFIC_PID"])
    assert Response.objects.filter(worker=worker, project=project).count() == 5
    session = StudySession.objects.get(worker=worker)
    assert session.session_id == ids["SESSION_ID"] and session.completed_at is not None
