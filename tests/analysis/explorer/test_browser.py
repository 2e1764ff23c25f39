"""End to end in a real browser: the explorer page draws a map built by the real pipeline (UMAP,
HDBSCAN, payload) with the stand-in embedder; every point is drawn (read back from the screenshot,
where `mweExplorer.pixelOf` says it is) under the site's Content Security Policy, hovering shows
each point's own text and label confidence, untrusted text as text, clicking opens the point's panel, filters and both searches
change what is shown, and the URL keeps the view.

Headless Chromium from the system (`/usr/bin/chromium`), driven by Playwright's sync API against
pytest-django's `live_server`, as in tests/annotation/test_e2e_browser.py. Deselect with
`-m "not browser"`."""

import re

import pytest
from django.utils import timezone

from analysis.explorer import selectors as explorer_selectors
from analysis.explorer.builds import explorer_maps_build
from annotation.models import AnnotationProject
from annotation.services.projects import project_create
from tests.analysis.builders import submit_all
from tests.analysis.explorer.builders import topic_dataset
from tests.analysis.explorer.fakes import CountingEmbedder, ScriptedSummaryModel
from tests.browser import browser_page
from tests.builders import WorkerFactory
from tests.pixels import drawn_at, screenshot

PAYLOADS = (
    "<b>bold</b>",
    '<a href="javascript:window.__xss = 3">link</a>',
    '<img src=x onerror="window.__xss = 2">',
    "<script>window.__xss = 1;</script>",
)

# Waits are selectors, not page.wait_for_function: that evaluates a string in the page, which the
# site's Content Security Policy (no 'unsafe-eval') rightly refuses.
pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def page(browser):
    page = browser_page(browser, timeout_ms=20_000, viewport={"width": 1300, "height": 900})
    yield page
    page.context.close()
    # plotly.js and the explorer's own script work under the Content Security Policy the site serves.
    assert page.csp_violations == []


@pytest.fixture
def explorer_map(monkeypatch):
    explorer_selectors.explorer_caches_clear()
    embedder = CountingEmbedder()
    monkeypatch.setattr(explorer_selectors, "query_embedder", lambda: embedder)
    dataset = topic_dataset("four-topics", per_topic=15)
    first = dataset.examples.order_by("position").first()
    first.statement = "I want power " + " ".join(PAYLOADS)
    first.save()
    explorer_maps_build(
        embedder=embedder,
        datasets=[dataset.slug],
        include_global=False,
        summary_model=ScriptedSummaryModel("Summary " + " ".join(PAYLOADS) + "."),
    )
    yield dataset
    explorer_selectors.explorer_caches_clear()


def open_map(page, url):
    page.goto(url)
    page.wait_for_selector("#explorer[data-state=ready], #explorer[data-state=error]")
    assert page.get_attribute("#explorer", "data-state") == "ready", page.inner_text("#explorer-message")


def shown(page) -> int:
    return int(page.get_attribute("#point-count", "data-count"))


def highlighted(page) -> int:
    return int(page.get_attribute("#match-count", "data-count"))


def hover(page, index: int) -> None:
    point = page.evaluate(f"window.mweExplorer.pixelOf({index})")
    page.mouse.move(point["x"] + 1, point["y"] + 1)
    page.mouse.move(point["x"], point["y"])
    page.wait_for_selector(f"#explorer-tooltip[data-index='{index}']")


def assert_every_point_is_drawn(page, count: int) -> None:
    """Each point's pixel differs from the white background, and places far from every point do
    not: the screenshot shows the points themselves, not a blank canvas or plotly's "WebGL is not
    supported" notice (which is what every visitor saw when the policy refused plotly's eval)."""
    assert page.locator("#explorer-map .no-webgl").count() == 0
    assert page.locator("#explorer-map canvas").count() >= 1
    # The whole map on the screen (it is 78% of the viewport's height), and only the canvas read:
    # the cluster labels drawn over it are hidden for the screenshot.
    page.evaluate("document.getElementById('explorer-map').scrollIntoView({block: 'start'})")
    page.mouse.move(1, 1)
    page.evaluate("document.getElementById('explorer-cluster-labels').style.visibility = 'hidden'")
    image = screenshot(page)
    page.evaluate("document.getElementById('explorer-cluster-labels').style.visibility = ''")
    points = [page.evaluate(f"window.mweExplorer.pixelOf({i})") for i in range(count)]
    missing = [i for i, p in enumerate(points) if not drawn_at(image, p["x"], p["y"])]
    assert missing == [], f"{len(missing)} of {count} points not drawn, e.g. {missing[:5]}"

    box = page.locator("#explorer-map").bounding_box()
    far = [
        (x, y)
        for x in range(int(box["x"]) + 20, int(box["x"] + box["width"]) - 20, 25)
        for y in range(int(box["y"]) + 20, int(box["y"] + box["height"]) - 20, 25)
        if all((x - p["x"]) ** 2 + (y - p["y"]) ** 2 > 20**2 for p in points)
    ]
    assert len(far) > 20
    assert not any(drawn_at(image, x, y, radius=0) for x, y in far)


