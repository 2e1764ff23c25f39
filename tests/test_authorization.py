"""The authorization matrix: every URL pattern of the site x its methods x {anonymous, worker, another
worker, researcher, admin} (and the workers' API tokens on the API), each cell the status code that
role must get. The table is tests/authz_table.py; a new URL pattern without a row fails
test_every_url_pattern_has_a_row.

The objects are made once for the module inside a transaction that is rolled back at its end, and
each cell runs in a nested transaction of its own that is rolled back too, so a cell that submits,
excludes or creates something leaves the next cell the same world. Jobs queued by a cell never run:
Celery is only handed a job when its transaction commits."""

from __future__ import annotations

from urllib.parse import urlsplit

import pytest
from django.conf import settings
from django.core.cache import cache
from django.db import transaction
from django.test import Client
from django.test.utils import override_settings
from django.urls import resolve, reverse

from analysis.explorer import selectors as explorer_selectors
from annotation.hotpath import token_cache
from tests import authz_table as table
from tests.analysis.explorer.fakes import CountingEmbedder

# Every cell runs in a transaction of its own, rolled back, nested in the module's (see `world`).
pytestmark = pytest.mark.django_db


def _cells():
    for row in table.ROWS:
        for method, expected in row.cells.items():
            assert set(expected) == set(table.roles_of(row)), f"{row.key} {method}: roles {sorted(expected)}"
            for role in table.roles_of(row):
                expect = expected[role]
                marks = [pytest.mark.xfail(strict=True, reason=expect.bug)] if expect.bug else []
                yield pytest.param(row.key, method, role, id=f"{row.key}-{method}-{role}", marks=marks)


CELLS = list(_cells())


def _clear_caches() -> None:
    # The API throttle counts in the cache, tokens are remembered per process, explorer data per
    # build id: nothing one cell (or another module, whose ids may coincide) read may leak.
    cache.clear()
    token_cache.clear()
    explorer_selectors.explorer_caches_clear()


@pytest.fixture(scope="module")
def world(django_db_setup, django_db_blocker, tmp_path_factory):
    patch = pytest.MonkeyPatch()
    # Semantic search embeds the query: the stand-in that embedded the map, not MiniLM.
    patch.setattr(explorer_selectors, "query_embedder", CountingEmbedder)
    overrides = override_settings(
        # Fewer bootstrap resamples: the analysis pages' figures are not what this test checks.
        ANALYSIS_BOOTSTRAP_REPLICATES=20,
        # One folder for the module's uploads (see isolated_var_dir below).
        VAR_DIR=tmp_path_factory.mktemp("var"),
    )
    overrides.enable()
    _clear_caches()
    with django_db_blocker.unblock():
        outer = transaction.atomic()
        outer.__enter__()
        try:
            world = table.world_build()
            world.sessions = {}
            for role, user in world.users.items():
                client = Client()
                client.force_login(user)
                world.sessions[role] = client.cookies[settings.SESSION_COOKIE_NAME].value
        except BaseException:
            transaction.set_rollback(True)
            outer.__exit__(None, None, None)
            raise
    yield world
    with django_db_blocker.unblock():
        transaction.set_rollback(True)
        outer.__exit__(None, None, None)
    _clear_caches()
    overrides.disable()
    patch.undo()


@pytest.fixture(autouse=True)
def isolated_var_dir(world):
    """Overrides tests/conftest.py's folder per test: two thousand cells would make two thousand
    folders, and the only files written here are uploads queued for jobs that never run."""
    return settings.VAR_DIR


@pytest.fixture
def cell(world):
    """The world, fresh: pytest-django runs each cell in a nested transaction that it rolls back."""
    _clear_caches()
    return world


def _client(world, role: str) -> Client:
    # A crash is a 500 in the matrix, not an exception out of the test.
    client = Client(raise_request_exception=False)
    if role in world.sessions:
        client.cookies[settings.SESSION_COOKIE_NAME] = world.sessions[role]
    elif role in world.tokens:
        client.defaults["HTTP_AUTHORIZATION"] = f"Token {world.tokens[role]}"
    return client


@pytest.mark.parametrize(("key", "method", "role"), CELLS)
def test_cell(cell, key, method, role):
    row = table.ROWS_BY_KEY[key]
    expect = row.cells[method][role]
    url = row.url(cell)
    match = resolve(urlsplit(url).path)
    # The URL built for the row reaches the row's own pattern.
    assert table.pattern_key(match.view_name, match.kwargs) == key, (url, match.view_name)

    body = row.body(method, cell)
    response = getattr(_client(cell, role), method.lower())(url, **table.encode(body))

    detail = f"{method} {url} as {role}: {response.status_code}"
    if response.status_code in (301, 302, 303):
        detail += f" to {response['Location']}"
    elif not response.streaming:
        detail += f": {response.content[:300]!r}"
    assert response.status_code == expect.status, detail
    if expect.location is not None:
        location = response["Location"]
        wanted = reverse(settings.LOGIN_URL) if expect.location == "login" else expect.location(cell)
        assert location.startswith(wanted), f"{detail}; expected a redirect to {wanted}"
    if row.effect is not None and method != "GET":
        done = row.effect(cell)
        assert done == table.succeeds(expect), (
            f"{detail}; the action {'was' if done else 'was not'} carried out"
        )


def test_every_url_pattern_has_a_row():
    """Every pattern of the site has a row and every row a pattern; the Django admin's patterns are
    covered by the generated rows, which must name every registered model."""
    patterns = table.url_patterns()
    site = {key for key in patterns if not key.startswith("admin:")}
    rows = {row.key for row in table.ROWS}
    missing = sorted(f"{key} ({patterns[key]})" for key in site - rows)
    assert not missing, f"URL patterns without a row in tests/authz_table.py: {missing}"
    stale = sorted(rows - set(patterns))
    assert not stale, f"rows whose URL pattern no longer exists: {stale}"
    unlisted = sorted(table.admin_registered() - set(table.ADMIN_MODELS))
    assert not unlisted, f"models registered in the admin without an ADMIN_MODELS entry: {unlisted}"
    unregistered = sorted(set(table.ADMIN_MODELS) - table.admin_registered())
    assert not unregistered, f"ADMIN_MODELS entries no longer registered in the admin: {unregistered}"


def test_public_run_pages_do_not_name_the_staff_who_started_them(cell):
    """The public API leaves created_by out ("who ran what is for the admin"); so must the pages."""
    urls = [cell.run_a.get_absolute_url(), cell.generation_run.get_absolute_url()]
    # Workers never reach these pages (annotation/middleware.py): the public is anonymous.
    for role in ("anonymous",):
        for url in urls:
            response = _client(cell, role).get(url)
            assert response.status_code == 200
            assert cell.researcher.username not in response.content.decode(), f"{url} as {role}"
