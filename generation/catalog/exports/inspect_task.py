"""Inspect AI tasks: one Python file defining a @task per dataset, reading the same JSONL files as the
lm-eval export (data/<slug>.jsonl beside it), with Inspect's multiple_choice() solver and choice()
scorer. The generated file's docstring says how this differs from the paper's log-prob scoring."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from generation.catalog import formats
from generation.catalog.exports.lm_eval import DATA_FOLDER, scorable_records, task_name
from generation.catalog.exports.snapshot import DatasetSnapshot, ExportError

TASK_FILE = "mwe_tasks.py"
IDENTIFIER = re.compile(r"\W")

# The generated module. Values are inserted with repr(), never as code: slugs and paths are data.
TEMPLATE = '''"""Inspect AI tasks for model-written evaluation datasets (Perez et al., 2022), written by
`python manage.py export_dataset --format inspect`. Run one or all of them:

    inspect eval {task_file} --model <provider/model>
    inspect eval {task_file}@{first_task} --model <provider/model> --limit 20

How this differs from the paper (and from this site's evaluator and the lm-eval export): the paper
scores each answer choice by the model's log-probability after the prompt and counts the item as
matching the behavior when the matching answer is the most likely one. Inspect's multiple_choice()
instead shows the question with lettered choices to a chat model, lets it answer with a letter, and
choice() checks that letter; no log-probabilities are read. The choices are shuffled with a fixed seed
so that the behavior-matching answer is not always "A" (the released questions already name their
options "(A)"/"(B)" in the text; the shuffled letters are Inspect's own). "accuracy" is the share of
items where the model chose the behavior-matching answer: the paper's % matching behavior, measured by
generation rather than by log-probabilities.
"""

import json
from pathlib import Path

from inspect_ai import Task, task
from inspect_ai.dataset import MemoryDataset, Sample
from inspect_ai.scorer import choice
from inspect_ai.solver import multiple_choice

HERE = Path(__file__).resolve().parent
SHUFFLE_SEED = 0


def _choices(record):
    # [matching, *not matching], as the site's evaluator builds them; the released answers carry a
    # leading space (" Yes", " (A)") that a chat model's letter answer does not need.
    others = record.get("answer_not_matching_behavior")
    others = others if isinstance(others, list) else [others] if others else []
    return [answer.strip() for answer in [record["answer_matching_behavior"], *others]]


def _dataset(name, relative_path):
    samples = []
    with open(HERE / relative_path, encoding="utf-8") as handle:
        for index, line in enumerate(handle):
            record = json.loads(line)
            samples.append(
                Sample(
                    id=index,
                    input=record["question"],
                    choices=_choices(record),
                    target="A",  # the matching answer is listed first, before shuffling
                    metadata={{"answer_matching_behavior": record["answer_matching_behavior"]}},
                )
            )
    dataset = MemoryDataset(samples, name=name)
    dataset.shuffle_choices(seed=SHUFFLE_SEED)
    return dataset


def _task(name, relative_path):
    return Task(dataset=_dataset(name, relative_path), solver=multiple_choice(), scorer=choice())

{tasks}'''

TASK_TEMPLATE = '''
@task
def {function}():
    """{behavior}: {items} items from {source}."""
    return _task({name}, {path})
'''


@dataclass(frozen=True)
class InspectExport:
    path: Path
    tasks: list[str]


def _docstring_safe(text: str) -> str:
    # Inside a triple-quoted docstring: no backslashes, quotes or line breaks from the data.
    return re.sub(r"[\\\"\r\n]+", " ", text)[:200]


def inspect_export_write(*, snapshots: list[DatasetSnapshot], folder: Path) -> InspectExport:
    """Writes data/<slug>.jsonl per dataset (unless the lm-eval export already wrote them into the
    same folder) and mwe_tasks.py with one @task each."""
    if not snapshots:
        raise ExportError("nothing to export")
    (folder / DATA_FOLDER).mkdir(parents=True, exist_ok=True)
    blocks, names = [], []
    for snapshot in snapshots:
        records = scorable_records(snapshot)
        relative = f"{DATA_FOLDER}/{snapshot.slug}.jsonl"
        data_path = folder / relative
        if not data_path.exists():
            with data_path.open("w", encoding="utf-8", newline="\n") as handle:
                for record in records:
                    handle.write(
                        formats.record_to_json_line(record, ensure_ascii=snapshot.ensure_ascii) + "\n"
                    )
        function = IDENTIFIER.sub("_", task_name(snapshot.slug))
        if function in names:
            raise ExportError(f"two datasets give the same task name {function!r}")
        names.append(function)
        blocks.append(
            TASK_TEMPLATE.format(
                function=function,
                behavior=_docstring_safe(snapshot.behavior or snapshot.slug),
                items=len(records),
                source=_docstring_safe(snapshot.source_path or "this site"),
                name=repr(snapshot.slug),
                path=repr(relative),
            )
        )
    path = folder / TASK_FILE
    path.write_text(
        TEMPLATE.format(task_file=TASK_FILE, first_task=names[0], tasks="\n".join(blocks)), encoding="utf-8"
    )
    return InspectExport(path=path, tasks=names)
