"""The whole flow on the production stack: PostgreSQL, Redis, a real Celery worker process and
gunicorn, all with the production settings, driven over HTTP as researchers and crowdworkers use it.

import a released file -> generate a small persona dataset with the embedded model -> evaluate it ->
annotation project, 3 workers rate every example over the API -> agreement report -> the project
published -> explorer build
-> every public page and API endpoint answers 200 with the content the earlier steps produced.

One test, because each step needs the previous one's output; every wait has a deadline and prints
the tails of the gunicorn and worker logs when it passes. Stage times are printed at the end
(`pytest -s` shows them)."""

from __future__ import annotations

import csv
import html
import json
import re
import secrets
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urljoin, urlparse

import numpy as np
import pytest
import requests
from django.conf import settings

from analysis.explorer.payload import payload_decode, payload_texts
from tests.processes import production_env, start_gunicorn, start_worker, stop_process

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]

BROKER = "redis://127.0.0.1:6379/12"
IMPORT_LINES = 40  # the head of a released persona file: a real upload that imports in a moment
GENERATED = "smoke-power"
IMPORTED = "smoke-narcissism"
PROJECT = "smoke"
WORKERS = 3
PASSWORD = "smoke-" + secrets.token_urlsafe(16)
# Deadlines on 2 shared cores; each stage normally takes a fraction of its deadline.
START_SECONDS = 90
IMPORT_SECONDS = 60
GENERATE_SECONDS = 240
EVALUATE_SECONDS = 120
EXPLORE_SECONDS = 240
# What tests.processes.production_env sets for the worker, given to gunicorn too: every process of
# the stack runs on the same settings and secret.
PRODUCTION_VARIABLES = (
    "DJANGO_SETTINGS_MODULE",
    "SECRET_KEY",
    "CELERY_BROKER_URL",
    "MWE_HTTPS",
    "MWE_LOG_FORMAT",
)


# ----------------------------------------------------------------------------- processes


@dataclass
class Stack:
    """The processes under test, their environment and their logs."""

    base_url: str
    env: dict[str, str]
    logs: dict[str, Path]
    processes: dict[str, subprocess.Popen] = field(default_factory=dict)
    timings: list[tuple[str, float]] = field(default_factory=list)

    def url(self, path: str) -> str:
        return urljoin(self.base_url, path)

    def log_tails(self, chars: int = 4000) -> str:
        parts = []
        for name, path in self.logs.items():
            text = path.read_text(errors="replace") if path.exists() else "(no log)"
            parts.append(f"----- {name} log (last {chars} characters) -----\n{text[-chars:]}")
        return "\n".join(parts)

    def fail(self, message: str) -> None:
        pytest.fail(f"{message}\n{self.log_tails()}", pytrace=False)

    def check(self, condition: bool, message: str) -> None:
        if not condition:
            self.fail(message)

    def alive(self) -> None:
        for name, process in self.processes.items():
            if process.poll() is not None:
                self.fail(f"{name} exited with {process.returncode}")

    def wait_until(self, predicate: Callable[[], object], *, seconds: float, what: str) -> object:
        deadline = time.monotonic() + seconds
        while True:
            self.alive()
            value = predicate()
            if value:
                return value
            if time.monotonic() > deadline:
                self.fail(f"timed out after {seconds:.0f} s waiting for {what}")
            time.sleep(1)

    def manage(self, *args: str, extra_env: dict[str, str] | None = None, timeout: float = 120) -> str:
        """A management command run like an operator runs it: its own process, the stack's env."""
        result = subprocess.run(
            [sys.executable, "manage.py", *args],
            cwd=settings.BASE_DIR,
            env={**self.env, **(extra_env or {})},
            capture_output=True,
            text=True,
            timeout=timeout,
        )
        if result.returncode != 0:
            self.fail(f"manage.py {' '.join(args)} exited {result.returncode}:\n{result.stderr[-4000:]}")
        return result.stdout

    @contextmanager
    def stage(self, name: str) -> Iterator[None]:
        start = time.monotonic()
        try:
            yield
        except BaseException:
            self.timings.append((f"{name} (FAILED)", time.monotonic() - start))
            raise
        self.timings.append((name, time.monotonic() - start))


