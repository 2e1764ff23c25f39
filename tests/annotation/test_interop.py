"""Label Studio and Argilla export and import of an annotation project (annotation.services.interop):
round trips through both formats, a Label Studio export shaped as Label Studio writes it, errors
that change nothing, escaping, the project page and the management commands."""

from __future__ import annotations

import copy
import io
import json
import zipfile

import pytest
from defusedxml import ElementTree
from django.core.files.uploadedfile import SimpleUploadedFile
from django.core.management import CommandError, call_command
from django.test import Client
from django.urls import reverse

from annotation.models import AnnotationProject, Assignment, ProjectItem, Response, Worker
from annotation.services import interop
from annotation.services.imports import AnnotationImportError
from annotation.services.leases import task_claim
from annotation.services.projects import project_create
from tests.annotation.builders import build_project, submit_rating
from tests.builders import DatasetFactory, ExampleFactory, StaffFactory, WorkerFactory

INSTRUCTIONS = 'Rate <b>carefully</b> & "honestly"; it\'s $5 of work.'


def _rate_all(project, workers) -> None:
    """Every worker rates every item they get, with answers that differ by worker and item."""
    for n, worker in enumerate(workers):
        while (assignment := task_claim(worker=worker, project=project)) is not None:
            position = assignment.item.example.position
            submit_rating(
                assignment,
                worker,
                label_correct=(n + position) % 3 != 0,
                relevance=1 + (n + position) % 5,
                ambiguous=(n + position) % 2 == 0,
                time_on_task_ms=1000 + 17 * n + position,
                comment=f'worker {n} on <{position}> & "more"' if (n + position) % 2 else "",
                flagged_broken=(n + position) % 4 == 0,
            )


@pytest.fixture
def rated(db):
    """A project of 4 items, k = 3, fully rated by 3 workers (12 responses), with instructions."""
    project = build_project(items=4, overlap=3, slug="rated", instructions=INSTRUCTIONS)
    workers = WorkerFactory.create_batch(3, projects=[project])
    _rate_all(project, workers)
    assert project.responses.count() == 12
    return project


def _ratings(project: AnnotationProject, *, time: bool = True) -> set[tuple]:
    return {
        (
            response.item.example_id,
            response.worker.external_id,
            response.relevance,
            response.answer,
            response.label_correct,
            response.ambiguous,
            response.comment,
            response.flagged_broken,
            response.time_on_task_ms if time else None,
        )
        for response in Response.objects.filter(project=project).select_related("item", "worker")
    }


def _counts() -> tuple[int, ...]:
    return tuple(
        model.objects.count() for model in (AnnotationProject, ProjectItem, Assignment, Response, Worker)
    )


def _tasks(project) -> list[dict]:
    return json.loads(interop.project_export_label_studio(project=project)["tasks.json"])


def _argilla(project) -> dict[str, str]:
    return interop.project_export_argilla(project=project)


def _bytes(value) -> bytes:
    return json.dumps(value).encode()


# ----------------------------------------------------------------------------- Label Studio


def test_label_studio_export_has_one_task_per_item_and_one_annotation_per_response(rated):
    files = interop.project_export_label_studio(project=rated)
    assert set(files) == {"config.xml", "tasks.json", "tasks-only.json", "README.txt"}
    tasks = json.loads(files["tasks.json"])
    items = list(rated.items.select_related("example__dataset").order_by("pk"))
    assert [task["data"]["example_id"] for task in tasks] == [item.example_id for item in items]
    first = tasks[0]
    example = items[0].example
    assert first["data"]["question"] == example.question
    assert first["data"]["dataset"] == example.dataset.slug and first["data"]["position"] == example.position
    assert first["data"]["answers"] == "No / Yes"  # the worker page's neutral order, never label first
    assert sum(len(task["annotations"]) for task in tasks) == 12
    annotation = first["annotations"][0]
    response = Response.objects.filter(item=items[0]).order_by("pk").first()
    assert annotation["completed_by"]["external_id"] == response.worker.external_id
    assert annotation["completed_by"]["email"].endswith("@workers.invalid")
    assert annotation["was_cancelled"] is False
    assert annotation["lead_time"] == response.time_on_task_ms / 1000
    by_name = {region["from_name"]: region for region in annotation["result"]}
    assert by_name["relevance"]["type"] == "rating"
    assert by_name["relevance"]["value"] == {"rating": response.relevance}
    assert by_name["answer"]["value"] == {"choices": [response.answer.strip()]}
    assert by_name["ambiguous"]["value"] == {"choices": ["yes" if response.ambiguous else "no"]}
    assert all(region["to_name"] == "question" for region in annotation["result"])
    assert all("annotations" not in task for task in json.loads(files["tasks-only.json"]))


