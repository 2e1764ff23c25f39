"""Import of ratings collected on an external crowd platform (a CSV file) into an annotation project.

Columns (a header line names them; others are ignored and reported):

- the example: `dataset` (its slug) and `position` (or `example_position`, 0-based line of the
  released file), or `example_id`; when both are given they must name the same example;
- the worker: `worker_id`, the platform's id, stored as the worker's external id (a file exported
  by this site names it `worker_external_id`, which is preferred when present). It is taken
  exactly as written: an id with surrounding whitespace or an invisible character is refused,
  since stripping it would merge two workers (" w1" and "w1") and keeping it would let one pass
  for the other. A leading quote that this site's CSV export put before a formula-like id
  (`'=w1`) is removed;
- the answers: `relevance` (1-5), `answer` (the option the worker chose, as in the paper's task:
  one of the example's answers, e.g. "Yes" or "(A)", with or without the leading space the released
  files give it) and `ambiguous` (yes/no, true/false, 1/0). `label_correct` (yes/no) is derived:
  whether the answer is the label (the behavior-matching answer). Files of the older task, where
  workers judged the label they were shown, give `label_correct` instead of `answer`: the answer is
  then the label when it was judged correct, the one other answer when it was judged wrong and the
  example has exactly one, and left empty otherwise (several other answers, e.g. PhilPapers), as
  the migration of old responses does. A row with both must agree;
- optionally `time_on_task_ms` (a whole number of milliseconds, at most 2,147,483,647).

The whole file is validated before anything is written, and every error names its line. Then one
transaction writes it, through the same invariants as ratings made on the site: each rating is a
submitted `Assignment` with its `Response`, and the item's `reserved_count` and `submitted_count`
grow with it (written by services.leases, the counters' one writer), never past the item's
`overlap` (the database's CheckConstraints guard this too; the items are locked while their
counters change). Workers are found or created by external id and
enrolled in the project; a missing project is created with `overlap` = the largest number of
ratings of one example in the file (or the one given). Importing the same file again changes
nothing: a rating already stored with the same answers is skipped, one stored with different
answers is an error.
"""

from __future__ import annotations

import csv
import io
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path

from django.db import transaction
from django.utils import timezone

from annotation.models import (
    AnnotationProject,
    Assignment,
    ProjectItem,
    Response,
    Worker,
    external_id_problem,
)
from annotation.services.leases import ID_BATCH, item_counters_add_submitted
from annotation.services.projects import BULK_BATCH, project_create
from annotation.services.workers import worker_create
from generation.models import Dataset, Example
from generation.models.catalog import not_matching_list
from mwe_site.safe_csv import csv_uncell

TRUE_WORDS = {"yes", "y", "true", "t", "1"}
FALSE_WORDS = {"no", "n", "false", "f", "0"}
MAX_ERRORS_SHOWN = 50
MAX_OVERLAP = 100
# The columns' ranges: PostgreSQL's integer (time_on_task_ms) and bigint (example ids). A larger
# value would fail the insert or the look-up with a database error instead of naming its line.
MAX_TIME_ON_TASK_MS = 2**31 - 1
MAX_ID = 2**63 - 1


class AnnotationImportError(ValueError):
    """The file cannot be imported; `errors` lists each problem with its line number."""

    def __init__(self, errors: list[str]):
        self.errors = errors
        shown = errors[:MAX_ERRORS_SHOWN]
        more = len(errors) - len(shown)
        super().__init__("\n".join(shown + ([f"... and {more} more error(s)"] if more else [])))


@dataclass(frozen=True)
class RatingRow:
    line: int
    dataset: str
    position: int | None
    example_id: int | None
    worker: str
    relevance: int
    answer: str  # as written, "" when not given
    label_correct: bool | None  # None when not given
    ambiguous: bool
    time_on_task_ms: int | None
    # What the CSV has no column for; the Label Studio and Argilla imports carry them
    # (annotation.services.interop).
    comment: str = ""
    flagged_broken: bool = False


@dataclass
class ImportSummary:
    project: str
    created_project: bool = False
    overlap: int = 0
    rows: int = 0
    new_ratings: int = 0
    unchanged: int = 0
    new_workers: int = 0
    new_items: int = 0
    ignored_columns: list[str] = field(default_factory=list)

    def describe(self) -> str:
        parts = [
            f"{self.rows} row(s): {self.new_ratings} new rating(s), {self.unchanged} already imported",
            f"{self.new_workers} new worker(s), {self.new_items} new item(s)",
            f"project {self.project} (k = {self.overlap}{', created' if self.created_project else ''})",
        ]
        if self.ignored_columns:
            parts.append("ignored columns: " + ", ".join(self.ignored_columns))
        return "; ".join(parts)


