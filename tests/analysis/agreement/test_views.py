"""The researchers' agreement pages: access, sorting, toggles, escaping of untrusted text, exports and
a query count that does not grow with the number of datasets."""

import csv
import io
import json

import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from analysis.agreement import selectors
from analysis.agreement.selectors import RatingOptions
from annotation.models import Worker
from annotation.services.projects import project_create
from annotation.services.workers import worker_set_excluded
from tests.analysis.builders import examples_create, rate, rated_project
from tests.builders import CollectionFactory, DatasetFactory, StaffFactory, UserFactory

pytestmark = pytest.mark.django_db

XSS = '<script>alert("x")</script>'


@pytest.fixture(autouse=True)
def few_resamples(settings):
    settings.ANALYSIS_BOOTSTRAP_REPLICATES = 50


@pytest.fixture
def staff_client():
    client = Client()
    client.force_login(StaffFactory())
    return client


@pytest.fixture
def project():
    """Datasets 'calm' (everyone agrees: kappa undefined) and 'split' (workers disagree), and an
    advanced-ai-risk pair."""
    collection = CollectionFactory(slug="persona", name="Persona")
    calm = DatasetFactory(slug="calm", collection=collection, behavior="calm behavior")
    split = DatasetFactory(slug="split", collection=collection, behavior="split behavior")
    risk = CollectionFactory(slug="advanced-ai-risk", name="Advanced AI risk")
    human = DatasetFactory(slug="power-human", behavior="power", category="Human-written", collection=risk)
    lm = DatasetFactory(slug="power-lm", behavior="power", category="LM-written", collection=risk)
    for dataset in (calm, split, human, lm):
        examples_create(dataset, 4)
    project = project_create(name="Crowd", slug="crowd", datasets=[calm, split, human, lm], overlap=3)
    rows = []
    for position in range(4):
        for worker in ("w1", "w2", "w3"):
            rows.append(("calm", position, worker, 5, True, False))
            rows.append(("power-lm", position, worker, 4, position != 0 or worker != "w1", False))
            rows.append(
                ("power-human", position, worker, 3 + (worker == "w2"), worker != "w3", worker == "w2")
            )
        rows.append(("split", position, "w1", 2, True, False))
        rows.append(("split", position, "w2", 4, position % 2 == 0, True))
        rows.append(("split", position, "w3", 5, False, position == 1))
    rate(project, rows)
    return project


def dashboard(client, project, **params):
    return client.get(reverse("analysis:dashboard", args=[project.slug]), params)


def all_urls(project):
    slug = project.slug
    return [
        reverse("analysis:project-list"),
        reverse("analysis:dashboard", args=[slug]),
        reverse("analysis:figures-csv", args=[slug]),
        reverse("analysis:figures-json", args=[slug]),
        reverse("analysis:pooled", args=[slug]),
        reverse("analysis:pooled-json", args=[slug]),
        reverse("analysis:pooled-examples", args=[slug]),
        reverse("analysis:collection", args=[slug, "persona"]),
        reverse("analysis:collection-json", args=[slug, "persona"]),
        reverse("analysis:collection-examples", args=[slug, "persona"]),
        reverse("analysis:dataset", args=[slug, "split"]),
        reverse("analysis:dataset-json", args=[slug, "split"]),
        reverse("analysis:dataset-examples", args=[slug, "split"]),
    ]


def test_only_staff_see_the_pages_and_exports(project, staff_client):
    anonymous = Client()
    worker = Client()
    worker.force_login(UserFactory())
    for url in all_urls(project):
        assert anonymous.get(url).status_code == 302, url  # to the login page
        assert worker.get(url).status_code == 403, url
        assert staff_client.get(url).status_code == 200, url


def test_unknown_project_dataset_or_collection_is_404(project, staff_client):
    other = DatasetFactory(slug="elsewhere")
    for url in (
        reverse("analysis:dashboard", args=["nope"]),
        reverse("analysis:dataset", args=["crowd", "nope"]),
        reverse("analysis:dataset", args=["crowd", other.slug]),
        reverse("analysis:collection", args=["crowd", other.collection.slug]),
        reverse("analysis:dataset-json", args=["crowd", other.slug]),
    ):
        assert staff_client.get(url).status_code == 404, url