def test_label_studio_config_is_the_papers_task(rated):
    config = ElementTree.fromstring(interop.project_export_label_studio(project=rated)["config.xml"])
    assert config.tag == "View"
    texts = {element.get("name"): element.get("value") for element in config.iter("Text")}
    assert texts == {"instructions": INSTRUCTIONS, "question": "$question", "answers": "$answers"}
    rating = config.find("Rating")
    assert rating.get("name") == "relevance" and rating.get("maxRating") == "5"
    choices = {element.get("name"): element for element in config.iter("Choices")}
    assert [choice.get("value") for choice in choices["answer"]] == ["No", "Yes"]
    assert [choice.get("value") for choice in choices["ambiguous"]] == ["yes", "no"]
    assert config.find("TextArea").get("name") == "comment"
    # Every control names the question, the one object tag it labels.
    assert {element.get("toName") for element in config if element.get("toName")} == {"question"}


def test_label_studio_round_trip_gives_identical_responses(rated):
    data = interop.project_export_label_studio(project=rated)["tasks.json"].encode()
    summary = interop.ratings_import_label_studio(data=data, project_slug="copy")
    copied = AnnotationProject.objects.get(slug="copy")
    assert summary.imported.new_ratings == 12 and summary.imported.created_project
    assert copied.overlap == 3
    assert _ratings(copied) == _ratings(rated)
    # The same workers: found by their external ids, not created again.
    assert summary.imported.new_workers == 0


def test_importing_the_export_into_its_own_project_changes_nothing(rated):
    before = _counts()
    data = interop.project_export_label_studio(project=rated)["tasks.json"].encode()
    summary = interop.ratings_import_label_studio(data=data, project_slug=rated.slug)
    assert (summary.imported.new_ratings, summary.imported.unchanged) == (0, 12)
    assert _counts() == before


def _as_label_studio_writes_it(tasks: list[dict]) -> list[dict]:
    """Our tasks as Label Studio's JSON export gives them back after import (labelstud.io,
    "Label Studio JSON format of annotated tasks"): task ids and counters, each annotation with its
    id, completed_by as the member's numeric id, result regions with their own ids, lead_time,
    timestamps; predictions and drafts lists. Workers become members 10, 11, ..."""
    members: dict[str, int] = {}
    exported = []
    annotation_id = 1000
    for number, task in enumerate(tasks, start=1):
        annotations = []
        for annotation in task.get("annotations", []):
            annotation_id += 1
            member = members.setdefault(annotation["completed_by"]["external_id"], 10 + len(members))
            annotations.append(
                {
                    "id": annotation_id,
                    "completed_by": member,
                    "result": [
                        {**region, "id": f"Xk{annotation_id}{index}"}
                        for index, region in enumerate(annotation["result"])
                    ],
                    "was_cancelled": False,
                    "ground_truth": False,
                    "created_at": "2026-03-09T21:52:49.513742Z",
                    "updated_at": "2026-03-09T22:16:08.746926Z",
                    "draft_created_at": None,
                    "lead_time": annotation.get("lead_time"),
                    "prediction": {},
                    "result_count": 0,
                    "unique_id": f"0b6a{annotation_id}",
                    "import_id": None,
                    "last_action": None,
                    "bulk_created": False,
                    "task": number,
                    "project": 83,
                    "updated_by": member,
                    "parent_prediction": None,
                    "parent_annotation": None,
                    "last_created_by": None,
                }
            )
        exported.append(
            {
                "id": number,
                "annotations": annotations,
                "file_upload": "1a2b3c-tasks.json",
                "drafts": [],
                "predictions": [],
                "data": task["data"],
                "meta": {},
                "created_at": "2026-03-09T21:50:00.000000Z",
                "updated_at": "2026-03-09T22:16:08.746926Z",
                "inner_id": number,
                "total_annotations": len(annotations),
                "cancelled_annotations": 0,
                "total_predictions": 0,
                "comment_count": 0,
                "unresolved_comment_count": 0,
                "last_comment_updated_at": None,
                "project": 83,
                "updated_by": None,
                "comment_authors": [],
            }
        )
    return exported


