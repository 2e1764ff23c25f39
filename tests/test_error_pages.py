"""The pages a visitor meets when something is missing or broken are the site's own: a 404 and a 500
in its look, with a way back; the favicon; the API docs (Swagger UI) lead back to the site."""

import pytest
from django.test import override_settings
from django.urls import include, path

pytestmark = pytest.mark.django_db


def crashing_view(request):
    raise RuntimeError("a bug in a view")


# The site with one view that crashes, for the 500 page (used through ROOT_URLCONF).
urlpatterns = [path("crash/", crashing_view), path("", include("mwe_site.urls"))]


def test_a_missing_page_is_the_sites_404_with_ways_back(client):
    response = client.get("/no-such-page/<b>here</b>/")
    assert response.status_code == 404
    html = response.content.decode()
    assert "<h1>Page not found</h1>" in html
    assert 'class="site-header"' in html and "/static/css/site.css" in html
    assert 'href="/"' in html and 'href="/explore/"' in html
    # The path is shown as text (Django hands it over percent-encoded), never as markup.
    assert "<code>/no-such-page/%3Cb%3Ehere%3C/b%3E/</code>" in html and "<b>here</b>" not in html


def test_a_missing_object_is_the_same_404(client):
    response = client.get("/datasets/no-such-dataset/")
    assert response.status_code == 404
    assert "<h1>Page not found</h1>" in response.content.decode()


@override_settings(ROOT_URLCONF=__name__)
def test_a_crash_is_the_sites_500_without_the_error(client):
    client.raise_request_exception = False
    response = client.get("/crash/")
    assert response.status_code == 500
    html = response.content.decode()
    assert "Something went wrong on our side" in html
    assert 'class="site-header"' in html and "/static/css/site.css" in html and 'href="/"' in html
    assert "a bug in a view" not in html and "RuntimeError" not in html


def test_every_page_has_the_favicon_and_it_is_served(client):
    html = client.get("/").content.decode()
    assert '<link rel="icon" href="/static/favicon.svg" type="image/svg+xml">' in html
    response = client.get("/static/favicon.svg")
    assert response.status_code == 200
    body = b"".join(response.streaming_content) if response.streaming else response.content
    assert body.lstrip().startswith(b"<svg") and b"</svg>" in body


def test_the_api_docs_lead_back_to_the_site(client):
    response = client.get("/api/docs/")
    assert response.status_code == 200
    html = response.content.decode()
    assert '<a href="/">← Back to the site</a>' in html
    assert '<div id="swagger-ui"></div>' in html  # Swagger UI itself is still there
    assert "/static/favicon.svg" in html


@pytest.mark.parametrize("debug, expected", [(None, "False"), ("1", "True")])
def test_make_run_shows_these_pages_unless_debug_is_asked_for(debug, expected):
    """`make run`'s settings (mwe_site.settings.local) leave DEBUG off, so a newcomer meets these pages
    rather than Django's; DEBUG=1 turns Django's debugging pages on."""
    import os
    import subprocess
    import sys

    env = {k: v for k, v in os.environ.items() if k != "DEBUG"}
    env["DJANGO_SETTINGS_MODULE"] = "mwe_site.settings.local"
    if debug is not None:
        env["DEBUG"] = debug
    done = subprocess.run(
        [sys.executable, "-c", "from django.conf import settings; print(settings.DEBUG)"],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    assert done.stdout.strip() == expected
