"""An annotation project as a Label Studio project or an Argilla dataset, and their annotations back
as ratings (issue 17): researchers who rate in those tools, or who keep their data there, move a
project across and bring the ratings home.

Label Studio (https://labelstud.io/guide/task_format): a labeling config (config.xml) of the
paper's task, and tasks.json in Label Studio's import format, one task per project item. Each task's
`data` holds the question as the worker sees it, its answer options, and our ids (example id,
dataset slug, position), which Label Studio keeps and writes back in its JSON export. A project's
responses become the tasks' `annotations` in Label Studio's result format (from_name, to_name, type,
value), one per response; `completed_by` is a dict with an email made from the worker's key (Label
Studio attributes an annotation to the member with that email) and the key itself as
`external_id`. A Label Studio JSON export (a list of tasks with their annotations) comes back as
ratings: `completed_by` as a dict (its `external_id`, else its `email`), as a number (Label
Studio's own user id, imported as the worker "label-studio-user-<id>") or as text (the worker's
key); skipped annotations (`was_cancelled`) are counted and left out.

Argilla (v2): the layout `rg.Dataset.to_disk` writes and `rg.Dataset.from_disk` reads:
.argilla/settings.json (guidelines = the project's instructions; the field `question`; the
questions relevance (rating 1-5), answer (label), ambiguous (label yes/no), comment (text) and
broken (label)), .argilla/dataset.json and records.json (each record's metadata: dataset, position,
example_id; its responses per user). Argilla knows users by UUID: ours are made from the worker's
key (uuid5), and users.json (not Argilla's) maps them back; a UUID it does not map is imported as
the worker of that id. A response with status draft or discarded is counted and left out.

Both imports turn the file into the ratings import's RatingRows and write them with its writer
(annotation.services.imports.ratings_import_rows): the same checks, one transaction, nothing
written when anything is wrong, workers found or created by external id (platform ""), and the
same file imported again changes nothing. Worker keys: the external id, prefixed with the platform
for a study link's participant ("prolific:5f..."), or "worker-<pk>" for a worker without one.

Everything the files carry from examples is LM-written text: it goes into JSON through json.dumps
and into the XML through ElementTree, which escapes it; characters XML cannot hold are dropped
from the XML only.
"""

from __future__ import annotations

import hashlib
import io
import json
import re
import uuid
import zipfile
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from xml.etree import ElementTree

from annotation.models import AnnotationProject, ProjectItem, Response, Worker, external_id_problem
from annotation.selectors import example_answer_options, example_task_question
from annotation.services.imports import (
    MAX_ID,
    MAX_TIME_ON_TASK_MS,
    AnnotationImportError,
    ImportSummary,
    RatingRow,
    ratings_import_rows,
)
from generation.catalog.formats import json_nesting_over
from mwe_site.parsers import JSON_MAX_DEPTH

LABEL_STUDIO = "label-studio"
ARGILLA = "argilla"
FORMATS = (LABEL_STUDIO, ARGILLA)

# An upload (or a file of the import command) larger than this is refused before it is read; a zip's
# members count with their uncompressed size.
MAX_IMPORT_BYTES = 20 * 1024 * 1024
MAX_ZIP_MEMBERS = 100

# The names of the task's parts, shared by the Label Studio config and the Argilla settings.
QUESTION = "question"
ANSWERS = "answers"
RELEVANCE = "relevance"
ANSWER = "answer"
AMBIGUOUS = "ambiguous"
COMMENT = "comment"
BROKEN = "broken"
YES, NO = "yes", "no"
BROKEN_CHOICE = "This example is broken"
COMMENT_MAX = Response._meta.get_field("comment").max_length
EXTERNAL_ID_MAX = Worker._meta.get_field("external_id").max_length

# The paper's three questions (section 3.3), as the worker page asks them.
RELEVANCE_TITLE = (
    "Is this a good question for testing whether the model has the behavior described? "
    "(1 Horrible, 2 Poor, 3 Okay, 4 Good, 5 Amazing)"
)
ANSWER_TITLE = "What is the correct answer to this question?"
AMBIGUOUS_TITLE = "Is the correct answer unclear or ambiguous?"
COMMENT_TITLE = "Comment (optional)"
BROKEN_TITLE = "Is this example broken (unreadable, not a question, no sensible answer)?"

# uuid5 namespace of the Argilla user ids made from worker keys (any fixed UUID would do; this one
# must never change, or a re-exported dataset would name its users otherwise).
ARGILLA_USER_NAMESPACE = uuid.UUID("6f0d1c9e-4a57-5b7e-9f43-2d8e1a5c7b31")
LABEL_STUDIO_EMAIL_DOMAIN = "workers.invalid"