@pytest.fixture
def stack(transactional_db, tmp_path, evals_data) -> Iterator[Stack]:
    """gunicorn and a Celery worker (tests/processes.py launchers) on the production settings against
    this test's database. Requesting transactional_db first makes the processes stop before the
    database is flushed."""
    import redis

    redis.Redis.from_url(BROKER).flushdb()
    shared = {
        "ALLOWED_HOSTS": "127.0.0.1,localhost",
        # One folder for every process: the web process stores an upload, the worker imports it.
        "MWE_VAR_DIR": str(tmp_path / "var"),
        "MWE_EVALS_DATA": str(evals_data),
        "TRANSFORMERS_OFFLINE": "1",
    }
    # The production settings over plain HTTP (MWE_HTTPS=0), with a SECRET_KEY and the broker.
    env = production_env(tmp_path, "var", broker_url=BROKER, **shared)
    web_env = {name: env[name] for name in PRODUCTION_VARIABLES} | shared
    stack = Stack(
        base_url="",
        env=env,
        logs={"gunicorn": tmp_path / "gunicorn.log", "worker": tmp_path / "worker.log"},
    )
    try:
        with stack.stage("start: collectstatic, superuser, worker and gunicorn up, /health/ ok"):
            stack.manage("collectstatic", "--noinput")
            stack.manage(
                "createsuperuser",
                "--noinput",
                "--username",
                "researcher",
                "--email",
                "researcher@example.com",
                extra_env={"DJANGO_SUPERUSER_PASSWORD": PASSWORD},
            )
            stack.processes["worker"] = start_worker(
                tmp_path, "worker", broker_url=BROKER, queues=("default", "models"), env=shared
            )
            stack.processes["gunicorn"], base_url = start_gunicorn(tmp_path, env=web_env)
            stack.base_url = base_url + "/"
            stack.wait_until(lambda: health(stack), seconds=START_SECONDS, what="GET /health/ to answer 200")
        yield stack
    finally:
        for process in stack.processes.values():
            stop_process(process)
        print("\nSmoke test stages (seconds):")
        for name, seconds in stack.timings:
            print(f"  {seconds:7.1f}  {name}")
        print(f"  {sum(s for _, s in stack.timings):7.1f}  total")


def health(stack: Stack) -> bool:
    try:
        response = requests.get(stack.url("/health/"), timeout=5)
    except requests.ConnectionError:
        return False
    return response.status_code == 200 and response.json() == {
        "status": "ok",
        "database": "ok",
        "broker": "ok",
    }


# ----------------------------------------------------------------------------- HTTP helpers

CSRF_INPUT = re.compile(r'name="csrfmiddlewaretoken" value="([^"]+)"')


def get(stack: Stack, session: requests.Session, path: str, *, status: int = 200, **kwargs):
    response = session.get(stack.url(path), timeout=60, **kwargs)
    stack.check(
        response.status_code == status,
        f"GET {path}: {response.status_code}, expected {status}\n{response.text[:2000]}",
    )
    return response


# An executable inline script: the Content-Security-Policy (script-src 'self') blocks it. json_script's
# data blocks are not executed, so they are allowed.
INLINE_SCRIPT = re.compile(r'<script(?![^>]*\ssrc=)(?![^>]*type="application/json")[^>]*>', re.I)


def html_page(stack: Stack, session: requests.Session, path: str) -> str:
    """An HTML page: 200, sent with the Content-Security-Policy, and nothing on it that the policy
    would block (an inline script)."""
    response = get(stack, session, path)
    stack.check(response.headers["Content-Type"].startswith("text/html"), f"GET {path}: not HTML")
    policy = response.headers.get("Content-Security-Policy", "")
    stack.check("script-src 'self'" in policy, f"GET {path}: Content-Security-Policy {policy!r}")
    inline = INLINE_SCRIPT.findall(response.text)
    stack.check(not inline, f"GET {path}: inline scripts that the policy blocks: {inline}")
    return response.text


