"""The evaluation pages: starting a run (staff), a run's page with its items, chart and download, the
overview of all results, comparing two runs, the links to them, and escaping of LM-written text
everywhere, including inside the embedded Plotly figures."""

import json
import re
from pathlib import Path

import pytest
from django.conf import settings
from django.contrib.staticfiles import finders
from django.urls import reverse

from generation.catalog.services import dataset_refresh_stats
from generation.models import Dataset, EvaluationItem, EvaluationRun, Job
from tests.builders import (
    CollectionFactory,
    DatasetFactory,
    EvaluationItemFactory,
    EvaluationRunFactory,
    ExampleFactory,
    StaffFactory,
    UserFactory,
)
from tests.generation.evaluation.fakes import FakeModel

pytestmark = pytest.mark.django_db

PAYLOADS = [
    "<script>alert(1)</script>",
    "<img src=x onerror=alert(1)>",
    "<b>",
    "<a href=javascript:alert(1)>",
]
HOSTILE = " ".join(PAYLOADS)


def figure_json(html: str, element_id: str) -> dict:
    """The figure a page embeds with json_script under this id."""
    match = re.search(rf'<script id="{element_id}" type="application/json">(.*?)</script>', html, re.S)
    assert match, f"no embedded figure {element_id}"
    return json.loads(match.group(1))


def assert_no_raw_payloads(html: str) -> None:
    for payload in PAYLOADS:
        assert payload not in html, f"unescaped payload {payload!r}"
    assert "onerror=alert(1)>" not in html
    assert "javascript:alert(1)>" not in html


def hover_texts(figure: dict) -> list[str]:
    return [text for trace in figure["data"] for text in trace.get("hovertext", [])]


def yes_lover(dataset: Dataset) -> FakeModel:
    """Prefers " Yes" everywhere (paper format): matches behavior on the 6 items whose answer is Yes."""
    template = "\n\nHuman: {}\n\nAssistant:"
    return FakeModel(
        {(template.format(e.question), " Yes"): -0.5 for e in dataset.examples.all()}, default=-2.0
    )


def run_with_items(dataset: Dataset, matches: list[bool], **kwargs) -> EvaluationRun:
    """A succeeded run over the dataset's first len(matches) examples, with a summary that fits."""
    n, matching = len(matches), sum(matches)
    run = EvaluationRunFactory(
        dataset=dataset,
        item_count=n,
        matching_count=matching,
        percent_matching=100.0 * matching / n,
        ci_low=max(0.0, 100.0 * matching / n - 10),
        ci_high=min(100.0, 100.0 * matching / n + 10),
        **kwargs,
    )
    for example, match in zip(dataset.examples.order_by("position"), matches, strict=False):
        EvaluationItemFactory(run=run, example=example, matches_behavior=match)
    return run


# ----------------------------------------------------------------------------- starting a run


def test_evaluate_form_is_for_staff_only(client, dataset):
    url = reverse("generation:evaluate", kwargs={"slug": dataset.slug})
    response = client.get(url)
    assert response.status_code == 302
    assert response["Location"].startswith(reverse(settings.LOGIN_URL))
    assert (
        client.post(url, {"model_spec": "smollm2-135m", "prompt_format": "plain", "seed": 0}).status_code
        == 302
    )

    client.force_login(UserFactory())
    assert client.get(url).status_code == 403
    assert (
        client.post(url, {"model_spec": "smollm2-135m", "prompt_format": "plain", "seed": 0}).status_code
        == 403
    )
    assert EvaluationRun.objects.count() == 0 and Job.objects.count() == 0


def test_evaluate_form_defaults(client, dataset):
    client.force_login(StaffFactory())
    response = client.get(reverse("generation:evaluate", kwargs={"slug": dataset.slug}))
    assert response.status_code == 200
    html = response.content.decode()
    assert 'value="smollm2-135m"' in html
    assert 'value="paper" selected' in html
    for value in ("plain", "paper", "chat"):
        assert f'value="{value}"' in html


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"model_spec": "gpt-9"}, "unknown model spec"),
        ({"model_spec": ""}, "This field is required"),
        ({"model_spec": "openai:ftp://x#m"}, "is not an http(s) URL"),
        # A spec may neither send the site's own secrets as its key nor call a server the operator
        # has not listed (tests/generation/lm/test_specs.py has the rules).
        (
            {"model_spec": "openai:http://127.0.0.1:9/v1?api_key_env=SECRET_KEY#m"},
            "a model server&#x27;s key must be in a variable named MWE_MODEL_KEY_",
        ),
        (
            {"model_spec": "openai:http://127.0.0.1:9/v1?api_key_env=DATABASE_URL#m"},
            "api_key_env=DATABASE_URL is refused",
        ),
        (
            {"model_spec": "openai:http://models.internal:8000/v1#m"},
            "models.internal:8000 is not among the hosts this site may call",
        ),
        ({"prompt_format": "xml"}, "Select a valid choice"),
        ({"limit": "0"}, "greater than or equal to 1"),
        ({"limit": "many"}, "Enter a whole number"),
        ({"seed": "-1"}, "greater than or equal to 0"),
    ],
)
def test_bad_input_rerenders_the_form_and_creates_nothing(client, dataset, data, message):
    client.force_login(StaffFactory())
    post = {"model_spec": "smollm2-135m", "prompt_format": "paper", "limit": "", "seed": "0", **data}
    response = client.post(reverse("generation:evaluate", kwargs={"slug": dataset.slug}), post)
    assert response.status_code == 200
    assert message in response.content.decode()
    assert EvaluationRun.objects.count() == 0 and Job.objects.count() == 0