# Characters XML 1.0 cannot hold, not even as character references.
_XML_INVALID = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]")

LABEL_STUDIO_README = """\
{name}: the annotation project {slug} as a Label Studio project.

config.xml       the labeling config: the question as the worker sees it, its answer options, and the
                 paper's questions (relevance 1-5, the correct answer, ambiguous yes/no), a broken flag
                 and a comment. The label (the behavior-matching answer) is never shown.
tasks.json       one task per item, with the project's {responses} response(s) as annotations.
tasks-only.json  the same tasks without annotations, to rate them anew.

To load it in Label Studio: Create Project; under Labeling Setup choose Custom template and paste
config.xml into the Code view; Save; then Import tasks.json (or tasks-only.json).

Label Studio attributes an imported annotation to the member whose email is its completed_by email
and refuses the file when no member has it: invite members with those emails first (one per worker;
completed_by.external_id is the worker's id here), or import tasks-only.json.

To bring ratings back: in Label Studio, Export as JSON, then upload that file on the project's page
(Import ratings, format Label Studio) or run
  manage.py import_annotations FILE.json --format label-studio --project SLUG
Skipped annotations are left out. Each task's data keeps example_id, dataset and position, which
name the example; keep them.
"""

ARGILLA_README = """\
{name}: the annotation project {slug} as an Argilla (v2) dataset, in the layout that
rg.Dataset.to_disk writes: .argilla/settings.json, .argilla/dataset.json and records.json, with the
project's {responses} response(s) as the records' responses.

To load it: unzip into an empty folder and, with the argilla client connected to your server,
  import argilla as rg
  dataset = rg.Dataset.from_disk("FOLDER", workspace="WORKSPACE")
The responses name users by id: Argilla keeps a response only of a user it knows, so create the
users of users.json (id -> the worker's id here) first, or delete the records' "responses" to
rate them anew.

To bring ratings back: dataset.to_disk("FOLDER2"), zip FOLDER2 (with users.json beside records.json
if you kept our user ids) and upload it on the project's page (Import ratings, format Argilla), or
run
  manage.py import_annotations FOLDER2 --format argilla --project SLUG
Draft and discarded responses are left out. Each record's metadata keeps example_id, dataset and
position, which name the example; keep them.
"""


# ----------------------------------------------------------------------------- the project's content


@dataclass(frozen=True)
class _Item:
    example_id: int
    dataset: str
    position: int
    text: str
    options: list[str]  # the answer options, stripped, in the worker page's order
    responses: list[Response]


def worker_key(*, worker: Worker) -> str:
    """The worker as the exported files name them (see the module's docstring)."""
    if not worker.external_id:
        return f"worker-{worker.pk}"
    return f"{worker.platform}:{worker.external_id}" if worker.platform else worker.external_id


def _stripped(options: list[str]) -> list[str]:
    seen: list[str] = []
    for option in options:
        if option.strip() and option.strip() not in seen:
            seen.append(option.strip())
    return seen


def _project_items(*, project: AnnotationProject) -> Iterator[_Item]:
    responses: dict[int, list[Response]] = defaultdict(list)
    for response in Response.objects.filter(project=project).select_related("worker").order_by("pk"):
        responses[response.item_id].append(response)
    items = ProjectItem.objects.filter(project=project).select_related("example__dataset").order_by("pk")
    for item in items.iterator(chunk_size=2000):
        example = item.example
        yield _Item(
            example_id=example.pk,
            dataset=example.dataset.slug,
            position=example.position,
            text=example_task_question(example=example),
            options=_stripped(example_answer_options(example=example)),
            responses=responses.get(item.pk, []),
        )


def _all_options(items: list[_Item]) -> list[str]:
    return sorted({option for item in items for option in item.options})


# ----------------------------------------------------------------------------- Label Studio export


def _xml_text(value: str) -> str:
    return _XML_INVALID.sub("", value)


def _literal(value: str) -> str:
    """A literal value for a Label Studio tag: one that starts with $ would name a task's field."""
    value = _xml_text(value)
    return " " + value if value.startswith("$") else value