# ----------------------------------------------------------------------------- parsing (no database)


def _boolean(value: str) -> bool | None:
    word = value.strip().lower()
    if word in TRUE_WORDS:
        return True
    if word in FALSE_WORDS:
        return False
    return None


def _integer(value: str) -> int | None:
    text = value.strip()
    if text.endswith(".0"):  # spreadsheets write whole numbers as 3.0
        text = text[:-2]
    try:
        return int(text)
    except ValueError:
        return None


def ratings_parse(text: str) -> tuple[list[RatingRow], list[str], list[str]]:
    """The valid rows of a ratings CSV, the ignored column names and the problems of the other rows
    (each with its line number). A header that cannot be read raises AnnotationImportError."""
    reader = csv.DictReader(io.StringIO(text.lstrip("\ufeff")))
    header = [name.strip() for name in (reader.fieldnames or [])]
    reader.fieldnames = header
    columns = set(header)
    errors: list[str] = []
    if not header:
        raise AnnotationImportError(["line 1: the file is empty; a header line naming the columns is needed"])
    if duplicated := sorted(name for name, n in Counter(header).items() if n > 1 and name):
        errors.append(f"line 1: column(s) named twice: {', '.join(duplicated)}")
    position_column = "position" if "position" in columns else "example_position"
    worker_column = "worker_external_id" if "worker_external_id" in columns else "worker_id"
    by_position = {"dataset", position_column} <= columns
    if not by_position and "example_id" not in columns:
        errors.append("line 1: name each example with the columns dataset and position, or example_id")
    missing = [name for name in (worker_column, "relevance", "ambiguous") if name not in columns]
    if "answer" not in columns and "label_correct" not in columns:
        missing.append("answer (or, for ratings of the older task, label_correct)")
    if missing:
        errors.append(f"line 1: missing column(s): {', '.join(missing)}")
    if errors:
        raise AnnotationImportError(errors)
    known = {
        "dataset",
        position_column,
        "example_id",
        worker_column,
        "relevance",
        "answer",
        "label_correct",
        "ambiguous",
        "time_on_task_ms",
    }
    ignored = [name for name in header if name not in known]

    rows: list[RatingRow] = []
    try:
        records = list(_numbered(reader))
    except csv.Error as exc:
        raise AnnotationImportError([f"line {reader.line_num}: {exc}"]) from None
    for line, record in records:
        problems = []
        if None in record:
            problems.append("more fields than columns in the header")
        cell = {name: (record.get(name) or "").strip() for name in known}
        example_id = position = None
        if cell["example_id"]:
            example_id = _integer(cell["example_id"])
            if example_id is None or not 1 <= example_id <= MAX_ID:
                problems.append(f"example_id {cell['example_id']!r} is not a positive integer")
        if cell["dataset"] or cell[position_column]:
            position = _integer(cell[position_column])
            if not cell["dataset"]:
                problems.append("position given without a dataset")
            elif position is None or not 0 <= position <= MAX_ID:
                problems.append(f"{position_column} {cell[position_column]!r} is not a whole number >= 0")
        if not cell["example_id"] and not cell["dataset"]:
            problems.append("no example: give dataset and position, or example_id")
        # The worker's id as written, not stripped: see the module's docstring.
        worker = csv_uncell(record.get(worker_column) or "")
        if not worker.strip():
            problems.append(f"{worker_column} is empty")
        elif (problem := external_id_problem(worker)) is not None:
            problems.append(f"{worker_column} {worker!r} {problem}")
        elif len(worker) > Worker._meta.get_field("external_id").max_length:
            problems.append(
                f"{worker_column} is longer than {Worker._meta.get_field('external_id').max_length} characters"
            )
        relevance = _integer(cell["relevance"])
        if relevance is None or not 1 <= relevance <= 5:
            problems.append(f"relevance {cell['relevance']!r} is not an integer from 1 to 5")
        # The answer as written (this site's export puts a quote before a formula-like cell).
        answer = csv_uncell(cell["answer"]) if cell["answer"] else ""
        label_correct = None
        if cell["label_correct"]:
            label_correct = _boolean(cell["label_correct"])
            if label_correct is None:
                problems.append(f"label_correct {cell['label_correct']!r} is not yes/no, true/false or 1/0")
        elif not answer:
            problems.append("no answer: give the answer the worker chose (or label_correct)")
        ambiguous = _boolean(cell["ambiguous"])
        if ambiguous is None:
            problems.append(f"ambiguous {cell['ambiguous']!r} is not yes/no, true/false or 1/0")
        time_ms = None
        if cell["time_on_task_ms"]:
            time_ms = _integer(cell["time_on_task_ms"])
            if time_ms is None or time_ms < 0:
                problems.append(f"time_on_task_ms {cell['time_on_task_ms']!r} is not a whole number >= 0")
            elif time_ms > MAX_TIME_ON_TASK_MS:
                problems.append(
                    f"time_on_task_ms {cell['time_on_task_ms']!r} is more than {MAX_TIME_ON_TASK_MS}"
                )
        if problems:
            errors.extend(f"line {line}: {problem}" for problem in problems)
            continue
        rows.append(
            RatingRow(
                line=line,
                dataset=cell["dataset"],
                position=position,
                example_id=example_id,
                worker=worker,
                relevance=relevance,
                answer=answer,
                label_correct=label_correct,
                ambiguous=ambiguous,
                time_on_task_ms=time_ms,
            )
        )
    if not rows and not errors:
        raise AnnotationImportError(["the file has a header but no ratings"])
    return rows, ignored, errors