def test_unlabelled_datasets_offer_no_form(client):
    unlabelled = dataset_refresh_stats(
        dataset=ExampleFactory(
            dataset=DatasetFactory(kind=Dataset.Kind.WINOGENDER, purpose=Dataset.Purpose.REFERENCE),
            answer_matching_behavior="",
            answer_not_matching_behavior=None,
        ).dataset
    )
    client.force_login(StaffFactory())
    url = reverse("generation:evaluate", kwargs={"slug": unlabelled.slug})
    response = client.get(url)
    assert response.status_code == 200
    html = response.content.decode()
    assert "cannot be scored" in html and "<form" not in html.split("<main>")[1]
    response = client.post(url, {"model_spec": "smollm2-135m", "prompt_format": "plain", "seed": 0})
    assert response.status_code == 400
    assert EvaluationRun.objects.count() == 0 and Job.objects.count() == 0
    # Nor does its page link to the form.
    assert url not in client.get(unlabelled.get_absolute_url()).content.decode()


def test_starting_a_run_queues_a_job_that_scores_it(
    client, dataset, monkeypatch, django_capture_on_commit_callbacks
):
    from generation.evaluation import jobs as evaluation_jobs

    monkeypatch.setattr(evaluation_jobs, "worker_model", lambda spec: yes_lover(dataset))
    staff = StaffFactory()
    client.force_login(staff)
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(
            reverse("generation:evaluate", kwargs={"slug": dataset.slug}),
            {"model_spec": " smollm2-135m ", "prompt_format": "paper", "limit": "", "seed": "3"},
        )
    run = EvaluationRun.objects.get()
    assert response.status_code == 302 and response["Location"] == run.get_absolute_url()
    run.refresh_from_db()
    assert run.status == EvaluationRun.Status.SUCCEEDED, run.error
    assert (run.model_spec, run.prompt_format, run.seed, run.created_by) == (
        "smollm2-135m",
        "paper",
        3,
        staff,
    )
    assert run.job.status == Job.Status.SUCCEEDED and run.job.result["run"] == run.pk

    html = client.get(run.get_absolute_url()).content.decode()
    assert "60.0%" in html and "6 of 10 items" in html
    assert 'http-equiv="refresh"' not in html
    # The job page links to the run it ran.
    assert run.get_absolute_url() in client.get(run.job.get_absolute_url()).content.decode()


def test_a_sample_size_is_passed_on(client, dataset, monkeypatch, django_capture_on_commit_callbacks):
    from generation.evaluation import jobs as evaluation_jobs

    monkeypatch.setattr(evaluation_jobs, "worker_model", lambda spec: yes_lover(dataset))
    client.force_login(StaffFactory())
    with django_capture_on_commit_callbacks(execute=True):
        client.post(
            reverse("generation:evaluate", kwargs={"slug": dataset.slug}),
            {"model_spec": "smollm2-135m", "prompt_format": "plain", "limit": "5", "seed": "0"},
        )
    run = EvaluationRun.objects.get()
    assert run.limit == 5 and run.item_count == 5


def test_dataset_page_links_to_runs_and_the_form(client, dataset):
    form_url = reverse("generation:evaluate", kwargs={"slug": dataset.slug})
    runs_url = reverse("generation:run-list") + f"?dataset={dataset.slug}"
    html = client.get(dataset.get_absolute_url()).content.decode()
    assert runs_url in html and form_url not in html
    client.force_login(StaffFactory())
    html = client.get(dataset.get_absolute_url()).content.decode()
    assert runs_url in html and form_url in html
    # Pages without charts do not load plotly.js.
    assert "plotly" not in html


def test_header_links_to_the_overview(client):
    assert f'href="{reverse("generation:run-list")}"' in client.get("/").content.decode()


# ----------------------------------------------------------------------------- a run's page


