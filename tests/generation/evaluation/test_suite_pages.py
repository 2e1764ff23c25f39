"""The suite pages: the list, a suite's dot plot and table with its filters and flags, a dataset's
size plot and trend, two models compared; their CSV and JSON exports; escaping of hostile dataset
and model text in the HTML and in the embedded figures; bad query parameters answer 400."""

import csv
import io
import json

import pytest
from django.urls import reverse

from generation.evaluation import suite_figures as figures
from generation.models import Dataset
from mwe_site.safe_csv import csv_uncell
from tests.builders import StaffFactory
from tests.generation.evaluation.suite_builders import SuiteModelPlan, by_share, persona_dataset, suite_build
from tests.generation.evaluation.test_views import HOSTILE, assert_no_raw_payloads, figure_json, hover_texts

pytestmark = pytest.mark.django_db

RISING = {100_000_000: 0.2, 1_000_000_000: 0.5, 10_000_000_000: 0.8}


def plans(shares=RISING, *, family="Fam"):
    return [
        SuiteModelPlan(
            spec=f"hf:test/{family.lower()}-{size}", parameters=size, family=family, matches=by_share(share)
        )
        for size, share in shares.items()
    ]


@pytest.fixture
def suite():
    power = persona_dataset(slug="power", n=100, direction=Dataset.Direction.UNDESIRED, category="risk")
    calm = persona_dataset(slug="calm", n=100, collection="advanced-ai-risk")
    models = plans()
    # calm: flat, each model half the items, a different half each.
    for shift, plan in enumerate(models):
        rising = plan.matches
        plan.matches = lambda slug, pos, rising=rising, shift=shift: (
            rising(slug, pos) if slug == "power" else (pos + 2 * shift) % 10 < 5
        )
    return suite_build(datasets=[power, calm], models=models, name="size sweep")


def test_the_list_links_each_suite(client, suite):
    response = client.get(reverse("generation:suite-list"))
    assert response.status_code == 200
    assert suite.get_absolute_url() in response.content.decode()
    assert "size sweep" in response.content.decode()


def test_the_suite_page_draws_the_dot_plot_and_shows_the_flag(client, suite):
    response = client.get(suite.get_absolute_url())
    html = response.content.decode()
    assert response.status_code == 200
    figure = figure_json(html, "figure-suite")
    assert [trace["name"] for trace in figure["data"]] == [p.spec for p in plans()]
    assert figure["data"][0]["y"] == ["calm", "power"]  # collections by name: Advanced Ai Risk first
    assert (
        figure["layout"]["shapes"][0]["x0"] == 50 and figure["layout"]["shapes"][0]["line"]["dash"] == "dash"
    )
    assert "inverse scaling" in html
    assert reverse("generation:suite-dataset", kwargs={"pk": suite.pk, "slug": "power"}) in html
    assert "clustered by example" in html


def test_filters_narrow_the_plot_and_the_table(client, suite):
    url = suite.get_absolute_url()
    html = client.get(url, {"direction": "undesired"}).content.decode()
    assert figure_json(html, "figure-suite")["data"][0]["y"] == ["power"]
    html = client.get(url, {"q": "CAL", "model": ["0", "2"]}).content.decode()
    figure = figure_json(html, "figure-suite")
    assert [t["name"] for t in figure["data"]] == [plans()[0].spec, plans()[2].spec]
    assert figure["data"][0]["y"] == ["calm"]
    html = client.get(url, {"collection": "persona", "category": "risk"}).content.decode()
    assert figure_json(html, "figure-suite")["data"][0]["y"] == ["power"]


@pytest.mark.parametrize(
    "params",
    [
        {"sort": "percent"},
        {"direction": "sideways"},
        {"model": "9"},
        {"model": "x"},
        {"model": ["0", "1", "2", "0"]},
        {"q": "x" * 201},
        {"collection": "nope"},
        {"format": "xml"},
        {"figure": "everything"},
    ],
)
def test_bad_parameters_answer_400(client, suite, params):
    response = client.get(suite.get_absolute_url(), params)
    assert response.status_code == 400
    assert "Bad query" in response.content.decode()


@pytest.mark.parametrize(
    "params", [{"a": "0", "b": "0"}, {"a": "7"}, {"a": "-1"}, {"b": "two"}, {"format": "pdf"}]
)
def test_bad_comparisons_answer_400(client, suite, params):
    response = client.get(reverse("generation:suite-compare", kwargs={"pk": suite.pk}), params)
    assert response.status_code == 400


def test_unknown_suite_or_dataset_is_404(client, suite):
    assert client.get(reverse("generation:suite-detail", kwargs={"pk": suite.pk + 99})).status_code == 404
    url = reverse("generation:suite-dataset", kwargs={"pk": suite.pk, "slug": "not-in-it"})
    assert client.get(url).status_code == 404