def assert_nothing_injected(page, selector: str) -> None:
    assert (
        page.locator(
            f"{selector} b, {selector} a[href^=javascript], {selector} img, {selector} script"
        ).count()
        == 0
    )
    assert page.evaluate("window.__xss") is None


def test_the_map_draws_every_example_and_shows_untrusted_text_as_text(live_server, page, explorer_map):
    dataset = explorer_map
    examples = list(dataset.examples.order_by("position"))
    open_map(page, f"{live_server.url}/explore/?dataset={dataset.slug}")

    # One point per example, in one trace, and every one of them drawn on the screen.
    assert shown(page) == len(examples) == 60
    assert page.evaluate("window.mweExplorer.traceLength()") == 60
    assert page.evaluate("document.getElementById('explorer-map').data.length") == 1
    assert page.evaluate("document.getElementById('explorer-map').data[0].type") == "scattergl"
    assert_every_point_is_drawn(page, 60)

    # Hover: the statement with its markup, shown as text.
    hover(page, 0)
    assert page.inner_text("#tip-text") == examples[0].statement
    assert "label No" in page.inner_text("#tip-meta") and "confidence 0.50" in page.inner_text("#tip-meta")
    assert_nothing_injected(page, "#explorer-tooltip")
    assert page.evaluate("window.mweExplorer.stats.hoverMs.length") > 0

    # Other points show their own text, label and confidence.
    for index in (7, 31, 59):
        hover(page, index)
        example = examples[index]
        assert page.inner_text("#tip-text") == example.statement
        meta = page.inner_text("#tip-meta")
        assert f"label {example.answer_matching_behavior.strip()}" in meta
        assert f"confidence {example.label_confidence:.2f}" in meta

    # Cluster labels and the legend are text too (the summary is a title attribute, not markup).
    labels = page.locator("#explorer-cluster-labels .cluster-label")
    assert labels.count() >= 1
    assert labels.first.get_attribute("title").startswith("Summary <b>bold</b>")
    assert_nothing_injected(page, "#explorer-cluster-labels")

    # Click: the panel with the full text, links, the model-written summary and the neighbours.
    point = page.evaluate("window.mweExplorer.pixelOf(0)")
    page.mouse.click(point["x"], point["y"])
    page.wait_for_selector("#point-body ol.neighbours li")
    assert page.locator("#point-body blockquote").inner_text() == examples[0].statement
    assert page.locator("#point-body ol.neighbours li").count() == 10
    assert page.locator(f"#point-body a[href='{examples[0].get_absolute_url()}']").count() == 1
    assert page.locator(f"#point-body a[href='{dataset.get_absolute_url()}']").count() == 1
    assert "Summary <b>bold</b>" in page.inner_text("#point-body")
    assert_nothing_injected(page, "#point-panel")
    assert "point=0" in page.url
    assert page.js_errors == []


