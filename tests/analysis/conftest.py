import pytest

from analysis.explorer import selectors as explorer_selectors


@pytest.fixture(autouse=True)
def fresh_explorer_caches():
    """A process keeps maps' ids and open files per build id, and ids restart with each test
    database: what one test's map left must not answer for another's."""
    explorer_selectors.explorer_caches_clear()
    yield
    explorer_selectors.explorer_caches_clear()