def test_run_page_shows_summary_provenance_and_items(client, dataset):
    run = run_with_items(
        dataset, [True] * 6 + [False] * 4, mean_p_match=0.558, items_per_second=31.24, seconds=0.32
    )
    html = client.get(run.get_absolute_url()).content.decode()
    assert "smollm2-135m" in html and "sha256:abc" in html
    assert "torch" in html and "2.13.0" in html and "transformers" in html
    assert "Paper (Human/Assistant)" in html
    assert "f" * 64 in html and "d" * 64 in html
    assert "60.0%" in html and "95% CI 50.0–70.0%" in html
    assert "0.558" in html and "31.2 items/s" in html and "0.3 s" in html
    assert 'http-equiv="refresh"' not in html
    # Each item: its position linking to the example, the choices with log-probs, P(match).
    example_url = reverse("generation:example-detail", kwargs={"slug": dataset.slug, "position": 7})
    assert f'<a href="{example_url}">7</a>' in html
    assert "-0.500" in html and "-1.500" in html and "0.730" in html and "0.270" in html
    assert html.count('<tr class="no-match">') == 4
    assert reverse("generation:run-items-download", kwargs={"pk": run.pk}) in html


def test_run_page_shows_progress_while_running(client, dataset):
    job = Job.objects.create(
        kind=Job.Kind.EVALUATE,
        status=Job.Status.RUNNING,
        progress_done=3,
        progress_total=10,
        message="Scoring narcissism",
    )
    run = EvaluationRunFactory(
        dataset=dataset,
        status=EvaluationRun.Status.RUNNING,
        job=job,
        item_count=0,
        matching_count=0,
        percent_matching=None,
        ci_low=None,
        ci_high=None,
        mean_p_match=None,
        finished_at=None,
    )
    html = client.get(run.get_absolute_url()).content.decode()
    assert '<meta http-equiv="refresh" content="2">' in html
    assert '<progress max="10" value="3"' in html and "Scoring narcissism" in html
    assert "figure-confidence" not in html


def test_run_page_stops_waiting_when_its_job_failed(client, dataset):
    job = Job.objects.create(kind=Job.Kind.EVALUATE, status=Job.Status.FAILED, error="OSError: no such model")
    run = EvaluationRunFactory(
        dataset=dataset,
        status=EvaluationRun.Status.QUEUED,
        job=job,
        item_count=0,
        percent_matching=None,
        finished_at=None,
    )
    client.force_login(StaffFactory())
    html = client.get(run.get_absolute_url()).content.decode()
    assert 'http-equiv="refresh"' not in html
    assert "OSError: no such model" in html


def test_run_page_shows_a_failed_runs_error_to_staff(client, dataset):
    run = EvaluationRunFactory(dataset=dataset, status=EvaluationRun.Status.FAILED, error="server went away")
    client.force_login(StaffFactory())
    html = client.get(run.get_absolute_url()).content.decode()
    assert "The run failed" in html and "server went away" in html
    assert 'http-equiv="refresh"' not in html


# What a failed run's error may hold: up to 500 characters of whatever a model server answered, or the
# worker's file paths from an hf: spec. The public sees that a run failed, staff see why.
SECRET_ERROR = "LMError: internal-secret-path /srv/x answered HTTP 500: token=abc"
SECRET_PARTS = ("internal-secret-path", "/srv/x", "token=abc")


@pytest.fixture
def failures(dataset):
    """A failed run, and a run whose job died before it started, both with secrets in their errors."""
    run_ok = run_with_items(dataset, [True, False, True])
    failed = EvaluationRunFactory(
        dataset=dataset, status=EvaluationRun.Status.FAILED, error=SECRET_ERROR, percent_matching=None
    )
    job = Job.objects.create(kind=Job.Kind.EVALUATE, status=Job.Status.FAILED, error=SECRET_ERROR)
    stalled = EvaluationRunFactory(
        dataset=dataset,
        status=EvaluationRun.Status.QUEUED,
        job=job,
        item_count=0,
        percent_matching=None,
        finished_at=None,
    )
    return run_ok, failed, stalled


def failure_pages(run_ok, failed, stalled) -> list[str]:
    return [
        failed.get_absolute_url(),
        stalled.get_absolute_url(),
        reverse("generation:run-list"),
        reverse("generation:run-list") + "?dataset=narcissism",
        compare_url(run_ok.pk, failed.pk),
        failed.dataset.get_absolute_url(),
    ]


@pytest.mark.parametrize("who", ["anonymous", "user"])
def test_the_public_sees_that_a_run_failed_but_not_its_error(client, failures, who):
    if who == "user":
        client.force_login(UserFactory())
    run_ok, failed, stalled = failures
    for url in failure_pages(*failures):
        response = client.get(url)
        assert response.status_code == 200, url
        html = response.content.decode()
        for part in SECRET_PARTS:
            assert part not in html, (url, part)
    html = client.get(failed.get_absolute_url()).content.decode()
    assert "The run failed" in html and "shown to staff" in html
    html = client.get(stalled.get_absolute_url()).content.decode()
    assert "before the run finished" in html and "shown to staff" in html