def _numbered(reader: csv.DictReader):
    """(line number, record) for each record that is not blank; the number is the line the record
    ends on (its only line, unless a quoted field spans several)."""
    for record in reader:
        values = [value for key, value in record.items() if key is not None]
        if None in record or any((value or "").strip() for value in values):
            yield reader.line_num, record


# ----------------------------------------------------------------------------- resolving and writing


@dataclass
class _Plan:
    examples: dict[int, int]  # row line -> example id
    datasets: dict[int, int]  # example id -> dataset id
    labels: dict[int, str]  # example id -> "slug#position" for messages
    answers: dict[int, tuple[str, list[str]]]  # example id -> (matching answer, the other answers)


def _options(matching: str, others: list[str]) -> list[str]:
    return [option for option in (matching, *others) if option and option.strip()]


def _chosen_option(written: str, options: list[str]) -> str | None:
    """The option a written answer names: the exact spelling, or the one option equal to it once
    the surrounding spaces are set aside (" Yes" is written "Yes" in most files)."""
    if written in options:
        return written
    same = [option for option in options if option.strip() == written.strip()]
    return same[0] if len(same) == 1 else None


def _answer_from_verdict(*, label_correct: bool, matching: str, others: list[str]) -> str:
    """The answer a verdict of the older task implies, or "" when it does not single one out (the
    rule of migration annotation 0006)."""
    if label_correct:
        return matching or ""
    others = [answer for answer in others if answer and answer != matching]
    return others[0] if len(others) == 1 else ""


def _resolve_answers(rows: list[RatingRow], plan: _Plan) -> tuple[dict[int, tuple[str, bool]], list[str]]:
    """Per row line: the answer to store (an option as the example spells it, or "") and
    label_correct; and the problems of the rows whose answer cannot be stored."""
    resolved: dict[int, tuple[str, bool]] = {}
    errors: list[str] = []
    for row in rows:
        example = plan.examples[row.line]
        matching, others = plan.answers[example]
        options = _options(matching, others)
        if not row.answer:
            answer = _answer_from_verdict(label_correct=row.label_correct, matching=matching, others=others)
            resolved[row.line] = (answer, row.label_correct)
            continue
        answer = _chosen_option(row.answer, options)
        if answer is None:
            shown = ", ".join(repr(option.strip()) for option in sorted(options, key=str.strip))
            errors.append(
                f"line {row.line}: answer {row.answer!r} is not one of the answers of "
                f"{plan.labels[example]} ({shown or 'it has none'})"
            )
            continue
        label_correct = answer == matching
        if row.label_correct is not None and row.label_correct != label_correct:
            errors.append(
                f"line {row.line}: label_correct {'yes' if row.label_correct else 'no'} disagrees with the "
                f"answer {row.answer!r}, which is {'' if label_correct else 'not '}the label of "
                f"{plan.labels[example]}"
            )
            continue
        resolved[row.line] = (answer, label_correct)
    return resolved, errors