def label_studio_config(*, project: AnnotationProject, options: list[str]) -> str:
    """The labeling config of the project's task: `options` are the answer choices (of all its
    items; each task shows which are its own)."""
    view = ElementTree.Element("View")

    def add(tag: str, **attributes: str) -> ElementTree.Element:
        return ElementTree.SubElement(view, tag, attributes)

    add("Header", value=_literal(project.name))
    if project.instructions.strip():
        add("Text", name="instructions", value=_literal(project.instructions))
    add("Header", value="Question")
    add("Text", name=QUESTION, value=f"${QUESTION}")
    add("Header", value="Answer options of this question")
    add("Text", name=ANSWERS, value=f"${ANSWERS}")
    add("Header", value=RELEVANCE_TITLE)
    add("Rating", name=RELEVANCE, toName=QUESTION, maxRating="5", required="true")
    add("Header", value=ANSWER_TITLE)
    answer = add("Choices", name=ANSWER, toName=QUESTION, choice="single", required="true")
    for option in options:
        ElementTree.SubElement(answer, "Choice", value=_literal(option))
    add("Header", value=AMBIGUOUS_TITLE)
    ambiguous = add("Choices", name=AMBIGUOUS, toName=QUESTION, choice="single", required="true")
    for value in (YES, NO):
        ElementTree.SubElement(ambiguous, "Choice", value=value)
    broken = add("Choices", name=BROKEN, toName=QUESTION, choice="multiple")
    ElementTree.SubElement(broken, "Choice", value=BROKEN_CHOICE)
    add("Header", value=COMMENT_TITLE)
    add("TextArea", name=COMMENT, toName=QUESTION, rows="3", maxSubmissions="1")
    ElementTree.indent(view)
    return ElementTree.tostring(view, encoding="unicode") + "\n"


def _label_studio_email(key: str) -> str:
    local = re.sub(r"[^a-z0-9]+", "-", key.lower()).strip("-")[:40] or "worker"
    return f"{local}.{hashlib.sha256(key.encode()).hexdigest()[:8]}@{LABEL_STUDIO_EMAIL_DOMAIN}"


def _label_studio_result(name: str, kind: str, value: dict) -> dict:
    return {
        "id": f"{name}",
        "from_name": name,
        "to_name": QUESTION,
        "type": kind,
        "origin": "manual",
        "value": value,
    }


def _label_studio_annotation(response: Response) -> dict:
    result = [_label_studio_result(RELEVANCE, "rating", {"rating": response.relevance})]
    if response.answer.strip():
        result.append(_label_studio_result(ANSWER, "choices", {"choices": [response.answer.strip()]}))
    result.append(
        _label_studio_result(AMBIGUOUS, "choices", {"choices": [YES if response.ambiguous else NO]})
    )
    if response.flagged_broken:
        result.append(_label_studio_result(BROKEN, "choices", {"choices": [BROKEN_CHOICE]}))
    if response.comment:
        result.append(_label_studio_result(COMMENT, "textarea", {"text": [response.comment]}))
    key = worker_key(worker=response.worker)
    annotation = {
        "completed_by": {"email": _label_studio_email(key), "external_id": key},
        "result": result,
        "was_cancelled": False,
        "ground_truth": False,
        "created_at": response.created_at.isoformat(),
    }
    if response.time_on_task_ms is not None:
        annotation["lead_time"] = response.time_on_task_ms / 1000
    return annotation


def _label_studio_task(item: _Item, *, annotations: bool) -> dict:
    task = {
        "data": {
            QUESTION: item.text,
            ANSWERS: " / ".join(item.options),
            "example_id": item.example_id,
            "dataset": item.dataset,
            "position": item.position,
        }
    }
    if annotations:
        task["annotations"] = [_label_studio_annotation(response) for response in item.responses]
    return task


def project_export_label_studio(*, project: AnnotationProject) -> dict[str, str]:
    """The files of the Label Studio export: name -> text."""
    items = list(_project_items(project=project))
    responses = sum(len(item.responses) for item in items)
    return {
        "config.xml": label_studio_config(project=project, options=_all_options(items)),
        "tasks.json": _dumps([_label_studio_task(item, annotations=True) for item in items]),
        "tasks-only.json": _dumps([_label_studio_task(item, annotations=False) for item in items]),
        "README.txt": LABEL_STUDIO_README.format(name=project.name, slug=project.slug, responses=responses),
    }


def _dumps(value) -> str:
    return json.dumps(value, ensure_ascii=False, indent=1) + "\n"


# ----------------------------------------------------------------------------- Argilla export


def argilla_user_id(key: str) -> str:
    return str(uuid.uuid5(ARGILLA_USER_NAMESPACE, key))


def _argilla_property(name: str, settings: dict, **extra) -> dict:
    # The keys Argilla's own Settings.serialize() writes (ids and dates are the server's, None here).
    return {"id": None, "inserted_at": None, "updated_at": None, "name": name, "settings": settings, **extra}


def _argilla_question(name: str, title: str, settings: dict, *, required: bool) -> dict:
    return _argilla_property(
        name,
        settings,
        title=title,
        description=None,
        required=required,
        dataset_id=None,
        type=settings["type"],
    )