def test_a_label_studio_export_comes_back_with_its_members_as_workers(rated):
    exported = _as_label_studio_writes_it(_tasks(rated))
    # A member skipped one task: Label Studio records a cancelled annotation with an empty result.
    exported[0]["annotations"].append(
        {**exported[0]["annotations"][0], "id": 9999, "completed_by": 42, "result": [], "was_cancelled": True}
    )
    exported[0]["cancelled_annotations"] = 1
    summary = interop.ratings_import_label_studio(data=_bytes(exported), project_slug="from-ls")
    assert summary.skipped == 1
    assert summary.imported.new_ratings == 12 and summary.imported.new_workers == 3
    copied = AnnotationProject.objects.get(slug="from-ls")
    assert set(copied.workers.values_list("external_id", flat=True)) == {
        "label-studio-user-10",
        "label-studio-user-11",
        "label-studio-user-12",
    }
    # Same answers as the original, worker for worker: members are numbered in order of appearance.
    members: dict[str, str] = {}
    for task in _tasks(rated):
        for annotation in task["annotations"]:
            key = annotation["completed_by"]["external_id"]
            members.setdefault(key, f"label-studio-user-{10 + len(members)}")
    renamed = {(rating[0], members[rating[1]], *rating[2:]) for rating in _ratings(rated)}
    assert _ratings(copied) == renamed
    assert "1 skipped" in summary.describe()


def _break(mutate):
    def apply(tasks):
        tasks = copy.deepcopy(tasks)
        mutate(tasks)
        return tasks

    return apply


def _region(tasks, task: int, name: str) -> dict:
    return next(region for region in tasks[task]["annotations"][0]["result"] if region["from_name"] == name)


LABEL_STUDIO_ERRORS = {
    "unknown example": (
        _break(lambda t: t[1]["data"].update(example_id=10**9, dataset="nope")),
        "task 2, annotation 1: no dataset with the slug 'nope'",
    ),
    "ids that disagree": (
        _break(lambda t: t[1]["data"].update(position=t[2]["data"]["position"])),
        "task 2, annotation 1: example_id",
    ),
    "relevance out of range": (
        _break(lambda t: _region(t, 1, "relevance")["value"].update(rating=7)),
        "task 2, annotation 1: relevance 7 is not 1 to 5",
    ),
    "answer that is no option": (
        _break(lambda t: _region(t, 2, "answer")["value"].update(choices=["Maybe"])),
        "task 3, annotation 1: answer 'Maybe' is not one of the answers",
    ),
    "ambiguous neither yes nor no": (
        _break(lambda t: _region(t, 0, "ambiguous")["value"].update(choices=["perhaps"])),
        "task 1, annotation 1: ambiguous 'perhaps' is not yes or no",
    ),
    "no relevance": (
        _break(lambda t: t[3]["annotations"][1]["result"].pop(0)),
        "task 4, annotation 2: no relevance",
    ),
    "the same annotator twice on a task": (
        _break(lambda t: t[0]["annotations"][1].update(completed_by=t[0]["annotations"][0]["completed_by"])),
        "task 1, annotation 2: worker",
    ),
    "no annotator": (
        _break(lambda t: t[0]["annotations"][2].pop("completed_by")),
        "task 1, annotation 3: no completed_by",
    ),
    "an annotator with a hidden character": (
        _break(lambda t: t[0]["annotations"][2].update(completed_by="w\u200b1")),
        "has a control or invisible character",
    ),
    "a comment too long": (
        _break(
            lambda t: _region(t, 0, "relevance").update(
                from_name="comment", type="textarea", value={"text": ["x" * 2001]}
            )
        ),
        "task 1, annotation 1: the comment is longer than 2000 characters",
    ),
    "a negative lead time": (
        _break(lambda t: t[0]["annotations"][0].update(lead_time=-1)),
        "task 1, annotation 1: lead_time -1",
    ),
}


@pytest.mark.parametrize("case", sorted(LABEL_STUDIO_ERRORS))
def test_a_bad_label_studio_export_names_the_task_and_changes_nothing(rated, case):
    mutate, message = LABEL_STUDIO_ERRORS[case]
    tasks = mutate(_tasks(rated))
    for target in ("fresh", rated.slug):
        before = _counts()
        with pytest.raises(AnnotationImportError) as raised:
            interop.ratings_import_label_studio(data=_bytes(tasks), project_slug=target)
        assert any(message in error for error in raised.value.errors), raised.value.errors
        assert _counts() == before


