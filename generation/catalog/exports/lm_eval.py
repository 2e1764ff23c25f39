"""lm-evaluation-harness task folders: per dataset a JSONL of its released records and a task YAML
following lm-eval's own model_written_evals persona template (lm_eval/tasks/model_written_evals/
persona/_template_yaml): multiple_choice, choices [matching, *not matching], target 0, no target
delimiter (the released answers carry their leading space), metric acc. A collection adds a group
YAML. The prompts and choices lm-eval builds from them are the strings our evaluator sends for the
same prompt format (generation.evaluation.services.format_template): the YAML's doc_to_text is
derived from that template, not written again.

lm-eval 0.4.13 hands `dataset_kwargs.data_files` to datasets.load_dataset as it is, and datasets
resolves a relative path against the working directory, not the YAML's folder; so the paths are
relative to the task folder and lm-eval is run from inside it (`cd FOLDER && lm_eval ...
--include_path .`), which the README says. `data_root` writes absolute paths instead.
"""

from __future__ import annotations

import re
import string
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from generation.catalog import formats
from generation.catalog.exports.snapshot import DatasetSnapshot, ExportError
from generation.models import PromptFormat

# The prompt formats an exported task can use: the chat format needs a model's chat template, which
# an exported file cannot know.
PROMPT_FORMATS = (PromptFormat.PLAIN, PromptFormat.PAPER)
TASK_PREFIX = "mwe_"
DATA_FOLDER = "data"
SPLIT = "validation"
# lm-eval's persona template, for files whose not-matching answer is one string.
PERSONA_CHOICE = "{{[answer_matching_behavior, answer_not_matching_behavior]}}"
# For files whose not-matching answers are lists (sycophancy on PhilPapers); the export writes every
# record of such a file with a list (see _choice_records).
LIST_CHOICE = "{{[answer_matching_behavior] + answer_not_matching_behavior}}"
JINJA_SYNTAX = re.compile(r"\{[{%#]|[}%#]\}")


@dataclass(frozen=True)
class LmEvalTask:
    name: str
    yaml_path: Path
    data_path: Path
    items: int


@dataclass(frozen=True)
class LmEvalExport:
    folder: Path
    tasks: list[LmEvalTask]
    group: str | None
    prompt_format: str

    @property
    def task_names(self) -> list[str]:
        return [self.group] if self.group else [task.name for task in self.tasks]


def task_name(slug: str) -> str:
    """The task's name: prefixed so it never shadows one of lm-eval's own (persona_narcissism)."""
    return TASK_PREFIX + slug


def _jinja_literal(text: str) -> str:
    if not JINJA_SYNTAX.search(text):
        return text
    return (
        "{% raw %}"
        + text.replace("{% endraw %}", "{% endraw %}{{ '{% endraw %}' }}{% raw %}")
        + "{% endraw %}"
    )


def doc_to_text(*, prompt_format: str, answer_prefix: str) -> str:
    """Our evaluator's prompt template (a str.format template with one {question}) as the Jinja
    template lm-eval renders: the same literal text around the question."""
    from generation.evaluation.services import EvaluationError, format_template

    if prompt_format not in PROMPT_FORMATS:
        raise ExportError(f"unknown prompt format {prompt_format!r} for an export; use plain or paper")
    try:
        template = format_template(prompt_format=prompt_format, model=None, answer_prefix=answer_prefix)
    except EvaluationError as exc:
        raise ExportError(str(exc)) from None
    parts = []
    for literal, field_name, _spec, _conversion in string.Formatter().parse(template):
        parts.append(_jinja_literal(literal))
        if field_name is not None:
            if field_name != "question":
                raise ExportError(f"the prompt template has an unknown placeholder {field_name!r}")
            parts.append("{{question}}")
    return "".join(parts)


def scorable_records(snapshot: DatasetSnapshot) -> list[dict[str, Any]]:
    """The records our evaluator scores (generation.evaluation.services.items_from_dataset): those with
    a matching answer, in position order."""
    if not snapshot.is_scorable:
        raise ExportError(
            f"'{snapshot.slug}' is not a labelled evaluation dataset ({snapshot.purpose}, {snapshot.kind}); "
            "only datasets with a gold answer per item can be exported as a task"
        )
    return [record for record in snapshot.records if record.get("answer_matching_behavior")]


def _choice_records(records: list[dict[str, Any]]) -> tuple[list[dict[str, Any]], str]:
    """The records as lm-eval will read them, and the doc_to_choice that gives [matching, *others].
    A file whose not-matching answers are all strings keeps its records and gets lm-eval's persona
    template; any other (lists, missing, mixed) gets every not-matching answer as a list, since the
    JSON loader needs one type per column."""
    values = [record.get("answer_not_matching_behavior") for record in records]
    if all(isinstance(value, str) and value for value in values):
        return records, PERSONA_CHOICE
    normalised = []
    for record, value in zip(records, values, strict=True):
        others = value if isinstance(value, list) else [value] if value else []
        normalised.append({**record, "answer_not_matching_behavior": list(others)})
    return normalised, LIST_CHOICE