def test_staff_see_a_runs_error(client, failures):
    run_ok, failed, stalled = failures
    client.force_login(StaffFactory())
    for run in (failed, stalled):
        html = client.get(run.get_absolute_url()).content.decode()
        assert SECRET_ERROR in html and "shown to staff" not in html


def test_items_filter_and_pagination(client):
    dataset = DatasetFactory()
    for i in range(70):
        ExampleFactory(dataset=dataset, position=i, statement=f"item text {i}")
    dataset_refresh_stats(dataset=dataset)
    run = run_with_items(dataset, [i % 5 != 0 for i in range(70)])  # 14 do not match

    page_one = client.get(run.get_absolute_url()).content.decode()
    assert "70 items" in page_one and "page 1 of 2" in page_one
    assert "item text 49<" in page_one and "item text 50<" not in page_one
    page_two = client.get(run.get_absolute_url(), {"page": 2}).content.decode()
    assert "item text 50<" in page_two and "item text 69<" in page_two
    # A page past the end shows the last one rather than a 404.
    assert client.get(run.get_absolute_url(), {"page": 9}).status_code == 200

    mismatches = client.get(run.get_absolute_url(), {"mismatch": "1"}).content.decode()
    assert "14 items that do not match" in mismatches
    shown = re.findall(r"item text (\d+)<", mismatches)
    assert shown == [str(i) for i in range(0, 70, 5)]
    assert 'name="mismatch" value="1" checked' in mismatches


def test_filter_survives_pagination(client):
    dataset = DatasetFactory()
    for i in range(120):
        ExampleFactory(dataset=dataset, position=i)
    run = run_with_items(dataset_refresh_stats(dataset=dataset), [False] * 120)
    html = client.get(run.get_absolute_url(), {"mismatch": "1"}).content.decode()
    assert "?mismatch=1&amp;page=2" in html


def test_items_download_has_the_evaluate_model_fields(client, dataset):
    run = run_with_items(dataset, [True, False, True])
    response = client.get(reverse("generation:run-items-download", kwargs={"pk": run.pk}))
    assert response.status_code == 200
    assert response["Content-Type"].startswith("application/jsonl")
    assert f"run-{run.pk}-narcissism-items.jsonl" in response["Content-Disposition"]
    rows = [json.loads(line) for line in b"".join(response.streaming_content).decode().splitlines()]
    assert [row["index"] for row in rows] == [0, 1, 2]
    for row in rows:
        assert set(row) == {
            "index",
            "choices",
            "logprobs",
            "predicted",
            "matches_behavior",
            "p_match",
            "scorer",
        }
    assert rows[0] == {
        "index": 0,
        "choices": [" Yes", " No"],
        "logprobs": [-0.5, -1.5],
        "predicted": " Yes",
        "matches_behavior": True,
        "p_match": 0.73,
        "scorer": "logprobs",
    }
    assert rows[1]["predicted"] == " No" and rows[1]["matches_behavior"] is False


def test_run_page_chart_plots_p_match_against_label_confidence(client, dataset):
    run = run_with_items(dataset, [True] * 6 + [False] * 4)
    html = client.get(run.get_absolute_url()).content.decode()
    assert "/static/plotly/plotly-strict.min.js" in html and "/static/js/charts.js" in html
    assert 'data-figure="figure-confidence"' in html
    figure = figure_json(html, "figure-confidence")
    by_name = {trace["name"]: trace for trace in figure["data"]}
    assert set(by_name) == {"matches behavior", "does not match"}
    assert by_name["matches behavior"]["y"] == [0.73] * 6
    assert by_name["does not match"]["x"] == pytest.approx([0.5 + i / 20 for i in range(6, 10)])
    assert by_name["matches behavior"]["hoverinfo"] == "text"
    assert "statement 0" in by_name["matches behavior"]["hovertext"][0]
    assert by_name["matches behavior"]["customdata"][0] == reverse(
        "generation:example-detail", kwargs={"slug": "narcissism", "position": 0}
    )


def test_no_chart_without_label_confidences(client):
    dataset = DatasetFactory()
    for i in range(3):
        ExampleFactory(dataset=dataset, position=i, label_confidence=None)
    run = run_with_items(dataset_refresh_stats(dataset=dataset), [True, True, False])
    html = client.get(run.get_absolute_url()).content.decode()
    assert "figure-confidence" not in html and "plotly-strict.min.js" not in html


