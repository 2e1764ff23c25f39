"""Researchers' API tokens: made on /account/tokens/ and shown there once, stored only as a hash,
revocable, and a credential only of an active staff user (annotation.services.researcher_tokens,
annotation.token_views, annotation.researcher_api.ResearcherTokenAuthentication)."""

import hashlib
from datetime import timedelta

import pytest
from django.core.exceptions import ValidationError
from django.db import connection
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from annotation.models import ResearcherToken
from annotation.services.researcher_tokens import researcher_token_authenticate, researcher_token_create
from tests.builders import StaffFactory, UserFactory

pytestmark = pytest.mark.django_db

TOKENS = reverse("account-tokens")
PROJECTS_API = reverse("api-project-list")


def _browser(user) -> Client:
    client = Client(enforce_csrf_checks=True)
    client.force_login(user)
    return client


def _post(client: Client, url: str, data: dict | None = None):
    """POST as the page's form does, with its CSRF token."""
    token = client.get(TOKENS).context["csrf_token"]
    return client.post(url, {**(data or {}), "csrfmiddlewaretoken": token})


def _api(key: str):
    return Client().get(PROJECTS_API, HTTP_AUTHORIZATION=f"Bearer {key}")


def _key_of(html: str) -> str:
    start = html.index('id="token-key"')
    value = html.index('value="', start) + len('value="')
    return html[value : html.index('"', value)]


def _every_stored_value() -> str:
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT * FROM {ResearcherToken._meta.db_table}")
        return repr(cursor.fetchall())


def test_a_new_token_is_shown_once_and_only_its_hash_is_stored():
    researcher = StaffFactory()
    browser = _browser(researcher)
    response = _post(browser, TOKENS, {"name": "notebook"})
    assert response.status_code == 200
    assert "no-store" in response.headers["Cache-Control"]
    key = _key_of(response.content.decode())
    assert key.startswith("mwe_") and len(key) > 40

    token = ResearcherToken.objects.get(user=researcher)
    assert token.name == "notebook"
    assert token.key_sha256 == hashlib.sha256(key.encode()).hexdigest()
    assert key[:12] == token.prefix
    # Not in any column, whole or past its displayed prefix.
    assert key not in _every_stored_value()
    assert key[12:] not in _every_stored_value()

    # The list shows the name and the prefix, never the key again.
    page = browser.get(TOKENS).content.decode()
    assert "notebook" in page and token.prefix in page
    assert key not in page
    assert _api(key).status_code == 200


def test_a_token_name_is_required_and_nothing_is_made_without_one():
    browser = _browser(StaffFactory())
    response = _post(browser, TOKENS, {"name": "   "})
    assert response.status_code == 400
    assert not ResearcherToken.objects.exists()


def test_a_revoked_token_is_refused_with_401():
    researcher = StaffFactory()
    new = researcher_token_create(user=researcher, name="ci")
    assert _api(new.key).status_code == 200
    browser = _browser(researcher)
    response = _post(browser, reverse("account-token-revoke", args=[new.token.pk]))
    assert response.status_code == 302
    refused = _api(new.key)
    assert refused.status_code == 401
    assert refused.headers["WWW-Authenticate"].startswith("Bearer")
    # Gone from the list; kept, revoked, for the admin.
    assert "ci" not in browser.get(TOKENS).content.decode().split("Your tokens")[1].split("New token")[0]
    assert ResearcherToken.objects.get(pk=new.token.pk).revoked_at is not None


def test_a_researcher_cannot_revoke_anothers_token():
    owner, other = StaffFactory(), StaffFactory()
    new = researcher_token_create(user=owner, name="mine")
    response = _post(_browser(other), reverse("account-token-revoke", args=[new.token.pk]))
    assert response.status_code == 404
    assert _api(new.key).status_code == 200


def test_unknown_and_malformed_tokens_are_refused():
    key = researcher_token_create(user=StaffFactory(), name="x").key
    assert _api(key[:-1] + ("A" if key[-1] != "A" else "B")).status_code == 401
    assert Client().get(PROJECTS_API, HTTP_AUTHORIZATION="Bearer").status_code == 401
    assert Client().get(PROJECTS_API, HTTP_AUTHORIZATION=f"Bearer {key} extra").status_code == 401
    assert Client().get(PROJECTS_API).status_code == 401


def test_only_active_staff_make_tokens_and_only_theirs_work():
    with pytest.raises(ValidationError):
        researcher_token_create(user=UserFactory(), name="not staff")
    researcher = StaffFactory()
    key = researcher_token_create(user=researcher, name="x").key
    # No longer staff: the token is refused, as it is for an inactive account.
    researcher.is_staff = False
    researcher.save()
    assert _api(key).status_code == 401
    researcher.is_staff, researcher.is_active = True, False
    researcher.save()
    assert _api(key).status_code == 401
    researcher.is_active = True
    researcher.save()
    assert _api(key).status_code == 200


def test_the_token_page_is_for_staff_only():
    assert Client().get(TOKENS).status_code == 302
    assert _browser(UserFactory()).get(TOKENS).status_code == 403


def test_last_used_is_written_at_most_once_a_minute(django_assert_num_queries):
    new = researcher_token_create(user=StaffFactory(), name="x")
    assert new.token.last_used_at is None
    start = timezone.now()
    researcher_token_authenticate(key=new.key, now=start)
    assert ResearcherToken.objects.get(pk=new.token.pk).last_used_at == start
    # Within the minute: the look-up alone, no write.
    with django_assert_num_queries(1):
        researcher_token_authenticate(key=new.key, now=start + timedelta(seconds=59))
    assert ResearcherToken.objects.get(pk=new.token.pk).last_used_at == start
    later = start + timedelta(seconds=61)
    researcher_token_authenticate(key=new.key, now=later)
    assert ResearcherToken.objects.get(pk=new.token.pk).last_used_at == later
