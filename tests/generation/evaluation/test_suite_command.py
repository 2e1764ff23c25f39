"""evaluate_model with several models and datasets: one suite, each model loaded once, one progress
bar, a table at the end, --out rows naming model and dataset, --resume; and the refusals."""

import json
from io import StringIO

import pytest
from django.core.management import CommandError, call_command

from generation.lm import LMError
from generation.models import Dataset, EvaluationItem, EvaluationRun, EvaluationSuite
from tests.builders import CollectionFactory, DatasetFactory
from tests.generation.evaluation.fakes import FakeLoader, FunctionModel
from tests.generation.evaluation.test_suites import OTHER, SMOL, hashed, hashed_other, labelled

pytestmark = pytest.mark.django_db

ROW_KEYS = {"index", "choices", "logprobs", "predicted", "matches_behavior", "p_match", "scorer"}


@pytest.fixture
def catalog(db):
    persona, other = CollectionFactory(slug="persona"), CollectionFactory(slug="other")
    return {
        "a": labelled("a", 6, collection=persona),
        "b": labelled("b", 4, collection=persona, answer_prefix=" I believe the best answer is"),
        "c": labelled("c", 3, collection=other),
        "reference": DatasetFactory(slug="reference", collection=other, purpose=Dataset.Purpose.REFERENCE),
    }


@pytest.fixture
def loader(monkeypatch):
    from generation.management.commands import evaluate_model

    fake = FakeLoader(
        {SMOL: FunctionModel(hashed, name="smol"), OTHER: FunctionModel(hashed_other, name="other")}
    )
    monkeypatch.setattr(evaluate_model, "load_model", fake)
    return fake


def run_command(*args) -> tuple[str, str]:
    out, err = StringIO(), StringIO()
    call_command("evaluate_model", *args, stdout=out, stderr=err)
    return out.getvalue(), err.getvalue()


def test_two_models_on_two_datasets_print_a_table_and_write_every_item(catalog, loader, tmp_path):
    out_file = tmp_path / "items.jsonl"
    out, err = run_command(
        f"--model={SMOL}", f"--model={OTHER}", "--dataset=a", "--dataset=b", "--name=two", f"--out={out_file}"
    )
    suite = EvaluationSuite.objects.get()
    assert loader.loads == [SMOL, OTHER]
    assert all(model.closed for model in loader.models.values())
    assert suite.status == EvaluationSuite.Status.SUCCEEDED and suite.name == "two"

    lines = out.splitlines()
    assert lines[0] == (
        f"suite #{suite.pk} 'two': 2 models x 2 datasets, paper format, logprobs scorer, 20 items: succeeded"
    )
    header = next(line for line in lines if line.startswith("% matching behavior (95% CI)"))
    assert header.split()[-2:] == [SMOL, OTHER]
    for slug in ("a", "b"):
        [row] = [line for line in lines if line.startswith(f"{slug} ")]
        for spec in (SMOL, OTHER):
            run = suite.runs.get(dataset__slug=slug, model_spec=spec)
            assert f"{run.percent_matching:.1f}% ({run.ci_low:.1f}-{run.ci_high:.1f})" in row
    speeds = next(line for line in lines if line.startswith("items/s (model load excluded)"))
    for entry in suite.results["models"]:
        assert f"{entry['items_per_second']:.1f}" in speeds
    assert f"suite page: /evaluations/suites/{suite.pk}/" in lines
    assert f"items written to {out_file}" in lines
    assert f"suite #{suite.pk}: 2 models x 2 datasets" in err

    rows = [json.loads(line) for line in out_file.read_text().splitlines()]
    assert len(rows) == 20 == EvaluationItem.objects.count()
    assert {(r["model_spec"], r["dataset"]) for r in rows} == {
        (spec, slug) for spec in (SMOL, OTHER) for slug in ("a", "b")
    }
    assert all(set(r) == ROW_KEYS | {"model_spec", "dataset"} for r in rows)