def _resolve_examples(rows: list[RatingRow]) -> tuple[_Plan, list[str]]:
    errors: list[str] = []
    slugs = sorted({row.dataset for row in rows if row.dataset})
    datasets = dict(Dataset.objects.filter(slug__in=slugs).values_list("slug", "pk"))
    by_position: dict[tuple[int, int], int] = {}
    labels: dict[int, str] = {}
    dataset_of: dict[int, int] = {}
    answers: dict[int, tuple[str, list[str]]] = {}
    wanted = defaultdict(set)
    for row in rows:
        if row.dataset in datasets and row.position is not None:
            wanted[datasets[row.dataset]].add(row.position)
    slug_of = {pk: slug for slug, pk in datasets.items()}
    if wanted:
        found = Example.objects.filter(dataset_id__in=list(wanted)).values_list(
            "pk", "dataset_id", "position", "answer_matching_behavior", "answer_not_matching_behavior"
        )
        for pk, dataset_id, position, matching, others in found.order_by().iterator(chunk_size=5000):
            if position in wanted[dataset_id]:
                by_position[(dataset_id, position)] = pk
                labels[pk] = f"{slug_of[dataset_id]}#{position}"
                dataset_of[pk] = dataset_id
                answers[pk] = (matching, not_matching_list(others))
    ids = sorted({row.example_id for row in rows if row.example_id is not None})
    for start in range(0, len(ids), ID_BATCH):
        batch = Example.objects.filter(pk__in=ids[start : start + ID_BATCH]).values_list(
            "pk",
            "dataset_id",
            "dataset__slug",
            "position",
            "answer_matching_behavior",
            "answer_not_matching_behavior",
        )
        for pk, dataset_id, slug, position, matching, others in batch:
            labels[pk] = f"{slug}#{position}"
            dataset_of[pk] = dataset_id
            answers[pk] = (matching, not_matching_list(others))

    examples: dict[int, int] = {}
    for row in rows:
        example = None
        if row.dataset:
            if row.dataset not in datasets:
                errors.append(f"line {row.line}: no dataset with the slug {row.dataset!r}")
                continue
            example = by_position.get((datasets[row.dataset], row.position))
            if example is None:
                errors.append(
                    f"line {row.line}: dataset {row.dataset} has no example at position {row.position}"
                )
                continue
        if row.example_id is not None:
            if row.example_id not in dataset_of:
                errors.append(f"line {row.line}: no example with id {row.example_id}")
                continue
            if example is not None and example != row.example_id:
                errors.append(
                    f"line {row.line}: example_id {row.example_id} is {labels[row.example_id]}, not "
                    f"{row.dataset}#{row.position}"
                )
                continue
            example = row.example_id
        examples[row.line] = example
    return _Plan(examples=examples, datasets=dataset_of, labels=labels, answers=answers), errors


def _by_line(errors: list[str]) -> list[str]:
    """Errors in the order of the lines they name (those naming no line last)."""

    def line(message: str) -> int:
        words = message.replace(",", " ").replace(":", " ").split()
        if words and words[0] in ("line", "lines") and len(words) > 1 and words[1].isdigit():
            return int(words[1])
        return 1 << 62

    return sorted(errors, key=line)


def ratings_import(
    *, path: Path | str, project_slug: str, overlap: int | None = None, name: str | None = None
) -> ImportSummary:
    """Validates the file whole, then writes its ratings into the project in one transaction."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise AnnotationImportError([f"{path}: not UTF-8 text ({exc.reason} at byte {exc.start})"]) from None
    return ratings_import_text(text=text, project_slug=project_slug, overlap=overlap, name=name)


def ratings_import_text(
    *, text: str, project_slug: str, overlap: int | None = None, name: str | None = None
) -> ImportSummary:
    _check_target(project_slug=project_slug, overlap=overlap)
    rows, ignored, errors = ratings_parse(text)
    return _import_rows(
        rows=rows, project_slug=project_slug, overlap=overlap, name=name, errors=errors, ignored=ignored
    )


def ratings_import_rows(
    *,
    rows: list[RatingRow],
    project_slug: str,
    overlap: int | None = None,
    name: str | None = None,
    errors: list[str] | None = None,
    ignored: list[str] | None = None,
) -> ImportSummary:
    """Ratings read from another format (annotation.services.interop: Label Studio, Argilla) through
    the same checks and writer as a CSV's rows. `errors`: the problems already found while reading
    them (nothing is written when there are any); each row's `line` numbers it in those messages."""
    _check_target(project_slug=project_slug, overlap=overlap)
    return _import_rows(
        rows=list(rows),
        project_slug=project_slug,
        overlap=overlap,
        name=name,
        errors=list(errors or []),
        ignored=list(ignored or []),
    )