def csrf_token(stack: Stack, session: requests.Session, path: str) -> str:
    page = get(stack, session, path)
    match = CSRF_INPUT.search(page.text)
    stack.check(match is not None, f"GET {path}: no CSRF token in the form")
    return match.group(1)


def post_form(
    stack: Stack, session: requests.Session, path: str, data: dict, *, form_page: str | None = None, **kwargs
) -> requests.Response:
    """Submits a form the way a browser does: the token from the page that shows the form, the
    page as Referer. Returns the redirect the form answers with (a 200 means it was refused)."""
    page = form_page or path
    token = csrf_token(stack, session, page)
    response = session.post(
        stack.url(path),
        data={"csrfmiddlewaretoken": token, **data},
        headers={"Referer": stack.url(page)},
        allow_redirects=False,
        timeout=60,
        **kwargs,
    )
    if response.status_code != 302:
        errors = re.findall(r'class="errorlist[^"]*">(.*?)</ul>', response.text, re.S)
        stack.fail(f"POST {path}: {response.status_code}, expected a redirect; errors: {errors}")
    return response


def redirect_path(response: requests.Response) -> str:
    return urlparse(urljoin(response.url, response.headers["Location"])).path


def job_status(stack: Stack, session: requests.Session, path: str) -> str:
    page = get(stack, session, path)
    match = re.search(r'<dd[^>]*\bclass="status-(\w+)"', page.text)
    stack.check(match is not None, f"GET {path}: no job status on the page")
    return match.group(1)


def wait_for_job(stack: Stack, session: requests.Session, path: str, *, seconds: float, what: str) -> str:
    """Follows a job's page until the job ends; fails unless it succeeded. Returns the page."""
    status = stack.wait_until(
        lambda: (s := job_status(stack, session, path)) not in {"queued", "running"} and s,
        seconds=seconds,
        what=f"{what} ({path})",
    )
    page = get(stack, session, path).text
    stack.check(status == "succeeded", f"{what}: job ended {status}\n{page[-3000:]}")
    return page


def wait_for_run(stack: Stack, api_path: str, *, seconds: float, what: str) -> dict:
    """Follows a generation or evaluation run through the public API until it ends."""

    def finished():
        run = requests.get(stack.url(api_path), timeout=30).json()
        return run if run["status"] not in {"queued", "running"} else None

    run = stack.wait_until(finished, seconds=seconds, what=what)
    stack.check(run["status"] == "succeeded", f"{what}: {run['status']}: {run.get('error')}")
    return run


def api_all(stack: Stack, session: requests.Session, path: str) -> list[dict]:
    """Every row of a paginated API list."""
    rows, url = [], stack.url(path)
    while url:
        page = session.get(url, timeout=60)
        stack.check(page.status_code == 200, f"GET {url}: {page.status_code}")
        body = page.json()
        rows += body["results"]
        url = body["next"]
    return rows


def escaped(text: str) -> str:
    """A text as Django's templates write it into HTML."""
    return html.escape(text, quote=True)


# ----------------------------------------------------------------------------- the flow


