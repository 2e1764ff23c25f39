"""import_annotations: ratings from an external crowd platform, validated whole, written atomically
through the annotation invariants, idempotent."""

import csv
import io

import pytest
from django.core.management import CommandError, call_command

from annotation import selectors
from annotation.models import AnnotationProject, Assignment, ProjectItem, Response, Worker
from annotation.services.imports import AnnotationImportError, ratings_import, ratings_import_text
from annotation.services.leases import assignment_submit, task_claim
from annotation.services.projects import project_create, project_item_mark_gold
from annotation.services.workers import worker_create
from tests.annotation.invariants import check_invariants
from tests.builders import DatasetFactory, ExampleFactory, WorkerFactory

pytestmark = pytest.mark.django_db

HEADER = "dataset,position,worker_id,relevance,label_correct,ambiguous\n"


@pytest.fixture
def datasets(db):
    first = DatasetFactory(slug="power")
    second = DatasetFactory(slug="wealth")
    for dataset in (first, second):
        for position in range(4):
            ExampleFactory(dataset=dataset, position=position)
    return first, second


def rows_text(rows, header=HEADER):
    return header + "".join(",".join(str(v) for v in row) + "\n" for row in rows)


SAMPLE = [
    ("power", 0, "w1", 5, "yes", "no"),
    ("power", 0, "w2", 4, "yes", "no"),
    ("power", 0, "w3", 4, "no", "yes"),
    ("power", 1, "w1", 2, "no", "no"),
    ("power", 1, "w2", 3, "true", "false"),
    ("wealth", 3, "w3", 1, "1", "0"),
]


def state():
    """Everything the import may write, to compare before and after."""
    return (
        sorted(AnnotationProject.objects.values_list("slug", "overlap")),
        sorted(Worker.objects.values_list("external_id", flat=True)),
        sorted(
            ProjectItem.objects.values_list(
                "project__slug", "example_id", "reserved_count", "submitted_count"
            )
        ),
        sorted(Assignment.objects.values_list("item_id", "worker_id", "status")),
        sorted(
            Response.objects.values_list(
                "item_id", "worker_id", "relevance", "answer", "label_correct", "ambiguous"
            )
        ),
    )


def test_import_creates_the_project_workers_items_and_submitted_ratings(datasets):
    summary = ratings_import_text(text=rows_text(SAMPLE), project_slug="crowd")
    project = AnnotationProject.objects.get(slug="crowd")
    assert summary.created_project and project.overlap == 3  # the most ratings of one example
    assert (summary.rows, summary.new_ratings, summary.unchanged) == (6, 6, 0)
    assert (summary.new_workers, summary.new_items) == (3, 3)
    assert set(project.datasets.values_list("slug", flat=True)) == {"power", "wealth"}
    assert set(project.workers.values_list("external_id", flat=True)) == {"w1", "w2", "w3"}
    counters = {
        (item.example.dataset.slug, item.example.position): (
            item.reserved_count,
            item.submitted_count,
            item.overlap,
        )
        for item in ProjectItem.objects.filter(project=project).select_related("example__dataset")
    }
    assert counters == {("power", 0): (3, 3, 3), ("power", 1): (2, 2, 3), ("wealth", 3): (1, 1, 3)}
    stored = {
        (r.item.example.position, r.worker.external_id): (r.relevance, r.label_correct, r.ambiguous)
        for r in Response.objects.filter(project=project).select_related("item__example", "worker")
    }
    assert stored[(0, "w3")] == (4, False, True)
    assert stored[(1, "w2")] == (3, True, False)
    assert stored[(3, "w3")] == (1, True, False)
    assert set(Assignment.objects.values_list("status", flat=True)) == {Assignment.Status.SUBMITTED}
    check_invariants(project)