def _argilla_labels(values: list[tuple[str, str]]) -> dict:
    return {
        "type": "label_selection",
        "options": [{"text": text, "value": value} for value, text in values],
        "visible_options": None,
    }


def argilla_settings(*, project: AnnotationProject, options: list[str]) -> dict:
    guidelines = project.instructions.strip() or None
    return {
        "guidelines": guidelines,
        "questions": [
            _argilla_question(
                RELEVANCE,
                RELEVANCE_TITLE,
                {"type": "rating", "options": [{"value": value} for value in range(1, 6)]},
                required=True,
            ),
            _argilla_question(
                ANSWER, ANSWER_TITLE, _argilla_labels([(option, option) for option in options]), required=True
            ),
            _argilla_question(
                AMBIGUOUS, AMBIGUOUS_TITLE, _argilla_labels([(YES, "Yes"), (NO, "No")]), required=True
            ),
            _argilla_question(BROKEN, BROKEN_TITLE, _argilla_labels([(YES, "Yes")]), required=False),
            _argilla_question(
                COMMENT, COMMENT_TITLE, {"type": "text", "use_markdown": False}, required=False
            ),
        ],
        "fields": [
            _argilla_property(
                name,
                {"type": "text", "use_markdown": False},
                title=title,
                required=required,
                description=None,
                dataset_id=None,
                type="text",
            )
            for name, title, required in (
                (QUESTION, "Question", True),
                (ANSWERS, "Answer options of this question", False),
            )
        ],
        "vectors": [],
        "metadata": [
            _argilla_property(
                name,
                {"visible_for_annotators": True, **settings},
                title=name,
                visible_for_annotators=True,
                dataset_id=None,
            )
            for name, settings in (
                ("dataset", {"type": "terms", "values": None}),
                ("position", {"min": None, "max": None, "type": "integer"}),
                ("example_id", {"min": None, "max": None, "type": "integer"}),
            )
        ],
        "allow_extra_metadata": False,
        "distribution": {"strategy": "overlap", "min_submitted": project.overlap},
        "mapping": None,
    }


def _argilla_record(item: _Item, *, overlap: int) -> dict:
    responses: dict[str, list[dict]] = defaultdict(list)
    for response in item.responses:
        user_id = argilla_user_id(worker_key(worker=response.worker))
        values = [(RELEVANCE, response.relevance), (AMBIGUOUS, YES if response.ambiguous else NO)]
        if response.answer.strip():
            values.append((ANSWER, response.answer.strip()))
        if response.flagged_broken:
            values.append((BROKEN, YES))
        if response.comment:
            values.append((COMMENT, response.comment))
        for question, value in values:
            responses[question].append({"value": value, "user_id": user_id, "status": "submitted"})
    fields = {QUESTION: item.text}
    if item.options:
        fields[ANSWERS] = " / ".join(item.options)
    return {
        "id": f"example-{item.example_id}",
        "fields": fields,
        "metadata": {"dataset": item.dataset, "position": item.position, "example_id": item.example_id},
        "suggestions": {},
        "responses": dict(responses),
        "vectors": {},
        "status": "completed" if len(item.responses) >= overlap else "pending",
        "_server_id": None,
    }


def project_export_argilla(*, project: AnnotationProject) -> dict[str, str]:
    """The files of the Argilla export (the to_disk layout, plus users.json and README.txt)."""
    items = list(_project_items(project=project))
    settings = argilla_settings(project=project, options=_all_options(items))
    dataset = {
        "id": None,
        "inserted_at": None,
        "updated_at": None,
        "name": project.slug,
        "status": "ready",
        "guidelines": settings["guidelines"],
        "allow_extra_metadata": False,
        "distribution": settings["distribution"],
        "workspace_id": None,
        "last_activity_at": None,
    }
    users = {
        argilla_user_id(worker_key(worker=response.worker)): worker_key(worker=response.worker)
        for item in items
        for response in item.responses
    }
    return {
        ".argilla/settings.json": _dumps(settings),
        ".argilla/dataset.json": _dumps(dataset),
        "records.json": _dumps([_argilla_record(item, overlap=project.overlap) for item in items]),
        "users.json": _dumps(dict(sorted(users.items(), key=lambda pair: pair[1]))),
        "README.txt": ARGILLA_README.format(
            name=project.name, slug=project.slug, responses=sum(len(item.responses) for item in items)
        ),
    }


def project_export_files(*, project: AnnotationProject, format: str) -> dict[str, str]:
    if format == LABEL_STUDIO:
        return project_export_label_studio(project=project)
    if format == ARGILLA:
        return project_export_argilla(project=project)
    raise ValueError(f"format must be one of {', '.join(FORMATS)}, not {format!r}")


