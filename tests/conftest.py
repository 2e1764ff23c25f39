"""Shared fixtures. Tests that need PostgreSQL are marked `postgres` and skipped on SQLite; `make test`
runs them in a second pass with DATABASE_URL pointing at the server."""

import os
from pathlib import Path

import pytest
from django.conf import settings
from django.db import connection

# browser_page stays importable from here for older tests; new ones import tests.browser.
from tests.browser import CHROMIUM, CHROMIUM_ARGS, browser_page  # noqa: F401

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")


def pytest_collection_modifyitems(config, items):
    on_postgres = settings.DATABASES["default"]["ENGINE"].endswith("postgresql")
    if os.environ.get("MWE_REQUIRE_POSTGRES") == "1" and not on_postgres:
        # `make test-postgres` sets this, so a missing DATABASE_URL fails instead of skipping everything.
        raise pytest.UsageError("MWE_REQUIRE_POSTGRES=1 but DATABASE_URL does not point at PostgreSQL")
    skip_pg = pytest.mark.skip(
        reason="needs PostgreSQL: run with DATABASE_URL=postgres://... (make test does)"
    )
    for item in items:
        if "postgres" in item.keywords and not on_postgres:
            item.add_marker(skip_pg)


@pytest.fixture(scope="session")
def evals_data() -> Path:
    """The released data shipped beside the repository (never copied into it)."""
    path = Path(settings.MWE_EVALS_DATA)
    if not path.is_dir():
        pytest.fail(f"released data not found at {path}; set MWE_EVALS_DATA")
    return path


@pytest.fixture
def on_postgres() -> bool:
    return connection.vendor == "postgresql"


@pytest.fixture(autouse=True)
def isolated_var_dir(settings, tmp_path):
    """Uploads and other files under VAR_DIR go to a per-test folder, never the developer's var/."""
    settings.VAR_DIR = tmp_path / "var"
    settings.VAR_DIR.mkdir()
    return settings.VAR_DIR


@pytest.fixture(autouse=True)
def forget_per_process_caches():
    """The annotation API remembers tokens and projects per process for a few seconds: what one
    test looked up must not answer for another, whose rows may have the same ids."""
    from django.core.cache import cache

    from annotation.hotpath import project_cache, token_cache

    # The shared cache too: throttle counters of one test must not refuse another's requests.
    for clear in (token_cache.clear, project_cache.clear, cache.clear):
        clear()
    yield
    for clear in (token_cache.clear, project_cache.clear, cache.clear):
        clear()


@pytest.fixture(autouse=True)
def keep_torch_threads():
    """A web process's semantic search sets torch to one thread for the whole process (on purpose);
    in the test process that would leave every later model test on one core."""
    import torch

    threads = torch.get_num_threads()
    yield
    if torch.get_num_threads() != threads:
        torch.set_num_threads(threads)


@pytest.fixture(scope="session")
def smollm2():
    """The embedded default model, loaded once per test session (about 15 s)."""
    from generation.lm import load_model

    model = load_model("smollm2-135m")
    yield model
    model.close()


@pytest.fixture(scope="session")
def minilm():
    """The MiniLM sentence embedder, loaded once per test session."""
    from generation.lm.embeddings import load_embedder

    return load_embedder()


# --- Headless Chromium (browser tests) -------------------------------------------------------------
# The system Chromium (`make setup` installs it with apt), driven by Playwright's sync API; never
# `playwright install`. Deselect these tests with `-m "not browser"`.
@pytest.fixture(scope="module")
def allow_orm_beside_playwright():
    # Playwright's sync API runs an event loop in this thread for the whole module; Django refuses
    # ORM calls from a thread with a running loop unless told it is safe (it is: the tests are the
    # only users of this thread). Set for one module at a time, never leaking into other tests
    # (check --deploy flags it), and until after the last test's database teardown.
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
        yield


@pytest.fixture(scope="module")
def browser(allow_orm_beside_playwright):
    import shutil

    sync_api = pytest.importorskip("playwright.sync_api")
    if not (Path(CHROMIUM).is_file() or shutil.which(CHROMIUM)):
        pytest.fail(f"Chromium not found at {CHROMIUM}; `make setup` installs it (or set MWE_CHROMIUM)")
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        yield browser
        browser.close()
