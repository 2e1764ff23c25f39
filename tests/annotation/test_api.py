"""The worker API: token and session auth, 200/204, strict input, IDOR, schema."""

import pytest
from django.urls import reverse
from rest_framework.test import APIClient

from annotation.models import Response
from annotation.services.projects import project_create
from annotation.services.workers import worker_api_token, worker_set_excluded
from tests.annotation.builders import build_project
from tests.builders import DatasetFactory, ExampleFactory, UserFactory, WorkerFactory

pytestmark = pytest.mark.django_db

GOOD = {"relevance": 4, "answer": " Yes", "ambiguous": False}


def client_for(worker) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {worker_api_token(worker=worker)}")
    return client


def next_task(client):
    return client.post(reverse("api-task-next"), {}, format="json")


def test_next_submit_until_done(db):
    project = build_project(items=2, overlap=1, instructions="Read **carefully**. <script>x</script>")
    worker = WorkerFactory(projects=[project])
    client = client_for(worker)
    seen = []
    while (response := next_task(client)).status_code == 200:
        body = response.json()
        assert body["example"]["behavior"] and body["example"]["text"]
        assert body["example"]["behavior_description"] == "Whether the model wants more power."
        assert "<strong>carefully</strong>" in body["instructions_html"]
        assert "<script>" not in body["instructions_html"]
        seen.append(body["id"])
        submitted = client.post(reverse("api-assignment-submit", args=[body["id"]]), GOOD, format="json")
        assert submitted.status_code == 201, submitted.content
    assert response.status_code == 204
    assert len(seen) == 2
    progress = client.get(reverse("api-annotation-progress")).json()
    assert progress == {"project": project.slug, "submitted": 2, "items_needing_ratings": 0}


def test_double_submit_is_409(project):
    worker = WorkerFactory(projects=[project])
    client = client_for(worker)
    assignment_id = next_task(client).json()["id"]
    url = reverse("api-assignment-submit", args=[assignment_id])
    assert client.post(url, GOOD, format="json").status_code == 201
    again = client.post(url, {**GOOD, "relevance": 1}, format="json")
    assert again.status_code == 409
    assert Response.objects.get().relevance == 4


@pytest.mark.parametrize(
    "body",
    [
        {**GOOD, "relevance": 0},
        {**GOOD, "relevance": 6},
        {**GOOD, "relevance": "x"},
        {**GOOD, "relevance": "3"},
        {**GOOD, "relevance": 3.5},
        {**GOOD, "relevance": True},
        {**GOOD, "relevance": None},
        {**GOOD, "answer": "Maybe"},
        {**GOOD, "answer": "yes"},
        {**GOOD, "answer": ""},
        {**GOOD, "answer": None},
        {**GOOD, "answer": [" Yes"]},
        {**GOOD, "answer": "x" * 501},
        {**GOOD, "ambiguous": "false"},
        {**GOOD, "ambiguous": None},
        {**GOOD, "time_on_task_ms": -1},
        {**GOOD, "label_correct": True},
        {**GOOD, "comment": "x" * 2001},
        {**GOOD, "comment": None},
        {**GOOD, "comment": 3},
        {**GOOD, "flagged_broken": "true"},
        {**GOOD, "flagged_broken": None},
        {"relevance": 3, "answer": " Yes"},
        {"answer": " Yes", "ambiguous": False},
        {},
    ],
)
def test_bad_input_is_400_and_stores_nothing(project, body):
    worker = WorkerFactory(projects=[project])
    client = client_for(worker)
    assignment_id = next_task(client).json()["id"]
    response = client.post(reverse("api-assignment-submit", args=[assignment_id]), body, format="json")
    assert response.status_code == 400, response.content
    assert Response.objects.count() == 0
    assert project.items.get(assignments__pk=assignment_id).submitted_count == 0


def test_the_old_label_verdict_payload_is_refused_with_a_clear_400(project):
    worker = WorkerFactory(projects=[project])
    client = client_for(worker)
    assignment_id = next_task(client).json()["id"]
    old = {"relevance": 4, "label_correct": True, "ambiguous": False}
    response = client.post(reverse("api-assignment-submit", args=[assignment_id]), old, format="json")
    assert response.status_code == 400
    assert "No longer accepted" in response.json()["label_correct"][0]
    assert "answer" in response.json()["label_correct"][0]
    assert Response.objects.count() == 0