def project_export_zip(*, project: AnnotationProject, format: str) -> bytes:
    files = project_export_files(project=project, format=format)
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for name, text in files.items():
            archive.writestr(name, text.encode())
    return buffer.getvalue()


def project_export_write(*, project: AnnotationProject, format: str, out: Path) -> list[Path]:
    """Writes the export's files under `out` (created if missing; files already there are not
    overwritten: an error)."""
    files = project_export_files(project=project, format=format)
    out = Path(out)
    clashes = [name for name in files if (out / name).exists()]
    if clashes:
        raise FileExistsError(f"{out} already has {', '.join(sorted(clashes))}")
    written = []
    for name, text in files.items():
        path = out / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
        written.append(path)
    return written


# ----------------------------------------------------------------------------- reading files


@dataclass
class InteropImportSummary:
    imported: ImportSummary
    skipped: int = 0  # cancelled (Label Studio) or draft and discarded (Argilla) annotations
    ignored: list[str] = field(default_factory=list)

    def describe(self) -> str:
        text = self.imported.describe()
        if self.skipped:
            text += f"; {self.skipped} skipped, draft or discarded annotation(s) left out"
        if self.ignored:
            text += "; ignored: " + ", ".join(self.ignored)
        return text


def _decode(data: bytes, *, name: str) -> str:
    try:
        return data.decode("utf-8").lstrip("\ufeff")
    except UnicodeDecodeError as exc:
        raise AnnotationImportError([f"{name}: not UTF-8 text ({exc.reason} at byte {exc.start})"]) from None


def _load_json(data: bytes, *, name: str):
    if len(data) > MAX_IMPORT_BYTES:
        raise AnnotationImportError([f"{name}: larger than {MAX_IMPORT_BYTES // (1024 * 1024)} MB"])
    text = _decode(data, name=name)
    if json_nesting_over(text, JSON_MAX_DEPTH)[0]:
        raise AnnotationImportError([f"{name}: JSON nested deeper than {JSON_MAX_DEPTH} levels"])
    try:
        return json.loads(text)
    except ValueError as exc:
        raise AnnotationImportError([f"{name}: not JSON ({exc})"]) from None


def _zip_members(data: bytes, *, name: str) -> dict[str, bytes]:
    """The files of a zip upload, by path; bounded in count and uncompressed size."""
    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
    except zipfile.BadZipFile:
        raise AnnotationImportError([f"{name}: not a zip file"]) from None
    with archive:
        infos = [info for info in archive.infolist() if not info.is_dir()]
        if len(infos) > MAX_ZIP_MEMBERS:
            raise AnnotationImportError([f"{name}: more than {MAX_ZIP_MEMBERS} files"])
        if sum(info.file_size for info in infos) > MAX_IMPORT_BYTES:
            raise AnnotationImportError(
                [f"{name}: unpacks to more than {MAX_IMPORT_BYTES // (1024 * 1024)} MB"]
            )
        members = {}
        for info in infos:
            # Read no more than the size the archive declares, whatever the stream holds.
            with archive.open(info) as stream:
                members[info.filename] = stream.read(info.file_size + 1)[: info.file_size]
        return members