def test_collections_and_all_select_the_scorable_datasets(catalog, loader):
    run_command(f"--model={SMOL}", "--collection=persona")
    first = EvaluationSuite.objects.get()
    assert set(first.datasets.values_list("slug", flat=True)) == {"a", "b"}
    run_command(f"--model={SMOL}", "--all", "--dataset=c")
    second = EvaluationSuite.objects.exclude(pk=first.pk).get()
    # The reference dataset has no gold answers: --all leaves it out.
    assert set(second.datasets.values_list("slug", flat=True)) == {"a", "b", "c"}
    assert second.runs.count() == 3


def test_one_model_on_one_dataset_is_a_single_run_as_before(catalog, loader):
    out, _ = run_command(f"--model={SMOL}", "--dataset=a", "--prompt-format=plain")
    run = EvaluationRun.objects.get()
    assert run.suite is None and not EvaluationSuite.objects.exists()
    assert out.splitlines()[0] == f"run #{run.pk} stored"
    assert "matching behavior:  " in out


def test_an_interrupted_suite_is_resumed_by_id(catalog, loader, monkeypatch):
    from generation.evaluation import suites

    monkeypatch.setattr(suites, "CHUNK_ITEMS", 4)
    loader.models[SMOL] = FunctionModel(hashed, fail_after=4)
    with pytest.raises(CommandError, match="failed:\nsmollm2-135m: server went away") as failed:
        run_command(f"--model={SMOL}", "--dataset=a", "--dataset=c")
    suite = EvaluationSuite.objects.get()
    assert f"suite #{suite.pk} failed" in str(failed.value)
    assert EvaluationItem.objects.count() == 4

    healthy = loader.models[SMOL] = FunctionModel(hashed)
    out, _ = run_command(f"--resume={suite.pk}")
    suite.refresh_from_db()
    assert suite.status == EvaluationSuite.Status.SUCCEEDED
    assert len(healthy.requests) == 5  # 9 items, 4 stored before
    assert EvaluationItem.objects.count() == 9
    assert out.splitlines()[0].endswith("9 items: succeeded")


def test_a_failed_model_shows_in_the_table_and_the_command_fails(catalog, loader):
    loader.models[OTHER] = LMError("no weights")
    with pytest.raises(CommandError, match="could not load the model: no weights"):
        run_command(f"--model={SMOL}", f"--model={OTHER}", "--dataset=a")
    suite = EvaluationSuite.objects.get()
    assert set(suite.runs.values_list("model_spec", "status")) == {(SMOL, "succeeded"), (OTHER, "failed")}


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ([f"--model={SMOL}"], "give --dataset, --collection, --all, --jsonl or --resume"),
        (["--dataset=a"], "give --model"),
        ([f"--model={SMOL}", "--model=gpt-9", "--dataset=a"], "unknown model spec"),
        ([f"--model={SMOL}", f"--model={SMOL}", "--dataset=a"], "given more than once"),
        ([f"--model={SMOL}", "--dataset=a", "--dataset=nope"], "no dataset with slug 'nope'"),
        ([f"--model={SMOL}", "--dataset=a", "--dataset=reference"], "not 'reference'"),
        ([f"--model={SMOL}", "--collection=nope"], "no collection with slug 'nope'"),
        ([f"--model={SMOL}", f"--model={OTHER}", "--jsonl=x.jsonl"], "one file with one model"),
        ([f"--model={SMOL}", "--jsonl=x.jsonl", "--scorer=answer"], "log-probs"),
        (
            [f"--model={SMOL}", "--dataset=a", "--dataset=b", "--scorer=answer"],
            "choose the plain prompt format",
        ),
        (["--resume=1", f"--model={SMOL}"], "give no --model"),
        (["--resume=999"], "no suite #999"),
    ],
)
def test_bad_input_is_refused_before_a_model_is_loaded(catalog, loader, args, message):
    with pytest.raises(CommandError, match=message):
        run_command(*args)
    assert loader.loads == []
    assert not EvaluationSuite.objects.exists() and not EvaluationRun.objects.exists()