def test_dashboard_shows_every_dataset_and_says_why_a_figure_is_undefined(project, staff_client):
    page = dashboard(staff_client, project)
    content = page.content.decode()
    assert [row["group"].slug for row in page.context["rows"]] == ["power-human", "power-lm", "calm", "split"]
    assert "undefined" in content
    assert "every rating is “label correct”, so the chance agreement is 1 and kappa is 0/0" in content
    assert "every recorded answer is “Yes”, so the chance agreement is 1 and kappa is 0/0" in content
    # The paper's kappa is the first figure, its definition on the page with the paper's wording.
    headers = [item["column"].label for item in page.context["columns"]]
    assert headers.index("Fleiss' κ (chosen answers)") < headers.index("κ on agree-with-label votes")
    assert content.index("Fleiss' κ (chosen answers)") < content.index("κ on agree-with-label votes")
    assert "How these are computed" in content
    assert (
        "What is the correct answer to this question? If it's ambiguous, make your best guess anyways."
        in content
    )
    assert 'data-figure="figure-relevance-multiples"' in content
    assert 'data-figure="figure-lm-human"' in content
    assert page.context["comparisons"][0]["comparison"].behavior == "power"
    report = selectors.project_report(project=project, options=RatingOptions(replicates=50))
    assert page.context["report"].pooled.figures == report.pooled.figures


def test_table_sorts_by_a_figure_with_undefined_last(project, staff_client):
    def order(**params):
        return [row["group"].slug for row in dashboard(staff_client, project, **params).context["rows"]]

    # calm: kappa undefined (everyone agrees); the others defined.
    for key in ("answer_kappa", "label_kappa"):
        ascending = order(sort=key)
        descending = order(sort=key, dir="desc")
        assert ascending[-1] == descending[-1] == "calm", key
        assert ascending[:-1] == list(reversed(descending[:-1])), key
    assert order(sort="relevance_mean", dir="desc")[0] == "calm"
    assert order(sort="nonsense") == order()
    page = dashboard(staff_client, project, sort="relevance_mean", dir="desc").content.decode()
    assert 'aria-sort="descending"' in page


def test_toggles_bring_back_gold_failing_and_excluded_workers(project, staff_client):
    worker_set_excluded(worker=Worker.objects.get(external_id="w3"), excluded=True, reason="spam")
    page = dashboard(staff_client, project)
    assert page.context["report"].pooled.figures.examples == 0
    assert "Left out: 1 worker excluded by a researcher (16 ratings)." in page.content.decode()
    included = dashboard(staff_client, project, include_excluded="1")
    assert included.context["report"].pooled.figures.examples == 16
    assert included.context["options"] == RatingOptions(include_excluded=True, replicates=50)
    gold = dashboard(staff_client, project, include_gold_failing="1", include_excluded="1")
    assert gold.context["options"] == RatingOptions(
        include_gold_failing=True, include_excluded=True, replicates=50
    )
    assert 'name="include_gold_failing" value="1" checked' in gold.content.decode()
    assert 'name="include_excluded" value="1" checked' in included.content.decode()


def test_group_pages_have_charts_dawid_skene_and_reasons(project, staff_client):
    page = staff_client.get(reverse("analysis:dataset", args=["crowd", "split"]))
    content = page.content.decode()
    for chart in ("figure-relevance", "figure-ambiguity", "figure-calibration"):
        assert f'data-figure="{chart}"' in content
    assert "Worker reliability" in content and "w1" in content
    assert content.index("What is the correct answer?") < content.index(
        "Does the chosen answer agree with the label?"
    )
    assert page.context["figures"].answers.options == ("Yes", "No")
    calm = staff_client.get(reverse("analysis:dataset", args=["crowd", "calm"])).content.decode()
    assert "every rating is “label correct”: there is no disagreement to model" in calm
    assert "every recorded answer is “Yes”, so the chance agreement is 1 and kappa is 0/0" in calm
    assert "every relevance rating is 5, so the expected disagreement is 0" in calm