def test_the_dataset_page_draws_the_size_plot_and_states_the_test(client, suite):
    url = reverse("generation:suite-dataset", kwargs={"pk": suite.pk, "slug": "power"})
    html = client.get(url).content.decode()
    figure = figure_json(html, "figure-size")
    [line, fit] = figure["data"]
    assert line["name"] == "Fam (base)" and line["x"] == list(RISING)
    assert line["y"] == [20.0, 50.0, 80.0]
    assert figure["layout"]["xaxis"]["type"] == "log"
    assert fit["name"] == "fit: Fam (base)" and fit["line"]["dash"] == "dot"
    assert "Flag: inverse scaling" in html
    assert "Logistic regression" in html
    # The models disagree on the items between their shares: positions 2-7 of each ten.
    assert "60 items" in html


def test_a_model_keeps_its_colour_and_symbol_from_the_dot_plot_to_the_size_plot(client, suite):
    suite_page = client.get(suite.get_absolute_url()).content.decode()
    dataset_url = reverse("generation:suite-dataset", kwargs={"pk": suite.pk, "slug": "power"})
    dots = figure_json(suite_page, "figure-suite")["data"]
    [line, _fit] = figure_json(client.get(dataset_url).content.decode(), "figure-size")["data"]
    # One dot-plot trace per model in the suite's order; the plans' sizes rise in that order too.
    assert list(zip(line["marker"]["color"], line["marker"]["symbol"], strict=True)) == [
        (trace["marker"]["color"], trace["marker"]["symbol"]) for trace in dots[: len(plans())]
    ]
    assert len(set(line["marker"]["color"])) == len(plans())


def test_the_dataset_page_says_when_a_size_is_unknown(client):
    ds = persona_dataset(slug="power", n=20)
    suite = suite_build(datasets=[ds], models=[SuiteModelPlan(spec="hf:test/old", matches=by_share(0.5))])
    html = client.get(
        reverse("generation:suite-dataset", kwargs={"pk": suite.pk, "slug": "power"})
    ).content.decode()
    assert "size unknown" in html
    assert "figure-size" not in html
    html = client.get(suite.get_absolute_url()).content.decode()
    assert "Size unknown" in html and "hf:test/old" in html


def test_the_comparison_page_shows_the_paired_test(client, suite):
    url = reverse("generation:suite-compare", kwargs={"pk": suite.pk})
    html = client.get(url, {"a": "2", "b": "0"}).content.decode()
    # power: 80% vs 20% on the same items, calm: 50% each on halves shifted by 4 of 10.
    assert 'id="pooled-only-a">100<' in html
    assert "McNemar" in html and "paired bootstrap" in html


def read_csv(response) -> list[dict]:
    body = b"".join(response.streaming_content).decode()
    return [{k: csv_uncell(v) for k, v in row.items()} for row in csv.DictReader(io.StringIO(body))]


def test_every_figure_exports_as_csv_and_json(client, suite):
    detail = suite.get_absolute_url()
    rows = read_csv(client.get(detail, {"format": "csv", "figure": "matrix"}))
    assert len(rows) == 6
    power_small = next(r for r in rows if r["dataset"] == "power" and r["model_index"] == "0")
    assert (power_small["n"], power_small["matching"], power_small["flag"]) == (
        "100",
        "20",
        "inverse scaling",
    )
    trends = read_csv(client.get(detail, {"format": "csv", "figure": "trends"}))
    assert {r["dataset"]: r["flag"] for r in trends} == {"calm": "", "power": "inverse scaling"}

    document = json.loads(client.get(detail, {"format": "json", "direction": "undesired"}).content)
    assert {r["dataset"] for r in document["matrix"]} == {"power"}
    [fit] = document["trends"]
    assert fit["slope_per_decade"] > 0 and fit["ci_low"] > 0
    assert document["trend_test"] == figures.TREND_TEST

    url = reverse("generation:suite-dataset", kwargs={"pk": suite.pk, "slug": "power"})
    points = read_csv(client.get(url, {"format": "csv"}))
    assert [float(p["percent_matching"]) for p in points] == [20.0, 50.0, 80.0]
    assert json.loads(client.get(url, {"format": "json"}).content)["trend"][0]["flag"] == "inverse scaling"

    url = reverse("generation:suite-compare", kwargs={"pk": suite.pk})
    compared = read_csv(client.get(url, {"a": "2", "b": "0", "format": "csv"}))
    assert [r["scope"] for r in compared] == ["all datasets", "calm", "power"]
    assert compared[2]["only_a"] == "60"
    document = json.loads(client.get(url, {"a": "2", "b": "0", "format": "json"}).content)
    assert document["comparisons"][0]["datasets"] == 2


