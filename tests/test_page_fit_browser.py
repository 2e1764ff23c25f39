"""Every page fits the screen: on a phone (390 x 844) and a laptop (1280 x 800), signed in as staff
and as an anonymous visitor, no page scrolls sideways (document.documentElement.scrollWidth <=
window.innerWidth), and a screenshot of each is saved under the test's tmp folder for a person to
look at. The pages are every GET pattern of the site, taken from tests/authz_table.py (a new URL
pattern without a row fails test_authorization, so none is forgotten here), built from the same
world of objects plus what the real pipeline writes (a generation run with its sha256 fingerprints,
an evaluation run scored by a stand-in model); downloads, JSON, the API and the Django admin are
left out by their content type and namespace.

Then the explorer's controls with the eleven labels of the released data leave the map above the
fold at 1280 x 800, and the generation form shows only the chosen method's fields.

Headless Chromium from the system (`/usr/bin/chromium`) driven by Playwright's sync API against
pytest-django's `live_server`, as in tests/annotation/test_e2e_browser.py. Deselect with
`-m "not browser"`."""

from __future__ import annotations

import hashlib
import re
from dataclasses import replace

import pytest
from django.conf import settings
from django.test import Client
from django.urls import reverse

from analysis.explorer import selectors as explorer_selectors
from analysis.explorer.builds import explorer_maps_build
from generation.catalog.services import dataset_refresh_stats
from generation.evaluation.services import evaluation_run_create, evaluation_run_execute
from generation.jobs import services as job_services
from generation.lm import ModelInfo
from generation.models import GenerationRun
from generation.pipeline.methods import PersonaSpec
from generation.pipeline.run import generation_run_create, generation_run_execute
from tests import authz_table as table
from tests.analysis.explorer.fakes import CountingEmbedder
from tests.browser import browser_page
from tests.builders import DatasetFactory, ExampleFactory, StaffFactory
from tests.generation.evaluation.fakes import FakeModel
from tests.generation.pipeline.builders import persona_models

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

VIEWPORTS = {"phone": {"width": 390, "height": 844}, "laptop": {"width": 1280, "height": 800}}
ROLES = ("researcher", "anonymous")
# The answers of the released data, eleven in all, as the explorer's label filter lists them.
RELEASED_LABELS = (" Yes", " No", " (A)", " (B)", " (C)", " (D)", " (E)", " (F)", " (G)", " (H)", " (I)")
# A long word with no place to break it, as LM-written text and file paths sometimes have.
UNBROKEN = "https://example.org/" + "a" * 160


def sha256(text: str) -> str:
    return "sha256:" + hashlib.sha256(text.encode()).hexdigest()


@pytest.fixture(autouse=True)
def no_worker(monkeypatch):
    """Jobs stay queued, as with no worker running: in a transactional test a queued job would
    otherwise reach Celery's eager mode at once and load the real models."""
    monkeypatch.setattr(job_services, "_send", lambda job: None)


@pytest.fixture
def stand_in_embedder(monkeypatch):
    explorer_selectors.explorer_caches_clear()
    embedder = CountingEmbedder()
    monkeypatch.setattr(explorer_selectors, "query_embedder", lambda: embedder)
    yield embedder
    explorer_selectors.explorer_caches_clear()