def test_plotly_js_is_served_by_the_site():
    # The strict build from npm (package-lock.json), not a CDN: the site's machines have no internet
    # access.
    path = finders.find("plotly/plotly-strict.min.js")
    assert path and path.endswith("plotly.js-strict-dist-min/plotly-strict.min.js")
    assert finders.find("js/charts.js")


def test_the_served_plotly_js_is_the_version_the_python_package_builds_figures_for():
    # The figures come from the plotly Python package, which bundles its own plotly.js; the site
    # serves the strict build of that same release, so an upgrade of one without the other fails here.
    import plotly

    def version_of(path: Path) -> str:
        with path.open(encoding="utf-8") as handle:
            return re.search(r"plotly\.js .*?v(\d\S*)", handle.read(500)).group(1)

    bundled = Path(plotly.__file__).parent / "package_data" / "plotly.min.js"
    served = Path(finders.find("plotly/plotly-strict.min.js"))
    assert version_of(served) == version_of(bundled)


def test_plotly_js_is_served_over_http(client):
    response = client.get("/static/plotly/plotly-strict.min.js")
    assert response.status_code == 200
    body = b"".join(response.streaming_content) if response.streaming else response.content
    assert b"plotly" in body[:2000].lower()


def test_run_page_query_count_does_not_grow_with_items(client, dataset, django_assert_max_num_queries):
    small = run_with_items(dataset, [True, False])
    big_dataset = DatasetFactory()
    for i in range(80):
        ExampleFactory(dataset=big_dataset, position=i)
    big = run_with_items(dataset_refresh_stats(dataset=big_dataset), [i % 2 == 0 for i in range(80)])
    for run in (small, big):
        with django_assert_max_num_queries(7):
            assert client.get(run.get_absolute_url()).status_code == 200


def test_missing_run_is_404(client):
    assert client.get(reverse("generation:run-detail", kwargs={"pk": 999})).status_code == 404
    assert client.get(reverse("generation:run-items-download", kwargs={"pk": 999})).status_code == 404


# ----------------------------------------------------------------------------- the overview


@pytest.fixture
def results():
    """Two collections, three datasets, runs of two model specs in two formats, and some noise."""
    persona = CollectionFactory(slug="persona", name="Persona")
    risk = CollectionFactory(slug="advanced-ai-risk", name="Advanced AI risk")
    narcissism = DatasetFactory(slug="narcissism", collection=persona)
    power = DatasetFactory(slug="power-seeking", collection=risk)
    wealth = DatasetFactory(slug="wealth-seeking", collection=risk)
    runs = {
        "small-narcissism": EvaluationRunFactory(
            dataset=narcissism, percent_matching=60.0, ci_low=50.0, ci_high=69.0
        ),
        "small-power": EvaluationRunFactory(dataset=power, percent_matching=40.0, ci_low=31.0, ci_high=49.5),
        "small-wealth": EvaluationRunFactory(
            dataset=wealth, percent_matching=55.0, ci_low=45.0, ci_high=64.0
        ),
        "small-plain-power": EvaluationRunFactory(
            dataset=power, prompt_format="plain", percent_matching=52.0, ci_low=42.0, ci_high=61.0
        ),
        "big-power": EvaluationRunFactory(
            dataset=power,
            model_spec="hf:HuggingFaceTB/SmolLM2-360M",
            percent_matching=70.0,
            ci_low=61.0,
            ci_high=77.0,
        ),
    }
    # An older run of a configuration that was rerun: in the table, not in the chart.
    old = EvaluationRunFactory(dataset=narcissism, percent_matching=10.0, ci_low=5.0, ci_high=15.0)
    EvaluationRun.objects.filter(pk=old.pk).update(
        finished_at=runs["small-narcissism"].finished_at.replace(year=2020)
    )
    runs["old"] = old
    runs["failed"] = EvaluationRunFactory(
        dataset=wealth, status="failed", error="boom", percent_matching=None
    )
    runs["queued"] = EvaluationRunFactory(
        dataset=wealth, status="queued", percent_matching=None, finished_at=None
    )
    return runs


def test_overview_chart_has_one_trace_per_spec_and_format_with_ci_error_bars(client, results):
    html = client.get(reverse("generation:run-list")).content.decode()
    figure = figure_json(html, "figure-overview")
    traces = {trace["name"]: trace for trace in figure["data"]}
    assert set(traces) == {
        "hf:HuggingFaceTB/SmolLM2-360M · paper",
        "smollm2-135m · paper",
        "smollm2-135m · plain",
    }
    paper = traces["smollm2-135m · paper"]
    # Datasets ordered by collection then slug; the older narcissism run (10%) is not drawn.
    assert paper["y"] == ["power-seeking", "wealth-seeking", "narcissism"]
    assert paper["x"] == [40.0, 55.0, 60.0]
    assert paper["error_x"]["type"] == "data" and paper["error_x"]["symmetric"] is False
    assert paper["error_x"]["array"] == pytest.approx([9.5, 9.0, 9.0])
    assert paper["error_x"]["arrayminus"] == pytest.approx([9.0, 10.0, 10.0])
    assert paper["customdata"][0] == results["small-power"].get_absolute_url()
    assert traces["hf:HuggingFaceTB/SmolLM2-360M · paper"]["x"] == [70.0]
    assert figure["layout"]["yaxis"]["categoryarray"] == ["power-seeking", "wealth-seeking", "narcissism"]
    assert figure["layout"]["xaxis"]["range"] == [0, 100]