@pytest.mark.parametrize(
    "data, message",
    [
        (b'{"tasks": []}', "not a list of tasks"),
        (b"[" * 100 + b"]" * 100, "nested deeper than"),
        (b"[{]", "not JSON"),
        ('["caf\u00e9"]'.encode("latin-1"), "not UTF-8"),
        (b"[]", "no ratings to import"),
        (b'[{"data": {"example_id": 1}, "annotations": [{"was_cancelled": true}]}]', "1 skipped"),
    ],
)
def test_a_file_that_is_no_label_studio_export_changes_nothing(rated, data, message):
    before = _counts()
    with pytest.raises(AnnotationImportError, match=message):
        interop.ratings_import_label_studio(data=data, project_slug="fresh")
    assert _counts() == before


# ----------------------------------------------------------------------------- Argilla


def test_argilla_export_has_the_to_disk_layout(rated):
    files = _argilla(rated)
    assert set(files) == {
        ".argilla/settings.json",
        ".argilla/dataset.json",
        "records.json",
        "users.json",
        "README.txt",
    }
    settings = json.loads(files[".argilla/settings.json"])
    assert settings["guidelines"] == INSTRUCTIONS
    assert [field["name"] for field in settings["fields"]] == ["question", "answers"]
    questions = {question["name"]: question for question in settings["questions"]}
    assert questions["relevance"]["settings"] == {
        "type": "rating",
        "options": [{"value": value} for value in range(1, 6)],
    }
    assert [option["value"] for option in questions["answer"]["settings"]["options"]] == ["No", "Yes"]
    assert questions["answer"]["type"] == "label_selection"
    assert [option["value"] for option in questions["ambiguous"]["settings"]["options"]] == ["yes", "no"]
    assert questions["comment"]["settings"] == {"type": "text", "use_markdown": False}
    assert not questions["comment"]["required"]
    assert {meta["name"]: meta["settings"]["type"] for meta in settings["metadata"]} == {
        "dataset": "terms",
        "position": "integer",
        "example_id": "integer",
    }
    dataset = json.loads(files[".argilla/dataset.json"])
    assert dataset["name"] == rated.slug and dataset["guidelines"] == INSTRUCTIONS
    records = json.loads(files["records.json"])
    assert len(records) == 4 and all(record["status"] == "completed" for record in records)
    users = json.loads(files["users.json"])
    assert sorted(users.values()) == sorted(rated.workers.values_list("external_id", flat=True))
    record = records[0]
    assert set(record) == {
        "id",
        "fields",
        "metadata",
        "suggestions",
        "responses",
        "vectors",
        "status",
        "_server_id",
    }
    assert len(record["responses"]["relevance"]) == 3
    assert {response["user_id"] for response in record["responses"]["relevance"]} <= set(users)


def test_argilla_round_trip_gives_identical_responses(rated):
    files = _argilla(rated)
    summary = interop.ratings_import_argilla(
        records=files["records.json"].encode(), users=files["users.json"].encode(), project_slug="copy"
    )
    assert summary.imported.new_ratings == 12 and summary.imported.new_workers == 0
    # Argilla keeps no time on task.
    assert _ratings(AnnotationProject.objects.get(slug="copy"), time=False) == _ratings(rated, time=False)


def test_argilla_without_our_users_file_imports_its_user_ids_and_leaves_out_discarded_responses(rated):
    records = json.loads(_argilla(rated)["records.json"])
    # As Argilla's to_disk writes responses: value and user_id, no status; one user discarded a record.
    for record in records:
        for responses in record["responses"].values():
            for response in responses:
                response.pop("status")
    discarded = records[0]["responses"]["relevance"][0]["user_id"]
    for responses in records[0]["responses"].values():
        for response in responses:
            if response["user_id"] == discarded:
                response["status"] = "discarded"
    summary = interop.ratings_import_argilla(records=_bytes(records), project_slug="copy")
    assert summary.imported.new_ratings == 11 and summary.skipped == 1
    copied = AnnotationProject.objects.get(slug="copy")
    assert set(copied.workers.values_list("external_id", flat=True)) == set(
        json.loads(_argilla(rated)["users.json"])
    )


