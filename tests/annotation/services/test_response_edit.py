"""A worker changes their last answer while its lease lasts (leases.response_edit); their comment and
"this example is broken" flag are stored with the rating and resolved by researchers
(leases.response_flag_resolve); the selectors the worker page and the project page read them with.
The submit half runs on both lease paths (the `lease_path` fixture: the ORM on SQLite, the single
statement of services/postgres.py on PostgreSQL)."""

from datetime import timedelta

import pytest
from django.utils import timezone

from analysis.agreement.selectors import project_ratings
from annotation import selectors
from annotation.models import AnnotationProject, Assignment, Response
from annotation.services.errors import AssignmentConflict, AssignmentNotFound, InvalidAnswer, WorkerExcluded
from annotation.services.leases import (
    MAX_COMMENT,
    assignment_release,
    response_edit,
    response_flag_resolve,
    task_claim,
)
from annotation.services.projects import project_item_mark_gold, project_publish
from annotation.services.workers import worker_set_excluded
from tests.annotation.builders import answer_for, build_project, submit_rating
from tests.annotation.invariants import check_invariants
from tests.builders import WorkerFactory

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("lease_path")]


def _rated(project, worker, **answers):
    lease = task_claim(worker=worker, project=project)
    return submit_rating(lease, worker, **answers)


def _edit(response, worker, **changes):
    example = response.item.example
    values = {
        "relevance": 2,
        "answer": answer_for(example, label_correct=False),
        "ambiguous": True,
        "comment": "On second thought, the other answer.",
        "flagged_broken": False,
    }
    return response_edit(worker=worker, response=response, **{**values, **changes})


def _row(response) -> tuple:
    stored = Response.objects.get(pk=response.pk)
    return (
        stored.relevance,
        stored.answer,
        stored.label_correct,
        stored.ambiguous,
        stored.comment,
        stored.flagged_broken,
        stored.edited_at,
    )


def test_submit_stores_the_comment_and_the_flag(project, workers):
    response = _rated(project, workers[0], comment="Typo: 'powre'.", flagged_broken=True)
    stored = Response.objects.get(pk=response.pk)
    assert (stored.comment, stored.flagged_broken, stored.flag_resolved_at, stored.edited_at) == (
        "Typo: 'powre'.",
        True,
        None,
        None,
    )
    plain = _rated(project, workers[1])
    assert Response.objects.filter(pk=plain.pk, comment="", flagged_broken=False).exists()


def test_submit_refuses_a_comment_longer_than_the_bound_and_stores_nothing(project, workers):
    lease = task_claim(worker=workers[0], project=project)
    with pytest.raises(ValueError, match=f"at most {MAX_COMMENT} characters"):
        submit_rating(lease, workers[0], comment="x" * (MAX_COMMENT + 1))
    assert not Response.objects.exists()
    assert Assignment.objects.get(pk=lease.pk).status == Assignment.Status.CLAIMED
    check_invariants(project)


def test_an_edit_changes_every_answer_and_derives_the_label_verdict_again(project, workers):
    worker = workers[0]
    response = _rated(project, worker, relevance=5, ambiguous=False, label_correct=True)
    before = list(project.items.order_by("pk").values_list("reserved_count", "submitted_count"))
    now = timezone.now()
    edited = _edit(response, worker, now=now, flagged_broken=True)
    example = response.item.example
    assert _row(response) == (
        2,
        answer_for(example, label_correct=False),
        False,
        True,
        "On second thought, the other answer.",
        True,
        now,
    )
    assert edited.label_correct is False and edited.edited_at == now
    # Still one rating of the item by this worker: the counters do not move.
    assert list(project.items.order_by("pk").values_list("reserved_count", "submitted_count")) == before
    check_invariants(project)
    # And back to the label: label_correct follows the answer both ways.
    _edit(response, worker, answer=example.answer_matching_behavior)
    assert Response.objects.get(pk=response.pk).label_correct is True


