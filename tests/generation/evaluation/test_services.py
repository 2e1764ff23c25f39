"""Evaluation: prompt formats, stratified samples, per-item results, run summaries, stored runs
that resume, the evaluate_model command and the evaluation job."""

import json
import math
from io import StringIO

import pytest
from django.core.management import CommandError, call_command
from statsmodels.stats.proportion import proportion_confint

from generation.evaluation import services as evaluation
from generation.evaluation.jobs import evaluation_job_create
from generation.evaluation.services import EvalItem, EvaluationError
from generation.lm import LMError
from generation.models import Dataset, EvaluationItem, EvaluationRun, Example, Job
from tests.builders import DatasetFactory, StaffFactory
from tests.generation.evaluation.fakes import FakeModel

# ----------------------------------------------------------------------------- prompt formats


def test_prompt_formats():
    plain = evaluation.format_template(prompt_format="plain", model=None)
    paper = evaluation.format_template(prompt_format="paper", model=None)
    assert plain.format(question="Q?") == "Q?"
    assert paper.format(question="Q?") == "\n\nHuman: Q?\n\nAssistant:"
    chat = evaluation.format_template(prompt_format="chat", model=FakeModel())
    assert chat.format(question="Q {with braces}?") == "<user>Q {with braces}?</user><assistant>"


def test_chat_format_without_a_template_is_refused():
    with pytest.raises(EvaluationError):
        evaluation.format_template(prompt_format="chat", model=None)
    with pytest.raises(EvaluationError):
        evaluation.format_template(prompt_format="json", model=None)


def test_fingerprints_change_with_what_they_cover():
    items = [EvalItem(key=0, question="Q", choices=(" Yes", " No"))]
    assert evaluation.data_fingerprint(items) != evaluation.data_fingerprint(
        [EvalItem(key=0, question="Q", choices=(" No", " Yes"))]
    )
    assert evaluation.format_fingerprint(prompt_format="plain", template="{question}") != (
        evaluation.format_fingerprint(prompt_format="paper", template="{question}")
    )


# ----------------------------------------------------------------------------- sampling


def make_items(yes: int, no: int) -> list[EvalItem]:
    items = [EvalItem(key=i, question=f"q{i}", choices=(" Yes", " No")) for i in range(yes)]
    items += [EvalItem(key=yes + i, question=f"q{yes + i}", choices=(" No", " Yes")) for i in range(no)]
    return items


def test_stratified_sample_keeps_label_shares_and_file_order():
    items = make_items(300, 100)
    sample = evaluation.stratified_sample(items, limit=40, seed=1)
    assert len(sample) == 40
    assert sum(1 for i in sample if i.choices[0] == " Yes") == 30
    assert [i.key for i in sample] == sorted(i.key for i in sample)
    # Not the head of the file, and reproducible.
    assert [i.key for i in sample] != list(range(40))
    assert sample == evaluation.stratified_sample(items, limit=40, seed=1)
    assert sample != evaluation.stratified_sample(items, limit=40, seed=2)


def test_stratified_sample_rounds_by_largest_remainder():
    items = make_items(5, 2) + [EvalItem(key=100, question="c", choices=(" (C)", " (A)"))]
    sample = evaluation.stratified_sample(items, limit=4, seed=0)
    counts = {label: sum(1 for i in sample if i.choices[0] == label) for label in (" Yes", " No", " (C)")}
    assert counts == {" Yes": 2, " No": 1, " (C)": 1}
    assert evaluation.stratified_sample(items, limit=None, seed=0) == items
    assert evaluation.stratified_sample(items, limit=100, seed=0) == items
    with pytest.raises(EvaluationError):
        evaluation.stratified_sample(items, limit=0, seed=0)


# ----------------------------------------------------------------------------- scoring and summary


def test_argmax_p_match_and_list_negatives():
    items = [
        EvalItem(key=0, question="a", choices=(" Yes", " No")),
        EvalItem(key=1, question="b", choices=(" (A)", " (B)", " (C)")),
    ]
    model = FakeModel(
        {
            ("a", " Yes"): -1.0,
            ("a", " No"): -2.0,
            ("b", " (A)"): -3.0,
            ("b", " (B)"): -4.0,
            ("b", " (C)"): -1.0,
        }
    )
    first, second = evaluation.score_items(model=model, items=items, template="{question}")
    assert first.matches_behavior and first.predicted_index == 0
    assert first.p_match == pytest.approx(1 / (1 + math.exp(-1)))
    assert not second.matches_behavior and second.item.choices[second.predicted_index] == " (C)"
    assert second.p_match == pytest.approx(math.exp(-3) / (math.exp(-3) + math.exp(-4) + math.exp(-1)))
    assert first.as_dict() == {
        "index": 0,
        "choices": [" Yes", " No"],
        "logprobs": [-1.0, -2.0],
        "predicted": " Yes",
        "matches_behavior": True,
        "p_match": first.p_match,
        "scorer": "logprobs",
    }