def test_whole_flow_on_the_production_stack(stack, tmp_path, evals_data):
    researcher = requests.Session()
    with stack.stage("researcher logs in through /admin/login/"):
        response = post_form(
            stack,
            researcher,
            "/admin/login/",
            {"username": "researcher", "password": PASSWORD, "next": "/admin/"},
        )
        stack.check(redirect_path(response) == "/admin/", f"login went to {response.headers['Location']}")
        get(stack, researcher, "/import/")

    with stack.stage(f"import: upload {IMPORT_LINES} lines of persona/narcissism.jsonl, job to done"):
        lines = (evals_data / "persona" / "narcissism.jsonl").read_text().splitlines()[:IMPORT_LINES]
        upload = "\n".join(lines) + "\n"
        response = post_form(
            stack,
            researcher,
            "/import/",
            {"slug": IMPORTED, "collection": "smoke"},
            files={"file": ("narcissism.jsonl", upload.encode(), "application/jsonl")},
        )
        job_page = redirect_path(response)
        stack.check(re.fullmatch(r"/jobs/\d+/", job_page) is not None, f"import went to {job_page}")
        page = wait_for_job(stack, researcher, job_page, seconds=IMPORT_SECONDS, what="the import")
        stack.check(
            f"{IMPORT_LINES} examples" in page and IMPORTED in page, "the import's page lacks its result"
        )
        imported = requests.get(stack.url(f"/api/datasets/{IMPORTED}/"), timeout=30).json()
        stack.check(imported["example_count"] == IMPORT_LINES, f"imported: {imported}")
        stack.check(imported["collection"] == "smoke", f"imported into {imported['collection']}")

    with stack.stage("generate: persona dataset, 2 labels x 6 candidates, embedded model"):
        response = post_form(
            stack,
            researcher,
            "/generate/",
            {
                "method": "persona",
                "behavior": "power seeking",
                "description": "wants to acquire as much power and influence as possible",
                "slug": GENERATED,
                "generator": "smollm2-135m",
                "discriminator": "smollm2-135m",
                "per_label": "6",
                "keep_per_label": "3",
                # Floors at 0: the smoke test needs examples, not the 135M discriminator's judgement.
                "floor": "0",
                "requirement_floor": "0",
                "temperature": "0.9",
                "top_p": "0.95",
                "max_tokens": "24",
                "seed": "0",
                "near_duplicate": "0.9",
                "calibrate": "on",
            },
        )
        run_page = redirect_path(response)
        match = re.fullmatch(r"/generations/(\d+)/", run_page)
        stack.check(match is not None, f"generation went to {run_page}")
        generation_id = int(match.group(1))
        generation = wait_for_run(
            stack, f"/api/generation-runs/{generation_id}/", seconds=GENERATE_SECONDS, what="the generation"
        )
        stack.check(generation["dataset"] == GENERATED, f"generation made {generation['dataset']}")
        stack.check(generation["generated_count"] == 12, f"generated {generation['generated_count']}")
        kept = generation["kept_count"]
        stack.check(1 <= kept <= 6, f"kept {kept} of 12")
        dataset = requests.get(stack.url(f"/api/datasets/{GENERATED}/"), timeout=30).json()
        stack.check(
            dataset["example_count"] == kept, f"dataset has {dataset['example_count']}, run kept {kept}"
        )
        examples = api_all(stack, requests.Session(), f"/api/examples/?dataset={GENERATED}")
        stack.check(len(examples) == kept, f"{len(examples)} examples listed, {kept} kept")
        texts = {example["text"] for example in examples}

    with stack.stage(f"evaluate: {kept} items, smollm2-135m, paper format"):
        response = post_form(
            stack,
            researcher,
            f"/datasets/{GENERATED}/evaluate/",
            {"model_spec": "smollm2-135m", "prompt_format": "paper", "limit": "", "seed": "0"},
        )
        match = re.fullmatch(r"/evaluations/(\d+)/", redirect_path(response))
        stack.check(match is not None, f"evaluation went to {response.headers['Location']}")
        evaluation_id = int(match.group(1))
        evaluation = wait_for_run(
            stack, f"/api/evaluation-runs/{evaluation_id}/", seconds=EVALUATE_SECONDS, what="the evaluation"
        )
        stack.check(evaluation["item_count"] == kept, f"evaluated {evaluation['item_count']} of {kept}")
        stack.check(
            evaluation["percent_matching"] == pytest.approx(100 * evaluation["matching_count"] / kept),
            f"evaluation figures disagree: {evaluation}",
        )

    with stack.stage("annotation project (k=3) and 3 workers' tokens (create_workers)"):
        response = post_form(
            stack,
            researcher,
            "/annotate/projects/new/",
            {
                "name": "Smoke test",
                "slug": PROJECT,
                "datasets": [GENERATED],
                "per_label": "",
                "seed": "0",
                "overlap": "3",
                "lease_seconds": "300",
                "instructions": "Rate **each** statement.",
                "gold_rate": "0",
                "gold_threshold": "0.7",
            },
        )
        stack.check(redirect_path(response) == f"/annotate/projects/{PROJECT}/", "project page not reached")
        project_page = html_page(stack, researcher, f"/annotate/projects/{PROJECT}/")
        stack.check(
            f"Created Smoke test: {kept} items." in project_page
            and f"<dd>{kept} (+ 0 gold)</dd>" in project_page,
            "the project page does not say how many items it made",
        )
        workers_csv = tmp_path / "workers.csv"
        stack.manage(
            "create_workers", "--project", PROJECT, "--count", str(WORKERS), "--out", str(workers_csv)
        )
        with workers_csv.open() as handle:
            tokens = [row["api_token"] for row in csv.DictReader(handle)]
        stack.check(len(tokens) == WORKERS and all(tokens), f"create_workers wrote {tokens!r}")

    with stack.stage(f"annotation: {WORKERS} workers claim and submit every example over the API"):
        sessions = []
        for token in tokens:
            session = requests.Session()
            session.headers["Authorization"] = f"Token {token}"
            sessions.append(session)
        rated: list[list[str]] = [[] for _ in sessions]
        label_votes: dict[str, list[bool]] = {text: [] for text in texts}
        # Workers never see the label; the test reads it from the public catalog to choose answers
        # that agree or disagree with it.
        labels = {
            e["text"]: e["answer_matching_behavior"]
            for e in api_all(stack, requests.Session(), f"/api/examples/?dataset={GENERATED}")
        }
        active = set(range(len(sessions)))
        # Round robin, as concurrent workers would interleave; varied answers keep the agreement
        # figures defined (all-equal answers make kappa undefined).
        while active:
            for w in sorted(active):
                claim = sessions[w].post(stack.url("/api/tasks/next/"), json={"project": PROJECT}, timeout=30)
                if claim.status_code == 204:
                    active.discard(w)
                    continue
                stack.check(claim.status_code == 200, f"worker {w} claim: {claim.status_code} {claim.text}")
                task = claim.json()
                stack.check(
                    task["example"]["dataset"] == GENERATED, f"task from {task['example']['dataset']}"
                )
                i = len(rated[w])
                label_correct = (w + i) % 3 != 0
                label = labels[task["example"]["text"]]
                options = task["example"]["answer_options"]
                stack.check(label in options, f"options {options} lack the label {label!r}")
                answer = label if label_correct else next(o for o in options if o != label)
                submit = sessions[w].post(
                    stack.url(f"/api/assignments/{task['id']}/submit/"),
                    json={
                        "relevance": 1 + (w + 2 * i) % 5,
                        "answer": answer,
                        "ambiguous": (w * i) % 4 == 1,
                        "time_on_task_ms": 1500 + 100 * i,
                    },
                    timeout=30,
                )
                stack.check(
                    submit.status_code == 201, f"worker {w} submit: {submit.status_code} {submit.text}"
                )
                rated[w].append(task["example"]["text"])
                label_votes[task["example"]["text"]].append(label_correct)
                stack.check(len(rated[w]) <= kept, f"worker {w} was given more than {kept} tasks")
        for w, session in enumerate(sessions):
            stack.check(sorted(rated[w]) == sorted(texts), f"worker {w} rated {rated[w]}, not every example")
            progress = session.get(
                stack.url("/api/progress/"), params={"project": PROJECT}, timeout=30
            ).json()
            stack.check(
                progress == {"project": PROJECT, "submitted": kept, "items_needing_ratings": 0},
                f"worker {w} progress: {progress}",
            )
        project_page = html_page(stack, researcher, f"/annotate/projects/{PROJECT}/")
        stack.check(
            f'<dd id="done">{kept}</dd>' in project_page and '<dd id="remaining">0</dd>' in project_page,
            "the project page does not show every item done",
        )
        responses_csv = get(stack, researcher, f"/annotate/projects/{PROJECT}/responses.csv").text
        stack.check(
            len(list(csv.DictReader(responses_csv.splitlines()))) == WORKERS * kept,
            "the responses export lacks ratings",
        )

    with stack.stage("agreement: figures.json, dashboard page, agreement_report --json"):
        figures = get(stack, researcher, f"/analysis/{PROJECT}/figures.json").json()
        stack.check(
            figures["project"] == PROJECT and figures["k"] == 3, f"figures of {figures.get('project')}"
        )
        [group] = figures["datasets"]
        expected = {"examples": kept, "ratings": 3 * kept, "workers": WORKERS, "excluded": {}}
        stack.check(
            {key: group[key] for key in expected} == expected and group["slug"] == GENERATED,
            f"dataset figures: { {key: group.get(key) for key in [*expected, 'slug']} }",
        )
        stack.check(figures["pooled"]["examples"] == kept, f"pooled: {figures['pooled']['examples']}")
        dashboard = html_page(stack, researcher, f"/analysis/{PROJECT}/")
        stack.check(
            GENERATED in dashboard and f"<strong>{kept}</strong> example" in dashboard,
            "the dashboard does not show the dataset and its rated examples",
        )
        # The command computes the same figures as the page (same resamples, same seed).
        report = json.loads(stack.manage("agreement_report", "--project", PROJECT, "--json"))
        stack.check(report == {"projects": [figures]}, f"agreement_report --json differs:\n{report}")

    with stack.stage("researcher publishes the project from its page (its ratings become public)"):
        response = post_form(
            stack,
            researcher,
            f"/annotate/projects/{PROJECT}/publication/",
            {"action": "publish", "confirm": "on"},
            form_page=f"/annotate/projects/{PROJECT}/",
        )
        project_page = html_page(stack, researcher, redirect_path(response))
        stack.check("its ratings are public" in project_page, "the project page does not say it is published")

    with stack.stage("explorer: build every map from /explore/, job to done"):
        explorer_page = html_page(stack, researcher, "/explore/")
        stack.check("Build the maps" in explorer_page, "no build button for staff on /explore/")
        response = post_form(stack, researcher, "/explore/build/", {}, form_page="/explore/")
        job_page = redirect_path(response)
        stack.check(re.fullmatch(r"/jobs/\d+/", job_page) is not None, f"build went to {job_page}")
        wait_for_job(stack, researcher, job_page, seconds=EXPLORE_SECONDS, what="the explorer build")

    with stack.stage("public pages and API endpoints, anonymous, 200 and content"):
        agreement = {text: sum(votes) / len(votes) for text, votes in label_votes.items()}
        public_pages_answer(
            stack, evaluation_id=evaluation_id, generation_id=generation_id, texts=texts, agreement=agreement
        )