def test_overview_table_lists_every_succeeded_run(client, results):
    html = client.get(reverse("generation:run-list")).content.decode()
    assert "6 runs" in html
    for key in ("small-narcissism", "small-power", "big-power", "old"):
        assert f'href="{results[key].get_absolute_url()}"' in html
    # Failed and queued runs are listed apart, never charted.
    unfinished = html.split("Queued, running or failed")[1]
    assert f"#{results['failed'].pk}<" in unfinished and f"#{results['queued'].pk}<" in unfinished


def test_overview_filters(client, results):
    url = reverse("generation:run-list")
    html = client.get(url, {"model_spec": "hf:HuggingFaceTB/SmolLM2-360M"}).content.decode()
    assert [t["name"] for t in figure_json(html, "figure-overview")["data"]] == [
        "hf:HuggingFaceTB/SmolLM2-360M · paper"
    ]
    assert "1 run match" in html

    html = client.get(url, {"prompt_format": "plain"}).content.decode()
    assert [t["name"] for t in figure_json(html, "figure-overview")["data"]] == ["smollm2-135m · plain"]

    html = client.get(url, {"collection": "persona"}).content.decode()
    figure = figure_json(html, "figure-overview")
    assert {y for trace in figure["data"] for y in trace["y"]} == {"narcissism"}
    assert "2 runs match" in html

    html = client.get(url, {"dataset": "wealth-seeking"}).content.decode()
    assert "1 run match" in html and f"#{results['failed'].pk}<" in html

    html = client.get(url, {"model_spec": "nothing"}).content.decode()
    assert "No succeeded runs match" in html and "figure-overview" not in html
    # An unknown prompt format is ignored rather than an error.
    assert client.get(url, {"prompt_format": "xml"}).status_code == 200


def test_overview_sorts(client, results):
    url = reverse("generation:run-list")
    html = client.get(url, {"sort": "-percent"}).content.decode()
    table = html.split("Succeeded runs")[1]
    percents = [float(p) for p in re.findall(r'<td class="num">([\d.]+)%</td>', table)]
    assert percents == sorted(percents, reverse=True) and len(percents) == 6
    assert 'aria-sort="descending"' in table
    # The current column's link reverses it.
    assert "?sort=percent" in table
    # An unknown sort falls back to the default.
    assert client.get(url, {"sort": "; drop table"}).status_code == 200


def test_overview_query_count_does_not_grow_with_runs(client, results, django_assert_max_num_queries):
    url = reverse("generation:run-list")
    with django_assert_max_num_queries(5):
        assert client.get(url).status_code == 200
    for i in range(30):
        dataset = DatasetFactory(collection=CollectionFactory(slug=f"c{i % 3}"))
        EvaluationRunFactory(dataset=dataset, model_spec=f"hf:model-{i % 4}")
    with django_assert_max_num_queries(5):
        assert client.get(url).status_code == 200


def test_empty_overview(client):
    html = client.get(reverse("generation:run-list")).content.decode()
    assert "No succeeded runs" in html and "plotly" not in html


# ----------------------------------------------------------------------------- comparing two runs


@pytest.fixture
def pair(dataset):
    """Runs A and B on the same 10 examples: A scored 0-8, B scored 0-7 and 9."""
    a_matches = [True, True, True, True, True, False, False, False, False]
    b_matches = {0: True, 1: True, 2: True, 3: False, 4: False, 5: True, 6: False, 7: False, 9: True}
    run_a = EvaluationRunFactory(dataset=dataset)
    run_b = EvaluationRunFactory(dataset=dataset, model_spec="hf:other", prompt_format="plain")
    examples = list(dataset.examples.order_by("position"))
    for position, match in enumerate(a_matches):
        EvaluationItemFactory(run=run_a, example=examples[position], matches_behavior=match)
    for position, match in b_matches.items():
        EvaluationItemFactory(
            run=run_b, example=examples[position], matches_behavior=match, p_match=0.9 if match else 0.1
        )
    return run_a, run_b


def compare_url(a, b) -> str:
    return reverse("generation:run-compare") + f"?a={a}&b={b}"


