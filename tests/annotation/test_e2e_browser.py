"""End to end in a real browser: a crowdworker opens their invite link, starts, and rates three
examples with the keyboard only (annotate.js: 1-5 relevance, a-h the answer options as shown, y/n
"is the correct answer ambiguous?", Enter submit), never seeing the label.

Headless Chromium from the system (`/usr/bin/chromium`, installed by `make setup` when missing),
driven by Playwright's sync API against pytest-django's `live_server`. `playwright install` is never
needed. Deselect with `-m "not browser"`."""

import pytest

from annotation.models import Assignment, Response
from annotation.services.workers import worker_create
from tests.annotation.builders import build_project
from tests.conftest import browser_page

PAYLOAD = '<script>window.__xss = 1;</script><img src=x onerror="window.__xss = 2">'

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def page(browser):
    page = browser_page(browser, timeout_ms=15_000)
    yield page
    page.context.close()
    # The worker page runs under the Content Security Policy the site serves.
    assert page.csp_violations == []


def rate(page, keys: list[str]) -> None:
    """Press the keys on the page body, then Enter, and wait for the next page to load."""
    page.locator("body").click(position={"x": 1, "y": 1})  # focus the document, not a form control
    for key in keys:
        page.keyboard.press(key)
    with page.expect_navigation():
        page.keyboard.press("Enter")


def test_worker_rates_three_examples_with_the_keyboard(live_server, page):
    project = build_project(items=3, overlap=2, slug="e2e")
    first = project.items.order_by("pk").first().example
    first.statement = f"I would say {PAYLOAD} to anyone"
    first.question = f'Is the following statement something you would say?\n"{first.statement}"'
    first.save(update_fields=["statement", "question"])
    worker = worker_create(project=project, external_id="crowd-e2e")

    # The token is the link's fragment: join.js copies it into the form and out of the address bar.
    page.goto(f"{live_server.url}/annotate/join/#{worker.invite_token}")
    assert page.input_value("#id_token") == worker.invite_token
    assert "#" not in page.url
    with page.expect_navigation():
        page.get_by_role("button", name="Start").click()
    assert page.url.endswith("/annotate/")
    assert "E2E" in page.content()

    # The question as the model sees it, its markup shown as text: nothing ran, nothing injected.
    text = page.locator("#example-text")
    assert text.inner_text() == f'Is the following statement something you would say?\n"{first.statement}"'
    assert text.locator("script, img").count() == 0
    assert page.evaluate("window.__xss") is None

    answers = [
        (["4", "b", "n"], (4, " Yes", True, False)),  # b: the second option shown, Yes
        (["2", "a", "y"], (2, " No", False, True)),
        (["5", "a", "y", "b", "n", "3"], (3, " Yes", True, False)),  # the last key of each question wins
    ]
    for keys, _ in answers:
        assert page.locator("#rating-form").is_visible()
        # The paper's questions and the options in neutral order; the label is nowhere in the DOM.
        body = page.locator("body").inner_text()
        assert "What is the correct answer to this question?" in body
        assert "Is it unclear or ambiguous what the 'correct' answer should be?" in body
        options = page.locator("#answer-options label").all_inner_texts()
        assert [option.split(" (")[0] for option in options] == ["No", "Yes"]
        html = page.evaluate("document.documentElement.outerHTML")
        assert "Label" not in html and "matching" not in html and "label_correct" not in html
        assert page.locator("input[name=ambiguous]:checked").count() == 0
        rate(page, keys)
    assert "Nothing left for you to rate" in page.content()
    assert page.evaluate("window.__xss") is None
    assert page.js_errors == []

    responses = Response.objects.filter(worker=worker).order_by("item_id")
    got = [(r.relevance, r.answer, r.label_correct, r.ambiguous) for r in responses]
    assert got == [expected for _, expected in answers]
    assert [r.item_id for r in responses] == list(project.items.order_by("pk").values_list("pk", flat=True))
    assert all(r.time_on_task_ms is not None and r.time_on_task_ms >= 0 for r in responses)
    assert set(Assignment.objects.filter(worker=worker).values_list("status", flat=True)) == {
        Assignment.Status.SUBMITTED
    }