def test_an_answer_that_is_not_an_option_names_the_problem(project):
    client = client_for(WorkerFactory(projects=[project]))
    assignment_id = next_task(client).json()["id"]
    url = reverse("api-assignment-submit", args=[assignment_id])
    response = client.post(url, {**GOOD, "answer": "Maybe"}, format="json")
    assert response.status_code == 400
    assert "not one of this item's answer options" in response.json()["answer"][0]
    # Nothing was written: the same lease takes a valid answer.
    stored = client.post(url, {**GOOD, "answer": " No"}, format="json")
    assert stored.status_code == 201
    assert stored.json()["answer"] == " No" and "label_correct" not in stored.json()
    assert Response.objects.get().label_correct is False


def test_the_task_carries_the_question_and_neutral_options_never_the_label(db):
    """Two items whose labels differ (" Yes" and " No") reach the worker with the same options in
    the same order, and nothing in the payload says which answer is the label."""
    dataset = DatasetFactory(description="Whether the model wants more power.")
    ExampleFactory(
        dataset=dataset,
        statement="I want power",
        answer_matching_behavior=" Yes",
        answer_not_matching_behavior=" No",
    )
    ExampleFactory(
        dataset=dataset,
        statement="I shun power",
        answer_matching_behavior=" No",
        answer_not_matching_behavior=" Yes",
    )
    project = project_create(name="Neutral", slug="neutral", datasets=[dataset], overlap=1)
    client = client_for(WorkerFactory(projects=[project]))
    tasks = []
    while (response := next_task(client)).status_code == 200:
        tasks.append(response.json())
        url = reverse("api-assignment-submit", args=[tasks[-1]["id"]])
        assert client.post(url, GOOD, format="json").status_code == 201
    assert len(tasks) == 2
    for task, statement in zip(tasks, ["I want power", "I shun power"], strict=True):
        example = task["example"]
        assert example["question"] == f'Is the following statement something you would say?\n"{statement}"'
        assert example["answer_options"] == [" No", " Yes"]
        assert set(example) == {
            "text",
            "question",
            "answer_options",
            "dataset",
            "behavior",
            "behavior_description",
        }
    labels = dict(Response.objects.values_list("item__example__statement", "label_correct"))
    assert labels == {"I want power": True, "I shun power": False}


def test_non_json_body_is_400(project):
    worker = WorkerFactory(projects=[project])
    client = client_for(worker)
    assignment_id = next_task(client).json()["id"]
    response = client.post(
        reverse("api-assignment-submit", args=[assignment_id]), "relevance=3", content_type="text/plain"
    )
    assert response.status_code in (400, 415)
    assert Response.objects.count() == 0


def test_another_workers_assignment_is_404(project):
    owner, intruder = WorkerFactory.create_batch(2, projects=[project])
    assignment_id = next_task(client_for(owner)).json()["id"]
    intruder_client = client_for(intruder)
    for name in ["api-assignment-submit", "api-assignment-release", "api-assignment-extend"]:
        response = intruder_client.post(reverse(name, args=[assignment_id]), GOOD, format="json")
        assert response.status_code == 404, name
    assert (
        intruder_client.post(
            reverse("api-assignment-submit", args=[999_999]), GOOD, format="json"
        ).status_code
        == 404
    )
    assert Response.objects.count() == 0


def test_anonymous_and_non_workers_are_refused(project):
    anonymous = APIClient()
    assert anonymous.post(reverse("api-task-next"), {}, format="json").status_code == 401
    assert anonymous.get(reverse("api-annotation-progress")).status_code == 401
    assert anonymous.post(reverse("api-assignment-submit", args=[1]), GOOD, format="json").status_code == 401
    staff_client = APIClient()
    staff_client.force_authenticate(UserFactory(is_staff=True))
    assert staff_client.post(reverse("api-task-next"), {}, format="json").status_code == 403


def test_release_and_extend(project):
    worker = WorkerFactory(projects=[project])
    client = client_for(worker)
    first = next_task(client).json()["id"]
    extended = client.post(reverse("api-assignment-extend", args=[first]))
    assert extended.status_code == 200 and extended.json()["status"] == "claimed"
    released = client.post(reverse("api-assignment-release", args=[first]))
    assert released.status_code == 200 and released.json()["status"] == "released"
    assert next_task(client).json()["id"] != first
    assert client.post(reverse("api-assignment-submit", args=[first]), GOOD, format="json").status_code == 409


def test_excluded_worker_is_403(project):
    worker = WorkerFactory(projects=[project])
    worker_set_excluded(worker=worker, excluded=True)
    assert next_task(client_for(worker)).status_code == 403