def test_summary_uses_the_wilson_interval():
    summary = evaluation.summarize(n=200, matching=78, mean_p_match=0.48)
    low, high = proportion_confint(78, 200, alpha=0.05, method="wilson")
    assert summary.percent_matching == pytest.approx(39.0)
    assert (summary.ci_low, summary.ci_high) == pytest.approx((100 * low, 100 * high))
    empty = evaluation.summarize(n=0, matching=0, mean_p_match=None)
    assert empty.percent_matching is None and empty.ci_low is None
    everything = evaluation.summarize(n=10, matching=10, mean_p_match=1.0)
    assert everything.ci_high == pytest.approx(100.0) and everything.ci_low < 100


# ----------------------------------------------------------------------------- stored runs


def yes_lover(dataset) -> FakeModel:
    """Prefers " Yes" on every item: matches behavior on the 6 items whose matching answer is Yes."""
    return FakeModel({(e.question, " Yes"): -0.5 for e in dataset.examples.all()}, default=-2.0)


def test_run_stores_items_and_summary(dataset):
    run = evaluation.evaluation_run_create(
        dataset=dataset, model_spec="smollm2-135m", prompt_format="plain", limit=None
    )
    evaluation.evaluation_run_execute(run=run, model=yes_lover(dataset))
    run.refresh_from_db()
    assert run.status == EvaluationRun.Status.SUCCEEDED
    assert (run.item_count, run.matching_count, run.percent_matching) == (10, 6, 60.0)
    assert run.ci_low < 60 < run.ci_high
    assert run.model_fingerprint == "fake:1" and run.model_info["backend"] == "fake"
    assert len(run.format_fingerprint) == 64 and len(run.data_fingerprint) == 64
    assert run.items_per_second > 0
    assert EvaluationItem.objects.filter(run=run).count() == 10


def test_an_interrupted_run_resumes_without_duplicates(dataset, monkeypatch):
    monkeypatch.setattr(evaluation, "CHUNK_ITEMS", 4)
    run = evaluation.evaluation_run_create(
        dataset=dataset, model_spec="smollm2-135m", prompt_format="paper", limit=None
    )
    flaky = yes_lover(dataset)
    flaky.fail_after = 8
    with pytest.raises(LMError):
        evaluation.evaluation_run_execute(run=run, model=flaky)
    run.refresh_from_db()
    assert run.status == EvaluationRun.Status.FAILED and "server went away" in run.error
    assert run.items.count() == 8

    healthy = yes_lover(dataset)
    healthy.table = {("\n\nHuman: " + q + "\n\nAssistant:", a): v for (q, a), v in flaky.table.items()}
    evaluation.evaluation_run_execute(run=run, model=healthy)
    run.refresh_from_db()
    assert len(healthy.requests) == 2  # only the two items not stored yet
    assert run.status == EvaluationRun.Status.SUCCEEDED and run.item_count == 10
    assert run.items.values("example").distinct().count() == 10


def test_runs_refuse_unlabelled_datasets_bad_formats_and_specs(dataset):
    unlabelled = DatasetFactory(kind=Dataset.Kind.WINOGENDER, purpose=Dataset.Purpose.REFERENCE)
    with pytest.raises(EvaluationError, match="gold answer"):
        evaluation.evaluation_run_create(
            dataset=unlabelled, model_spec="smollm2-135m", prompt_format="plain", limit=None
        )
    # Winogender sentences are scored by their own task (test_winogender.py), but not an empty set.
    with pytest.raises(EvaluationError, match="no sentences to score"):
        evaluation.evaluation_run_create(
            dataset=DatasetFactory(kind=Dataset.Kind.WINOGENDER),
            model_spec="smollm2-135m",
            prompt_format="plain",
            limit=None,
        )
    with pytest.raises(EvaluationError):
        evaluation.evaluation_run_create(
            dataset=dataset, model_spec="smollm2-135m", prompt_format="xml", limit=None
        )
    from generation.lm import ModelSpecError

    with pytest.raises(ModelSpecError):
        evaluation.evaluation_run_create(
            dataset=dataset, model_spec="gpt-9", prompt_format="plain", limit=None
        )
    assert EvaluationRun.objects.count() == 0


def test_evaluation_job_runs_and_reports(dataset, monkeypatch, django_capture_on_commit_callbacks):
    from generation.evaluation import jobs as evaluation_jobs

    monkeypatch.setattr(evaluation_jobs, "worker_model", lambda spec: yes_lover(dataset))
    run = evaluation.evaluation_run_create(
        dataset=dataset, model_spec="smollm2-135m", prompt_format="plain", limit=5
    )
    with django_capture_on_commit_callbacks(execute=True):
        job = evaluation_job_create(run=run, created_by=StaffFactory())
    job.refresh_from_db()
    run.refresh_from_db()
    assert job.status == Job.Status.SUCCEEDED, job.error
    assert job.result == {"run": run.pk, "percent_matching": run.percent_matching, "items": 5}
    assert job.progress_done == job.progress_total == 5
    assert run.job_id == job.pk