def test_filters_and_searches_change_what_is_shown(live_server, page, explorer_map, settings):
    dataset = explorer_map
    examples = list(dataset.examples.order_by("position"))
    open_map(page, f"{live_server.url}/explore/?dataset={dataset.slug}")

    # Label filter (a compact dropdown): only the examples whose matching answer is " No".
    page.click("#label-toggle")
    page.locator("#label-filter input[value='Yes']").uncheck()
    page.wait_for_selector("#point-count:not([data-count='60'])")
    no_count = sum(e.answer_matching_behavior == " No" for e in examples)
    assert shown(page) == no_count == page.evaluate("window.mweExplorer.traceLength()")

    # Confidence range, on top of the label filter.
    page.fill("#conf-min", "0.8")
    expected = sum(e.answer_matching_behavior == " No" and e.label_confidence >= 0.8 for e in examples)
    page.wait_for_selector(f"#point-count[data-count='{expected}']")
    assert 0 < expected < no_count

    # Text search highlights the visible texts containing the words.
    page.fill("#text-search", "cats")
    expected_cats = sum(
        "cats" in e.statement.lower() and e.answer_matching_behavior == " No" and e.label_confidence >= 0.8
        for e in examples
    )
    page.wait_for_selector("#match-count:not([data-count='0'])")
    assert highlighted(page) == expected_cats > 0
    assert shown(page) == expected  # search highlights, it does not hide

    # The view lives in the URL: reloading it shows the same points.
    url = page.url
    assert "labels=No" in url and "cmin=0.8" in url and "q=cats" in url
    open_map(page, url)
    assert shown(page) == expected and highlighted(page) == expected_cats
    assert page.input_value("#text-search") == "cats" and page.input_value("#conf-min") == "0.8"

    # Semantic search: the 10 nearest texts by meaning, found by the server with the same embedder.
    open_map(page, f"{live_server.url}/explore/?dataset={dataset.slug}")
    page.fill("#semantic-search", "walking in the rain")
    page.select_option("#semantic-k", "10")
    page.click("#semantic-go")
    page.wait_for_selector("#match-count[data-count='10']")
    assert shown(page) == 60
    matched = page.evaluate(
        "Array.from({length: 60}, (_, i) => i).filter(i => window.mweExplorer.isMatched(i))"
    )
    assert len(matched) == 10 and all("rain" in examples[i].statement for i in matched)
    assert "sem=walking+in+the+rain" in page.url and "k=10" in page.url

    # Colour by label confidence: the legend changes to the continuous scale.
    page.select_option("#color-by", "confidence")
    page.wait_for_selector("#legend .legend-caption:text-is('Label confidence')")
    assert "color=confidence" in page.url

    # Past the rate limit, the visitor is told to wait, not shown "HTTP 429".
    settings.MWE_THROTTLE_RATES = {**settings.MWE_THROTTLE_RATES, "semantic_search": "1/hour"}
    page.fill("#semantic-search", "cats and dogs")
    page.click("#semantic-go")
    page.wait_for_url(re.compile(r"sem=cats\+and\+dogs"))  # the one search this hour
    page.fill("#semantic-search", "dogs and cats")
    page.click("#semantic-go")
    page.wait_for_selector("#explorer-message:has-text('too many requests')")
    assert "try again in" in page.inner_text("#explorer-message")
    assert page.js_errors == []


def test_the_panel_shows_the_answers_workers_chose_as_text(live_server, page, explorer_map):
    """A point's human ratings say which answers the workers chose ("2 of 3 chose Yes"); a
    model-written option with markup is shown as text."""
    dataset = explorer_map
    first = dataset.examples.order_by("position").first()
    option = " " + PAYLOADS[2]
    first.answer_not_matching_behavior = [
        " Yes" if first.answer_matching_behavior == " No" else " No",
        option,
    ]
    first.save()
    project = project_create(name="Published", slug="published", datasets=[dataset], overlap=3)
    project.items.exclude(example=first).delete()
    picks = iter([first.answer_matching_behavior, first.answer_matching_behavior, option])
    submit_all(
        project, [WorkerFactory(projects=[project]) for _ in range(3)], lambda w, e: (next(picks), 4, False)
    )
    AnnotationProject.objects.filter(pk=project.pk).update(published_at=timezone.now())

    open_map(page, f"{live_server.url}/explore/?dataset={dataset.slug}")
    point = page.evaluate("window.mweExplorer.pixelOf(0)")
    page.mouse.click(point["x"], point["y"])
    page.wait_for_selector("#point-body ol.neighbours li")
    text = page.inner_text("#point-body")
    label = first.answer_matching_behavior.strip()
    assert (
        f"3 ratings: 2 of 3 chose {label}, 1 of 3 chose {option.strip()}; 67% chose the label's answer"
        in text
    )
    assert_nothing_injected(page, "#point-panel")
    assert page.js_errors == []
