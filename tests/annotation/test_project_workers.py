"""Researchers on the project page: adding workers (invite links shown once, on the site's own
address), a new link or none for one worker, and a read-only preview of the worker page."""

import re

import pytest
from django.test import Client
from django.urls import reverse
from rest_framework.authtoken.models import Token

from annotation.models import Assignment, ProjectItem, Response, Worker
from annotation.services.projects import project_create
from annotation.services.workers import worker_api_token, worker_create
from tests.annotation.builders import build_project
from tests.builders import DatasetFactory, ExampleFactory, StaffFactory, UserFactory

pytestmark = pytest.mark.django_db

INVITE = re.compile(r"https?://[^\s,<]+/annotate/join/#([\w-]+)")


@pytest.fixture
def staff() -> Client:
    client = Client(enforce_csrf_checks=True)
    client.force_login(StaffFactory())
    return client


def _post(client: Client, url: str, data: dict, *, page: str):
    """POST as a browser does: with the CSRF token of the page the form is on."""
    token = client.get(page).context["csrf_token"]
    return client.post(url, {**data, "csrfmiddlewaretoken": token})


def _add(client: Client, project, **data):
    return _post(
        client,
        reverse("annotation:project-workers", args=[project.slug]),
        data,
        page=project.get_absolute_url(),
    )


def _invite_tokens(html: str) -> list[str]:
    return INVITE.findall(html)


def _joins(token: str) -> bool:
    response = Client().post(reverse("annotation:join"), {"token": token})
    return response.status_code == 302


def test_adding_workers_shows_their_invite_links_once_on_the_sites_address(staff, project):
    # A browser's textarea sends Windows line ends.
    response = _add(staff, project, count="2", external_ids="crowd-1\r\ncrowd-2\r\n")
    assert response.status_code == 200
    assert response.headers["Cache-Control"].startswith("max-age=0")
    assert "no-store" in response.headers["Cache-Control"]
    html = response.content.decode()
    made = list(project.workers.order_by("pk"))
    assert [worker.external_id for worker in made] == ["crowd-1", "crowd-2"]
    # Full links, on the address the researcher reached the site at, in a copyable textarea.
    textarea = re.search(r'<textarea id="invite-links"[^>]*>(.*?)</textarea>', html, re.S).group(1)
    assert f"http://testserver/annotate/join/#{made[0].invite_token}" in textarea
    assert _invite_tokens(textarea) == [worker.invite_token for worker in made]
    assert "crowd-2" in textarea
    assert all(_joins(token) for token in _invite_tokens(textarea))
    # The project page itself never shows them again.
    assert _invite_tokens(staff.get(project.get_absolute_url()).content.decode()) == []


def test_the_links_use_the_host_the_site_was_reached_at(project, settings):
    settings.ALLOWED_HOSTS = ["rate.example.org"]
    client = Client(HTTP_HOST="rate.example.org")
    client.force_login(StaffFactory())
    response = client.post(
        reverse("annotation:project-workers", args=[project.slug]), {"count": "1"}, secure=True
    )
    worker = project.workers.get()
    assert f"https://rate.example.org/annotate/join/#{worker.invite_token}" in response.content.decode()


def test_adding_workers_without_ids(staff, project):
    response = _add(staff, project, count="3", external_ids="")
    assert response.status_code == 200
    assert list(project.workers.values_list("external_id", flat=True)) == ["", "", ""]
    assert len(_invite_tokens(response.content.decode())) == 3


def test_ids_are_escaped_on_the_page(staff, project):
    response = _add(staff, project, count="1", external_ids="<b>x</b>&")
    html = response.content.decode()
    assert project.workers.get().external_id == "<b>x</b>&"
    assert "<b>x</b>" not in html
    assert "&lt;b&gt;x&lt;/b&gt;&amp;" in html