def _check_target(*, project_slug: str, overlap: int | None) -> None:
    from generation.catalog.services import dataset_slug_usable

    if (
        not dataset_slug_usable(project_slug)
        or len(project_slug) > AnnotationProject._meta.get_field("slug").max_length
    ):
        raise AnnotationImportError(
            [f"{project_slug!r} is not a usable project slug (letters, digits, - and _)"]
        )
    if overlap is not None and not 1 <= overlap <= MAX_OVERLAP:
        raise AnnotationImportError([f"overlap must be from 1 to {MAX_OVERLAP}, not {overlap}"])


def _import_rows(
    *,
    rows: list[RatingRow],
    project_slug: str,
    overlap: int | None,
    name: str | None,
    errors: list[str],
    ignored: list[str],
) -> ImportSummary:
    # Every row is checked, and every problem reported at once: the rows with bad values are left
    # out of the checks that need a valid row, not the others.
    plan, unresolved = _resolve_examples(rows)
    errors += unresolved
    rows = [row for row in rows if row.line in plan.examples]
    chosen, wrong_answers = _resolve_answers(rows, plan)
    errors += wrong_answers
    rows = [row for row in rows if row.line in chosen]

    # Within the file: one rating per (example, worker), and no more than k per example.
    first_line: dict[tuple[int, str], int] = {}
    for row in rows:
        key = (plan.examples[row.line], row.worker)
        if key in first_line:
            errors.append(
                f"line {row.line}: worker {row.worker} already rated {plan.labels[key[0]]} on line {first_line[key]}"
            )
        else:
            first_line[key] = row.line
    per_example = Counter(plan.examples[row.line] for row in rows)
    if not per_example:
        raise AnnotationImportError(_by_line(errors))

    project = AnnotationProject.objects.filter(slug=project_slug).first()
    if project is not None and overlap is not None and overlap != project.overlap:
        raise AnnotationImportError(
            [
                f"project {project_slug} already exists with overlap {project.overlap}; --overlap {overlap} differs"
            ]
        )
    k = project.overlap if project is not None else (overlap or max(per_example.values()))
    if k > MAX_OVERLAP:
        raise AnnotationImportError([f"an example has {k} ratings; a project allows at most {MAX_OVERLAP}"])

    stored, items = _existing(project, plan, rows)
    summary = ImportSummary(project=project_slug, overlap=k, rows=len(rows), ignored_columns=ignored)
    new_rows = []
    for row in rows:
        example = plan.examples[row.line]
        answers = stored.get((example, row.worker))
        answer, label_correct = chosen[row.line]
        if answers is None:
            new_rows.append(row)
        elif answers[1:] == (row.relevance, label_correct, row.ambiguous) and (
            not row.answer or answers[0] == answer
        ):
            # A row of the older task (no answer) matches a stored rating with the same verdict.
            summary.unchanged += 1
        else:
            errors.append(
                f"line {row.line}: worker {row.worker} already rated {plan.labels[example]} with other answers "
                f"(answer {answers[0].strip()!r}, relevance {answers[1]}, label correct {answers[2]}, "
                f"ambiguous {answers[3]})"
            )
    new_per_example = Counter(plan.examples[row.line] for row in new_rows)
    for example, count in sorted(new_per_example.items()):
        item = items.get(example)
        if item is not None and item.is_gold:
            errors.append(
                f"{plan.labels[example]} is a gold item of project {project_slug}; gold answers are not imported"
            )
            continue
        cap = item.overlap if item is not None else k
        already = item.reserved_count if item is not None else 0
        if already + count > cap:
            lines = ", ".join(str(row.line) for row in rows if plan.examples[row.line] == example)
            taken = f" ({already} slot(s) already taken)" if already else ""
            errors.append(
                f"lines {lines}: {plan.labels[example]} would have {already + count} ratings, more than the "
                f"project's k = {cap}{taken}"
            )
    if errors:
        raise AnnotationImportError(_by_line(errors))
    if not new_rows:
        return summary

    with transaction.atomic():
        _write(
            project=project,
            project_slug=project_slug,
            name=name,
            k=k,
            plan=plan,
            rows=new_rows,
            chosen=chosen,
            summary=summary,
        )
    return summary


