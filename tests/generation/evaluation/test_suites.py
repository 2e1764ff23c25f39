"""Suites: several models on several datasets, each model loaded once, the requests of all its
datasets scored together, resumable per (model, dataset, item), a failing model failing only its own
runs, and the job that runs a suite."""

import zlib
from io import StringIO

import pytest
from django.core.management import call_command

from generation.catalog.services import dataset_refresh_stats
from generation.evaluation import services as evaluation
from generation.evaluation import suites
from generation.evaluation.jobs import suite_job_create
from generation.evaluation.services import EvaluationError
from generation.evaluation.suites import (
    SuiteCancelled,
    suite_create,
    suite_datasets_select,
    suite_execute,
)
from generation.lm import LMError
from generation.models import Dataset, EvaluationItem, EvaluationRun, EvaluationSuite, Job
from tests.builders import CollectionFactory, DatasetFactory, ExampleFactory, StaffFactory
from tests.generation.evaluation.fakes import FakeLoader, FunctionModel
from tests.generation.evaluation.test_winogender import biased, import_winogender

PREFIX = " I believe the best answer is"
SMOL = "smollm2-135m"
OTHER = "hf:org/other-model"


def hashed(context: str, choice: str) -> float:
    """Log-probs that depend on every character of the prompt, so an item scored with the wrong
    template (or the wrong dataset's prefix) gets different figures."""
    return -(zlib.crc32((context + "|" + choice).encode()) % 1000) / 100


def hashed_other(context: str, choice: str) -> float:
    return hashed(choice, context)


def labelled(slug: str, n: int, *, answer_prefix: str = "", collection=None) -> Dataset:
    dataset = DatasetFactory(
        slug=slug, answer_prefix=answer_prefix, **({"collection": collection} if collection else {})
    )
    for i in range(n):
        ExampleFactory(
            dataset=dataset,
            position=i,
            statement=f"{slug} statement {i}",
            answer_matching_behavior=" Yes" if i % 3 else " No",
            answer_not_matching_behavior=" No" if i % 3 else " Yes",
        )
    return dataset_refresh_stats(dataset=dataset)


@pytest.fixture
def two_datasets(db):
    return [labelled("with-prefix", 7, answer_prefix=PREFIX), labelled("without-prefix", 5)]


def stored(run: EvaluationRun) -> list[tuple]:
    return list(
        run.items.order_by("example__position").values_list(
            "example__position", "choices", "logprobs", "predicted_index", "matches_behavior", "p_match"
        )
    )


def figures(run: EvaluationRun) -> tuple:
    return (run.status, run.item_count, run.matching_count, run.percent_matching, run.mean_p_match)


# ----------------------------------------------------------------------------- creating


def test_a_suite_has_one_queued_run_per_model_and_dataset_in_model_order(two_datasets):
    suite = suite_create(
        model_specs=[SMOL, OTHER], datasets=two_datasets, prompt_format="paper", limit=4, seed=3, name="x"
    )
    runs = list(suite.runs.order_by("id"))
    assert [(r.model_spec, r.dataset.slug) for r in runs] == [
        (SMOL, "with-prefix"),
        (SMOL, "without-prefix"),
        (OTHER, "with-prefix"),
        (OTHER, "without-prefix"),
    ]
    assert {(r.status, r.prompt_format, r.limit, r.seed, r.scorer, r.task) for r in runs} == {
        ("queued", "paper", 4, 3, "logprobs", "behavior")
    }
    assert suite.model_specs == [SMOL, OTHER] and set(suite.datasets.all()) == set(two_datasets)
    assert suite.status == EvaluationSuite.Status.QUEUED


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"model_specs": []}, "at least one model"),
        ({"model_specs": [SMOL, "gpt-9"]}, "model 'gpt-9'"),
        ({"model_specs": [SMOL, " smollm2-135m "]}, "more than once"),
        ({"model_specs": [f"hf:org/m{i}" for i in range(21)]}, "at most 20 models"),
        ({"datasets": []}, "at least one dataset"),
        ({"prompt_format": "xml"}, "unknown prompt format"),
        ({"scorer": "vibes"}, "unknown scorer"),
        ({"limit": 0}, "at least 1"),
        ({"seed": -1}, "seed"),
        ({"name": "n" * 201}, "longer than 200"),
    ],
)
def test_bad_input_is_refused_and_nothing_is_written(two_datasets, change, message):
    kwargs = {"model_specs": [SMOL], "datasets": two_datasets, "prompt_format": "paper", **change}
    with pytest.raises(EvaluationError, match=message):
        suite_create(**kwargs)
    assert not EvaluationSuite.objects.exists() and not EvaluationRun.objects.exists()