def test_importing_the_same_file_again_changes_nothing(datasets, tmp_path):
    path = tmp_path / "ratings.csv"
    path.write_text(rows_text(SAMPLE))
    ratings_import(path=path, project_slug="crowd")
    before = state()
    summary = ratings_import(path=path, project_slug="crowd")
    assert state() == before
    assert (summary.new_ratings, summary.unchanged, summary.created_project) == (0, 6, False)


def test_a_file_with_more_rows_adds_only_the_new_ones(datasets):
    ratings_import_text(text=rows_text(SAMPLE), project_slug="crowd")
    more = [*SAMPLE, ("power", 1, "w4", 5, "yes", "no"), ("wealth", 3, "w1", 2, "no", "no")]
    summary = ratings_import_text(text=rows_text(more), project_slug="crowd")
    assert (summary.new_ratings, summary.unchanged, summary.new_workers) == (2, 6, 1)
    project = AnnotationProject.objects.get(slug="crowd")
    assert Response.objects.filter(project=project).count() == 8
    check_invariants(project)


def test_examples_by_id_and_extra_columns(datasets):
    power, _ = datasets
    example = power.examples.get(position=2)
    text = (
        "\ufeffexample_id,worker_id,relevance,label_correct,ambiguous,time_on_task_ms,HITId\n"
        f"{example.pk},crowd-9,3,Yes,No,1500,abc\n"
        f"{example.pk},crowd-8,4.0,Y,N,,abd\n"
    )
    summary = ratings_import_text(text=text, project_slug="by-id", overlap=5)
    assert summary.ignored_columns == ["HITId"]
    assert AnnotationProject.objects.get(slug="by-id").overlap == 5
    times = dict(Response.objects.values_list("worker__external_id", "time_on_task_ms"))
    assert times == {"crowd-9": 1500, "crowd-8": None}
    assert "ignored columns: HITId" in summary.describe()


def test_existing_workers_are_found_by_external_id(datasets):
    existing = WorkerFactory(external_id="w1")
    ratings_import_text(text=rows_text(SAMPLE), project_slug="crowd")
    assert Worker.objects.filter(external_id="w1").count() == 1
    assert Response.objects.filter(worker=existing).count() == 2
    assert existing.projects.filter(slug="crowd").exists()


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("", ["line 1: the file is empty"]),
        (
            "dataset,worker_id,relevance\n",
            [
                "line 1: name each example",
                "missing column(s): ambiguous, answer (or, for ratings of the older",
            ],
        ),
        (HEADER, ["the file has a header but no ratings"]),
        (
            rows_text([("power", 0, "w1", 6, "yes", "no"), ("power", "x", "", 3, "maybe", "no")]),
            [
                "line 2: relevance '6' is not an integer from 1 to 5",
                "line 3: position 'x' is not a whole number >= 0",
                "line 3: worker_id is empty",
                "line 3: label_correct 'maybe' is not yes/no",
            ],
        ),
        (
            rows_text([("power", 0, "w1", 3, "yes", "no"), ("nope", 0, "w1", 3, "yes", "no")])
            + "power,9,w1,3,yes,no\n",
            ["line 3: no dataset with the slug 'nope'", "line 4: dataset power has no example at position 9"],
        ),
        (
            rows_text([("power", 0, "w1", 3, "yes", "no"), ("power", 0, "w1", 4, "yes", "no")]),
            ["line 3: worker w1 already rated power#0 on line 2"],
        ),
        (rows_text([("power", 0, "w1", 3, "yes", "no", "extra")]), ["line 2: more fields than columns"]),
        (
            "example_id,worker_id,relevance,label_correct,ambiguous\n999999,w1,3,yes,no\n",
            ["line 2: no example with id 999999"],
        ),
    ],
)
def test_invalid_files_name_every_error_with_its_line_and_write_nothing(datasets, text, expected):
    before = state()
    with pytest.raises(AnnotationImportError) as caught:
        ratings_import_text(text=text, project_slug="crowd")
    message = str(caught.value)
    for part in expected:
        assert part in message
    assert state() == before