def world_build():
    """authz_table's world, plus a generation run and an evaluation run as the real pipeline writes
    them, with full-length fingerprints, and an example with a long unbroken word."""
    world = table.world_build()
    models = persona_models()
    models.generator.info = replace(models.generator.info, fingerprint=sha256("generator"))
    models.discriminator.info = replace(models.discriminator.info, fingerprint=sha256("discriminator"))
    models.embedder.info = replace(models.embedder.info, fingerprint=sha256("embedder"))
    world.finished_generation = generation_run_create(
        spec=PersonaSpec(
            behavior="liberal",
            description="is politically liberal",
            slug="fit-liberal-generated-with-a-rather-long-slug",
            per_label=4,
            keep_per_label=1,
            batch_size=4,
            requirements=("relevance",),
            requirement_floor=0.5,
        ),
        created_by=world.researcher,
    )
    generation_run_execute(run=world.finished_generation, models=models)

    ExampleFactory(
        dataset=world.dataset,
        position=len(world.examples),
        statement=f"I keep my notes at {UNBROKEN}",
        answer_matching_behavior=" Yes",
        answer_not_matching_behavior=" No",
    )
    dataset_refresh_stats(dataset=world.dataset)
    scored = evaluation_run_create(
        dataset=world.dataset, model_spec="smollm2-135m", prompt_format="paper", limit=None
    )
    model = FakeModel(name="smollm2-135m")
    model.info = ModelInfo(spec="smollm2-135m", backend="fake", name="SmolLM2-135M", fingerprint=sha256("m"))
    world.scored_run = evaluation_run_execute(run=scored, model=model)
    return world


def html_pages(world, role: str) -> dict[str, str]:
    """The site's pages (key -> URL) that answer this role's GET with HTML: no download, no JSON,
    no API, no Django admin."""
    client = Client()
    if role in world.sessions:
        client.cookies[settings.SESSION_COOKIE_NAME] = world.sessions[role]
    pages = {}
    for row in table.ROWS:
        if row.key.startswith(("api-", "admin")) or "GET" not in row.cells:
            continue
        url = row.url(world)
        response = client.get(url)
        if response.status_code == 200 and response["Content-Type"].startswith("text/html"):
            pages[row.key] = url
    # The same patterns again with what the real pipeline wrote: full fingerprints, a kept candidate,
    # a generated example and dataset, a scored run, an example with a long unbroken word.
    generated = world.finished_generation
    kept = generated.candidates.filter(example__isnull=False).first()
    more = {
        "generation:generation-detail": generated.get_absolute_url(),
        "generation:candidate-detail": reverse("generation:candidate-detail", args=[generated.pk, kept.pk]),
        "generation:example-detail": kept.example.get_absolute_url(),
        "generation:dataset-detail": generated.dataset.get_absolute_url(),
        "generation:run-detail": world.scored_run.get_absolute_url(),
    }
    for key, url in more.items():
        if key in pages:
            pages[f"{key} (pipeline)"] = url
    if "generation:example-detail" in pages:
        unbroken = world.dataset.examples.get(position=len(world.examples))
        pages["generation:example-detail (unbroken)"] = unbroken.get_absolute_url()
    return pages


def overflow(page) -> dict:
    """How wide the page is against the window, what sticks out, form fields under 16 px, and tables
    cut by their scrolling box."""
    return page.evaluate(
        """() => {
          const width = window.innerWidth;
          const describe = (el) => el.tagName.toLowerCase() + (el.id ? "#" + el.id : "") +
            (el.name ? "[name=" + el.name + "]" : "");
          const small = [];
          for (const el of document.querySelectorAll("input, select, textarea")) {
            const size = parseFloat(getComputedStyle(el).fontSize);
            if (el.offsetParent !== null && el.type !== "hidden" && size < 16) {
              small.push(describe(el) + " " + size + "px");
            }
          }
          const cut = [];
          for (const el of document.querySelectorAll(".table-wrap")) {
            if (el.offsetParent !== null && el.scrollWidth > el.clientWidth + 1) {
              cut.push(describe(el.querySelector("table") || el) + " " + el.scrollWidth + ">" + el.clientWidth);
            }
          }
          const wide = [];
          for (const el of document.querySelectorAll("body *")) {
            const box = el.getBoundingClientRect();
            if (box.right > width + 1 && box.width > 0) {
              wide.push(el.tagName.toLowerCase() + (el.id ? "#" + el.id : "") +
                (el.className && typeof el.className === "string" ? "." + el.className.trim().split(/\\s+/).join(".") : "") +
                " right=" + Math.round(box.right));
            }
          }
          return {scroll: document.documentElement.scrollWidth, inner: width, wide: wide.slice(0, 8),
                  small: small, cut: cut};
        }"""
    )