def test_duplicate_unscorable_and_too_many_datasets_are_refused(two_datasets, monkeypatch):
    reference = DatasetFactory(slug="reference", purpose=Dataset.Purpose.REFERENCE)
    for datasets, message in [
        ([two_datasets[0], two_datasets[0]], "'with-prefix' given more than once"),
        ([two_datasets[0], reference], "not 'reference'"),
    ]:
        with pytest.raises(EvaluationError, match=message):
            suite_create(model_specs=[SMOL], datasets=datasets, prompt_format="paper")
    monkeypatch.setattr(suites, "MAX_SUITE_DATASETS", 1)
    with pytest.raises(EvaluationError, match="at most 1 datasets"):
        suite_create(model_specs=[SMOL], datasets=two_datasets, prompt_format="paper")
    assert not EvaluationSuite.objects.exists() and not EvaluationRun.objects.exists()


def test_datasets_by_slug_collection_or_all(db):
    persona, other = CollectionFactory(slug="persona"), CollectionFactory(slug="other")
    a = labelled("a", 2, collection=persona)
    b = labelled("b", 2, collection=persona)
    c = labelled("c", 2, collection=other)
    DatasetFactory(slug="unlabelled", collection=persona)  # no examples: nothing to score
    DatasetFactory(slug="reference", collection=other, purpose=Dataset.Purpose.REFERENCE)

    assert suite_datasets_select(slugs=["c", "a"]) == [c, a]
    assert suite_datasets_select(collections=["persona"]) == [a, b]
    # Each once, in the order named.
    assert suite_datasets_select(slugs=["b"], collections=["persona", "other"]) == [b, a, c]
    assert suite_datasets_select(everything=True) == [c, a, b]
    with pytest.raises(EvaluationError, match="no dataset with slug 'nope'"):
        suite_datasets_select(slugs=["a", "nope"])
    with pytest.raises(EvaluationError, match="no collection with slug 'nope'"):
        suite_datasets_select(collections=["nope"])
    CollectionFactory(slug="empty")
    with pytest.raises(EvaluationError, match="'empty' has no dataset that can be scored"):
        suite_datasets_select(collections=["empty"])


# ----------------------------------------------------------------------------- executing


def test_each_model_is_loaded_once_and_scores_all_datasets_in_one_call(two_datasets):
    smol, other = FunctionModel(hashed, name="smol"), FunctionModel(hashed_other, name="other")
    loader = FakeLoader({SMOL: smol, OTHER: other})
    suite = suite_create(model_specs=[SMOL, OTHER], datasets=two_datasets, prompt_format="paper")
    seen = []
    suite_execute(suite=suite, load_model=loader, progress=seen.append, release_model=lambda m: m.close())

    assert loader.loads == [SMOL, OTHER]
    assert smol.closed and other.closed
    for model in (smol, other):
        [call] = model.calls  # 12 items < one chunk: both datasets' requests in one call
        with_prefix = [ctx for ctx, _ in call if ctx.endswith("Assistant:" + PREFIX)]
        without = [ctx for ctx, _ in call if ctx.endswith("\n\nAssistant:")]
        assert (len(with_prefix), len(without), len(call)) == (7, 5, 12)

    suite.refresh_from_db()
    assert suite.status == EvaluationSuite.Status.SUCCEEDED and suite.error == ""
    assert suite.item_count == 24
    assert [p.done for p in seen if not p.loading][-1] == 24 and {p.total for p in seen} == {24}
    assert [p.message for p in seen if p.loading] == [f"Loading {SMOL}", f"Loading {OTHER}"]
    assert seen[-1].message == f"Scoring {OTHER}: 24 of 24 items"
    entries = suite.results["models"]
    assert [e["model_spec"] for e in entries] == [SMOL, OTHER]
    assert [e["items_scored"] for e in entries] == [12, 12]
    assert all(e["items_per_second"] > 0 and e["load_seconds"] >= 0 and e["error"] == "" for e in entries)

    # Each (model, dataset) run holds exactly what a single run of that model on that dataset stores.
    for spec, model_fn in [(SMOL, hashed), (OTHER, hashed_other)]:
        for dataset in two_datasets:
            suite_run = suite.runs.get(model_spec=spec, dataset=dataset)
            single = evaluation.evaluation_run_create(
                dataset=dataset, model_spec=spec, prompt_format="paper", limit=None
            )
            evaluation.evaluation_run_execute(run=single, model=FunctionModel(model_fn))
            single.refresh_from_db()
            assert stored(suite_run) == stored(single)
            assert figures(suite_run) == figures(single)
            assert suite_run.format_fingerprint == single.format_fingerprint
            assert suite_run.data_fingerprint == single.data_fingerprint
            assert suite_run.items_per_second > 0 and suite_run.seconds > 0
            assert suite_run.finished_at is not None


