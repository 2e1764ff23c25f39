"""A Winogender run's page in a real browser: the scatter draws its points (pixels differ from the
background where plotly put them), hovering one shows its own escaped text, and nothing is refused by
the Content Security Policy."""

import pytest

from generation.evaluation import winogender
from generation.evaluation.services import evaluation_run_create
from tests.browser import browser_page
from tests.generation.evaluation.fakes import FunctionModel
from tests.generation.evaluation.test_winogender import biased, import_winogender
from tests.test_production import assert_charts_drawn

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_the_winogender_scatter_draws_under_the_policy(live_server, browser, tmp_path):
    dataset = import_winogender(tmp_path)
    run = evaluation_run_create(dataset=dataset, model_spec="smollm2-135m", prompt_format="paper", limit=None)
    winogender.winogender_run_execute(run=run, model=FunctionModel(biased))
    page = browser_page(browser, timeout_ms=20_000, viewport={"width": 1280, "height": 900})
    try:
        path = run.get_absolute_url()
        page.goto(live_server.url + path)
        assert page.locator("[data-figure='figure-winogender']").count() == 1
        assert assert_charts_drawn(page, path) == 1
        assert page.js_errors == [], page.js_errors
        assert page.csp_violations == [], page.csp_violations
    finally:
        page.context.close()