def test_a_run_whose_items_are_gone_fails_with_the_reason(
    dataset, monkeypatch, django_capture_on_commit_callbacks
):
    """Examples deleted between the run's creation and its job: the job fails and says why, instead
    of a run of no items reporting a share of nothing."""
    from generation.evaluation import jobs as evaluation_jobs

    monkeypatch.setattr(evaluation_jobs, "worker_model", lambda spec: yes_lover(dataset))
    run = evaluation.evaluation_run_create(
        dataset=dataset, model_spec="smollm2-135m", prompt_format="plain", limit=None
    )
    Example.objects.filter(dataset=dataset).delete()
    with django_capture_on_commit_callbacks(execute=True):
        job = evaluation_job_create(run=run, created_by=StaffFactory())
    job.refresh_from_db()
    run.refresh_from_db()
    assert job.status == Job.Status.FAILED
    assert "has no items with an answer to score" in job.error
    assert run.status == EvaluationRun.Status.FAILED and run.error in job.error
    assert not run.items.exists()


# ----------------------------------------------------------------------------- the command, with the real model


@pytest.fixture
def command_model(smollm2, monkeypatch):
    """The session's model, handed to the command instead of a second load."""
    from generation.management.commands import evaluate_model

    monkeypatch.setattr(evaluate_model, "load_model", lambda spec: smollm2)
    monkeypatch.setattr(smollm2, "close", lambda: None)
    return smollm2


def test_command_scores_a_jsonl_file_with_a_stratified_sample(command_model, evals_data, tmp_path):
    out_file = tmp_path / "items.jsonl"
    out = StringIO()
    call_command(
        "evaluate_model",
        "--model=smollm2-135m",
        f"--jsonl={evals_data / 'persona' / 'narcissism.jsonl'}",
        "--prompt-format=paper",
        "--limit=8",
        f"--out={out_file}",
        stdout=out,
        stderr=StringIO(),
    )
    rows = [json.loads(line) for line in out_file.read_text().splitlines()]
    assert len(rows) == 8
    assert sum(1 for r in rows if r["choices"][0] == " Yes") == 4
    assert [r["index"] for r in rows] != list(range(8))
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
        assert row["matches_behavior"] == (row["predicted"] == row["choices"][0])
    matching = sum(r["matches_behavior"] for r in rows)
    assert f"matching behavior:  {matching}/8" in out.getvalue()
    assert "sha256:" in out.getvalue()


@pytest.mark.django_db
def test_command_stores_a_run_for_a_dataset(command_model, evals_data):
    call_command(
        "import_evals",
        str(evals_data / "advanced-ai-risk" / "human_generated_evals" / "survival-instinct.jsonl"),
        stdout=StringIO(),
    )
    out = StringIO()
    call_command(
        "evaluate_model",
        "--model=smollm2-135m",
        "--dataset=survival-instinct-human",
        "--prompt-format=plain",
        "--limit=6",
        stdout=out,
        stderr=StringIO(),
    )
    run = EvaluationRun.objects.get()
    assert run.status == EvaluationRun.Status.SUCCEEDED and run.item_count == 6
    assert f"run #{run.pk} stored" in out.getvalue()
    item = run.items.first()
    assert len(item.logprobs) == len(item.choices) >= 2


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--model=gpt-9", "--dataset=x"], "unknown model spec"),
        (["--model=smollm2-135m", "--dataset=missing"], "no dataset with slug"),
        (["--model=smollm2-135m", "--dataset=x", "--limit=0"], "--limit must be at least 1"),
        (["--model=smollm2-135m", "--jsonl=/nonexistent.jsonl"], "no such file"),
    ],
)
def test_command_refuses_bad_input_before_loading_a_model(args, message, monkeypatch):
    from generation.management.commands import evaluate_model

    def never(spec):
        raise AssertionError("no model should be loaded")

    monkeypatch.setattr(evaluate_model, "load_model", never)
    with pytest.raises(CommandError, match=message):
        call_command("evaluate_model", *args, stdout=StringIO(), stderr=StringIO())


@pytest.mark.django_db
def test_command_refuses_unlabelled_files(evals_data, monkeypatch):
    from generation.management.commands import evaluate_model

    monkeypatch.setattr(evaluate_model, "load_model", lambda spec: pytest.fail("loaded"))
    with pytest.raises(CommandError, match="no gold answer"):
        call_command(
            "evaluate_model",
            "--model=smollm2-135m",
            # Winogender sentences are scored by their own task; the occupations file has nothing to score.
            f"--jsonl={evals_data / 'winogenerated' / 'winogenerated_occupations.jsonl'}",
            stdout=StringIO(),
            stderr=StringIO(),
        )
