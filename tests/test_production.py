"""The production stack's own parts: `check --deploy`, the health endpoint, the Content Security Policy
(served, and obeyed by every page with scripts in a real browser), JSON logs, and `make run-prod`'s
launcher running deploy/Procfile against PostgreSQL and Redis."""

import html
import json
import os
import re
import secrets
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from django.conf import settings
from django.urls import reverse

from generation.catalog.services import dataset_refresh_stats
from mwe_site.celery import app
from mwe_site.run import procfile_read
from tests.analysis.builders import rated_project
from tests.browser import browser_page
from tests.builders import DatasetFactory, EvaluationItemFactory, EvaluationRunFactory, StaffFactory
from tests.pixels import drawn_at, screenshot
from tests.processes import child_commands, free_port, interrupt_and_wait, production_env, wait_for

PRODUCTION_ENV = {
    "DJANGO_SETTINGS_MODULE": "mwe_site.settings.production",
    "SECRET_KEY": secrets.token_urlsafe(50),
    "DATABASE_URL": "postgres://postgres@127.0.0.1:5432/unused",
    "CELERY_BROKER_URL": "redis://127.0.0.1:6379/13",
    "ALLOWED_HOSTS": "evals.example.org",
}


def production_base_env() -> dict[str, str]:
    """This process's environment without what the production settings read or check: the test
    settings' services, and the browser tests' DJANGO_ALLOW_ASYNC_UNSAFE."""
    dropped = ("DATABASE_", "CELERY_", "MWE_", "DJANGO_ALLOW_ASYNC_UNSAFE")
    return {k: v for k, v in os.environ.items() if not k.startswith(dropped)}


def manage(args: list[str], **env: str) -> subprocess.CompletedProcess:
    base = production_base_env()
    return subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=settings.BASE_DIR,
        env={**base, **PRODUCTION_ENV, **env},
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_production_settings_pass_check_deploy():
    result = manage(["check", "--deploy", "--fail-level", "WARNING"])
    assert result.returncode == 0, result.stdout + result.stderr
    assert "no issues" in result.stdout


def test_a_plain_http_trial_is_what_check_deploy_warns_about():
    """MWE_HTTPS=0 (make run-prod) turns off the redirect, secure cookies and HSTS, and says so."""
    result = manage(["check", "--deploy", "--fail-level", "WARNING"], MWE_HTTPS="0")
    assert result.returncode != 0
    for check in ("security.W004", "security.W008", "security.W012", "security.W016"):
        assert check in result.stderr, result.stderr


def test_production_refuses_to_start_without_its_services():
    result = manage(["check"], CELERY_BROKER_URL="")
    assert result.returncode != 0 and "CELERY_BROKER_URL" in result.stderr


# --- /health/ ---------------------------------------------------------------------------------------


@pytest.mark.django_db
def test_health_reports_database_and_broker(client, monkeypatch):
    monkeypatch.setitem(app.conf, "broker_url", "memory://")
    response = client.get("/health/")
    assert response.status_code == 200
    assert response.json() == {"status": "ok", "database": "ok", "broker": "ok"}
    assert "no-cache" in response["Cache-Control"]


@pytest.mark.django_db
def test_health_is_503_when_the_broker_is_down(client, monkeypatch):
    monkeypatch.setitem(app.conf, "broker_url", f"redis://127.0.0.1:{free_port()}/0")
    started = time.monotonic()
    response = client.get("/health/")
    assert response.status_code == 503
    assert response.json() == {"status": "unavailable", "database": "ok", "broker": "unavailable"}
    assert time.monotonic() - started < 10  # a probe must not hang on a dead dependency


@pytest.mark.django_db
def test_health_takes_only_get(client):
    assert client.post("/health/").status_code == 405


# --- Content Security Policy ------------------------------------------------------------------------


@pytest.mark.django_db
def test_every_page_carries_the_policy(client):
    response = client.get("/")
    policy = dict(
        part.strip().split(" ", 1) for part in response["Content-Security-Policy"].split(";") if part.strip()
    )
    assert policy["script-src"] == "'self'"
    assert policy["object-src"] == "'none'" and policy["frame-ancestors"] == "'none'"
    assert response["X-Frame-Options"] == "DENY"


@pytest.fixture
def charted_site(db):
    """A dataset with two finished evaluations, so the results pages (list, run, comparison) draw
    plotly charts."""
    dataset = DatasetFactory(slug="charted")
    run = EvaluationRunFactory(dataset=dataset, item_count=4)
    items = [EvaluationItemFactory(run=run, matches_behavior=index % 2 == 0) for index in range(4)]
    other = EvaluationRunFactory(dataset=dataset, item_count=4, model_spec="hf:other/model")
    for index, item in enumerate(items):
        EvaluationItemFactory(
            run=other, example=item.example, matches_behavior=index < 2, p_match=0.2 + index / 5
        )
    dataset_refresh_stats(dataset=dataset)  # the run page charts against the label confidence
    return run