def _existing(
    project: AnnotationProject | None, plan: _Plan, rows: list[RatingRow]
) -> tuple[dict[tuple[int, str], tuple[str, int, bool, bool]], dict[int, ProjectItem]]:
    """The project's stored answers (answer, relevance, label_correct, ambiguous) of the file's
    (example, worker) pairs, and its items."""
    if project is None:
        return {}, {}
    example_ids = sorted(set(plan.examples.values()))
    stored: dict[tuple[int, str], tuple[str, int, bool, bool]] = {}
    items: dict[int, ProjectItem] = {}
    for start in range(0, len(example_ids), ID_BATCH):
        batch = example_ids[start : start + ID_BATCH]
        for item in ProjectItem.objects.filter(project=project, example_id__in=batch):
            items[item.example_id] = item
        answers = Response.objects.filter(project=project, item__example_id__in=batch).values_list(
            "item__example_id", "worker__external_id", "answer", "relevance", "label_correct", "ambiguous"
        )
        for example_id, external_id, answer, relevance, label_correct, ambiguous in answers:
            stored[(example_id, external_id)] = (answer, relevance, label_correct, ambiguous)
    return stored, items


def _write(
    *,
    project: AnnotationProject | None,
    project_slug: str,
    name: str | None,
    k: int,
    plan: _Plan,
    rows: list[RatingRow],
    chosen: dict[int, tuple[str, bool]],
    summary: ImportSummary,
) -> None:
    if project is None:
        project = project_create(name=name or project_slug, slug=project_slug, datasets=[], overlap=k)
        summary.created_project = True
    project.datasets.add(*sorted({plan.datasets[plan.examples[row.line]] for row in rows}))

    external_ids = sorted({row.worker for row in rows})
    workers = dict(
        Worker.objects.filter(platform="", external_id__in=external_ids).values_list("external_id", "pk")
    )
    for external_id in external_ids:
        if external_id not in workers:
            workers[external_id] = worker_create(project=project, external_id=external_id).pk
            summary.new_workers += 1
    project.workers.add(*workers.values())

    example_ids = sorted({plan.examples[row.line] for row in rows})
    existing = set()
    for start in range(0, len(example_ids), ID_BATCH):
        existing.update(
            ProjectItem.objects.filter(
                project=project, example_id__in=example_ids[start : start + ID_BATCH]
            ).values_list("example_id", flat=True)
        )
    missing = [pk for pk in example_ids if pk not in existing]
    ProjectItem.objects.bulk_create(
        [ProjectItem(project=project, example_id=pk, overlap=project.overlap) for pk in missing],
        batch_size=BULK_BATCH,
    )
    summary.new_items = len(missing)

    # Lock the items (in primary-key order, as the lease sweeps do) and re-check their capacity
    # against the counters as they are now: a worker on the site may have claimed a slot since.
    items: dict[int, ProjectItem] = {}
    for start in range(0, len(example_ids), ID_BATCH):
        locked = (
            ProjectItem.objects.select_for_update()
            .filter(project=project, example_id__in=example_ids[start : start + ID_BATCH])
            .order_by("pk")
        )
        items.update((item.example_id, item) for item in locked)
    adding = Counter(plan.examples[row.line] for row in rows)
    full = [
        f"{plan.labels[example]} has {items[example].reserved_count} slot(s) taken, no room for {count} more"
        for example, count in sorted(adding.items())
        if items[example].reserved_count + count > items[example].overlap
    ]
    if full:
        raise AnnotationImportError(full)

    now = timezone.now()
    assignments = Assignment.objects.bulk_create(
        [
            Assignment(
                project=project,
                item=items[plan.examples[row.line]],
                worker_id=workers[row.worker],
                status=Assignment.Status.SUBMITTED,
                claimed_at=now,
                expires_at=now + timedelta(seconds=project.lease_seconds),
                finished_at=now,
            )
            for row in rows
        ],
        batch_size=BULK_BATCH,
    )
    Response.objects.bulk_create(
        [
            Response(
                project=project,
                item=assignment.item,
                worker_id=assignment.worker_id,
                assignment=assignment,
                relevance=row.relevance,
                answer=chosen[row.line][0],
                label_correct=chosen[row.line][1],
                ambiguous=row.ambiguous,
                time_on_task_ms=row.time_on_task_ms,
                comment=row.comment,
                flagged_broken=row.flagged_broken,
            )
            for row, assignment in zip(rows, assignments, strict=True)
        ],
        batch_size=BULK_BATCH,
    )
    # Every counter write is the lease module's, here under the locks taken above.
    item_counters_add_submitted(
        submitted_per_item={items[example].pk: count for example, count in adding.items()}
    )
    summary.new_ratings = len(rows)