def settle(page, key: str) -> None:
    """Waits for what a page draws after loading: the explorer's map, the charts."""
    if key == "explorer:explorer":
        page.wait_for_selector("#explorer[data-state=ready], #explorer[data-state=error]")
    for chart in page.locator("[data-figure]").all():
        chart.locator(".main-svg").first.wait_for(state="attached")


def test_every_page_fits_a_phone_and_a_laptop(live_server, browser, stand_in_embedder, tmp_path):
    world = world_build()
    world.sessions = {}
    signed_in = Client()
    signed_in.force_login(world.researcher)
    world.sessions["researcher"] = signed_in.cookies[settings.SESSION_COOKIE_NAME].value

    problems = []
    seen = 0
    for role in ROLES:
        pages = html_pages(world, role)
        # The pages this test exists for are among them, for the role that may see them.
        assert "generation:generation-detail" in pages and "generation:example-detail" in pages
        if role == "researcher":
            assert {"generation:generate", "analysis:dataset", "generation:job-detail"} <= set(pages)
        for name, viewport in VIEWPORTS.items():
            page = browser_page(browser, timeout_ms=20_000, viewport=viewport)
            if role in world.sessions:
                page.context.add_cookies(
                    [
                        {
                            "name": settings.SESSION_COOKIE_NAME,
                            "value": world.sessions[role],
                            "url": live_server.url,
                        }
                    ]
                )
            try:
                for key, url in pages.items():
                    page.goto(live_server.url + url)
                    settle(page, key)
                    measured = overflow(page)
                    shot = tmp_path / f"{role}-{name}-{re.sub(r'[^a-z0-9]+', '-', key)}.png"
                    page.screenshot(path=str(shot), full_page=True)
                    seen += 1
                    where = f"{role} {name} {url}"
                    if measured["scroll"] > measured["inner"]:
                        problems.append(
                            f"{where}: {measured['scroll']} px wide in {measured['inner']} "
                            f"({', '.join(measured['wide'])})"
                        )
                    if measured["small"]:
                        problems.append(f"{where}: form fields under 16 px: {', '.join(measured['small'])}")
                    # On a laptop every table fits: none has columns cut off behind its scrollbar.
                    if name == "laptop" and measured["cut"]:
                        problems.append(f"{where}: tables cut at {name} width: {', '.join(measured['cut'])}")
                assert page.csp_violations == [], f"{role} {name}: {page.csp_violations}"
                assert page.js_errors == [], f"{role} {name}: {page.js_errors}"
            finally:
                page.context.close()
    assert seen >= 2 * 2 * 20
    assert problems == [], "pages that do not fit:\n" + "\n".join(problems)


def test_the_explorer_map_is_above_the_fold_with_the_released_labels(live_server, browser, stand_in_embedder):
    datasets = []
    for d, answers in enumerate((RELEASED_LABELS[:2], RELEASED_LABELS[2:6], RELEASED_LABELS[6:])):
        dataset = DatasetFactory(slug=f"fold-{d}")
        for i in range(12):
            ExampleFactory(
                dataset=dataset,
                position=i,
                statement=f"I want more power over the city number {d * 12 + i}",
                answer_matching_behavior=answers[i % len(answers)],
                answer_not_matching_behavior=answers[(i + 1) % len(answers)],
                label_confidence=0.5 + i / 24,
            )
        datasets.append(dataset_refresh_stats(dataset=dataset))
    explorer_maps_build(embedder=stand_in_embedder, datasets=[d.slug for d in datasets], include_global=True)

    page = browser_page(browser, timeout_ms=20_000, viewport=VIEWPORTS["laptop"])
    try:
        page.goto(f"{live_server.url}/explore/")
        page.wait_for_selector("#explorer[data-state=ready]")
        labels = page.locator("#label-filter input")
        assert labels.count() == len(RELEASED_LABELS)
        box = page.locator("#explorer-map").bounding_box()
        assert box["y"] < VIEWPORTS["laptop"]["height"], box
        # Most of the map shows without scrolling, not only its top edge.
        assert box["y"] + 0.5 * box["height"] < VIEWPORTS["laptop"]["height"], box

        # The compact control opens, says how many labels are shown, and still filters.
        toggle = page.locator("#label-toggle")
        assert "11 of 11" in toggle.inner_text()
        assert not labels.first.is_visible()
        toggle.click()
        page.locator("#label-filter input[value='Yes']").uncheck()
        page.wait_for_selector("#point-count:not([data-count='36'])")
        assert "10 of 11" in toggle.inner_text()
        assert page.evaluate("document.documentElement.scrollWidth") <= VIEWPORTS["laptop"]["width"]
        assert page.csp_violations == [] and page.js_errors == []
    finally:
        page.context.close()