def test_a_bad_argilla_dataset_names_the_record_and_changes_nothing(rated):
    records = json.loads(_argilla(rated)["records.json"])
    records[1]["responses"]["relevance"][0]["value"] = 0
    records[2]["metadata"] = {"dataset": "nope", "position": 0}
    before = _counts()
    with pytest.raises(AnnotationImportError) as raised:
        interop.ratings_import_argilla(records=_bytes(records), project_slug=rated.slug)
    errors = "\n".join(raised.value.errors)
    assert "record 2 ('example-" in errors and "relevance 0 is not 1 to 5" in errors
    assert "record 3 ('example-" in errors and "no dataset with the slug 'nope'" in errors
    assert _counts() == before


# ----------------------------------------------------------------------------- escaping


def test_lm_written_text_is_escaped_in_the_xml_and_the_json(db):
    dataset = DatasetFactory()
    nasty = "<A & \"B\"> 'C'"
    ExampleFactory(
        dataset=dataset,
        position=0,
        statement="</Text><Choice value='x'/> & \x01",
        question='Q </View> & "quoted"\x01',
        answer_matching_behavior=f" {nasty}",
        answer_not_matching_behavior=" $other",
    )
    project = project_create(
        name='P <&> "', slug="nasty", datasets=[dataset], overlap=1, instructions="a\nb <c> & 'd'"
    )
    files = interop.project_export_label_studio(project=project)
    config = ElementTree.fromstring(files["config.xml"])  # well-formed despite <, &, quotes and \x01
    values = [choice.get("value") for choice in config.find("Choices")]
    # A value starting with $ would name a task field in Label Studio: it is kept literal.
    assert values == [" $other", nasty]
    assert config.find("Text").get("value") == "a\nb <c> & 'd'"  # the newline survives as &#10;
    assert config.find("Header").get("value") == 'P <&> "'
    task = json.loads(files["tasks.json"])[0]
    assert task["data"]["question"] == 'Q </View> & "quoted"\x01'  # JSON holds it exactly
    settings = json.loads(_argilla(project)[".argilla/settings.json"])
    answer = next(question for question in settings["questions"] if question["name"] == "answer")
    assert [option["value"] for option in answer["settings"]["options"]] == ["$other", nasty]


# ----------------------------------------------------------------------------- the project page


def _staff() -> Client:
    client = Client()
    client.force_login(StaffFactory())
    return client


def test_the_project_page_offers_both_exports_and_the_upload(rated):
    page = _staff().get(rated.get_absolute_url()).content.decode()
    for name in ("label-studio", "argilla"):
        assert reverse("annotation:project-export", kwargs={"slug": rated.slug, "fmt": name}) in page
    assert reverse("annotation:project-interop-import", kwargs={"slug": rated.slug}) in page
    assert 'enctype="multipart/form-data"' in page


@pytest.mark.parametrize("fmt", interop.FORMATS)
def test_the_export_downloads_one_zip(rated, fmt):
    response = _staff().get(reverse("annotation:project-export", kwargs={"slug": rated.slug, "fmt": fmt}))
    assert response.status_code == 200 and response["Content-Type"] == "application/zip"
    assert f'filename="rated-{fmt}.zip"' in response["Content-Disposition"]
    names = set(zipfile.ZipFile(io.BytesIO(response.content)).namelist())
    assert names == set(interop.project_export_files(project=rated, format=fmt))


def test_an_unknown_export_format_is_404(rated):
    response = _staff().get(
        reverse("annotation:project-export", kwargs={"slug": rated.slug, "fmt": "prodigy"})
    )
    assert response.status_code == 404


def _upload(client, project, *, fmt: str, name: str, content: bytes):
    return client.post(
        reverse("annotation:project-interop-import", kwargs={"slug": project.slug}),
        {"format": fmt, "file": SimpleUploadedFile(name, content)},
    )


def test_uploading_a_label_studio_export_rates_the_project(rated):
    target = project_create(name="Target", slug="target", datasets=list(rated.datasets.all()), overlap=3)
    data = _bytes(_as_label_studio_writes_it(_tasks(rated)))
    client = _staff()
    response = _upload(client, target, fmt="label-studio", name="project-83-at-2026.json", content=data)
    assert response.status_code == 302 and response["Location"] == target.get_absolute_url()
    assert target.responses.count() == 12
    assert "12 new rating(s)" in client.get(target.get_absolute_url()).content.decode()


