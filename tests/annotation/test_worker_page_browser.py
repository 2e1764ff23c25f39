"""The worker page as a crowdworker sees it in a real browser, on a phone (390 px) and a laptop
(1280 px): instructions open on the first task and collapsed after, "k of N", the minutes left on the
lease and its end in the worker's own time zone, the comment and "broken" flag, `s` asking once
before skipping, Enter on the focused Skip button doing nothing, finger-sized targets, no horizontal
scroll, changing the last answer, and no way into the public site's dataset pages.

Headless system Chromium through Playwright (tests/browser.py) against pytest-django's live server;
the page runs under the site's Content Security Policy. Deselect with `-m "not browser"`."""

from zoneinfo import ZoneInfo

import pytest

from annotation.models import Assignment, Response
from annotation.services.workers import worker_create
from tests.annotation.builders import build_project
from tests.browser import browser_page
from tests.pixels import screenshot

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

ZONE = "America/New_York"
ACCENT = (31, 95, 168)  # --accent in static/css/site.css: a chosen option's background
TOUCH = 44  # px, WCAG 2.5.5


@pytest.fixture(params=[390, 1280], ids=["phone", "laptop"])
def page(request, browser):
    width = request.param
    page = browser_page(
        browser,
        timeout_ms=15_000,
        viewport={"width": width, "height": 844 if width < 600 else 900},
        timezone_id=ZONE,
        locale="en-US",
    )
    page.width = width
    page.dialogs = []

    def answer(dialog):
        page.dialogs.append(dialog.message)
        dialog.accept()

    page.on("dialog", answer)
    yield page
    page.context.close()
    assert page.csp_violations == []
    assert page.js_errors == []


def no_horizontal_scroll(page) -> bool:
    return page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")


def small_targets(page) -> list[str]:
    """The controls a finger must hit whose box is under 44 x 44 px."""
    selectors = ".rating .choices label, .rating .check, #submit-button, #skip-button, #last-answer a"
    boxes = page.eval_on_selector_all(
        selectors,
        "nodes => nodes.map(n => { const r = n.getBoundingClientRect();"
        " return [n.id || n.textContent.trim().slice(0, 20), r.width, r.height]; })",
    )
    assert boxes, "no controls found"
    return [f"{name}: {w:.0f}x{h:.0f}" for name, w, h in boxes if w < TOUCH or h < TOUCH]


def focus_document(page) -> None:
    page.locator("main h1").first.click()


