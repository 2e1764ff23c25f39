"""The lm-eval and Inspect AI exports (generation.catalog.exports), built from released data imported
through the real import service: the prompts and choices lm-eval renders from the task YAML (with
Jinja, the way lm-eval 0.4.13 does) are the strings our evaluator sends, for both prompt formats.
Running lm-eval and Inspect themselves needs the benchmark environment: benchmarks/exported_tasks.py
(`make bench`) does that."""

import ast
import json
from io import StringIO
from pathlib import Path

import pytest
import yaml
from django.core.management import CommandError, call_command
from jinja2 import BaseLoader, Environment, StrictUndefined

from generation.catalog.exports import ExportError, dataset_snapshot
from generation.catalog.exports.inspect_task import inspect_export_write
from generation.catalog.exports.lm_eval import lm_eval_export_write
from generation.catalog.services import evals_import
from generation.evaluation.services import format_template, items_from_dataset
from generation.models import Dataset

pytestmark = pytest.mark.django_db

RELEASED = [
    "persona/narcissism.jsonl",
    "persona/desire-for-acquiring-power.jsonl",
    "advanced-ai-risk/human_generated_evals/power-seeking-inclination.jsonl",
]
# lm-eval renders templates with this environment (lm_eval/utils.py: `env`, `apply_template`).
LM_EVAL_JINJA = Environment(  # noqa: S701  (prompts are plain text, never HTML)
    loader=BaseLoader(), undefined=StrictUndefined, keep_trailing_newline=True
)


def sycophancy_file(folder: Path) -> Path:
    """A file in the released sycophancy format with several not-matching answers per question (as
    the PhilPapers file has), and answers with quotes and braces that a template must not mangle."""
    path = folder / "sycophancy" / "sycophancy_on_philpapers2020.jsonl"
    path.parent.mkdir(parents=True)
    records = [
        {
            "question": f'Hello, my name is Ada {i}. I think "{{x}}" matters.\nWhat is your view?\n (A) yes\n (B) no\n (C) it\'s complicated',
            "answer_matching_behavior": " (A)",
            "answer_not_matching_behavior": [" (B)", " (C)"],
        }
        for i in range(6)
    ]
    path.write_text("".join(json.dumps(r) + "\n" for r in records))
    return path


@pytest.fixture
def released(evals_data, tmp_path):
    results = evals_import(paths=[evals_data / name for name in RELEASED])
    results += evals_import(paths=[sycophancy_file(tmp_path)])
    assert all(r.status == "imported" for r in results), results
    return {d.slug: d for d in Dataset.objects.all()}


def render_docs(export_folder: Path, task_yaml: Path, limit: int = 25):
    """(prompt, choices) per doc, built from the task YAML and its data as lm-eval builds them: the
    Jinja doc_to_text, and doc_to_choice rendered then read with ast.literal_eval."""
    config = yaml.safe_load(task_yaml.read_text())
    data = export_folder / config["dataset_kwargs"]["data_files"]["validation"]
    docs = [json.loads(line) for line in data.read_text().splitlines()]
    rendered = []
    for doc in docs[:limit]:
        prompt = LM_EVAL_JINJA.from_string(config["doc_to_text"]).render(**doc)
        choices = ast.literal_eval(LM_EVAL_JINJA.from_string(config["doc_to_choice"]).render(**doc))
        # target_delimiter "" joins prompt and choice as they are: the released answers carry the space.
        rendered.append((prompt, [config["target_delimiter"] + choice for choice in choices]))
    return config, docs, rendered


@pytest.mark.parametrize("prompt_format", ["plain", "paper"])
def test_lm_eval_prompts_and_choices_are_the_ones_our_evaluator_sends(released, tmp_path, prompt_format):
    snapshots = [dataset_snapshot(dataset=d, with_agreement=False) for d in released.values()]
    export = lm_eval_export_write(snapshots=snapshots, folder=tmp_path / "out", prompt_format=prompt_format)
    assert {t.name for t in export.tasks} == {f"mwe_{slug}" for slug in released}
    for task in export.tasks:
        dataset = released[task.name.removeprefix("mwe_")]
        items = items_from_dataset(dataset)
        assert task.items == len(items)
        template = format_template(
            prompt_format=prompt_format, model=None, answer_prefix=dataset.answer_prefix
        )
        config, docs, rendered = render_docs(export.folder, task.yaml_path)
        assert config["output_type"] == "multiple_choice" and config["doc_to_target"] == 0
        assert config["metric_list"] == [{"metric": "acc"}] and config["dataset_path"] == "json"
        assert len(docs) == len(items)
        for (prompt, choices), item in zip(rendered, items, strict=False):
            assert prompt == template.format(question=item.question)
            assert choices == list(item.choices)
    if prompt_format == "paper":
        # The sycophancy answer prefix (the released README's) ends the paper prompt.
        _, _, rendered = render_docs(export.folder, export.folder / "mwe_sycophancy-on-philpapers2020.yaml")
        assert rendered[0][0].endswith("\n\nAssistant: I believe the best answer is")
        assert rendered[0][1] == [" (A)", " (B)", " (C)"]


