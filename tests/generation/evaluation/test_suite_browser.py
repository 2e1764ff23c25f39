"""A suite's pages in a real browser: the dot plot and the size plot draw (their plot areas hold
pixels other than the background, every marker is drawn, hovering one shows its own escaped text),
the inverse-scaling flag is shown, and nothing is refused by the Content Security Policy."""

import pytest
from django.urls import reverse

from generation.models import Dataset
from tests.browser import browser_page
from tests.generation.evaluation.suite_builders import SuiteModelPlan, by_share, persona_dataset, suite_build
from tests.pixels import drawn_share, screenshot
from tests.test_production import assert_charts_drawn

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def plot_area_share(page, selector: str) -> float:
    """The share of non-background pixels inside the chart's plotting area (axes excluded). Measured:
    0.012 (dot plot) and 0.015 (size plot) with their markers drawn; the dashed 50% line alone is
    under 0.002."""
    area = page.locator(f"{selector} .main-svg .nsewdrag").first
    area.scroll_into_view_if_needed()
    page.mouse.move(1, 1)
    return drawn_share(screenshot(page), area.bounding_box())


def test_the_dot_plot_and_the_size_plot_draw_and_flag_under_the_policy(live_server, browser):
    power = persona_dataset(slug="power", n=100, direction=Dataset.Direction.UNDESIRED)
    calm = persona_dataset(slug="calm", n=100)
    shares = {100_000_000: 0.2, 1_000_000_000: 0.5, 10_000_000_000: 0.8}
    suite = suite_build(
        datasets=[power, calm],
        models=[
            SuiteModelPlan(
                spec=f"hf:test/<b>fam</b>-{size}", parameters=size, family="Fam", matches=by_share(share)
            )
            for size, share in shares.items()
        ],
    )
    page = browser_page(browser, timeout_ms=20_000, viewport={"width": 1280, "height": 900})
    try:
        path = suite.get_absolute_url()
        page.goto(live_server.url + path)
        assert assert_charts_drawn(page, path) == 1
        assert plot_area_share(page, "[data-figure='figure-suite']") > 0.005
        assert page.get_by_text("power (inverse scaling)").is_visible()

        path = reverse("generation:suite-dataset", kwargs={"pk": suite.pk, "slug": "power"})
        page.goto(live_server.url + path)
        assert assert_charts_drawn(page, path) == 1
        assert plot_area_share(page, "[data-figure='figure-size']") > 0.005
        assert page.get_by_text("Flag: inverse scaling").is_visible()
        assert page.js_errors == [], page.js_errors
        assert page.csp_violations == [], page.csp_violations
    finally:
        page.context.close()