def test_a_worker_rates_flags_skips_and_changes_their_answer(live_server, page):
    project = build_project(items=3, overlap=2, slug="phone", instructions="Read **each** example twice.")
    dataset = project.datasets.get()
    worker = worker_create(project=project, external_id="crowd-browser")
    page.goto(f"{live_server.url}/annotate/join/#{worker.invite_token}")
    with page.expect_navigation():
        page.get_by_role("button", name="Start").click()
    assert page.url.endswith("/annotate/")

    # No navigation into the public site, only the project's name.
    assert page.locator("header nav").count() == 0
    assert page.locator("header").inner_text().strip() == project.name

    # First task: the instructions are open and read; progress and the lease are shown.
    assert page.locator("#instructions").get_attribute("open") is not None
    assert page.get_by_text("Read each example twice.").is_visible()
    assert page.locator("#progress").inner_text() == "0 of 3 done"
    assert page.locator("#lease-minutes").inner_text() == "5 min left"
    lease = Assignment.objects.get(worker=worker, status=Assignment.Status.CLAIMED)
    local = lease.expires_at.astimezone(ZoneInfo(ZONE))
    clock = page.locator("#lease time.local-time").inner_text()
    assert clock.startswith(f"{local:%I:%M %p}"), clock
    assert "UTC" not in clock and clock.split()[-1] in ("EST", "EDT")
    # The question and its choices as the paper's task shows them; the label nowhere.
    assert page.locator("h1.behavior").is_visible() and page.locator("#example-text").is_visible()
    assert [t.split(" (")[0] for t in page.locator("#answer-options label").all_inner_texts()] == [
        "No",
        "Yes",
    ]
    html = page.evaluate("document.documentElement.outerHTML")
    assert "matching" not in html and "label_correct" not in html
    assert small_targets(page) == []
    assert no_horizontal_scroll(page)

    # Rate with the keyboard; the chosen option is drawn highlighted though its radio is hidden.
    focus_document(page)
    for key in ("4", "b", "n"):
        page.keyboard.press(key)
    chosen = page.locator("label[for=id_relevance_3]").bounding_box()
    assert (
        screenshot(page).getpixel((round(chosen["x"] + 3), round(chosen["y"] + chosen["height"] / 2)))
        == ACCENT
    )
    page.locator("#id_comment").fill("The statement <b>repeats</b> itself.")
    page.locator("label.check").click()
    assert page.locator("#id_flagged_broken").is_checked()

    # Enter on the focused Skip button neither skips nor submits: the page stays, a hint shows.
    page.locator("#skip-button").focus()
    page.keyboard.press("Enter")
    page.wait_for_timeout(600)
    assert page.url.endswith("/annotate/") and page.locator("#progress").inner_text() == "0 of 3 done"
    assert page.locator("#key-hint").is_visible()
    assert not Response.objects.exists()
    assert Assignment.objects.get(pk=lease.pk).status == Assignment.Status.CLAIMED

    focus_document(page)
    with page.expect_navigation():
        page.keyboard.press("Enter")
    stored = Response.objects.get(worker=worker)
    assert (stored.relevance, stored.answer, stored.ambiguous) == (4, " Yes", False)
    assert (stored.comment, stored.flagged_broken) == ("The statement <b>repeats</b> itself.", True)

    # The second task: instructions collapsed, progress moved on, the last answer can be changed.
    assert page.locator("#instructions").get_attribute("open") is None
    assert not page.get_by_text("Read each example twice.").is_visible()
    assert page.locator("#progress").inner_text() == "1 of 3 done"
    assert page.get_by_role("link", name="Change my last answer").is_visible()
    assert small_targets(page) == []
    assert no_horizontal_scroll(page)

    # s asks once; confirmed, the next s skips at once.
    focus_document(page)
    with page.expect_navigation():
        page.keyboard.press("s")
    assert len(page.dialogs) == 1 and "Skip this example?" in page.dialogs[0]
    assert page.locator("#progress").inner_text() == "1 of 2 done"
    focus_document(page)
    with page.expect_navigation():
        page.keyboard.press("s")
    assert len(page.dialogs) == 1
    assert page.get_by_text("Nothing left for you to rate").is_visible()
    assert Assignment.objects.filter(worker=worker, status=Assignment.Status.RELEASED).count() == 2

    # Change the last answer while its lease lasts.
    with page.expect_navigation():
        page.get_by_role("link", name="Change my last answer").click()
    assert page.locator("h1").first.inner_text() == "Change your last answer"
    assert page.locator("#id_comment").input_value() == "The statement <b>repeats</b> itself."
    assert no_horizontal_scroll(page)
    focus_document(page)
    page.keyboard.press("a")
    page.locator("label.check").click()  # not broken after all
    with page.expect_navigation():
        page.keyboard.press("Enter")
    stored = Response.objects.get(pk=stored.pk)
    assert (stored.answer, stored.label_correct, stored.flagged_broken) == (" No", False, False)
    assert stored.edited_at is not None
    assert page.get_by_text("Your last answer was changed.").is_visible()

    # The dataset's page (with its labels) sends the worker back to the work page.
    page.goto(f"{live_server.url}{dataset.get_absolute_url()}")
    assert page.url == f"{live_server.url}/annotate/"
    assert page.get_by_text("Nothing left for you to rate").is_visible()