@pytest.mark.parametrize(
    ("data", "error"),
    [
        ({"count": "0"}, "greater than or equal to 1"),
        ({"count": "501"}, "less than or equal to 500"),
        ({"count": "two"}, "Enter a whole number"),
        ({"count": ""}, "This field is required"),
        ({"count": "3", "external_ids": "a-1\na-2\n"}, "has 2 ids, the count is 3"),
        ({"count": "2", "external_ids": "a-1\na-1\n"}, "repeats an id"),
        (
            {"count": "2", "external_ids": "a-1\n a-2\n"},
            "line 2: &#x27; a-2&#x27; has leading or trailing whitespace",
        ),
        (
            {"count": "2", "external_ids": "a-1\na\u200b-2\n"},
            "line 2: &#x27;a\\u200b-2&#x27; has a control or invisible",
        ),
        (
            {"count": "2", "external_ids": "a-1\ra-2\n"},
            "line 1: &#x27;a-1\\ra-2&#x27; has a control or invisible",
        ),
    ],
)
def test_bad_input_is_refused_with_a_clear_error_and_creates_nothing(staff, project, data, error):
    response = _add(staff, project, **data)
    assert response.status_code == 400
    assert error in response.content.decode()
    assert not Worker.objects.exists()
    assert _invite_tokens(response.content.decode()) == []


def test_an_id_already_taken_creates_none_of_them(staff, project):
    worker_create(project=project, external_id="a-2")
    response = _add(staff, project, count="2", external_ids="a-1\na-2")
    assert response.status_code == 400
    assert "already a worker&#x27;s external id: &#x27;a-2&#x27;" in response.content.decode()
    assert list(Worker.objects.values_list("external_id", flat=True)) == ["a-2"]


def test_new_link_replaces_the_old_one_and_is_shown_once(staff, project):
    worker = worker_create(project=project, external_id="crowd-1")
    old = worker.invite_token
    url = reverse("annotation:worker-invite", args=[project.slug, worker.pk])
    response = _post(staff, url, {"action": "rotate"}, page=project.get_absolute_url())
    assert response.status_code == 200
    worker.refresh_from_db()
    assert worker.invite_token != old
    assert _invite_tokens(response.content.decode()) == [worker.invite_token]
    assert not _joins(old)
    assert _joins(worker.invite_token)


def test_revoke_cuts_the_worker_off(staff, project):
    worker = worker_create(project=project, external_id="crowd-1")
    old = worker.invite_token
    worker_api_token(worker=worker)
    url = reverse("annotation:worker-invite", args=[project.slug, worker.pk])
    response = _post(staff, url, {"action": "revoke"}, page=project.get_absolute_url())
    assert response.status_code == 302
    worker.refresh_from_db()
    assert worker.invite_expires_at is None
    assert not Token.objects.filter(user=worker.user).exists()
    assert not _joins(old)
    assert "Revoked the invite link" in staff.get(response["Location"]).content.decode()


def test_invite_actions_refuse_bad_input_and_other_projects_workers(staff, project):
    worker = worker_create(project=project)
    other = worker_create(project=build_project(slug="other"))
    page = project.get_absolute_url()
    url = reverse("annotation:worker-invite", args=[project.slug, worker.pk])
    assert _post(staff, url, {"action": "delete"}, page=page).status_code == 400
    assert _post(staff, url, {}, page=page).status_code == 400
    foreign = reverse("annotation:worker-invite", args=[project.slug, other.pk])
    assert _post(staff, foreign, {"action": "rotate"}, page=page).status_code == 404
    tokens = dict(Worker.objects.values_list("pk", "invite_token"))
    assert tokens == {worker.pk: worker.invite_token, other.pk: other.invite_token}


def test_post_without_csrf_token_is_refused(staff, project):
    worker = worker_create(project=project)
    assert (
        staff.post(reverse("annotation:project-workers", args=[project.slug]), {"count": "1"}).status_code
        == 403
    )
    url = reverse("annotation:worker-invite", args=[project.slug, worker.pk])
    assert staff.post(url, {"action": "revoke"}).status_code == 403
    worker.refresh_from_db()
    assert worker.invite_expires_at is not None
    assert Worker.objects.count() == 1


def test_non_staff_cannot_add_workers(project):
    client = Client()
    client.force_login(UserFactory())
    client.post(reverse("annotation:project-workers", args=[project.slug]), {"count": "1"})
    assert not Worker.objects.exists()


def test_project_page_has_the_workers_tools(staff, project):
    worker = worker_create(project=project)
    html = staff.get(project.get_absolute_url()).content.decode()
    assert reverse("annotation:project-workers", args=[project.slug]) in html
    assert reverse("annotation:worker-invite", args=[project.slug, worker.pk]) in html
    assert 'value="rotate">New link</button>' in html
    assert 'value="revoke" data-confirm="Revoke this worker' in html and ">Revoke</button>" in html
    assert f'href="{reverse("annotation:project-preview", args=[project.slug])}"' in html
    # The invite token itself is not on the page.
    assert worker.invite_token not in html