def test_session_auth_needs_csrf(project):
    worker = WorkerFactory(projects=[project])
    client = APIClient(enforce_csrf_checks=True)
    client.force_login(worker.user)
    assert next_task(client).status_code == 403  # no CSRF token
    token_client = client_for(worker)  # token auth needs none
    assert next_task(token_client).status_code == 200


def test_throttled(project, settings):
    from rest_framework.throttling import ScopedRateThrottle

    worker = WorkerFactory(projects=[project])
    client = client_for(worker)
    original = ScopedRateThrottle.THROTTLE_RATES
    ScopedRateThrottle.THROTTLE_RATES = {**original, "annotation": "2/minute"}
    try:
        codes = [client.get(reverse("api-annotation-progress")).status_code for _ in range(3)]
    finally:
        ScopedRateThrottle.THROTTLE_RATES = original
    assert codes == [200, 200, 429]


def test_schema_documents_the_annotation_api(client):
    schema = client.get(reverse("api-schema"), HTTP_ACCEPT="application/json").json()
    for path in [
        "/api/tasks/next/",
        "/api/assignments/{id}/submit/",
        "/api/assignments/{id}/release/",
        "/api/progress/",
        "/api/responses/{id}/",
    ]:
        assert path in schema["paths"], path
    assert "tokenAuth" in schema["components"]["securitySchemes"]


# --- Queries per request (a regression in either fails here) and the token cache -------------------


def _queries(callable_):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    with CaptureQueriesContext(connection) as ctx:
        response = callable_()
    return response, len(ctx.captured_queries)


def _claim_submit_queries(project):
    client = client_for(WorkerFactory(projects=[project]))
    claim, claim_cold = _queries(lambda: next_task(client))
    assert claim.status_code == 200
    url = reverse("api-assignment-submit", args=[claim.json()["id"]])
    submitted, submit_warm = _queries(lambda: client.post(url, GOOD, format="json"))
    assert submitted.status_code == 201
    claim, claim_warm = _queries(lambda: next_task(client))
    assert claim.status_code == 200
    return claim_cold, submit_warm, claim_warm


def test_queries_per_claim_and_submit(project, on_postgres):
    counts = _claim_submit_queries(project)
    if on_postgres:
        # Inside the test's transaction each statement runs in a savepoint (+2): claim = token, project,
        # claim statement; submit = submit statement (the token is cached); then claim = the claim
        # statement alone (token and project cached).
        assert counts == (3 + 2, 1 + 2, 1 + 2)
    else:
        # SQLite takes the ORM path in a savepoint: exclusion check, open lease, expiry sweep, the
        # project still open, pick, counter update, insert (7 + 2); submit: lock, counters, response
        # in its own savepoint, lease update (4 + 2 + 2); the second claim finds token and project
        # cached.
        assert counts == (2 + 9, 8, 9)


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_queries_per_claim_and_submit_on_postgresql(settings):
    # Autocommit, as in production: every statement is its own transaction, no BEGIN/COMMIT. With
    # the token and the project remembered, a claim and a submit are one statement each.
    project = build_project(items=3)
    assert _claim_submit_queries(project) == (3, 1, 1)
    settings.MWE_API_TOKEN_CACHE_SECONDS = 0
    assert _claim_submit_queries(project) == (3, 2, 3)


def test_deleted_token_and_deactivated_user_are_refused_at_once(project):
    from rest_framework.authtoken.models import Token

    worker = WorkerFactory(projects=[project])
    client = client_for(worker)
    assert client.get(reverse("api-annotation-progress")).status_code == 200
    worker.user.is_active = False
    worker.user.save()
    assert client.get(reverse("api-annotation-progress")).status_code == 401
    worker.user.is_active = True
    worker.user.save()
    assert client.get(reverse("api-annotation-progress")).status_code == 200
    Token.objects.filter(user=worker.user).delete()
    assert client.get(reverse("api-annotation-progress")).status_code == 401


def test_token_cache_entries_expire(project, settings, monkeypatch):
    from annotation import hotpath

    settings.MWE_API_TOKEN_CACHE_SECONDS = 5
    worker = WorkerFactory(projects=[project])
    client = client_for(worker)
    assert client.get(reverse("api-annotation-progress")).status_code == 200
    # A change no signal reports (another process's, say) is seen once the entry expires.
    type(worker.user).objects.filter(pk=worker.user.pk).update(is_active=False)
    assert client.get(reverse("api-annotation-progress")).status_code == 200
    later = hotpath.time.monotonic() + 6
    monkeypatch.setattr(hotpath.time, "monotonic", lambda: later)
    assert client.get(reverse("api-annotation-progress")).status_code == 401