@pytest.mark.browser
@pytest.mark.django_db(transaction=True)
def test_pages_with_scripts_work_under_the_policy(live_server, browser, charted_site, client):
    """plotly.js (evaluation and agreement charts), Swagger UI and the admin load and draw with no script error and nothing
    blocked by the policy (a violation would show as a console error and no chart)."""
    staff = StaffFactory(is_superuser=True)
    client.force_login(staff)
    session = client.cookies[settings.SESSION_COOKIE_NAME].value
    page = browser_page(browser, timeout_ms=20_000)
    page.context.add_cookies(
        [{"name": settings.SESSION_COOKIE_NAME, "value": session, "url": live_server.url}]
    )
    try:
        for path, drawn in [
            (reverse("generation:run-list"), ".chart .main-svg"),
            (reverse("generation:run-detail", args=[charted_site.pk]), ".chart .main-svg"),
            (
                reverse("analysis:dashboard", args=[rated_project(datasets=2, examples=4).slug]),
                ".chart .main-svg",
            ),
            ("/api/docs/", ".swagger-ui .info"),
            ("/admin/", "#content"),
        ]:
            page.goto(live_server.url + path)
            page.wait_for_selector(drawn, state="attached")
            assert page.js_errors == [], (path, page.js_errors)
            assert page.csp_violations == [], (path, page.csp_violations)
    finally:
        page.context.close()


def hover_texts(figure: dict) -> set[str]:
    """The hover texts a figure's points carry, as a person reads them (line breaks as spaces)."""
    texts = set()
    for trace in figure["data"]:
        values = trace.get("hovertext") or []
        for value in [values] if isinstance(values, str) else values:
            texts.add(" ".join(html.unescape(re.sub(r"<br\s*/?>", " ", value)).split()))
    return texts