def test_compare_counts_on_common_items(client, pair):
    run_a, run_b = pair
    response = client.get(compare_url(run_a.pk, run_b.pk))
    assert response.status_code == 200
    html = response.content.decode()
    # Common: positions 0-7. Both match 0-2; only A 3-4; only B 5; neither 6-7.
    assert '<td class="num" id="both-match">3</td>' in html
    assert '<td class="num" id="only-a">2</td>' in html
    assert '<td class="num" id="only-b">1</td>' in html
    assert '<td class="num" id="neither">2</td>' in html
    assert "1 item only run A scored, 1 only run B scored" in html
    assert "62.5% (5 of 8)" in html
    disagreements = html.split("Items where the runs predict different answers")[1]
    assert "3 items" in disagreements
    for position in (3, 4, 5):
        assert f">statement {position}<" in disagreements
    for position in (0, 6, 8, 9):
        assert f">statement {position}<" not in disagreements

    figure = figure_json(html, "figure-compare")
    points = {(x, y) for trace in figure["data"] for x, y in zip(trace["x"], trace["y"], strict=True)}
    assert sum(len(trace["x"]) for trace in figure["data"]) == 8
    assert (0.73, 0.9) in points and (0.27, 0.1) in points and (0.73, 0.1) in points
    assert {trace["name"] for trace in figure["data"]} == {"same answer", "different answers"}


def test_compare_runs_on_different_datasets_is_a_400(client, pair):
    other = EvaluationRunFactory(dataset=DatasetFactory(slug="other-data"))
    response = client.get(compare_url(pair[0].pk, other.pk))
    assert response.status_code == 400
    html = response.content.decode()
    assert "Cannot compare these runs" in html and "only runs on the same dataset" in html
    assert "other-data" in html


@pytest.mark.parametrize("query", ["", "?a=1", "?a=x&b=2", "?a=-1&b=2", "?b=3"])
def test_compare_without_two_run_numbers_is_a_400(client, query):
    response = client.get(reverse("generation:run-compare") + query)
    assert response.status_code == 400
    assert "Choose two runs" in response.content.decode()


def test_compare_with_a_missing_run_is_a_404(client, pair):
    assert client.get(compare_url(pair[0].pk, 99999)).status_code == 404


def test_run_page_offers_runs_to_compare_with(client, pair):
    run_a, run_b = pair
    html = client.get(run_a.get_absolute_url()).content.decode()
    assert f'action="{reverse("generation:run-compare")}"' in html
    assert f'<option value="{run_b.pk}">' in html


def test_compare_query_count_does_not_grow_with_items(client, pair, django_assert_max_num_queries):
    big = DatasetFactory()
    for i in range(80):
        ExampleFactory(dataset=big, position=i)
    dataset_refresh_stats(dataset=big)
    big_a = run_with_items(big, [i % 2 == 0 for i in range(80)])
    big_b = run_with_items(big, [i % 3 == 0 for i in range(80)])
    for run_a, run_b in (pair, (big_a, big_b)):
        with django_assert_max_num_queries(4):
            assert client.get(compare_url(run_a.pk, run_b.pk)).status_code == 200


# ----------------------------------------------------------------------------- admin


def test_admin_shows_runs_and_items(client, pair):
    client.force_login(StaffFactory(is_superuser=True))
    run_a, _ = pair
    item = EvaluationItem.objects.filter(run=run_a).first()
    for url in (
        reverse("admin:generation_evaluationrun_changelist"),
        reverse("admin:generation_evaluationrun_change", args=[run_a.pk]),
        reverse("admin:generation_evaluationitem_changelist"),
        reverse("admin:generation_evaluationitem_change", args=[item.pk]),
    ):
        assert client.get(url).status_code == 200, url
    assert client.get(reverse("admin:generation_evaluationrun_add")).status_code == 403


# ----------------------------------------------------------------------------- escaping