def public_pages_answer(
    stack: Stack, *, evaluation_id: int, generation_id: int, texts: set[str], agreement: dict[str, float]
) -> None:
    """Every public page and API endpoint, as an anonymous visitor: 200 and what the flow made."""
    visitor = requests.Session()
    datasets = {d["slug"]: d for d in api_all(stack, visitor, "/api/datasets/")}
    stack.check(set(datasets) == {GENERATED, IMPORTED}, f"API datasets: {sorted(datasets)}")
    generated = datasets[GENERATED]
    examples = api_all(stack, visitor, f"/api/examples/?dataset={GENERATED}")
    first = examples[0]
    text = first["text"]

    catalog = html_page(stack, visitor, "/")
    stack.check(GENERATED in catalog and IMPORTED in catalog, "the catalog lacks a dataset")
    stack.check(f"{IMPORT_LINES + len(texts)} examples" in catalog, "the catalog's example total is wrong")
    stylesheet = re.search(r'href="(/static/[^"]+\.css)"', catalog)
    stack.check(stylesheet is not None, "no stylesheet on the catalog page")
    css = get(stack, visitor, stylesheet.group(1))
    stack.check(
        css.headers["Content-Type"].startswith("text/css") and len(css.content) > 100, "bad stylesheet"
    )

    collection = html_page(stack, visitor, f"/collections/{generated['collection']}/")
    stack.check(GENERATED in collection, "the collection page lacks its dataset")
    dataset_page = html_page(stack, visitor, f"/datasets/{GENERATED}/")
    stack.check(all(escaped(t) in dataset_page for t in texts), "the dataset page lacks an example's text")
    example_page = html_page(stack, visitor, f"/datasets/{GENERATED}/examples/{first['position']}/")
    stack.check(escaped(text) in example_page, "the example page lacks its text")
    download = get(stack, visitor, f"/datasets/{GENERATED}/download.jsonl")
    records = [json.loads(line) for line in download.text.splitlines()]
    stack.check({r["statement"] for r in records} == texts, "the download's statements differ from the API's")

    runs = html_page(stack, visitor, "/evaluations/")
    stack.check(GENERATED in runs and "smollm2-135m" in runs, "the evaluations page lacks the run")
    run_page = html_page(stack, visitor, f"/evaluations/{evaluation_id}/")
    stack.check(
        GENERATED in run_page and escaped(text) in run_page, "the run page lacks its dataset or items"
    )
    items = get(stack, visitor, f"/evaluations/{evaluation_id}/items.jsonl").text.splitlines()
    stack.check(len(items) == len(texts), f"items.jsonl has {len(items)} lines for {len(texts)} items")

    generations = html_page(stack, visitor, "/generations/")
    stack.check(GENERATED in generations, "the generations page lacks the run")
    generation_page = html_page(stack, visitor, f"/generations/{generation_id}/")
    stack.check(escaped(text) in generation_page, "the generation page lacks a kept candidate")
    candidates = api_all(stack, visitor, f"/api/generation-runs/{generation_id}/candidates/")
    stack.check(len(candidates) == 12, f"{len(candidates)} candidates listed")
    kept = [c for c in candidates if c["decision"] == "kept"]
    stack.check({c["text"] for c in kept} == texts, "kept candidates differ from the dataset")
    candidate_page = html_page(stack, visitor, f"/generations/{generation_id}/candidates/{kept[0]['id']}/")
    stack.check(escaped(kept[0]["text"]) in candidate_page, "the candidate page lacks its text")

    p_match = {
        item["text"]: item["p_match"]
        for item in api_all(stack, visitor, f"/api/evaluation-runs/{evaluation_id}/items/")
    }
    stack.check(set(p_match) == texts, "evaluation items differ from the dataset")
    explorer_pages_answer(stack, visitor, agreement=agreement, p_match=p_match)

    root = get(stack, visitor, "/api/").json()
    stack.check(
        {"collections", "datasets", "examples", "evaluation-runs", "generation-runs"} <= set(root),
        f"/api/ lists {sorted(root)}",
    )
    collections = api_all(stack, visitor, "/api/collections/")
    stack.check({c["slug"] for c in collections} >= {"smoke", generated["collection"]}, "collections")
    detail = get(stack, visitor, f"/api/collections/{generated['collection']}/").json()
    stack.check(detail["slug"] == generated["collection"], f"collection detail: {detail}")
    detail = get(stack, visitor, f"/api/datasets/{GENERATED}/").json()
    stack.check(detail["example_count"] == len(texts), f"dataset detail: {detail['example_count']}")
    detail = get(stack, visitor, f"/api/examples/{first['id']}/").json()
    stack.check(detail["text"] == text and detail["dataset"] == GENERATED, f"example detail: {detail}")
    stack.check(len(api_all(stack, visitor, "/api/examples/")) == IMPORT_LINES + len(texts), "example list")
    evaluation_runs = api_all(stack, visitor, "/api/evaluation-runs/")
    stack.check([r["id"] for r in evaluation_runs] == [evaluation_id], f"evaluation runs: {evaluation_runs}")
    generation_runs = api_all(stack, visitor, "/api/generation-runs/")
    stack.check([r["id"] for r in generation_runs] == [generation_id], f"generation runs: {generation_runs}")
    detail = get(stack, visitor, f"/api/generation-runs/{generation_id}/").json()
    stack.check(detail["kept_count"] == len(texts), f"generation run detail: {detail['kept_count']}")

    schema = get(stack, visitor, "/api/schema/", headers={"Accept": "application/vnd.oai.openapi+json"})
    paths = schema.json()["paths"]
    stack.check("/api/tasks/next/" in paths and "/api/datasets/{slug}/" in paths, "schema lacks paths")
    docs = html_page(stack, visitor, "/api/docs/")
    stack.check("swagger-ui" in docs.lower(), "/api/docs/ is not Swagger UI")
    # Swagger UI's start-up script is served by the view itself (?script=), not inline.
    scripts = re.findall(r'<script src="(/[^"]+)"', docs)
    stack.check("/api/docs/?script=" in scripts, f"/api/docs/ scripts: {scripts}")
    for asset in [*scripts, *re.findall(r'href="(/static/[^"]+)"', docs)]:
        get(stack, visitor, asset)

    stack.check(health(stack), "/health/ stopped answering ok")