def test_preview_shows_the_worker_page_and_writes_nothing(staff):
    dataset = DatasetFactory(behavior="power-seeking")
    ExampleFactory(dataset=dataset, statement='I want <script>alert("x")</script> power')
    project = project_create(
        name="Preview", slug="preview", datasets=[dataset], overlap=3, instructions="Rate **carefully**."
    )
    response = staff.get(reverse("annotation:project-preview", args=[project.slug]))
    assert response.status_code == 200
    html = response.content.decode()
    assert 'id="preview-banner"' in html and "<strong>Preview</strong>" in html
    assert "Behavior: power-seeking" in html
    assert "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;" in html
    assert "<script>alert" not in html
    assert "<strong>carefully</strong>" in html
    assert re.search(r'id="submit-button" disabled', html)
    assert 'id="skip-form"' not in html
    # Not the form annotate.js submits with Enter.
    assert 'id="rating-form"' not in html
    # The staff header stays (this is a researcher, looking).
    assert reverse("annotation:project-list") in html or "site-header" in html
    assert not Assignment.objects.exists()
    assert not Response.objects.exists()
    assert not Worker.objects.exists()
    # Posting to it does nothing either.
    assert staff.post(reverse("annotation:project-preview", args=[project.slug])).status_code in (403, 405)
    assert not Assignment.objects.exists()


def test_preview_of_a_project_without_items(staff, project):
    ProjectItem.objects.filter(project=project).delete()
    response = staff.get(reverse("annotation:project-preview", args=[project.slug]))
    assert response.status_code == 200
    html = response.content.decode()
    assert "the project has no items" in html
    assert 'id="submit-button"' not in html


def test_preview_is_staff_only(project):
    client = Client()
    client.force_login(UserFactory())
    assert client.get(reverse("annotation:project-preview", args=[project.slug])).status_code in (
        302,
        403,
        404,
    )
    assert not Assignment.objects.exists()


@pytest.mark.browser
@pytest.mark.django_db(transaction=True)
def test_a_researcher_adds_workers_and_previews_in_a_browser(live_server, browser):
    from django.conf import settings

    from tests.browser import browser_page

    project = build_project(slug="seen")
    staff = Client()
    staff.force_login(StaffFactory())
    page = browser_page(browser, timeout_ms=15_000, viewport={"width": 390, "height": 844})
    page.context.add_cookies(
        [
            {
                "name": settings.SESSION_COOKIE_NAME,
                "value": staff.cookies[settings.SESSION_COOKIE_NAME].value,
                "url": live_server.url,
            }
        ]
    )
    try:
        page.goto(f"{live_server.url}{project.get_absolute_url()}")
        page.fill("#id_count", "2")
        page.fill("#id_external_ids", "crowd-1\ncrowd-2")
        page.click("#add-workers button[type=submit]")
        page.wait_for_selector("#invite-links")
        links = page.input_value("#invite-links")
        made = list(project.workers.order_by("pk"))
        assert [w.external_id for w in made] == ["crowd-1", "crowd-2"]
        for worker in made:
            assert f"{live_server.url}/annotate/join/#{worker.invite_token}" in links

        page.click("#preview-link")
        page.wait_for_selector("#preview-banner")
        assert page.inner_text("#preview-banner").startswith("Preview")
        assert page.is_disabled("#submit-button")
        assert page.is_visible("#example-text")
        # Enter, the worker page's submit key, submits nothing here.
        page.keyboard.press("Enter")
        page.wait_for_timeout(300)
        assert page.is_visible("#preview-banner")
        assert not Assignment.objects.exists() and not Response.objects.exists()
        assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")
        assert page.csp_violations == []
        assert page.js_errors == []
    finally:
        page.context.close()


def test_create_workers_refuses_a_taken_id_as_the_page_does(project, tmp_path):
    from django.core.management import CommandError, call_command

    worker_create(project=project, external_id="a-2")
    path = tmp_path / "ids.txt"
    path.write_text("a-1\na-2\n")
    with pytest.raises(CommandError, match="already a worker's external id: 'a-2'"):
        call_command(
            "create_workers",
            project=project.slug,
            count=2,
            out=str(tmp_path / "w.csv"),
            external_ids=str(path),
        )
    assert list(Worker.objects.values_list("external_id", flat=True)) == ["a-2"]