def test_what_is_built_from_responses_follows_an_edit(db):
    """The agreement tables, gold accuracy and the export read the edited row, not a stale copy."""
    # Every claim takes gold while some regular item is open: the gold item first, then the other.
    project = build_project(items=2, overlap=1, gold_rate=1.0)
    gold = project.items.order_by("pk").last()
    project_item_mark_gold(item=gold, label_correct=True, ambiguous=None)
    worker = WorkerFactory(projects=[project])
    gold_response = _rated(project, worker, label_correct=True)
    assert gold_response.item_id == gold.pk
    regular = _rated(project, worker, label_correct=True)
    assert not regular.item.is_gold
    table = project_ratings(project=project).pooled_table()
    assert table.label_correct.tolist() == [[True]]
    assert selectors.worker_gold_accuracy(project=project) == {worker.pk: (1, 1)}

    _edit(regular, worker)
    _edit(gold_response, worker)

    table = project_ratings(project=project).pooled_table()
    assert table.label_correct.tolist() == [[False]]
    assert selectors.worker_gold_accuracy(project=project) == {worker.pk: (0, 1)}
    rows = {row["response_id"]: row for row in selectors.project_export_rows(project=project)}
    wrong = answer_for(regular.item.example, label_correct=False)
    assert (rows[regular.pk]["answer"], rows[regular.pk]["label_correct"], rows[regular.pk]["relevance"]) == (
        wrong,
        False,
        2,
    )


def test_no_edit_once_the_lease_is_over(project, workers):
    worker = workers[0]
    response = _rated(project, worker)
    expires = Assignment.objects.get(pk=response.assignment_id).expires_at
    before = _row(response)
    with pytest.raises(AssignmentConflict, match="time to change this answer is over"):
        _edit(response, worker, now=expires)
    assert _row(response) == before
    # A moment earlier it was still allowed.
    _edit(response, worker, now=expires - timedelta(seconds=1))
    assert _row(response) != before


def test_no_edit_of_another_workers_response(project, workers):
    owner, intruder = workers[:2]
    response = _rated(project, owner)
    before = _row(response)
    with pytest.raises(AssignmentNotFound):
        _edit(response, intruder)
    assert _row(response) == before


@pytest.mark.parametrize(
    ("changes", "error", "message"),
    [
        ({"answer": " Maybe"}, InvalidAnswer, "not one of this item's answer options"),
        ({"answer": ""}, InvalidAnswer, "not empty"),
        ({"relevance": 6}, ValueError, "relevance must be an integer from 1 to 5"),
        ({"relevance": True}, ValueError, "relevance must be an integer"),
        ({"ambiguous": "yes"}, ValueError, "ambiguous must be True or False"),
        ({"comment": "x" * (MAX_COMMENT + 1)}, ValueError, "at most 2000 characters"),
        ({"flagged_broken": "on"}, ValueError, "flagged_broken must be True or False"),
    ],
)
def test_an_invalid_edit_changes_nothing(project, workers, changes, error, message):
    worker = workers[0]
    response = _rated(project, worker)
    before = _row(response)
    with pytest.raises(error, match=message):
        _edit(response, worker, **changes)
    assert _row(response) == before


def test_no_edit_once_the_project_is_published_or_closed(project, workers):
    worker = workers[0]
    response = _rated(project, worker)
    before = _row(response)
    project_publish(project=project)
    with pytest.raises(AssignmentConflict, match="project is closed"):
        _edit(response, worker)
    assert _row(response) == before
    published = AnnotationProject.objects.get(pk=project.pk)
    assert selectors.worker_last_response_editable(worker=worker, project=published) is None


def test_an_excluded_worker_cannot_edit(project, workers):
    worker = workers[0]
    response = _rated(project, worker)
    before = _row(response)
    worker_set_excluded(worker=worker, excluded=True, reason="test")
    with pytest.raises(WorkerExcluded):
        _edit(response, worker)
    assert _row(response) == before


