"""Buttons that cut something off ask first: a researcher who dismisses the question keeps the
worker's invite link (or the API token); one who confirms revokes it."""

import pytest
from django.conf import settings
from django.test import Client

from annotation.models import ResearcherToken, Worker
from annotation.services.researcher_tokens import researcher_token_create
from tests.annotation.builders import build_project
from tests.browser import browser_page
from tests.builders import StaffFactory, WorkerFactory

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def page(browser):
    page = browser_page(browser, timeout_ms=15_000, viewport={"width": 390, "height": 844})
    yield page
    page.context.close()
    assert page.csp_violations == [] and page.js_errors == []


def _sign_in(page, live_server, user) -> None:
    client = Client()
    client.force_login(user)
    page.context.add_cookies(
        [
            {
                "name": settings.SESSION_COOKIE_NAME,
                "value": client.cookies[settings.SESSION_COOKIE_NAME].value,
                "url": live_server.url,
            }
        ]
    )


def _answer_with(page, accept: bool, questions: list[str]) -> None:
    def answer(dialog):
        questions.append(dialog.message)
        dialog.accept() if accept else dialog.dismiss()

    page.once("dialog", answer)


def test_revoking_an_invite_link_asks_first(live_server, page):
    project = build_project(items=2)
    worker = WorkerFactory(projects=[project], user=None)
    link = worker.invite_token
    _sign_in(page, live_server, StaffFactory())
    page.goto(f"{live_server.url}{project.get_absolute_url()}")
    revoke = page.locator("button[value=revoke]")

    questions: list[str] = []
    _answer_with(page, False, questions)
    revoke.click()
    page.wait_for_timeout(300)
    assert questions == ["Revoke this worker's invite link? They are signed out and the link stops working."]
    assert Worker.objects.get(pk=worker.pk).invite_token == link

    _answer_with(page, True, questions)
    with page.expect_navigation():
        revoke.click()
    assert len(questions) == 2
    assert Worker.objects.get(pk=worker.pk).invite_token != link


def test_revoking_an_api_token_asks_first(live_server, page):
    staff = StaffFactory()
    token = researcher_token_create(user=staff, name='notebook "<b>"').token
    _sign_in(page, live_server, staff)
    page.goto(f"{live_server.url}/account/tokens/")
    questions: list[str] = []
    _answer_with(page, False, questions)
    page.get_by_role("button", name="Revoke").click()
    page.wait_for_timeout(300)
    # The name is shown as written, not as markup.
    assert questions == ['Revoke the token notebook "<b>"? Scripts that use it stop working at once.']
    assert ResearcherToken.objects.get(pk=token.pk).revoked_at is None

    _answer_with(page, True, questions)
    with page.expect_navigation():
        page.get_by_role("button", name="Revoke").click()
    assert ResearcherToken.objects.get(pk=token.pk).revoked_at is not None