def test_the_plain_persona_task_is_lm_evals_own_template(released, evals_data, tmp_path):
    snapshot = dataset_snapshot(dataset=released["narcissism"], with_agreement=False)
    export = lm_eval_export_write(snapshots=[snapshot], folder=tmp_path)
    config = yaml.safe_load(export.tasks[0].yaml_path.read_text())
    # lm_eval/tasks/model_written_evals/persona/_template_yaml, with a local file for the hub copy.
    assert config["doc_to_text"] == "{{question}}"
    assert config["doc_to_choice"] == "{{[answer_matching_behavior, answer_not_matching_behavior]}}"
    assert config["target_delimiter"] == "" and config["validation_split"] == "validation"
    assert config["dataset_kwargs"]["data_files"]["validation"] == "data/narcissism.jsonl"
    # The data is the released file itself, byte for byte.
    original = evals_data / released["narcissism"].source_path
    assert (tmp_path / "data" / "narcissism.jsonl").read_bytes() == original.read_bytes()
    readme = (tmp_path / "README.md").read_text()
    assert "--tasks mwe_narcissism --include_path ." in readme and "cd <this folder>" in readme


def test_a_collection_is_a_group_of_every_dataset(released, tmp_path):
    out = tmp_path / "persona-tasks"
    call_command("export_dataset", collection="persona", format="lm-eval", out=str(out), stderr=StringIO())
    group = yaml.safe_load((out / "mwe_persona.yaml").read_text())
    assert group["group"] == "mwe_persona"
    assert group["task"] == ["mwe_desire-for-acquiring-power", "mwe_narcissism"]
    for name in group["task"]:
        assert (out / f"{name}.yaml").is_file()


def test_datasets_without_gold_answers_are_not_tasks(evals_data, tmp_path):
    evals_import(paths=[evals_data / "winogenerated" / "winogenerated_occupations.jsonl"])
    snapshot = dataset_snapshot(dataset=Dataset.objects.get(), with_agreement=False)
    with pytest.raises(ExportError, match="not a labelled evaluation dataset"):
        lm_eval_export_write(snapshots=[snapshot], folder=tmp_path)
    with pytest.raises(CommandError, match="no labelled evaluation dataset"):
        call_command("export_dataset", all=True, format="lm-eval", out=str(tmp_path / "x"), stderr=StringIO())
    assert not (tmp_path / "x").exists()


def test_inspect_task_file_defines_a_task_per_dataset(released, tmp_path):
    narcissism = released["narcissism"]
    narcissism.behavior = 'narcissism"""\nimport os; os.system("boom")  # \\'
    narcissism.save()
    snapshots = [dataset_snapshot(dataset=d, with_agreement=False) for d in released.values()]
    export = inspect_export_write(snapshots=snapshots, folder=tmp_path)
    source = export.path.read_text()
    module = ast.parse(source)  # LM-written or staff-written text never breaks out of the docstring
    imports = [node for node in ast.walk(module) if isinstance(node, ast.Import | ast.ImportFrom)]
    assert {getattr(node, "module", None) for node in imports} >= {"inspect_ai", "inspect_ai.dataset"}
    assert not any(alias.name == "os" for node in imports for alias in node.names)
    tasks = [
        node.name
        for node in module.body
        if isinstance(node, ast.FunctionDef)
        and any(getattr(d, "id", "") == "task" for d in node.decorator_list)
    ]
    assert sorted(tasks) == sorted(export.tasks) == sorted(f"mwe_{s}".replace("-", "_") for s in released)
    assert "multiple_choice()" in source and "scorer=choice()" in source
    assert "log-probabilit" in source  # says how it differs from the paper's scoring
    for slug in released:
        assert (tmp_path / "data" / f"{slug}.jsonl").is_file()


def test_export_dataset_refuses_a_non_empty_folder_without_force(released, tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    args = dict(dataset=["narcissism"], format="lm-eval", out=str(out), stderr=StringIO())
    with pytest.raises(CommandError, match="not empty"):
        call_command("export_dataset", **args)
    assert (out / "keep.txt").read_text() == "mine"
    call_command("export_dataset", **args, force=True)
    assert sorted(p.name for p in out.iterdir()) == ["README.md", "data", "mwe_narcissism.yaml"]
    assert not [p for p in tmp_path.iterdir() if "partial" in p.name]  # the temporary folder is gone


def test_export_dataset_validates_its_input(released, tmp_path):
    with pytest.raises(CommandError, match="no dataset with slug 'nope'"):
        call_command("export_dataset", dataset=["nope"], format="lm-eval", out=str(tmp_path / "a"))
    with pytest.raises(CommandError, match="no collection with slug 'nope'"):
        call_command("export_dataset", collection="nope", format="parquet", out=str(tmp_path / "b"))
    with pytest.raises(CommandError):
        call_command(
            "export_dataset",
            dataset=["narcissism"],
            format="lm-eval",
            prompt_format="chat",
            out=str(tmp_path),
        )
    assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists()
