"""Migration annotation 0006: responses recorded when workers judged the label they were shown get
the answer their verdict implies, where it is unique; none loses its verdict (label_correct), and
undoing the migration leaves every verdict as it was."""

import importlib

import pytest

from annotation.models import AnnotationProject, Response, Worker
from generation.models import Collection, Dataset
from tests.migrations import migrated_back

migration = importlib.import_module("annotation.migrations.0006_response_answer_backfill")

# (label, other answers, verdict) -> the answer recovered
OLD_ROWS = [
    ((" Yes", " No", True), " Yes"),
    ((" Yes", " No", False), " No"),
    ((" No", " Yes", False), " Yes"),
    ((" (A)", [" (B)"], False), " (B)"),
    ((" (A)", [" (B)", " (C)"], True), " (A)"),
    ((" (A)", [" (B)", " (C)"], False), ""),  # several other answers: which one is unknown
    (("", None, True), ""),  # an unlabelled example: nothing to recover
]


@pytest.mark.parametrize(("row", "answer"), OLD_ROWS)
def test_the_rule(row, answer):
    matching, not_matching, label_correct = row
    assert (
        migration.recovered_answer(label_correct=label_correct, matching=matching, not_matching=not_matching)
        == answer
    )


@pytest.mark.django_db(transaction=True)
def test_the_migration_fills_in_stored_answers_and_keeps_every_verdict():
    with migrated_back(
        app_label="annotation",
        name="0005_response_answer",
        # Responses protect their project and worker, datasets their collection: they go first.
        cleanup=lambda: (
            Response.objects.filter(project__slug="old").delete(),
            AnnotationProject.objects.filter(slug="old").delete(),
            Worker.objects.filter(external_id="w1").delete(),
            Dataset.objects.filter(slug="old").delete(),
            Collection.objects.filter(slug="old").delete(),
        ),
    ) as back_then:
        # The other apps stay at their latest state; only annotation goes back to before 0006.
        old = back_then.apps
        Collection_ = old.get_model("generation", "Collection")
        Dataset_ = old.get_model("generation", "Dataset")
        Example_ = old.get_model("generation", "Example")
        Project_ = old.get_model("annotation", "AnnotationProject")
        Item_ = old.get_model("annotation", "ProjectItem")
        Worker_ = old.get_model("annotation", "Worker")
        Assignment_ = old.get_model("annotation", "Assignment")
        Response_ = old.get_model("annotation", "Response")

        collection = Collection_.objects.create(slug="old", name="Old")
        dataset = Dataset_.objects.create(
            collection=collection, slug="old", behavior="b", kind="yes_no", origin="imported"
        )
        project = Project_.objects.create(name="Old", slug="old")
        worker = Worker_.objects.create(external_id="w1", invite_token="t1")
        ids = []
        for n, ((matching, not_matching, label_correct), _answer) in enumerate(OLD_ROWS):
            example = Example_.objects.create(
                dataset=dataset,
                position=n,
                statement=f"s{n}",
                answer_matching_behavior=matching,
                answer_not_matching_behavior=not_matching,
                text_hash=f"{n:064x}",
            )
            item = Item_.objects.create(project=project, example=example, overlap=3)
            assignment = Assignment_.objects.create(
                project=project,
                item=item,
                worker=worker,
                status="submitted",
                claimed_at="2026-01-01T00:00:00Z",
                expires_at="2026-01-01T00:05:00Z",
            )
            ids.append(
                Response_.objects.create(
                    project=project,
                    item=item,
                    worker=worker,
                    assignment=assignment,
                    relevance=4,
                    label_correct=label_correct,
                    ambiguous=False,
                ).pk
            )

        back_then.forward()
        for pk, ((_m, _n, label_correct), answer) in zip(ids, OLD_ROWS, strict=True):
            row = Response.objects.get(pk=pk)
            assert (row.answer, row.label_correct) == (answer, label_correct)

        back_then.back()
        verdicts = dict(Response_.objects.values_list("pk", "label_correct"))
        assert verdicts == {pk: row[2] for pk, (row, _answer) in zip(ids, OLD_ROWS, strict=True)}