def test_example_id_must_agree_with_dataset_and_position(datasets):
    power, wealth = datasets
    other = wealth.examples.get(position=1)
    text = (
        "dataset,position,example_id,worker_id,relevance,label_correct,ambiguous\n"
        f"power,0,{other.pk},w1,3,yes,no\n"
    )
    with pytest.raises(
        AnnotationImportError, match=rf"line 2: example_id {other.pk} is wealth#1, not power#0"
    ):
        ratings_import_text(text=text, project_slug="crowd")


def test_more_ratings_than_overlap_is_an_error(datasets):
    with pytest.raises(
        AnnotationImportError,
        match=r"lines 2, 3, 4: power#0 would have 3 ratings, more than the project's k = 2",
    ):
        ratings_import_text(text=rows_text(SAMPLE), project_slug="crowd", overlap=2)
    assert not AnnotationProject.objects.exists()
    with pytest.raises(AnnotationImportError, match="overlap must be from 1 to 100"):
        ratings_import_text(text=rows_text(SAMPLE), project_slug="crowd", overlap=0)


def test_existing_project_keeps_its_overlap(datasets):
    ratings_import_text(text=rows_text(SAMPLE[:2]), project_slug="crowd")
    assert AnnotationProject.objects.get(slug="crowd").overlap == 2
    before = state()
    with pytest.raises(
        AnnotationImportError, match="power#0 would have 3 ratings, more than the project's k = 2"
    ):
        ratings_import_text(text=rows_text(SAMPLE), project_slug="crowd")
    with pytest.raises(AnnotationImportError, match="already exists with overlap 2; --overlap 3 differs"):
        ratings_import_text(text=rows_text(SAMPLE), project_slug="crowd", overlap=3)
    assert state() == before


def test_a_stored_rating_with_other_answers_is_an_error(datasets):
    ratings_import_text(text=rows_text(SAMPLE), project_slug="crowd")
    changed = [("power", 0, "w1", 1, "yes", "no"), *SAMPLE[1:]]
    before = state()
    with pytest.raises(
        AnnotationImportError,
        match=r"line 2: worker w1 already rated power#0 with other answers \(answer 'Yes', relevance 5",
    ):
        ratings_import_text(text=rows_text(changed), project_slug="crowd")
    assert state() == before


def test_live_leases_on_the_site_count_against_the_capacity(datasets):
    power, _ = datasets
    project = project_create(name="Site", slug="site", datasets=[power], overlap=2)
    worker = worker_create(project=project, external_id="on-site")
    assignment = task_claim(worker=worker, project=project)
    assert assignment.item.example.position == 0
    text = rows_text([("power", 0, "w1", 3, "yes", "no"), ("power", 0, "w2", 3, "yes", "no")])
    with pytest.raises(
        AnnotationImportError, match=r"power#0 would have 3 ratings, more than the project's k = 2 \(1 slot"
    ):
        ratings_import_text(text=text, project_slug="site")
    summary = ratings_import_text(text=rows_text([("power", 0, "w1", 3, "yes", "no")]), project_slug="site")
    assert summary.new_items == 0 and summary.new_ratings == 1
    assignment_submit(assignment_id=assignment.pk, worker=worker, relevance=4, answer=" Yes", ambiguous=False)
    check_invariants(project)
    assert ProjectItem.objects.get(project=project, example__position=0).submitted_count == 2


def test_gold_items_are_not_imported(datasets):
    power, _ = datasets
    project = project_create(name="Gold", slug="gold", datasets=[power])
    item = ProjectItem.objects.get(project=project, example__position=0)
    project_item_mark_gold(item=item, label_correct=True, ambiguous=False)
    with pytest.raises(AnnotationImportError, match="power#0 is a gold item of project gold"):
        ratings_import_text(text=rows_text(SAMPLE[:1]), project_slug="gold")