def test_the_editable_response_is_the_last_one_and_only_while_its_lease_lasts(project, workers):
    worker = workers[0]
    assert selectors.worker_last_response_editable(worker=worker, project=project) is None
    first = _rated(project, worker)
    assert selectors.worker_last_response_editable(worker=worker, project=project).pk == first.pk
    second = _rated(project, worker)
    assert selectors.worker_last_response_editable(worker=worker, project=project).pk == second.pk
    expires = Assignment.objects.get(pk=second.assignment_id).expires_at
    assert selectors.worker_last_response_editable(worker=worker, project=project, now=expires) is None
    # Another worker's answers are never offered.
    assert selectors.worker_last_response_editable(worker=workers[1], project=project) is None


def test_resolving_a_flag_keeps_it_on_record(project, workers):
    response = _rated(project, workers[0], flagged_broken=True, comment="No answer fits.")
    first = timezone.now()
    resolved = response_flag_resolve(project=project, response_id=response.pk, now=first)
    assert resolved.flag_resolved_at == first
    # Again: the first time stays.
    response_flag_resolve(project=project, response_id=response.pk, now=first + timedelta(hours=1))
    stored = Response.objects.get(pk=response.pk)
    assert (stored.flagged_broken, stored.comment, stored.flag_resolved_at) == (
        True,
        "No answer fits.",
        first,
    )
    # Not a response of this project: nothing to resolve.
    other = build_project(slug="other")
    with pytest.raises(Response.DoesNotExist):
        response_flag_resolve(project=other, response_id=response.pk)


def test_a_new_flag_after_a_resolution_is_open_again(project, workers):
    worker = workers[0]
    response = _rated(project, worker, comment="Odd wording.")
    response_flag_resolve(project=project, response_id=response.pk)
    _edit(response, worker, flagged_broken=True)
    assert Response.objects.get(pk=response.pk).flag_resolved_at is None


def test_the_project_lists_flags_and_comments_unresolved_first(project, workers):
    plain = _rated(project, workers[0])
    flagged = _rated(project, workers[1], flagged_broken=True)
    commented = _rated(project, workers[2], comment="<b>bold</b>?")
    resolved = _rated(project, workers[3], flagged_broken=True, comment="garbled")
    response_flag_resolve(project=project, response_id=resolved.pk)
    notes = selectors.project_flagged_responses(project=project)
    assert [row.pk for row in notes["rows"]] == [commented.pk, flagged.pk, resolved.pk]
    assert plain.pk not in {row.pk for row in notes["rows"]}
    assert (notes["total"], notes["open"]) == (3, 2)
    limited = selectors.project_flagged_responses(project=project, limit=1)
    assert [row.pk for row in limited["rows"]] == [commented.pk] and limited["total"] == 3


def test_k_of_n_counts_what_the_worker_did_and_can_still_get(db):
    project = build_project(items=4, overlap=1)
    worker, other = WorkerFactory.create_batch(2, projects=[project])
    assert selectors.worker_task_progress(worker=worker, project=project) == {"done": 0, "total": 4}
    _rated(project, worker)
    # The live lease's item still counts; a skipped one never comes back.
    lease = task_claim(worker=worker, project=project)
    assert selectors.worker_task_progress(worker=worker, project=project) == {"done": 1, "total": 4}
    assignment_release(assignment_id=lease.pk, worker=worker)
    assert selectors.worker_task_progress(worker=worker, project=project) == {"done": 1, "total": 3}
    # Items others completed (k = 1 rating each) are no longer to be had: the other worker takes
    # the skipped item and the third, then the last.
    _rated(project, other)
    _rated(project, other)
    assert selectors.worker_task_progress(worker=worker, project=project) == {"done": 1, "total": 2}
    _rated(project, other)
    assert selectors.worker_task_progress(worker=worker, project=project) == {"done": 1, "total": 1}


def test_a_study_participant_counts_against_the_study_quota(db):
    project = build_project(items=4, overlap=1)
    project.study_quota = 3
    project.save(update_fields=["study_quota"])
    participant = WorkerFactory(projects=[project], platform="prolific")
    assert selectors.worker_task_progress(worker=participant, project=project) == {"done": 0, "total": 3}
    _rated(project, participant)
    assert selectors.worker_task_progress(worker=participant, project=project) == {"done": 1, "total": 3}