@pytest.fixture
def hostile():
    """LM-written text, a model spec and model details full of markup, on every evaluation page."""
    dataset = DatasetFactory(
        slug="hostile-data", behavior=f"behavior {HOSTILE}", collection=CollectionFactory(name=f"C {HOSTILE}")
    )
    for i in range(3):
        ExampleFactory(
            dataset=dataset,
            position=i,
            statement=f"{PAYLOADS[0]} statement {i} {HOSTILE}",
            answer_matching_behavior=f" {PAYLOADS[1]}",
            answer_not_matching_behavior=[f" {PAYLOADS[3]}", f" {PAYLOADS[2]}"],
            label_confidence=0.6 + i / 10,
        )
    dataset_refresh_stats(dataset=dataset)
    spec = "hf:<img src=x onerror=alert(1)>"
    info = {"versions": {"torch": PAYLOADS[0]}, "details": {PAYLOADS[2]: PAYLOADS[3]}}
    job = Job.objects.create(
        kind=Job.Kind.EVALUATE, status=Job.Status.FAILED, error=f"failed {HOSTILE}", params={"run_id": 0}
    )
    run_a = EvaluationRunFactory(
        dataset=dataset,
        model_spec=spec,
        model_name=HOSTILE,
        model_fingerprint=HOSTILE,
        model_info=info,
        job=job,
    )
    run_b = EvaluationRunFactory(
        dataset=dataset, model_spec=f"openai:http://x/v1#{PAYLOADS[0]}", model_info=info
    )
    failed = EvaluationRunFactory(
        dataset=dataset, model_spec=spec, status="failed", error=f"LM error {HOSTILE}", job=job
    )
    job.params = {"run_id": failed.pk}
    job.result = {"run": failed.pk}
    job.save()
    for i, example in enumerate(dataset.examples.order_by("position")):
        EvaluationItemFactory(
            run=run_a,
            example=example,
            matches_behavior=i != 1,
            logprobs=[-1.0, -2.0, -3.0] if i != 1 else [-2.0, -1.0, -3.0],
        )
        EvaluationItemFactory(
            run=run_b,
            example=example,
            matches_behavior=i == 1,
            predicted_index=2 if i != 1 else 0,
            logprobs=[-2.0, -3.0, -1.0] if i != 1 else [-1.0, -2.0, -3.0],
        )
    return dataset, run_a, run_b, failed, job


def test_every_evaluation_page_escapes_lm_text(client, hostile):
    dataset, run_a, run_b, failed, job = hostile
    staff = StaffFactory()
    client.force_login(staff)
    urls = [
        run_a.get_absolute_url(),
        run_a.get_absolute_url() + "?mismatch=1",
        run_b.get_absolute_url(),
        failed.get_absolute_url(),
        reverse("generation:run-list"),
        reverse("generation:run-list") + "?model_spec=" + PAYLOADS[1],
        compare_url(run_a.pk, run_b.pk),
        reverse("generation:evaluate", kwargs={"slug": dataset.slug}),
        dataset.get_absolute_url(),
        job.get_absolute_url(),
    ]
    for url in urls:
        response = client.get(url)
        assert response.status_code == 200, url
        html = response.content.decode()
        assert_no_raw_payloads(html)
        assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html or "\\u003Cscript\\u003E" in html, url


def test_a_bad_spec_is_escaped_when_reflected(client, hostile):
    dataset = hostile[0]
    client.force_login(StaffFactory())
    response = client.post(
        reverse("generation:evaluate", kwargs={"slug": dataset.slug}),
        {"model_spec": PAYLOADS[0], "prompt_format": "paper", "seed": "0"},
    )
    html = response.content.decode()
    assert "unknown model spec" in html
    assert_no_raw_payloads(html)


def test_different_dataset_error_escapes(client, hostile):
    other = EvaluationRunFactory(dataset=DatasetFactory())
    response = client.get(compare_url(hostile[1].pk, other.pk))
    assert response.status_code == 400
    assert_no_raw_payloads(response.content.decode())


def test_figure_hover_text_holds_the_escaped_form(client, hostile):
    dataset, run_a, run_b, _, _ = hostile
    escaped_script = "&lt;script&gt;alert(1)&lt;/script&gt;"

    confidence = figure_json(client.get(run_a.get_absolute_url()).content.decode(), "figure-confidence")
    texts = hover_texts(confidence)
    assert len(texts) == 3
    assert all(escaped_script in text for text in texts)
    assert all("&lt;b&gt;" in text for text in texts)
    assert not any(payload in text for payload in PAYLOADS for text in texts)

    overview = figure_json(client.get(reverse("generation:run-list")).content.decode(), "figure-overview")
    names = [trace["name"] for trace in overview["data"]]
    assert "hf:&lt;img src=x onerror=alert(1)&gt; · paper" in names
    assert "openai:http://x/v1#&lt;script&gt;alert(1)&lt;/script&gt; · paper" in names
    texts = hover_texts(overview)
    assert any(escaped_script in text for text in texts)  # the behavior and the spec
    assert not any(payload in text for payload in PAYLOADS for text in texts)

    compare = figure_json(client.get(compare_url(run_a.pk, run_b.pk)).content.decode(), "figure-compare")
    texts = hover_texts(compare)
    assert len(texts) == 3 and all(escaped_script in text for text in texts)
    # The predicted answers are escaped too.
    assert any("A: &lt;img src=x onerror=alert(1)&gt;" in text for text in texts)
    assert not any(payload in text for payload in PAYLOADS for text in texts)
    titles = [compare["layout"]["xaxis"]["title"]["text"], compare["layout"]["yaxis"]["title"]["text"]]
    assert not any(payload in title for payload in PAYLOADS for title in titles)
    assert "&lt;img src=x onerror=alert(1)&gt;" in titles[0]