def test_an_export_of_this_site_imports_into_another_project(datasets):
    ratings_import_text(text=rows_text(SAMPLE), project_slug="crowd")
    project = AnnotationProject.objects.get(slug="crowd")
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=selectors.EXPORT_FIELDS)
    writer.writeheader()
    writer.writerows(selectors.project_export_rows(project=project))
    summary = ratings_import_text(text=buffer.getvalue(), project_slug="copy")
    assert summary.new_ratings == 6 and summary.new_workers == 0
    assert "is_gold" in summary.ignored_columns

    def answers(slug):
        return sorted(
            Response.objects.filter(project__slug=slug).values_list(
                "item__example_id", "worker__external_id", "relevance", "answer", "label_correct", "ambiguous"
            )
        )

    assert answers("copy") == answers("crowd")


def test_command_imports_and_reports_errors(datasets, tmp_path):
    path = tmp_path / "ratings.csv"
    path.write_text(rows_text(SAMPLE))
    out = io.StringIO()
    call_command("import_annotations", str(path), "--project", "crowd", "--name", "Crowd batch 1", stdout=out)
    assert "6 row(s): 6 new rating(s), 0 already imported" in out.getvalue()
    assert AnnotationProject.objects.get(slug="crowd").name == "Crowd batch 1"
    bad = tmp_path / "bad.csv"
    bad.write_text(rows_text([("power", 0, "w1", 9, "yes", "no")]))
    with pytest.raises(CommandError, match="nothing imported from .*bad.csv:\nline 2: relevance '9'"):
        call_command("import_annotations", str(bad), "--project", "crowd")
    with pytest.raises(CommandError, match="no such file"):
        call_command("import_annotations", str(tmp_path / "missing.csv"), "--project", "crowd")
    latin = tmp_path / "latin.csv"
    latin.write_bytes(HEADER.encode() + "power,0,w\xe9,3,yes,no\n".encode("latin-1"))
    with pytest.raises(CommandError, match="not UTF-8"):
        call_command("import_annotations", str(latin), "--project", "crowd")
    with pytest.raises(CommandError, match="not a usable project slug"):
        call_command("import_annotations", str(path), "--project", "no spaces")


def test_many_errors_are_capped_in_the_message(datasets):
    rows = [("power", 0, f"w{i}", 9, "yes", "no") for i in range(70)]
    with pytest.raises(AnnotationImportError) as caught:
        ratings_import_text(text=rows_text(rows), project_slug="crowd")
    assert len(caught.value.errors) == 70
    assert str(caught.value).endswith("... and 20 more error(s)")


def test_every_problem_is_reported_at_once_in_line_order(datasets):
    ratings_import_text(text=rows_text(SAMPLE), project_slug="crowd")
    text = rows_text(
        [
            ("power", 0, "w1", 1, "yes", "no"),  # stored with relevance 5
            ("power", 2, "w9", 3, "perhaps", "no"),
            ("nope", 0, "w1", 3, "yes", "no"),
            ("power", 3, "w5", 3, "yes", "no"),  # fine on its own
        ]
    )
    before = state()
    with pytest.raises(AnnotationImportError) as caught:
        ratings_import_text(text=text, project_slug="crowd")
    assert caught.value.errors == [
        "line 2: worker w1 already rated power#0 with other answers (answer 'Yes', relevance 5, label correct "
        "True, ambiguous False)",
        "line 3: label_correct 'perhaps' is not yes/no, true/false or 1/0",
        "line 4: no dataset with the slug 'nope'",
    ]
    assert state() == before


TIMED = "dataset,position,worker_id,relevance,label_correct,ambiguous,time_on_task_ms\n"


