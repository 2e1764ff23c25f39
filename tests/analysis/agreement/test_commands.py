"""manage.py agreement_report prints the dashboard's figures (text or JSON)."""

import io
import json

import pytest
from django.core.management import CommandError, call_command

from analysis.agreement import selectors
from analysis.agreement.selectors import RatingOptions
from annotation.models import Worker
from annotation.services.projects import project_create
from annotation.services.workers import worker_set_excluded
from tests.analysis.builders import examples_create, rate, rated_project
from tests.builders import DatasetFactory

pytestmark = pytest.mark.django_db


def report(*args) -> str:
    out = io.StringIO()
    call_command("agreement_report", *args, stdout=out)
    return out.getvalue()


@pytest.fixture
def project():
    return rated_project(datasets=2, examples=8, rated=6, slug="crowd")


def test_text_report_has_every_group_and_the_figures(project):
    text = report("--project", "crowd", "--replicates", "100")
    expected = selectors.project_report(project=project, options=RatingOptions(replicates=100))
    assert text.startswith(
        "Project crowd (Crowd), k = 3; 95% bootstrap intervals over examples (100 resamples, seed 0)"
    )
    assert "All datasets: 12 example(s) with 3 ratings" in text
    assert "(left out: not rated yet: 4)" in text
    for group in expected.datasets:
        assert f"Dataset {group.slug}: 6 example(s)" in text
    pooled = expected.pooled.figures
    majority = pooled.majority_agrees
    assert (
        f"majority chose the label's answer {100 * majority.value:.1f}% [{100 * majority.ci_low:.1f}%, {100 * majority.ci_high:.1f}%]"
        in text
    )
    kappa = pooled.answers.fleiss_kappa
    assert f"Fleiss κ (chosen answers) {kappa.value:.2f} [{kappa.ci_low:.2f}, {kappa.ci_high:.2f}]" in text
    assert f"κ on agree-with-label votes {pooled.label.fleiss_kappa.value:.2f}" in text
    assert text.index("Fleiss κ (chosen answers)") < text.index("κ on agree-with-label votes")
    assert "options Yes, No" in text
    assert "Dawid-Skene: label correct on" in text
    assert "calibration (label confidence bin" in text


def test_json_report_equals_the_dashboard_export(project):
    document = json.loads(report("--project", "crowd", "--json", "--replicates", "60", "--seed", "3"))
    expected = selectors.project_report(project=project, options=RatingOptions(replicates=60, seed=3))
    assert document == {"projects": [json.loads(json.dumps(expected.as_dict()))]}


def test_one_dataset_with_dawid_skene(project):
    dataset = project.datasets.order_by("slug").first()
    text = report("--dataset", dataset.slug, "--replicates", "50")
    assert f"Dataset {dataset.slug}: 6 example(s)" in text and "All datasets" not in text
    assert "worker reliability" in text
    document = json.loads(report("--dataset", dataset.slug, "--json", "--replicates", "50"))
    (only,) = document["projects"]
    assert only["slug"] == dataset.slug and only["project"] == "crowd"
    assert "dawid_skene" in only and "calibration" in only


def test_gold_failing_and_excluded_toggles(project):
    worker_set_excluded(worker=Worker.objects.get(external_id="crowd-0"), excluded=True)
    default = json.loads(report("--json", "--replicates", "20"))["projects"][0]
    assert default["left_out"]["workers"] == {selectors.EXCLUDED: 1}
    kept = json.loads(report("--json", "--replicates", "20", "--include-excluded"))["projects"][0]
    assert kept["left_out"] == {"workers": {}, "ratings": 0}
    assert kept["pooled"]["examples"] == 12 > default["pooled"]["examples"]
    assert json.loads(report("--json", "--replicates", "20", "--include-gold-failing"))["projects"][0][
        "options"
    ]["include_gold_failing"]


def test_undefined_figures_say_why(db):
    dataset = DatasetFactory(slug="lonely")
    examples_create(dataset, 2)
    project = project_create(name="One", slug="one", datasets=[dataset], overlap=3)
    rate(project, [("lonely", 0, w, 4, True, False) for w in ("a", "b", "c")])
    text = report("--project", "one")
    assert (
        "Fleiss κ (chosen answers) undefined (only one example has 3 ratings; agreement beyond chance "
        "needs at least two)" in text
    )
    assert (
        "κ on agree-with-label votes undefined (only one example has 3 ratings; agreement beyond chance "
        "needs at least two)" in text
    )
    assert "(no CI: a bootstrap over a single example has no spread)" in text
    assert "Dawid-Skene: undefined" in text


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--project", "nope"], "no annotation project with the slug 'nope'"),
        (["--dataset", "nope"], "no dataset with the slug 'nope'"),
        (["--replicates", "0"], "--replicates must be at least 1"),
    ],
)
def test_bad_arguments(project, args, message):
    with pytest.raises(CommandError, match=message):
        report(*args)


def test_dataset_outside_every_project(project):
    DatasetFactory(slug="outside")
    with pytest.raises(CommandError, match="dataset outside has no items in any project"):
        report("--dataset", "outside")


def test_no_projects(db):
    with pytest.raises(CommandError, match="no annotation projects yet"):
        report()