def test_untrusted_text_is_escaped_in_pages_and_charts(staff_client):
    collection = CollectionFactory(slug="user-made", name=XSS)
    dataset = DatasetFactory(slug="xss", behavior=XSS, collection=collection, category=XSS)
    examples = examples_create(dataset, 3)
    for example in examples:
        example.statement = f'<img src=x onerror="alert(1)"> {example.position}'
        # A model-written answer option, shown on the group page and in the examples' answers.
        example.answer_matching_behavior = f" {XSS}"
        example.save()
    project = project_create(name=XSS, slug="xss-project", datasets=[dataset], overlap=3)
    rate(
        project,
        [("xss", p, w, 3, (p + i) % 2 == 0, False) for p in range(3) for i, w in enumerate([XSS, "b", "c"])],
    )
    for url in (
        reverse("analysis:dashboard", args=["xss-project"]),
        reverse("analysis:dataset", args=["xss-project", "xss"]),
        reverse("analysis:collection", args=["xss-project", "user-made"]),
        reverse("analysis:project-list"),
    ):
        content = staff_client.get(url).content.decode()
        assert XSS not in content, url
        assert "<img src=x" not in content, url
    dataset_page = staff_client.get(reverse("analysis:dataset", args=["xss-project", "xss"])).content.decode()
    assert "&lt;script&gt;" in dataset_page  # the worker's external id and the behavior, as text
    assert '<span class="tag">&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;</span>' in dataset_page
    # In the charts' JSON, Plotly would render tags in hover text: escaped before they go in.
    figure = json.loads(
        dataset_page.split('id="figure-calibration" type="application/json">')[1].split("</script>")[0]
    )
    hover = " ".join(str(t) for trace in figure["data"] for t in trace.get("hovertext", []))
    assert "&lt;img src=x" in hover and "<img" not in hover


def test_figures_csv_has_a_row_per_group_and_neutralises_formulas(project, staff_client):
    project_collection = CollectionFactory(slug="formula", name="=HYPERLINK(1)")
    dataset = DatasetFactory(slug="formula-data", collection=project_collection)
    examples_create(dataset, 2)
    project.datasets.add(dataset)
    rate(project, [("formula-data", 0, w, 3, True, False) for w in ("w1", "w2", "w3")])
    rate(project, [("formula-data", 1, w, 3, True, False) for w in ("w1", "w2")])
    response = staff_client.get(reverse("analysis:figures-csv", args=["crowd"]))
    assert response["Content-Disposition"] == 'attachment; filename="crowd-agreement.csv"'
    rows = list(csv.DictReader(io.StringIO(response.content.decode())))
    assert [(r["scope"], r["slug"]) for r in rows] == [
        ("pooled", "crowd"),
        ("collection", "formula"),  # ordered by name: "=HYPERLINK(1)" first
        ("collection", "advanced-ai-risk"),
        ("collection", "persona"),
        ("dataset", "formula-data"),
        ("dataset", "power-human"),
        ("dataset", "power-lm"),
        ("dataset", "calm"),
        ("dataset", "split"),
    ]
    formula_row = next(r for r in rows if r["slug"] == "formula")
    assert formula_row["name"] == "'=HYPERLINK(1)"
    report = selectors.project_report(project=project, options=RatingOptions(replicates=50))
    split = next(g for g in report.datasets if g.slug == "split").figures
    split_row = next(r for r in rows if r["slug"] == "split")
    assert float(split_row["answers_fleiss_kappa"]) == pytest.approx(split.answers.fleiss_kappa.value)
    assert float(split_row["answers_fleiss_kappa_ci_low"]) == pytest.approx(split.answers.fleiss_kappa.ci_low)
    assert split_row["answers_options"] == "Yes | No" and split_row["answers_excluded_examples"] == "0"
    assert float(split_row["agree_with_label_fleiss_kappa"]) == pytest.approx(split.label.fleiss_kappa.value)
    assert float(split_row["agree_with_label_fleiss_kappa_ci_low"]) == pytest.approx(
        split.label.fleiss_kappa.ci_low
    )
    assert float(split_row["relevance_mean"]) == pytest.approx(split.relevance_mean.value)
    # The paper's kappa comes before the secondary one.
    assert list(split_row).index("answers_fleiss_kappa") < list(split_row).index(
        "agree_with_label_fleiss_kappa"
    )
    calm_row = next(r for r in rows if r["slug"] == "calm")
    assert calm_row["agree_with_label_fleiss_kappa"] == ""
    assert "chance agreement is 1" in calm_row["agree_with_label_fleiss_kappa_undefined"]
    assert "every recorded answer is “Yes”" in calm_row["answers_fleiss_kappa_undefined"]
    assert (
        formula_row["excluded_examples"] == "1"
        and formula_row["excluded_reasons"] == "fewer than 3 ratings so far: 1"
    )