def assert_charts_drawn(page, path: str) -> int:
    """Every plotly chart on the page is drawn (each mark's pixels differ from the background in a
    screenshot) and hovering its first mark shows that point's own hover text. Returns the number
    of charts."""
    containers = page.locator("[data-figure]")
    count = containers.count()
    for index in range(count):
        container = containers.nth(index)
        container.scroll_into_view_if_needed()
        container.locator(".main-svg .trace .point").first.wait_for(state="attached")
        figure = json.loads(page.locator(f"#{container.get_attribute('data-figure')}").text_content())
        marks = [
            box
            for box in (mark.bounding_box() for mark in container.locator(".main-svg .trace .point").all())
            # A bar of value 0 has no area (its box is only the outline's width).
            if box and box["width"] >= 3 and box["height"] >= 3
        ]
        assert marks, (path, index, "no marks")
        page.mouse.move(1, 1)
        image = screenshot(page)
        missing = [
            box
            for box in marks
            if not drawn_at(image, box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
        ]
        assert missing == [], (path, index, f"{len(missing)} of {len(marks)} marks not drawn")

        mark = marks[0]
        page.mouse.move(mark["x"] + mark["width"] / 2, mark["y"] + mark["height"] / 2)
        shown = container.locator(".hoverlayer .hovertext")
        shown.first.wait_for(state="visible")
        # SVG text: one <tspan class="line"> per line of the label.
        text = shown.first.evaluate(
            "e => Array.from(e.querySelectorAll('text.nums tspan.line')).map(t => t.textContent).join(' ')"
            " || e.querySelector('text.nums').textContent"
        )
        assert " ".join(text.split()) in hover_texts(figure), (path, index, text)
    return count


@pytest.mark.browser
@pytest.mark.django_db(transaction=True)
def test_every_plotly_chart_is_drawn_and_shows_its_hover_text(live_server, browser, charted_site, client):
    """What a person sees on every page with a plotly chart (the explorer's map has its own test):
    the marks drawn, the hover text of the point under the mouse, and nothing refused by the
    Content Security Policy (listened for as securitypolicyviolation events, not only console lines)."""
    staff = StaffFactory(is_superuser=True)
    client.force_login(staff)
    session = client.cookies[settings.SESSION_COOKIE_NAME].value
    page = browser_page(browser, timeout_ms=20_000, viewport={"width": 1280, "height": 900})
    page.context.add_cookies(
        [{"name": settings.SESSION_COOKIE_NAME, "value": session, "url": live_server.url}]
    )
    project = rated_project(datasets=2, examples=4)
    other = charted_site.dataset.evaluation_runs.exclude(pk=charted_site.pk).get()
    pages = [
        reverse("generation:run-list"),
        reverse("generation:run-detail", args=[charted_site.pk]),
        reverse("generation:run-compare") + f"?a={charted_site.pk}&b={other.pk}",
        reverse("analysis:dashboard", args=[project.slug]),
        reverse("analysis:pooled", args=[project.slug]),
    ]
    try:
        for path in pages:
            page.goto(live_server.url + path)
            assert assert_charts_drawn(page, path) >= 1, path
            assert page.js_errors == [], (path, page.js_errors)
            assert page.csp_violations == [], (path, page.csp_violations)
    finally:
        page.context.close()


# --- Logs ---------------------------------------------------------------------------------------------


def test_production_logs_one_json_object_per_line():
    code = (
        "import django, logging; django.setup(); "
        "logging.getLogger('generation.jobs.services').warning('job %s failed', 7, extra={'job_id': 7})"
    )
    base = production_base_env()
    result = subprocess.run(
        [sys.executable, "-c", code],
        cwd=settings.BASE_DIR,
        env={**base, **PRODUCTION_ENV},
        capture_output=True,
        text=True,
        timeout=60,
    )
    line = json.loads(result.stderr.strip().splitlines()[-1])
    assert line["message"] == "job 7 failed" and line["level"] == "WARNING"
    assert line["logger"] == "generation.jobs.services" and line["job_id"] == 7 and "time" in line


# --- make run-prod ------------------------------------------------------------------------------------


def test_the_procfile_names_the_stack():
    processes = procfile_read(Path(settings.BASE_DIR) / "deploy" / "Procfile")
    assert list(processes) == ["release", "web", "worker", "models"]
    assert "-Q default " in processes["worker"] and "-Q models " in processes["models"]
    assert "gunicorn -c mwe_site/gunicorn.conf.py" in processes["web"]


def test_a_bad_procfile_line_is_refused(tmp_path):
    bad = tmp_path / "Procfile"
    bad.write_text("web: gunicorn app\nthis is not a process line\n")
    with pytest.raises(SystemExit, match="Procfile:2"):
        procfile_read(bad)


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_run_prod_serves_the_stack_and_stops_it(tmp_path):
    """`make run-prod`'s launcher: release (migrate, collectstatic), then gunicorn and one worker per
    queue from deploy/Procfile, on this PostgreSQL and Redis; /health/ says both are reachable and a
    hashed static file is served with a long cache lifetime; Ctrl-C stops every process."""
    import redis

    broker_url = PRODUCTION_ENV["CELERY_BROKER_URL"]
    redis.Redis.from_url(broker_url).flushdb()
    port = free_port()
    env = production_env(
        tmp_path,
        "var",
        broker_url=broker_url,
        ALLOWED_HOSTS="127.0.0.1",
        MWE_LOG_FORMAT="json",  # the production default, as make run-prod leaves it
        GUNICORN_BIND=f"127.0.0.1:{port}",
        GUNICORN_WORKERS="1",
    )
    log_path = tmp_path / "run-prod.log"
    log = log_path.open("w")
    launcher = subprocess.Popen(
        [sys.executable, "-m", "mwe_site.run", "--procfile", "deploy/Procfile"],
        cwd=settings.BASE_DIR,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:

        def health() -> dict | None:
            assert launcher.poll() is None, log_path.read_text()[-3000:]
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/health/", timeout=5) as response:  # noqa: S310
                    return json.loads(response.read())
            except OSError:  # not listening yet, or 503 (an HTTPError) while a service is missing
                return None

        answer = wait_for(health, seconds=120, what="/health/", logs=[log_path])
        assert answer == {"status": "ok", "database": "ok", "broker": "ok"}, log_path.read_text()[-3000:]
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=10) as response:  # noqa: S310
            page = response.read().decode()
        css = page.split('href="/static/css/', 1)[1].split('"', 1)[0]
        assert css.count(".") >= 2, css  # the manifest's hashed name
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/static/css/{css}", timeout=10) as response:  # noqa: S310
            assert "immutable" in response.headers["Cache-Control"]
        commands = child_commands(launcher)
        assert any("gunicorn" in c for c in commands), commands
        assert any("-Q default" in c for c in commands) and any("-Q models" in c for c in commands), commands
        interrupt_and_wait(launcher, seconds=60)
    finally:
        if launcher.poll() is None:
            os.killpg(launcher.pid, signal.SIGKILL)
        log.close()