def test_hostile_behavior_and_spec_text_is_escaped_in_html_and_figures(client):
    ds = persona_dataset(slug="hostile", n=20, behavior=HOSTILE[:200], category="<b>cat</b>")
    spec = "hf:evil/<img src=x onerror=alert(1)>"
    suite = suite_build(
        datasets=[ds],
        models=[
            SuiteModelPlan(
                spec=spec, parameters=100_000_000, family="<script>alert(1)</script>", matches=by_share(0.2)
            ),
            SuiteModelPlan(
                spec="hf:ok/b",
                parameters=1_000_000_000,
                family="<script>alert(1)</script>",
                matches=by_share(0.6),
            ),
        ],
    )
    for url in [
        suite.get_absolute_url(),
        reverse("generation:suite-dataset", kwargs={"pk": suite.pk, "slug": "hostile"}),
        reverse("generation:suite-compare", kwargs={"pk": suite.pk}),
        reverse("generation:suite-list"),
    ]:
        html = client.get(url).content.decode()
        assert_no_raw_payloads(html)
    html = client.get(suite.get_absolute_url()).content.decode()
    figure = figure_json(html, "figure-suite")
    assert figure["data"][0]["name"] == "hf:evil/&lt;img src=x onerror=alert(1)&gt;"
    assert all("<script>" not in text and "<img" not in text for text in hover_texts(figure))
    assert all("<b>cat" not in a["text"] for a in figure["layout"]["annotations"])
    html = client.get(
        reverse("generation:suite-dataset", kwargs={"pk": suite.pk, "slug": "hostile"})
    ).content.decode()
    figure = figure_json(html, "figure-size")
    assert figure["data"][0]["name"].startswith("&lt;script&gt;")
    assert all("<script>" not in text and "<img" not in text for text in hover_texts(figure))


def test_exports_are_throttled_like_downloads(client, suite, settings):
    settings.MWE_THROTTLE_RATES = {**settings.MWE_THROTTLE_RATES, "download": "1/minute"}
    url = suite.get_absolute_url()
    assert client.get(url, {"format": "json"}).status_code == 200
    assert client.get(url, {"format": "json"}).status_code == 429
    assert client.get(url).status_code == 200  # the page itself is not


def test_staff_see_the_link_to_start_a_suite_once_it_exists(client, suite):
    client.force_login(StaffFactory())
    html = client.get(reverse("generation:suite-list")).content.decode()
    try:
        new_url = reverse("generation:suite-create")
    except Exception:
        pytest.skip("the suite form is not routed in this checkout")
    assert new_url in html


def test_the_suite_page_reads_a_fixed_number_of_queries(client, suite, django_assert_max_num_queries):
    client.get(suite.get_absolute_url())  # fills the cache
    with django_assert_max_num_queries(8):
        assert client.get(suite.get_absolute_url()).status_code == 200


# ----------------------------------------------------------------------------- the API


def api_url(suite) -> str:
    return reverse("api-evaluation-suite-figures", kwargs={"pk": suite.pk})


def test_the_api_answers_the_exports_documents(client, suite):
    matrix = client.get(api_url(suite), {"direction": "undesired"}).json()
    assert {r["dataset"] for r in matrix["matrix"]} == {"power"}
    assert matrix["trends"][0]["flag"] == "inverse scaling"
    dataset = client.get(api_url(suite), {"figure": "dataset", "dataset": "power"}).json()
    assert [p["percent_matching"] for p in dataset["points"]] == [20.0, 50.0, 80.0]
    compared = client.get(api_url(suite), {"figure": "compare", "a": "2", "b": "0"}).json()
    assert compared["comparisons"][0]["only_a"] == 100
    export = json.loads(client.get(suite.get_absolute_url(), {"format": "json"}).content)
    assert client.get(api_url(suite)).json() == export


@pytest.mark.parametrize(
    ("params", "code"),
    [
        ({"figure": "all"}, 400),
        ({"figure": "compare", "a": "0", "b": "0"}, 400),
        ({"model": "12"}, 400),
        ({"figure": "dataset", "dataset": "nope"}, 404),
    ],
)
def test_the_api_refuses_bad_parameters(client, suite, params, code):
    response = client.get(api_url(suite), params)
    assert response.status_code == code
    assert "detail" in response.json()


def test_the_api_of_an_unknown_suite_is_404(client, suite):
    assert client.get(reverse("api-evaluation-suite-figures", kwargs={"pk": suite.pk + 9})).status_code == 404


def test_the_schema_names_the_endpoint_and_validates(client):
    import yaml
    from django.core.management import call_command

    schema = yaml.safe_load(client.get("/api/schema/").content)
    operation = schema["paths"]["/api/evaluation-suites/{id}/figures/"]["get"]
    assert {"figure", "dataset", "a", "b", "model", "direction"} <= {
        p["name"] for p in operation["parameters"]
    }
    call_command("spectacular", "--validate", "--fail-on-warn", "--file", "/dev/null")


def test_an_unfinished_suite_shows_its_progress_and_the_finished_runs(client):
    ds = persona_dataset(slug="power", n=20)
    models = plans({100_000_000: 0.2, 1_000_000_000: 0.6})
    suite = suite_build(datasets=[ds], models=models, skip=[(models[1].spec, "power")])
    html = client.get(suite.get_absolute_url()).content.decode()
    assert "1 / 2 runs finished" in html
    assert 'http-equiv="refresh"' in html
    figure = figure_json(html, "figure-suite")
    assert [t["name"] for t in figure["data"]] == [models[0].spec]
    assert "Runs not finished" in html