def test_an_interrupted_suite_resumes_each_item_once_with_the_same_figures(two_datasets, monkeypatch):
    monkeypatch.setattr(suites, "CHUNK_ITEMS", 4)
    flaky = FunctionModel(hashed, fail_after=8)
    suite = suite_create(model_specs=[SMOL], datasets=two_datasets, prompt_format="paper")
    suite_execute(suite=suite, load_model=FakeLoader({SMOL: flaky}))
    suite.refresh_from_db()
    assert suite.status == EvaluationSuite.Status.FAILED and "server went away" in suite.error
    assert EvaluationItem.objects.filter(run__suite=suite).count() == 8
    # The first 7 items (one dataset) were complete: that run finished; the other failed.
    statuses = dict(suite.runs.values_list("dataset__slug", "status"))
    assert statuses == {"with-prefix": "succeeded", "without-prefix": "failed"}

    healthy = FunctionModel(hashed)
    seen = []
    suite_execute(suite=suite, load_model=FakeLoader({SMOL: healthy}), progress=seen.append)
    assert len(healthy.requests) == 4  # only what was not stored
    assert seen[0].done == 8 and seen[-1].done == seen[-1].total == 12
    suite.refresh_from_db()
    assert suite.status == EvaluationSuite.Status.SUCCEEDED and suite.error == ""

    fresh = suite_create(model_specs=[SMOL], datasets=two_datasets, prompt_format="paper")
    suite_execute(suite=fresh, load_model=FakeLoader({SMOL: FunctionModel(hashed)}))
    for dataset in two_datasets:
        resumed, whole = suite.runs.get(dataset=dataset), fresh.runs.get(dataset=dataset)
        assert resumed.items.values("example").distinct().count() == resumed.items.count()
        assert stored(resumed) == stored(whole) and figures(resumed) == figures(whole)


def test_a_failing_model_fails_its_runs_and_the_others_succeed(two_datasets):
    third = "hf:org/third"
    loader = FakeLoader(
        {
            SMOL: LMError("no such file"),
            OTHER: FunctionModel(hashed, fail_after=0),
            third: FunctionModel(hashed),
        }
    )
    suite = suite_create(model_specs=[SMOL, OTHER, third], datasets=two_datasets, prompt_format="paper")
    suite_execute(suite=suite, load_model=loader)
    suite.refresh_from_db()
    assert loader.loads == [SMOL, OTHER, third]
    assert suite.status == EvaluationSuite.Status.FAILED
    assert suite.error.splitlines() == [
        f"{SMOL}: could not load the model: no such file",
        f"{OTHER}: server went away",
    ]
    by_model = {
        spec: set(suite.runs.filter(model_spec=spec).values_list("status", "error"))
        for spec in (SMOL, OTHER, third)
    }
    assert by_model == {
        SMOL: {("failed", "could not load the model: no such file")},
        OTHER: {("failed", "server went away")},
        third: {("succeeded", "")},
    }
    errors = {e["model_spec"]: e["error"] for e in suite.results["models"]}
    assert errors == {SMOL: "could not load the model: no such file", OTHER: "server went away", third: ""}


def test_a_winogender_dataset_in_a_suite_is_scored_its_own_way(two_datasets, tmp_path):
    wino = import_winogender(tmp_path)
    suite = suite_create(model_specs=[SMOL], datasets=[two_datasets[1], wino], prompt_format="paper")
    seen = []
    suite_execute(suite=suite, load_model=FakeLoader({SMOL: FunctionModel(biased)}), progress=seen.append)
    suite.refresh_from_db()
    assert suite.status == EvaluationSuite.Status.SUCCEEDED, suite.error
    run = suite.runs.get(dataset=wino)
    assert run.task == EvaluationRun.Task.WINOGENDER and run.results["pearson_r"] > 0.5
    single = evaluation.evaluation_run_create(
        dataset=wino, model_spec=SMOL, prompt_format="paper", limit=None
    )
    from generation.evaluation.winogender import evaluation_run_execute_any

    evaluation_run_execute_any(run=single, model=FunctionModel(biased))
    single.refresh_from_db()
    assert run.results == single.results and run.item_count == single.item_count
    assert seen[-1].done == seen[-1].total == 5 + run.item_count == suite.item_count


def test_a_cancelled_suite_stops_between_chunks_and_keeps_what_it_stored(two_datasets, monkeypatch):
    monkeypatch.setattr(suites, "CHUNK_ITEMS", 4)
    asked = []

    def cancel_after_two_chunks() -> bool:
        asked.append(1)
        return len(asked) > 3  # once before the model, then before each chunk

    model = FunctionModel(hashed)
    suite = suite_create(model_specs=[SMOL, OTHER], datasets=two_datasets, prompt_format="paper")
    with pytest.raises(SuiteCancelled):
        suite_execute(
            suite=suite,
            load_model=FakeLoader({SMOL: model}),
            should_cancel=cancel_after_two_chunks,
            release_model=lambda m: m.close(),
        )
    suite.refresh_from_db()
    assert suite.status == EvaluationSuite.Status.CANCELLED and model.closed
    assert EvaluationItem.objects.filter(run__suite=suite).count() == 8
    # The first dataset's 7 items were all stored: that run finished; the rest waits for a resume.
    assert list(suite.runs.order_by("id").values_list("status", flat=True)) == [
        "succeeded",
        "cancelled",
        "cancelled",
        "cancelled",
    ]