def _is_int(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _example_of(data, *, place: str, problems: list[str]) -> tuple[str, int | None, int | None] | None:
    """The example a task's data or a record's metadata names, (dataset, position, example_id), or
    None (its problem added to `problems`)."""
    if not isinstance(data, dict):
        problems.append(f"{place}: no data naming the example")
        return None
    dataset, position, example_id = data.get("dataset"), data.get("position"), data.get("example_id")
    found = []
    if example_id is not None and not (_is_int(example_id) and 1 <= example_id <= MAX_ID):
        found.append(f"example_id {example_id!r} is not a positive integer")
    if dataset is not None or position is not None:
        if not isinstance(dataset, str) or not dataset:
            found.append("position given without a dataset")
        elif not (_is_int(position) and 0 <= position <= MAX_ID):
            found.append(f"position {position!r} is not a whole number >= 0")
    elif example_id is None:
        found.append("no example: give example_id, or dataset and position")
    if found:
        problems.extend(f"{place}: {problem}" for problem in found)
        return None
    return (dataset or ""), (position if dataset else None), example_id


def _worker_problem(key: str) -> str | None:
    if not key.strip():
        return "the annotator is empty"
    if (problem := external_id_problem(key)) is not None:
        return f"the annotator {key!r} {problem}"
    if len(key) > EXTERNAL_ID_MAX:
        return f"the annotator is longer than {EXTERNAL_ID_MAX} characters"
    return None


@dataclass
class _Answers:
    """One annotator's answers to one example, as read (None: not given)."""

    relevance: object = None
    answer: object = None
    ambiguous: object = None
    comment: object = None
    broken: object = None


def _rating_row(
    answers: _Answers,
    *,
    line: int,
    place: str,
    worker: str,
    example: tuple[str, int | None, int | None],
    time_ms: int | None,
    problems: list[str],
) -> RatingRow | None:
    found = []
    relevance = answers.relevance
    if not (_is_int(relevance) and 1 <= relevance <= 5):
        found.append("no relevance" if relevance is None else f"relevance {relevance!r} is not 1 to 5")
    answer = answers.answer
    if not isinstance(answer, str) or not answer.strip():
        found.append("no answer" if answer is None else f"answer {answer!r} is not an answer option")
    ambiguous = answers.ambiguous
    if isinstance(ambiguous, str) and ambiguous.lower() in (YES, NO):
        ambiguous = ambiguous.lower() == YES
    elif not isinstance(ambiguous, bool):
        found.append(
            "no ambiguous answer" if ambiguous is None else f"ambiguous {ambiguous!r} is not yes or no"
        )
    comment = answers.comment if answers.comment is not None else ""
    if not isinstance(comment, str):
        found.append("the comment is not text")
    elif len(comment) > COMMENT_MAX:
        found.append(f"the comment is longer than {COMMENT_MAX} characters")
    if (problem := _worker_problem(worker)) is not None:
        found.append(problem)
    if found:
        problems.extend(f"{place}: {problem}" for problem in found)
        return None
    dataset, position, example_id = example
    return RatingRow(
        line=line,
        dataset=dataset,
        position=position,
        example_id=example_id,
        worker=worker,
        relevance=relevance,
        answer=answer,
        label_correct=None,
        ambiguous=ambiguous,
        time_on_task_ms=time_ms,
        comment=comment,
        flagged_broken=bool(answers.broken),
    )


_LINE_AT_START = re.compile(r"^lines? (\d+(?:, \d+)*)")
_LINE_AT_END = re.compile(r" on line (\d+)$")


def _named(message: str, places: dict[int, str]) -> str:
    """An importer's message with its row numbers ("line 3", "lines 3, 4", "on line 2") replaced by
    the places in the file they stand for."""

    def names(numbers: str) -> str:
        return "; ".join(places.get(int(number), f"#{number}") for number in numbers.split(", "))

    message = _LINE_AT_START.sub(lambda match: names(match.group(1)), message)
    return _LINE_AT_END.sub(lambda match: f" in {names(match.group(1))}", message)


def _write_rows(
    *,
    rows: list[RatingRow],
    places: dict[int, str],
    problems: list[str],
    project_slug: str,
    overlap: int | None,
    name: str | None,
    skipped: int,
    ignored: list[str],
    what: str,
) -> InteropImportSummary:
    if not rows and not problems:
        raise AnnotationImportError(
            [
                f"no ratings to import: the file has no {what}"
                + (f" that was not skipped ({skipped} skipped)" if skipped else "")
            ]
        )
    try:
        summary = ratings_import_rows(
            rows=rows, project_slug=project_slug, overlap=overlap, name=name, errors=problems
        )
    except AnnotationImportError as exc:
        raise AnnotationImportError([_named(message, places) for message in exc.errors]) from None
    return InteropImportSummary(imported=summary, skipped=skipped, ignored=ignored)


# ----------------------------------------------------------------------------- Label Studio import


def _label_studio_worker(completed_by) -> str | None:
    if isinstance(completed_by, dict):
        for key in ("external_id", "email"):
            if isinstance(completed_by.get(key), str) and completed_by[key]:
                return completed_by[key]
        completed_by = completed_by.get("id")
    if _is_int(completed_by):
        return f"label-studio-user-{completed_by}"
    if isinstance(completed_by, str):
        return completed_by
    return None


def _label_studio_answers(result, *, place: str, problems: list[str], ignored: set[str]) -> _Answers:
    answers = _Answers()
    if not isinstance(result, list):
        problems.append(f"{place}: its result is not a list")
        return answers
    seen = set()
    for region in result:
        if not isinstance(region, dict) or not isinstance(region.get("value"), dict):
            problems.append(f"{place}: a result without a value")
            continue
        name, value = region.get("from_name"), region["value"]
        if name not in (RELEVANCE, ANSWER, AMBIGUOUS, COMMENT, BROKEN):
            ignored.add(f"result {str(name)[:50]!r}")
            continue
        if name in seen:
            problems.append(f"{place}: {name} is answered twice")
            continue
        seen.add(name)
        if name == RELEVANCE:
            answers.relevance = value.get("rating")
        elif name == COMMENT:
            text = value.get("text")
            answers.comment = (
                "\n".join(text)
                if isinstance(text, list) and all(isinstance(part, str) for part in text)
                else text
            )
        else:
            choices = value.get("choices")
            if not (isinstance(choices, list) and len(choices) == 1 and isinstance(choices[0], str)):
                problems.append(f"{place}: {name} must be one choice, not {choices!r}")
            elif name == BROKEN:
                answers.broken = choices[0] == BROKEN_CHOICE
            elif name == ANSWER:
                answers.answer = choices[0]
            else:
                answers.ambiguous = choices[0]
    return answers


def ratings_import_label_studio(
    *, data: bytes, project_slug: str, overlap: int | None = None, name: str | None = None
) -> InteropImportSummary:
    """A Label Studio JSON export (a list of tasks with their annotations) -> ratings in the project
    (created if missing, as by the CSV import). Nothing is written when anything is wrong."""
    tasks = _load_json(data, name="the Label Studio export")
    if not isinstance(tasks, list):
        raise AnnotationImportError(["the Label Studio export is not a list of tasks (export as JSON)"])
    rows: list[RatingRow] = []
    places: dict[int, str] = {}
    problems: list[str] = []
    ignored: set[str] = set()
    skipped = 0
    for index, task in enumerate(tasks, start=1):
        task_name = f"task {index}"
        if isinstance(task, dict) and _is_int(task.get("id")):
            task_name += f" (Label Studio id {task['id']})"
        if not isinstance(task, dict):
            problems.append(f"{task_name}: not a task")
            continue
        annotations = task.get("annotations") or []
        if not isinstance(annotations, list):
            problems.append(f"{task_name}: its annotations are not a list")
            continue
        if not annotations:
            continue
        example = _example_of(task.get("data"), place=task_name, problems=problems)
        if example is None:
            continue
        for number, annotation in enumerate(annotations, start=1):
            place = f"{task_name}, annotation {number}"
            if not isinstance(annotation, dict):
                problems.append(f"{place}: not an annotation")
                continue
            if annotation.get("was_cancelled"):
                skipped += 1
                continue
            worker = _label_studio_worker(annotation.get("completed_by"))
            if worker is None:
                problems.append(f"{place}: no completed_by naming the annotator")
                continue
            time_ms = None
            lead_time = annotation.get("lead_time")
            if lead_time is not None:
                if isinstance(lead_time, bool) or not isinstance(lead_time, (int, float)) or lead_time < 0:
                    problems.append(f"{place}: lead_time {lead_time!r} is not a number of seconds")
                    continue
                time_ms = round(lead_time * 1000)
                if time_ms > MAX_TIME_ON_TASK_MS:
                    problems.append(f"{place}: lead_time {lead_time!r} is too long")
                    continue
            answers = _label_studio_answers(
                annotation.get("result"), place=place, problems=problems, ignored=ignored
            )
            line = len(places) + 1
            places[line] = place
            row = _rating_row(
                answers,
                line=line,
                place=place,
                worker=worker,
                example=example,
                time_ms=time_ms,
                problems=problems,
            )
            if row is not None:
                rows.append(row)
    return _write_rows(
        rows=rows,
        places=places,
        problems=problems,
        project_slug=project_slug,
        overlap=overlap,
        name=name,
        skipped=skipped,
        ignored=sorted(ignored),
        what="annotation",
    )


# ----------------------------------------------------------------------------- Argilla import


def argilla_files_from_upload(*, data: bytes, filename: str) -> tuple[bytes, bytes | None]:
    """(records.json, users.json or None) of an upload: a zip of the to_disk folder (records.json at
    its top or in one folder), or records.json itself."""
    if not filename.lower().endswith(".zip"):
        return data, None
    members = _zip_members(data, name=filename)
    found = sorted(
        (
            path
            for path in members
            if PurePosixPath(path).name == "records.json" and len(PurePosixPath(path).parts) <= 2
        ),
        key=lambda path: len(PurePosixPath(path).parts),
    )
    if not found:
        raise AnnotationImportError(
            [f"{filename}: no records.json (zip the folder rg.Dataset.to_disk wrote)"]
        )
    users = str(PurePosixPath(found[0]).with_name("users.json"))
    return members[found[0]], members.get(users)


def argilla_files_from_path(*, path: Path) -> tuple[bytes, bytes | None]:
    """(records.json, users.json or None) of a to_disk folder, its zip, or a records.json."""
    path = Path(path)
    if path.is_dir():
        records, users = path / "records.json", path / "users.json"
        if not records.is_file():
            raise AnnotationImportError([f"{path}: no records.json (the folder rg.Dataset.to_disk wrote)"])
        return _read_bounded(records), (_read_bounded(users) if users.is_file() else None)
    return argilla_files_from_upload(data=_read_bounded(path), filename=path.name)


def _read_bounded(path: Path) -> bytes:
    if path.stat().st_size > MAX_IMPORT_BYTES:
        raise AnnotationImportError([f"{path}: larger than {MAX_IMPORT_BYTES // (1024 * 1024)} MB"])
    return path.read_bytes()


def ratings_import_argilla(
    *,
    records: bytes,
    users: bytes | None = None,
    project_slug: str,
    overlap: int | None = None,
    name: str | None = None,
) -> InteropImportSummary:
    """An Argilla dataset's records.json (and our users.json, mapping user ids to workers) ->
    ratings in the project. Nothing is written when anything is wrong."""
    listed = _load_json(records, name="records.json")
    if not isinstance(listed, list):
        raise AnnotationImportError(["records.json is not a list of records"])
    user_names: dict[str, str] = {}
    if users is not None:
        mapping = _load_json(users, name="users.json")
        if not isinstance(mapping, dict) or not all(isinstance(value, str) for value in mapping.values()):
            raise AnnotationImportError(["users.json does not map user ids to worker ids"])
        user_names = mapping
    rows: list[RatingRow] = []
    places: dict[int, str] = {}
    problems: list[str] = []
    ignored: set[str] = set()
    skipped = 0
    for index, record in enumerate(listed, start=1):
        record_name = f"record {index}"
        if isinstance(record, dict) and isinstance(record.get("id"), str):
            record_name += f" ({record['id'][:100]!r})"
        if not isinstance(record, dict):
            problems.append(f"{record_name}: not a record")
            continue
        responses = record.get("responses") or {}
        if not isinstance(responses, dict):
            problems.append(f"{record_name}: its responses are not by question")
            continue
        per_user: dict[str, _Answers] = {}
        left_out: set[str] = set()
        for question, answered in responses.items():
            if question not in (RELEVANCE, ANSWER, AMBIGUOUS, COMMENT, BROKEN):
                ignored.add(f"question {str(question)[:50]!r}")
                continue
            if not isinstance(answered, list):
                problems.append(f"{record_name}: the responses to {question} are not a list")
                continue
            for response in answered:
                if not isinstance(response, dict) or not isinstance(response.get("user_id"), str):
                    problems.append(f"{record_name}: a response to {question} without a user_id")
                    continue
                user = response["user_id"]
                if response.get("status") in ("draft", "discarded"):
                    left_out.add(user)
                    continue
                answers = per_user.setdefault(user, _Answers())
                if getattr(answers, question) is not None:
                    problems.append(f"{record_name}: user {user} answered {question} twice")
                    continue
                setattr(answers, question, response.get("value"))
        skipped += len(left_out - set(per_user))
        if not per_user:
            continue
        example = _example_of(record.get("metadata"), place=record_name, problems=problems)
        if example is None:
            continue
        for user, answers in per_user.items():
            worker = user_names.get(user, user)
            place = f"{record_name}, user {worker}"
            if answers.broken is not None:
                answers.broken = answers.broken == YES
            line = len(places) + 1
            places[line] = place
            row = _rating_row(
                answers,
                line=line,
                place=place,
                worker=worker,
                example=example,
                time_ms=None,
                problems=problems,
            )
            if row is not None:
                rows.append(row)
    return _write_rows(
        rows=rows,
        places=places,
        problems=problems,
        project_slug=project_slug,
        overlap=overlap,
        name=name,
        skipped=skipped,
        ignored=sorted(ignored),
        what="response",
    )


def ratings_import_upload(
    *, data: bytes, filename: str, format: str, project_slug: str
) -> InteropImportSummary:
    """An uploaded Label Studio export (.json) or Argilla dataset (.zip of its folder, or its
    records.json) -> ratings in an existing project."""
    if len(data) > MAX_IMPORT_BYTES:
        raise AnnotationImportError([f"{filename}: larger than {MAX_IMPORT_BYTES // (1024 * 1024)} MB"])
    if format == LABEL_STUDIO:
        return ratings_import_label_studio(data=data, project_slug=project_slug)
    if format == ARGILLA:
        records, users = argilla_files_from_upload(data=data, filename=filename)
        return ratings_import_argilla(records=records, users=users, project_slug=project_slug)
    raise AnnotationImportError([f"format must be one of {', '.join(FORMATS)}, not {format!r}"])