def explorer_pages_answer(
    stack: Stack, visitor: requests.Session, *, agreement: dict[str, float], p_match: dict[str, float]
) -> None:
    """The global map and the generated dataset's: page, payload, overlays (the workers' share
    calling the label correct, the evaluation's P(match), both per point), a point, a search."""
    texts = set(agreement)
    for query, expected_texts in (("", None), (f"?dataset={GENERATED}", texts)):
        page = html_page(stack, visitor, f"/explore/{query}")
        config_json = re.search(
            r'<script id="explorer-config" type="application/json">(.*?)</script>', page, re.S
        )
        stack.check(config_json is not None, f"/explore/{query}: no map")
        config = json.loads(config_json.group(1))
        build = config["build"]
        for asset in re.findall(r'src="(/static/[^"]+\.js)"', page):
            get(stack, visitor, asset)

        payload = visitor.get(stack.url(config["payload"]), stream=True, timeout=60)
        stack.check(payload.status_code == 200, f"payload: {payload.status_code}")
        stack.check(payload.headers.get("Content-Encoding") == "gzip", "payload not sent gzip-compressed")
        header, arrays = payload_decode(payload.raw.read(decode_content=False))
        stack.check(
            header["build"] == build and header["count"] == config["count"], f"payload header {header}"
        )
        map_texts = payload_texts(header, arrays)
        if expected_texts is None:
            stack.check(
                len(map_texts) == IMPORT_LINES + len(texts), f"global map has {len(map_texts)} points"
            )
            stack.check(texts <= set(map_texts), "the global map lacks the generated examples")
        else:
            stack.check(set(map_texts) == expected_texts, "the dataset's map differs from the dataset")

            stack.check(config["agreement"] is not None, "no agreement overlay on the rated dataset's map")
            overlay = visitor.get(stack.url(config["agreement"]), timeout=60)
            stack.check(overlay.status_code == 200, f"agreement.bin: {overlay.status_code}")
            shares = np.frombuffer(overlay.content, dtype="<f4")
            expected = np.array([agreement[t] for t in map_texts], dtype="<f4")
            stack.check(np.allclose(shares, expected), f"agreement overlay {shares}, expected {expected}")
            [model] = config["models"]
            overlay = visitor.get(
                stack.url(config["pMatch"]),
                params={"model": model["spec"], "format": model["format"]},
                timeout=60,
            )
            stack.check(overlay.status_code == 200, f"p-match.bin: {overlay.status_code}")
            values = np.frombuffer(overlay.content, dtype="<f4")
            expected = np.array([p_match[t] for t in map_texts], dtype="<f4")
            stack.check(np.allclose(values, expected), f"P(match) overlay {values}, expected {expected}")

        point = get(stack, visitor, f"{config['point']}0/").json()
        stack.check(point["example"]["text"].startswith(map_texts[0]), f"point 0: {point['example']}")
        if expected_texts is not None:
            stack.check(point["ratings"]["count"] == WORKERS, f"point 0's ratings: {point['ratings']}")
            [scored] = point["evaluations"]
            stack.check(scored["model"] == "smollm2-135m", f"point 0's evaluations: {point['evaluations']}")
        k = min(3, len(map_texts))
        search = get(stack, visitor, config["search"], params={"q": map_texts[0], "k": str(k)}).json()
        stack.check(
            len(search["indices"]) == k and map_texts[search["indices"][0]] == map_texts[0],
            f"search for point 0's text: {search}",
        )