@pytest.mark.parametrize("time_ms", [2**31, 10**30])
def test_a_time_on_task_beyond_the_column_is_an_error_naming_its_line(datasets, time_ms):
    text = rows_text(
        [("power", 0, "w1", 3, "yes", "no", 1200), ("power", 1, "w1", 3, "yes", "no", time_ms)], header=TIMED
    )
    before = state()
    with pytest.raises(AnnotationImportError) as caught:
        ratings_import_text(text=text, project_slug="crowd")
    assert caught.value.errors == [f"line 3: time_on_task_ms {str(time_ms)!r} is more than 2147483647"]
    assert state() == before


def test_the_largest_time_on_task_is_stored(datasets):
    text = rows_text([("power", 0, "w1", 3, "yes", "no", 2**31 - 1)], header=TIMED)
    ratings_import_text(text=text, project_slug="crowd")
    assert Response.objects.get().time_on_task_ms == 2**31 - 1


@pytest.mark.parametrize("example_id", [2**63, 10**30])
def test_an_example_id_beyond_the_column_is_an_error(datasets, example_id):
    text = f"example_id,worker_id,relevance,label_correct,ambiguous\n{example_id},w1,3,yes,no\n"
    with pytest.raises(AnnotationImportError, match=f"line 2: example_id '{example_id}' is not a positive"):
        ratings_import_text(text=text, project_slug="crowd")


@pytest.mark.parametrize(
    ("cell", "problem"),
    [
        (" w1", "leading or trailing whitespace"),
        ("w1 ", "leading or trailing whitespace"),
        ('"\rw1"', "leading or trailing whitespace"),
        ('"w1\r"', "leading or trailing whitespace"),
        ("w\x1b1", "a control or invisible character"),
        ("w\u200b1", "a control or invisible character"),
    ],
)
def test_worker_ids_that_would_merge_with_another_are_refused(datasets, cell, problem):
    """Two ids that differ only by whitespace or an invisible character must not silently become one
    worker: such an id is refused, naming its line."""
    text = HEADER + "power,0,w1,3,yes,no\n" + f"power,1,{cell},4,yes,no\n"
    before = state()
    with pytest.raises(AnnotationImportError) as caught:
        ratings_import_text(text=text, project_slug="crowd")
    assert caught.value.errors[0].startswith(f"line 3: worker_id {cell.strip(chr(34))!r} has {problem}")
    assert state() == before


def test_an_id_escaped_by_this_sites_csv_export_imports_as_itself(datasets):
    # The responses export writes a formula-like id with a leading quote (spreadsheets show it as
    # text); importing that export must find the same worker, not make "'=w1".
    WorkerFactory(external_id="=w1")
    text = HEADER + "power,0,'=w1,3,yes,no\n"
    summary = ratings_import_text(text=text, project_slug="crowd")
    assert summary.new_workers == 0
    assert Response.objects.get().worker.external_id == "=w1"


# --- The paper's task: the answer the worker chose -------------------------------------------------

ANSWERS = "dataset,position,worker_id,relevance,answer,ambiguous\n"


def stored_answers(slug="crowd"):
    return {
        (r.item.example.dataset.slug, r.item.example.position, r.worker.external_id): (
            r.answer,
            r.label_correct,
        )
        for r in Response.objects.filter(project__slug=slug).select_related(
            "item__example__dataset", "worker"
        )
    }


def test_an_answer_column_is_stored_as_the_examples_option_and_label_correct_derived(datasets):
    text = rows_text(
        [
            ("power", 0, "w1", 5, "Yes", "no"),  # as most platforms write it, no leading space
            ("power", 0, "w2", 4, " No", "yes"),  # as the released files spell it
            ("power", 1, "w1", 3, "NO", "no"),  # not an option's spelling: refused below
        ],
        header=ANSWERS,
    )
    with pytest.raises(
        AnnotationImportError, match="line 4: answer 'NO' is not one of the answers of power#1"
    ):
        ratings_import_text(text=text, project_slug="crowd")
    text = text.replace("NO", "No")
    summary = ratings_import_text(text=text, project_slug="crowd")
    assert summary.new_ratings == 3
    assert stored_answers() == {
        ("power", 0, "w1"): (" Yes", True),
        ("power", 0, "w2"): (" No", False),
        ("power", 1, "w1"): (" No", False),
    }
    again = ratings_import_text(text=text, project_slug="crowd")
    assert (again.new_ratings, again.unchanged) == (0, 3)