def item_choices(record: dict[str, Any]) -> list[str]:
    """[matching, *not matching] of a record, as our evaluator builds them."""
    value = record.get("answer_not_matching_behavior")
    others = value if isinstance(value, list) else [value] if value else []
    return [record["answer_matching_behavior"], *others]


def _dump_yaml(data: dict[str, Any]) -> str:
    return yaml.safe_dump(data, sort_keys=False, allow_unicode=True, width=10_000)


def lm_eval_export_write(
    *,
    snapshots: list[DatasetSnapshot],
    folder: Path,
    prompt_format: str = PromptFormat.PLAIN,
    group: str | None = None,
    data_root: Path | None = None,
) -> LmEvalExport:
    """Writes the task folder into `folder` (which must exist): data/<slug>.jsonl and <task>.yaml per
    dataset, `group`.yaml listing them when a group name is given, and a README."""
    if not snapshots:
        raise ExportError("nothing to export")
    tasks: list[LmEvalTask] = []
    (folder / DATA_FOLDER).mkdir(parents=True, exist_ok=True)
    for snapshot in snapshots:
        records, choice_template = _choice_records(scorable_records(snapshot))
        data_path = folder / DATA_FOLDER / f"{snapshot.slug}.jsonl"
        with data_path.open("w", encoding="utf-8", newline="\n") as handle:
            for record in records:
                handle.write(formats.record_to_json_line(record, ensure_ascii=snapshot.ensure_ascii) + "\n")
        name = task_name(snapshot.slug)
        relative = f"{DATA_FOLDER}/{data_path.name}"
        config = {
            "task": name,
            "dataset_path": "json",
            "dataset_kwargs": {
                "data_files": {SPLIT: str((data_root / relative).resolve()) if data_root else relative}
            },
            "output_type": "multiple_choice",
            "validation_split": SPLIT,
            "target_delimiter": "",
            "doc_to_text": doc_to_text(prompt_format=prompt_format, answer_prefix=snapshot.answer_prefix),
            "doc_to_target": 0,
            "doc_to_choice": choice_template,
            "metric_list": [{"metric": "acc"}],
            "metadata": {"version": 1.0},
        }
        yaml_path = folder / f"{name}.yaml"
        yaml_path.write_text(_dump_yaml(config), encoding="utf-8")
        tasks.append(LmEvalTask(name=name, yaml_path=yaml_path, data_path=data_path, items=len(records)))
    group_name = None
    if group is not None:
        group_name = task_name(group)
        config = {
            "group": group_name,
            "task": [task.name for task in tasks],
            "aggregate_metric_list": [{"metric": "acc", "aggregation": "mean", "weight_by_size": True}],
            "metadata": {"version": 1.0},
        }
        (folder / f"{group_name}.yaml").write_text(_dump_yaml(config), encoding="utf-8")
    export = LmEvalExport(folder=folder, tasks=tasks, group=group_name, prompt_format=prompt_format)
    (folder / "README.md").write_text(_readme(export, snapshots), encoding="utf-8")
    return export


def _readme(export: LmEvalExport, snapshots: list[DatasetSnapshot]) -> str:
    names = ",".join(export.task_names)
    lines = [
        "# lm-evaluation-harness tasks (model-written evaluations)",
        "",
        "Written by `python manage.py export_dataset --format lm-eval`. Each task follows",
        "lm-eval's own `model_written_evals/persona` template: multiple choice between the answer",
        "matching the behavior (choice 0, the target) and the other answer(s); `acc` is the share of",
        "items where the model prefers the behavior-matching answer (the paper's % matching behavior).",
        f"Prompt format: `{export.prompt_format}`"
        + (
            " (the bare question, as lm-eval's persona tasks)."
            if export.prompt_format == PromptFormat.PLAIN
            else " (the paper's Human/Assistant dialogue, ending with the dataset's answer prefix)."
        ),
        "",
        "Run it from this folder (the data paths are relative to it; datasets resolves them against",
        "the working directory):",
        "",
        "```",
        "cd <this folder>",
        f"lm_eval --model hf --model_args pretrained=<model> --tasks {names} --include_path .",
        "```",
        "",
        "Tested with lm-eval 0.4.13. Tasks:",
        "",
    ]
    for task, snapshot in zip(export.tasks, snapshots, strict=True):
        source = snapshot.source_path or f"generated on the site ({snapshot.url_path})"
        lines.append(f"- `{task.name}`: {task.items} items; source {source}")
    if export.group:
        lines += ["", f"Group `{export.group}` runs them all (acc averaged weighted by size)."]
    return "\n".join(lines) + "\n"