def test_uploading_an_argilla_zip_rates_the_project(rated):
    target = project_create(name="Target", slug="target", datasets=list(rated.datasets.all()), overlap=3)
    archive = io.BytesIO()
    with zipfile.ZipFile(archive, "w") as out:
        for name, text in _argilla(rated).items():
            out.writestr(f"rated-argilla/{name}", text)
    response = _upload(_staff(), target, fmt="argilla", name="rated.zip", content=archive.getvalue())
    assert response.status_code == 302
    assert _ratings(target, time=False) == _ratings(rated, time=False)


def test_a_bad_upload_shows_its_errors_and_changes_nothing(rated):
    tasks = _tasks(rated)
    _region(tasks, 1, "relevance")["value"]["rating"] = 9
    before = _counts()
    response = _upload(_staff(), rated, fmt="label-studio", name="bad.json", content=_bytes(tasks))
    assert response.status_code == 400
    page = response.content.decode()
    assert "Nothing imported." in page and "task 2, annotation 1: relevance 9 is not 1 to 5" in page
    assert _counts() == before


@pytest.mark.parametrize(
    "name, content, message",
    [
        ("tasks.csv", b"[]", "Upload a .json or .zip file."),
        ("tasks.json", b"", "empty"),
        ("dataset.zip", b"not a zip", "not a zip file"),
    ],
)
def test_an_upload_of_the_wrong_kind_is_refused(rated, name, content, message):
    before = _counts()
    response = _upload(_staff(), rated, fmt="argilla", name=name, content=content)
    assert response.status_code == 400 and message in response.content.decode()
    assert _counts() == before


def test_an_upload_over_the_limit_is_refused(rated, monkeypatch):
    monkeypatch.setattr(interop, "MAX_IMPORT_BYTES", 100)
    response = _upload(_staff(), rated, fmt="label-studio", name="big.json", content=b"[" + b" " * 200 + b"]")
    assert response.status_code == 400 and "larger than" in response.content.decode()


def test_a_zip_that_unpacks_too_large_is_refused(rated, monkeypatch):
    archive = io.BytesIO()
    with zipfile.ZipFile(archive, "w", compression=zipfile.ZIP_DEFLATED) as out:
        out.writestr("records.json", "[" + " " * 5000 + "]")
    monkeypatch.setattr(interop, "MAX_IMPORT_BYTES", 1000)
    with pytest.raises(AnnotationImportError, match="unpacks to more than"):
        interop.argilla_files_from_upload(data=archive.getvalue(), filename="x.zip")


# ----------------------------------------------------------------------------- management commands


@pytest.mark.parametrize("fmt", interop.FORMATS)
def test_export_project_and_import_annotations_round_trip(rated, tmp_path, fmt):
    out = io.StringIO()
    call_command("export_project", rated.slug, "--format", fmt, "--out", str(tmp_path / "out"), stdout=out)
    assert (tmp_path / "out" / "README.txt").is_file()
    source = tmp_path / "out" / "tasks.json" if fmt == "label-studio" else tmp_path / "out"
    out = io.StringIO()
    call_command("import_annotations", str(source), "--format", fmt, "--project", "copy", stdout=out)
    assert "12 new rating(s)" in out.getvalue()
    copied = AnnotationProject.objects.get(slug="copy")
    assert _ratings(copied, time=False) == _ratings(rated, time=False)


def test_export_project_refuses_to_overwrite_and_unknown_projects(rated, tmp_path):
    call_command(
        "export_project", rated.slug, "--format", "argilla", "--out", str(tmp_path), stdout=io.StringIO()
    )
    with pytest.raises(CommandError, match="nothing written"):
        call_command("export_project", rated.slug, "--format", "argilla", "--out", str(tmp_path))
    with pytest.raises(CommandError, match="no annotation project"):
        call_command("export_project", "nope", "--format", "argilla", "--out", str(tmp_path / "x"))


def test_import_annotations_reports_errors_and_writes_nothing(rated, tmp_path):
    tasks = _tasks(rated)
    _region(tasks, 0, "ambiguous")["value"]["choices"] = ["maybe"]
    path = tmp_path / "tasks.json"
    path.write_bytes(_bytes(tasks))
    before = _counts()
    with pytest.raises(CommandError, match="task 1, annotation 1: ambiguous 'maybe'"):
        call_command("import_annotations", str(path), "--format", "label-studio", "--project", "copy")
    assert _counts() == before