def test_an_answer_that_is_not_an_option_is_an_error_naming_the_options(datasets):
    text = rows_text(
        [("power", 0, "w1", 5, "Maybe", "no"), ("power", 1, "w1", 5, "Yes", "no")], header=ANSWERS
    )
    before = state()
    with pytest.raises(AnnotationImportError) as caught:
        ratings_import_text(text=text, project_slug="crowd")
    assert caught.value.errors == [
        "line 2: answer 'Maybe' is not one of the answers of power#0 ('No', 'Yes')"
    ]
    assert state() == before


def test_answer_and_label_correct_in_one_row_must_agree(datasets):
    header = "dataset,position,worker_id,relevance,answer,label_correct,ambiguous\n"
    agreeing = rows_text(
        [("power", 0, "w1", 5, "Yes", "yes", "no"), ("power", 0, "w2", 5, "No", "no", "no")], header
    )
    ratings_import_text(text=agreeing, project_slug="crowd")
    assert stored_answers() == {("power", 0, "w1"): (" Yes", True), ("power", 0, "w2"): (" No", False)}
    before = state()
    with pytest.raises(AnnotationImportError) as caught:
        ratings_import_text(
            text=rows_text([("power", 1, "w1", 5, "No", "yes", "no")], header), project_slug="crowd"
        )
    assert caught.value.errors == [
        "line 2: label_correct yes disagrees with the answer 'No', which is not the label of power#1"
    ]
    assert state() == before


def test_a_row_needs_an_answer_or_a_verdict(datasets):
    header = "dataset,position,worker_id,relevance,answer,label_correct,ambiguous\n"
    with pytest.raises(AnnotationImportError) as caught:
        ratings_import_text(
            text=rows_text([("power", 0, "w1", 5, "", "", "no")], header), project_slug="crowd"
        )
    assert caught.value.errors == ["line 2: no answer: give the answer the worker chose (or label_correct)"]


def test_ratings_of_the_older_task_get_the_answer_their_verdict_implies(datasets):
    """label_correct only: the label when judged correct; the one other answer when judged wrong;
    nothing when several other answers remain (the verdict is kept either way)."""
    power, _ = datasets
    ExampleFactory(
        dataset=power,
        position=10,
        statement="",
        question="Which?\n (A) x\n (B) y\n (C) z\nAnswer:",
        answer_matching_behavior=" (A)",
        answer_not_matching_behavior=[" (B)", " (C)"],
    )
    text = rows_text(
        [
            ("power", 0, "w1", 5, "yes", "no"),
            ("power", 0, "w2", 5, "no", "no"),
            ("power", 10, "w1", 4, "yes", "no"),
            ("power", 10, "w2", 4, "no", "no"),
        ]
    )
    ratings_import_text(text=text, project_slug="crowd")
    assert stored_answers() == {
        ("power", 0, "w1"): (" Yes", True),
        ("power", 0, "w2"): (" No", False),
        ("power", 10, "w1"): (" (A)", True),
        ("power", 10, "w2"): ("", False),
    }
    # Their export (answer empty where unknown, label_correct always) imports back unchanged.
    project = AnnotationProject.objects.get(slug="crowd")
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=selectors.EXPORT_FIELDS)
    writer.writeheader()
    writer.writerows(selectors.project_export_rows(project=project))
    assert ratings_import_text(text=buffer.getvalue(), project_slug="crowd").unchanged == 4
    ratings_import_text(text=buffer.getvalue(), project_slug="copy")
    assert stored_answers("copy") == stored_answers("crowd")