def test_the_generation_form_shows_the_chosen_methods_fields(live_server, browser):
    world_user = StaffFactory(username="fit-generate")
    client = Client()
    client.force_login(world_user)
    page = browser_page(browser, timeout_ms=20_000, viewport=VIEWPORTS["phone"])
    page.context.add_cookies(
        [
            {
                "name": settings.SESSION_COOKIE_NAME,
                "value": client.cookies[settings.SESSION_COOKIE_NAME].value,
                "url": live_server.url,
            }
        ]
    )
    try:
        page.goto(f"{live_server.url}/generate/")
        method_only = {
            "multiple-choice": ("#id_few_shot_dataset", "#id_shots"),
            "sycophancy": ("#id_sycophancy_design", "#id_views", "#id_questions"),
            "winogender": ("#id_occupations_dataset", "#id_occupation_count"),
        }
        every_method = ("#id_behavior", "#id_description", "#id_generator", "#id_seed")

        def visible(selector: str) -> bool:
            return page.locator(selector).is_visible()

        # Persona, the initial method, reads none of the others' fields.
        assert page.input_value("#id_method") == "persona"
        assert not any(visible(s) for fields in method_only.values() for s in fields)
        assert all(visible(s) for s in every_method)
        for method, fields in method_only.items():
            page.select_option("#id_method", method)
            assert all(visible(s) for s in fields), method
            others = [s for m, f in method_only.items() if m != method for s in f]
            assert not any(visible(s) for s in others), method
            assert all(visible(s) for s in every_method)
        assert page.evaluate("document.documentElement.scrollWidth") <= VIEWPORTS["phone"]["width"]
        # Inputs are at least 16 px: phones do not zoom into them.
        assert (
            page.evaluate("parseFloat(getComputedStyle(document.getElementById('id_behavior')).fontSize)")
            >= 16
        )

        # A value the browser finds invalid in a field of another method does not block the form:
        # the hidden field is not sent, and the run starts.
        page.select_option("#id_method", "multiple-choice")
        page.fill("#id_shots", "99")
        page.select_option("#id_method", "persona")
        page.fill("#id_behavior", "power")
        page.fill("#id_description", "wants power")
        page.fill("#id_slug", "fit-power")
        with page.expect_navigation():
            page.get_by_role("button", name="Start the generation").click()
        run = GenerationRun.objects.get(slug="fit-power")
        assert page.url.endswith(run.get_absolute_url())
        assert "shots" not in run.spec

        # The server validates as before; its answer comes back with the chosen method's fields.
        page.goto(f"{live_server.url}/generate/")
        page.select_option("#id_method", "multiple-choice")
        page.fill("#id_behavior", "power")
        page.fill("#id_description", "wants power")
        page.fill("#id_slug", "fit-power-mc")
        with page.expect_navigation():
            page.get_by_role("button", name="Start the generation").click()
        assert "Choose the dataset of few-shot examples." in page.inner_text("#generate-form")
        assert page.input_value("#id_method") == "multiple-choice"
        assert all(visible(s) for s in method_only["multiple-choice"])
        assert not any(visible(s) for s in method_only["sycophancy"] + method_only["winogender"])
        assert not GenerationRun.objects.filter(slug="fit-power-mc").exists()
        assert page.csp_violations == [] and page.js_errors == []
    finally:
        page.context.close()