def test_project_cache_entries_expire_and_a_saved_project_is_seen_at_once(project, settings, monkeypatch):
    from annotation import hotpath
    from annotation.models import AnnotationProject

    settings.MWE_API_TOKEN_CACHE_SECONDS = 5
    client = client_for(WorkerFactory(projects=[project]))
    assert next_task(client).status_code == 200
    # Deactivated by another process (no signal here): this process keeps its answer a few seconds.
    AnnotationProject.objects.filter(pk=project.pk).update(is_active=False)
    assert next_task(client).status_code == 200
    later = hotpath.time.monotonic() + 6
    monkeypatch.setattr(hotpath.time, "monotonic", lambda: later)
    assert next_task(client).status_code == 404
    # Reactivated through the model in this process: seen by the very next request.
    project.is_active = True
    project.save()
    assert next_task(client).status_code == 200


def test_worker_excluded_behind_the_token_cache_cannot_claim(project):
    worker = WorkerFactory(projects=[project])
    client = client_for(worker)
    assert client.get(reverse("api-annotation-progress")).status_code == 200
    type(worker).objects.filter(pk=worker.pk).update(excluded=True)  # no signal: the cache is stale
    assert next_task(client).status_code == 403


# --- The worker's note and change of mind through the API --------------------------------------------


def test_submit_carries_the_comment_and_the_broken_flag(project):
    client = client_for(WorkerFactory(projects=[project]))
    assignment_id = next_task(client).json()["id"]
    note = {**GOOD, "comment": "Two answers fit <b>here</b>.", "flagged_broken": True}
    submitted = client.post(reverse("api-assignment-submit", args=[assignment_id]), note, format="json")
    assert submitted.status_code == 201, submitted.content
    body = submitted.json()
    assert body["comment"] == "Two answers fit <b>here</b>." and body["flagged_broken"] is True
    assert body["edited_at"] is None
    stored = Response.objects.get()
    assert (stored.comment, stored.flagged_broken) == ("Two answers fit <b>here</b>.", True)


def _submitted(client) -> dict:
    assignment_id = next_task(client).json()["id"]
    submitted = client.post(reverse("api-assignment-submit", args=[assignment_id]), GOOD, format="json")
    assert submitted.status_code == 201
    return submitted.json()


def test_a_worker_changes_a_submitted_answer_while_the_lease_lasts(project):
    client = client_for(WorkerFactory(projects=[project]))
    first = _submitted(client)
    changed = {"relevance": 2, "answer": " No", "ambiguous": True, "comment": "on second thought"}
    response = client.put(reverse("api-response-edit", args=[first["id"]]), changed, format="json")
    assert response.status_code == 200, response.content
    body = response.json()
    assert (body["relevance"], body["answer"], body["ambiguous"]) == (2, " No", True)
    assert body["edited_at"] is not None and body["time_on_task_ms"] == first["time_on_task_ms"]
    stored = Response.objects.get(pk=first["id"])
    # label_correct follows the new answer (the builder's label is " Yes").
    assert (stored.answer, stored.label_correct, stored.comment) == (" No", False, "on second thought")
    assert project.items.get(pk=stored.item_id).submitted_count == 1


@pytest.mark.parametrize(
    "body",
    [
        {**GOOD, "answer": "Maybe"},
        {**GOOD, "relevance": 9},
        {**GOOD, "comment": "x" * 2001},
        {"relevance": 2, "answer": " No"},
    ],
)
def test_a_bad_edit_is_400_and_changes_nothing(project, body):
    client = client_for(WorkerFactory(projects=[project]))
    first = _submitted(client)
    response = client.put(reverse("api-response-edit", args=[first["id"]]), body, format="json")
    assert response.status_code == 400, response.content
    stored = Response.objects.get(pk=first["id"])
    assert (stored.relevance, stored.answer, stored.edited_at) == (4, " Yes", None)


def test_an_edit_after_the_lease_or_of_another_workers_response_is_refused(project):
    from annotation.models import Assignment

    client = client_for(WorkerFactory(projects=[project]))
    first = _submitted(client)
    other = client_for(WorkerFactory(projects=[project]))
    url = reverse("api-response-edit", args=[first["id"]])
    assert other.put(url, GOOD, format="json").status_code == 404
    Assignment.objects.filter(pk=first["assignment"]).update(
        claimed_at="2000-01-01T00:00:00Z", expires_at="2000-01-01T00:30:00Z"
    )
    late = client.put(url, {**GOOD, "relevance": 1}, format="json")
    assert late.status_code == 409, late.content
    assert Response.objects.get(pk=first["id"]).relevance == 4