def test_the_suite_job_runs_the_suite_and_its_progress_reaches_the_total(
    two_datasets, monkeypatch, django_capture_on_commit_callbacks
):
    from generation.evaluation import jobs as evaluation_jobs

    loader = FakeLoader({SMOL: FunctionModel(hashed), OTHER: FunctionModel(hashed_other)})
    monkeypatch.setattr(evaluation_jobs, "worker_model", loader)
    suite = suite_create(model_specs=[SMOL, OTHER], datasets=two_datasets, prompt_format="paper", limit=4)
    with django_capture_on_commit_callbacks(execute=True):
        job = suite_job_create(suite=suite, created_by=StaffFactory())
    job.refresh_from_db()
    suite.refresh_from_db()
    assert job.kind == Job.Kind.SUITE and suite.job_id == job.pk
    assert job.status == Job.Status.SUCCEEDED, job.error
    assert job.progress_done == job.progress_total == 16 == suite.item_count
    assert job.result == {"suite": suite.pk, "runs": 4, "items": 16}
    assert loader.loads == [SMOL, OTHER]
    assert set(suite.runs.values_list("status", flat=True)) == {"succeeded"}


def test_a_cancelled_suite_job_is_recorded_cancelled(
    two_datasets, monkeypatch, django_capture_on_commit_callbacks
):
    from generation.evaluation import jobs as evaluation_jobs

    monkeypatch.setattr(evaluation_jobs, "worker_model", FakeLoader({SMOL: FunctionModel(hashed)}))
    monkeypatch.setattr(evaluation_jobs, "job_cancel_requested", lambda job: True)
    suite = suite_create(model_specs=[SMOL], datasets=two_datasets, prompt_format="paper")
    with django_capture_on_commit_callbacks(execute=True):
        job = suite_job_create(suite=suite, created_by=StaffFactory())
    job.refresh_from_db()
    assert job.status == Job.Status.CANCELLED
    assert not EvaluationItem.objects.exists()


def test_a_suite_job_with_a_failed_model_fails_with_the_reasons(
    two_datasets, monkeypatch, django_capture_on_commit_callbacks
):
    from generation.evaluation import jobs as evaluation_jobs

    monkeypatch.setattr(
        evaluation_jobs, "worker_model", FakeLoader({SMOL: FunctionModel(hashed), OTHER: LMError("gone")})
    )
    suite = suite_create(model_specs=[SMOL, OTHER], datasets=two_datasets, prompt_format="paper")
    with django_capture_on_commit_callbacks(execute=True):
        job = suite_job_create(suite=suite, created_by=None)
    job.refresh_from_db()
    assert job.status == Job.Status.FAILED and job.error == f"{OTHER}: could not load the model: gone"
    assert job.result["suite"] == suite.pk


# ----------------------------------------------------------------------------- the real model


@pytest.mark.django_db
def test_the_embedded_model_predicts_in_a_suite_what_it_predicts_in_single_runs(smollm2, evals_data):
    """Two released persona datasets, 20 items each, scored together in mixed chunks: each item's
    prediction is the single run's (batching other datasets' requests beside it changes nothing)."""
    for name in ("narcissism", "desire-for-acquiring-power"):
        call_command("import_evals", str(evals_data / "persona" / f"{name}.jsonl"), stdout=StringIO())
    datasets = list(Dataset.objects.order_by("slug"))
    assert len(datasets) == 2
    suite = suite_create(model_specs=[SMOL], datasets=datasets, prompt_format="paper", limit=20, seed=1)
    suite_execute(suite=suite, load_model=lambda spec: smollm2)
    suite.refresh_from_db()
    assert suite.status == EvaluationSuite.Status.SUCCEEDED, suite.error
    for dataset in datasets:
        single = evaluation.evaluation_run_create(
            dataset=dataset, model_spec=SMOL, prompt_format="paper", limit=20, seed=1
        )
        evaluation.evaluation_run_execute(run=single, model=smollm2)
        suite_items = stored(suite.runs.get(dataset=dataset))
        single_items = stored(single)
        assert len(suite_items) == 20
        assert [row[:2] + row[3:5] for row in suite_items] == [row[:2] + row[3:5] for row in single_items]
        for ours, theirs in zip(suite_items, single_items, strict=True):
            assert ours[2] == pytest.approx(theirs[2], abs=1e-3)