def test_figures_json_is_the_report_with_no_nan(project, staff_client):
    response = staff_client.get(reverse("analysis:figures-json", args=["crowd"]), {"include_excluded": "1"})
    document = json.loads(response.content, parse_constant=lambda name: pytest.fail(f"{name} in JSON"))
    report = selectors.project_report(
        project=project, options=RatingOptions(replicates=50, include_excluded=True)
    )
    assert document == json.loads(json.dumps(report.as_dict()))
    assert document["options"]["include_excluded"] is True
    calm = next(d for d in document["datasets"] if d["slug"] == "calm")
    assert calm["agree_with_label"]["fleiss_kappa"]["value"] is None
    assert "chance agreement is 1" in calm["agree_with_label"]["fleiss_kappa"]["undefined"]
    assert calm["answers"]["fleiss_kappa"]["value"] is None
    assert calm["answers"]["options"] == ["Yes", "No"] and calm["answers"]["examples"] == 4


def test_group_exports(project, staff_client):
    document = json.loads(staff_client.get(reverse("analysis:dataset-json", args=["crowd", "split"])).content)
    assert document["slug"] == "split" and document["project"] == "crowd"
    assert {w["worker"] for w in document["dawid_skene"]["workers"]} == {"w1", "w2", "w3"}
    assert sum(b["examples"] for b in document["calibration"]) == 4
    response = staff_client.get(reverse("analysis:collection-examples", args=["crowd", "persona"]))
    rows = list(csv.DictReader(io.StringIO(response.content.decode())))
    assert len(rows) == 8
    split0 = next(r for r in rows if r["dataset"] == "split" and r["position"] == "0")
    assert (split0["label_correct_votes"], split0["ambiguous_votes"], split0["majority_vote"]) == (
        "2",
        "1",
        "correct",
    )
    assert split0["answers"] == "Yes: 2; No: 1"
    assert split0["mean_relevance"] == str((2 + 4 + 5) / 3)


def test_dashboard_query_count_does_not_grow_with_150_datasets(staff_client):
    few = rated_project(datasets=2, examples=2, slug="few")
    many = rated_project(datasets=150, examples=2, slug="many", seed=1)

    def queries(project):
        with CaptureQueriesContext(connection) as context:
            response = dashboard(staff_client, project)
        assert response.status_code == 200
        return len(context.captured_queries), response

    few_count, _ = queries(few)
    many_count, response = queries(many)
    assert many_count == few_count
    assert len(response.context["rows"]) == 150
    for name in ("figures-json", "figures-csv", "pooled"):
        counts = []
        for project in (few, many):
            with CaptureQueriesContext(connection) as context:
                assert staff_client.get(reverse(f"analysis:{name}", args=[project.slug])).status_code == 200
            counts.append(len(context.captured_queries))
        # The pooled page reads the texts of the examples where Dawid-Skene and the majority differ,
        # in one query, only when there are such examples.
        assert counts[1] - counts[0] in ((0, 1) if name == "pooled" else (0,)), name
