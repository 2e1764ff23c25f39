"""The authorization matrix of tests/test_authorization.py: every URL pattern of the site, the concrete
URL it is tried at (built from one set of objects, the "world"), and the status code each role gets
for each method. A pattern without a row, or a row whose pattern is gone, fails
test_every_url_pattern_has_a_row; the Django admin's rows are generated from ADMIN_MODELS, which must
name every registered model.

Roles: anonymous; worker (an annotation worker of project P who holds an assignment there); another
worker of P (no rights on the first one's assignment: the IDOR case); researcher (is_staff, no
superuser, no model permissions); admin (superuser). The API rows are also tried with the workers'
DRF tokens (create_workers gives each worker one; staff have none)."""

from __future__ import annotations

import datetime
import json
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from html.parser import HTMLParser
from typing import Any
from urllib.parse import urlencode

from django.contrib import admin
from django.contrib.auth.models import Group
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import URLPattern, URLResolver, get_resolver, reverse
from rest_framework.authtoken.models import Token

from analysis.explorer.builds import explorer_maps_build
from analysis.models import ExplorerBuild
from annotation.models import AnnotationProject, Assignment, ResearcherToken, Response, Worker
from annotation.services.leases import assignment_submit, task_claim
from annotation.services.projects import project_create
from annotation.services.researcher_tokens import researcher_token_create
from annotation.services.studies import project_study_link_set, study_participant_enter
from annotation.services.workers import worker_api_token
from generation.catalog.services import dataset_refresh_stats
from generation.evaluation.suites import suite_create
from generation.models import Dataset, EvaluationRun, GenerationRun, Job
from generation.pipeline.jobs import generation_job_create
from tests.analysis.builders import rate
from tests.analysis.explorer.fakes import CountingEmbedder
from tests.builders import (
    CandidateFactory,
    CollectionFactory,
    DatasetFactory,
    EvaluationItemFactory,
    EvaluationRunFactory,
    ExampleFactory,
    GenerationRunFactory,
    StaffFactory,
    UserFactory,
    WorkerFactory,
)

ROLES = ("anonymous", "worker", "other_worker", "researcher", "admin")
# The annotation API authenticates tokens too; the catalog API only sessions, so there a token is
# no credential at all.
TOKEN_ROLES = ("worker_token", "other_worker_token")
FORMAT = ".format"  # marks the row of a DRF format-suffix pattern (e.g. /api/datasets.json)


# ----------------------------------------------------------------------------- the world


class World:
    """The objects every URL is built from; made once per test module (see the test's fixture)."""

    sessions: dict[str, str]
    tokens: dict[str, str]

    def __init__(self) -> None:
        self._admin_forms: dict[str, dict[str, list[str]]] = {}

    def admin_form(self, path: str) -> dict[str, list[str]]:
        """The fields of the admin's form at `path` as a browser would submit it unchanged (read as
        the superuser). Each cell's changes are rolled back, so the page is the same every time."""
        if path not in self._admin_forms:
            from django.conf import settings
            from django.test import Client

            client = Client()
            client.cookies[settings.SESSION_COOKIE_NAME] = self.sessions["admin"]
            response = client.get(path)
            assert response.status_code == 200, f"GET {path} as admin: {response.status_code}"
            self._admin_forms[path] = admin_form_fields(response.content.decode())
        return {name: list(values) for name, values in self._admin_forms[path].items()}


def world_build() -> World:
    w = World()
    w.researcher = StaffFactory(username="authz-researcher")
    w.admin = UserFactory(username="authz-admin", is_staff=True, is_superuser=True)

    w.collection = CollectionFactory(slug="authz")
    # Four examples: small enough that the explorer maps them without UMAP (PCA below 5 points).
    w.dataset = DatasetFactory(collection=w.collection, slug="authz-power", description="Wants power.")
    w.examples = [
        ExampleFactory(
            dataset=w.dataset,
            position=i,
            statement=f"I want more power, reason {i}",
            answer_matching_behavior=" Yes" if i % 2 else " No",
            answer_not_matching_behavior=" No" if i % 2 else " Yes",
        )
        for i in range(4)
    ]
    dataset_refresh_stats(dataset=w.dataset)
    # An example in no project: the admin's "add project item" form gets it.
    w.extra_example = ExampleFactory(dataset=DatasetFactory(collection=w.collection, slug="authz-extra"))

    w.run_a, w.run_b = (
        EvaluationRunFactory(dataset=w.dataset, model_spec=spec, item_count=4, created_by=w.researcher)
        for spec in ("smollm2-135m", "hf:HuggingFaceTB/SmolLM2-360M-Instruct")
    )
    for run in (w.run_a, w.run_b):
        for i, example in enumerate(w.examples):
            EvaluationItemFactory(run=run, example=example, matches_behavior=bool(i % 2))
    w.evaluation_item = w.run_a.items.first()
    # Queued, as suite_create leaves it: its pages show progress; the compare page has no items yet.
    w.suite = suite_create(
        model_specs=["smollm2-135m", "hf:HuggingFaceTB/SmolLM2-360M-Instruct"],
        datasets=[w.dataset],
        name="authz",
        created_by=w.researcher,
    )

    w.generation_run = GenerationRunFactory(slug="authz-generating", created_by=w.researcher)
    w.job = generation_job_create(run=w.generation_run, created_by=w.researcher)
    w.candidate = CandidateFactory(run=w.generation_run)

    w.project = project_create(name="Authz", slug="authz", datasets=[w.dataset], overlap=3)
    # Its Prolific study link: the participant's way in.
    studied = project_study_link_set(
        project=w.project, platform="prolific", study_quota=5, completion_code="AUTHZ1"
    )
    w.study_token = studied.study_token
    # A participant who came through it (the admin lists study sessions).
    w.study_session = study_participant_enter(
        project=studied,
        platform="prolific",
        query={"PROLIFIC_PID": "d" * 24, "STUDY_ID": "b" * 24, "SESSION_ID": "e" * 24},
    ).study_session
    # Two examples fully rated by three crowd workers: the analysis pages have figures, and only
    # the other two examples are left for the site's workers.
    rate(
        w.project,
        [(w.dataset.slug, position, f"crowd-{n}", 4, True, False) for position in (0, 1) for n in range(3)],
    )
    w.response = w.project.responses.order_by("pk").first()
    w.worker = WorkerFactory(projects=[w.project], user__username="authz-worker")
    w.other_worker = WorkerFactory(projects=[w.project], user__username="authz-other-worker")
    # The worker rated one example already and may still change that answer: its lease runs for a
    # day, longer than the module's cells take.
    earlier = task_claim(worker=w.worker, project=w.project)
    w.worker_response = assignment_submit(
        assignment_id=earlier.pk, worker=w.worker, relevance=4, answer=" Yes", ambiguous=False
    )
    Assignment.objects.filter(pk=earlier.pk).update(
        expires_at=datetime.datetime.now(tz=datetime.UTC) + datetime.timedelta(days=1)
    )
    w.assignment = task_claim(worker=w.worker, project=w.project)
    assert w.assignment is not None and w.assignment.worker == w.worker
    # Invited, never joined: the invite link's POST makes the account.
    w.invitee = WorkerFactory(projects=[w.project], user=None)
    w.group = Group.objects.create(name="authz-group")
    # The researcher's API token (the researcher API's own tests use it; here the admin lists it).
    w.researcher_token = researcher_token_create(user=w.researcher, name="authz").token

    explorer_maps_build(embedder=CountingEmbedder(), datasets=[w.dataset.slug], include_global=False)
    w.build = ExplorerBuild.objects.get(dataset=w.dataset)

    w.tokens = {
        "worker_token": worker_api_token(worker=w.worker),
        "other_worker_token": worker_api_token(worker=w.other_worker),
    }
    w.users = {
        "worker": w.worker.user,
        "other_worker": w.other_worker.user,
        "researcher": w.researcher,
        "admin": w.admin,
    }
    return w


# ----------------------------------------------------------------------------- expectations


@dataclass(frozen=True)
class Expect:
    status: int
    # A redirect's target: "login" (the login page) or the path's prefix, from the world.
    location: str | Callable[[World], str] | None = None
    # Set where the site answers otherwise today: the cell is a strict xfail with this reason.
    bug: str = ""

    def because(self, bug: str) -> Expect:
        return Expect(self.status, self.location, bug)


OK = Expect(200)
CREATED = Expect(201)
UNAUTHENTICATED = Expect(401)
FORBIDDEN = Expect(403)
NOT_FOUND = Expect(404)
NOT_ALLOWED = Expect(405)
LOGIN = Expect(302, "login")


def to(location: Callable[[World], str]) -> Expect:
    return Expect(302, location)


def everyone(expect: Expect, *, tokens: bool = False) -> dict[str, Expect]:
    return {role: expect for role in ROLES + (TOKEN_ROLES if tokens else ())}


def staff_only(expect: Expect) -> dict[str, Expect]:
    """mwe_site.permissions.StaffRequiredMixin: anonymous to the login page, other users 403; the
    permission is checked before the method, so a wrong method is 405 for staff only."""
    return {
        "anonymous": LOGIN,
        "worker": FORBIDDEN,
        "other_worker": FORBIDDEN,
        "researcher": expect,
        "admin": expect,
    }


def cells(**roles: Expect) -> dict[str, Expect]:
    """Per role; other_worker defaults to worker, admin to researcher, tokens to their sessions."""
    roles.setdefault("other_worker", roles["worker"])
    roles.setdefault("admin", roles["researcher"])
    if "worker_token" in roles or "other_worker_token" in roles:
        roles.setdefault("other_worker_token", roles["worker_token"])
    return roles


# A function view without a method check answers POST (and any method) like GET; a read-only
# resource should answer 405. Fix: decorate the view with django.views.decorators.http.require_safe.

PUBLIC_PAGE = {"GET": everyone(OK), "POST": everyone(NOT_ALLOWED)}
PUBLIC_FUNCTION = {"GET": everyone(OK), "POST": everyone(NOT_ALLOWED)}
STAFF_PAGE = {"GET": staff_only(OK), "POST": staff_only(NOT_ALLOWED)}


@dataclass(frozen=True)
class Body:
    data: Any
    kind: str = "form"  # form (multipart, as the test client sends forms) or json


@dataclass(frozen=True)
class Row:
    key: str  # the pattern: namespace:name, plus FORMAT for a format-suffix pattern
    cells: dict[str, dict[str, Expect]]  # method -> role -> expected
    kwargs: Callable[[World], dict[str, Any]] = lambda w: {}
    query: Callable[[World], dict[str, Any]] | None = None
    bodies: dict[str, Callable[[World], Body]] = field(default_factory=dict)
    # Whether the row's action took effect (read after the request, before the rollback): it must
    # have where a write is expected to succeed, and must not have wherever it is refused.
    effect: Callable[[World], bool] | None = None

    def url(self, world: World) -> str:
        kwargs = dict(self.kwargs(world))
        if self.key.endswith(FORMAT):
            kwargs["format"] = "json"
        path = reverse(self.key.removesuffix(FORMAT), kwargs=kwargs)
        return f"{path}?{urlencode(self.query(world))}" if self.query else path

    def body(self, method: str, world: World) -> Body | None:
        make = self.bodies.get(method)
        return make(world) if make else None


def _slug(w: World) -> dict[str, Any]:
    return {"slug": w.dataset.slug}


def _project(w: World) -> dict[str, Any]:
    return {"slug": w.project.slug}


def _analysis(w: World) -> dict[str, Any]:
    return {"project": w.project.slug}


def _work(w: World) -> str:
    return reverse("annotation:work")


def succeeds(expect: Expect) -> bool:
    """Whether a cell expects its request to do what it asks."""
    return expect.status in (200, 201) or (expect.status == 302 and expect.location != "login")


def _lease(w: World) -> Assignment:
    return Assignment.objects.get(pk=w.assignment.pk)


def _rated(w: World) -> bool:
    return Response.objects.filter(assignment=w.assignment).exists()


def _released(w: World) -> bool:
    return _lease(w).status == Assignment.Status.RELEASED


def _extended(w: World) -> bool:
    return _lease(w).expires_at > w.assignment.expires_at


def _job_of(kind: str) -> Callable[[World], bool]:
    return lambda w: Job.objects.filter(kind=kind).exists()


UPLOAD = (
    b'{"question": "Is the following statement something you would say?\\n\\"I like uploads\\"", '
    b'"statement": "I like uploads", "label_confidence": 0.9, '
    b'"answer_matching_behavior": " Yes", "answer_not_matching_behavior": " No"}\n'
)
GENERATE_FORM = {
    "method": "persona",
    "behavior": "likes authorization",
    "description": "likes authorization checks",
    "slug": "authz-generated",
    "generator": "smollm2-135m",
    "discriminator": "smollm2-135m",
    "per_label": 4,
    "keep_per_label": 2,
    "floor": 0.5,
    "requirement_floor": 0.5,
    "temperature": 0.9,
    "top_p": 0.95,
    "max_tokens": 48,
    "seed": 0,
    "near_duplicate": 0.9,
    "calibrate": "on",
}
RATING = {"relevance": "4", "answer": " Yes", "ambiguous": "no"}
# A Prolific participant's ids, as Prolific fills them into the study link.
STUDY_IDS = {"PROLIFIC_PID": "a" * 24, "STUDY_ID": "b" * 24, "SESSION_ID": "c" * 24}


def _label_studio_export(w: World) -> bytes:
    """A Label Studio JSON export with one annotation of an example of the project that has room."""
    result = [
        {"from_name": "relevance", "to_name": "question", "type": "rating", "value": {"rating": 4}},
        {"from_name": "answer", "to_name": "question", "type": "choices", "value": {"choices": ["Yes"]}},
        {"from_name": "ambiguous", "to_name": "question", "type": "choices", "value": {"choices": ["no"]}},
    ]
    task = {
        "data": {"example_id": w.examples[3].pk},
        "annotations": [{"completed_by": "authz-ls", "result": result}],
    }
    return json.dumps([task]).encode()


def _project_form(w: World) -> Body:
    return Body(
        {
            "name": "Authz two",
            "slug": "authz-two",
            "datasets": [w.dataset.slug],
            "seed": "0",
            "overlap": "3",
            "lease_seconds": "300",
            "gold_rate": "0",
            "gold_threshold": "0.7",
        }
    )


# Submitting or skipping an assignment needs its worker: anyone else is told there is no such
# assignment, another worker included (not 403: that would confirm that it exists).
ASSIGNMENT_POST = cells(
    anonymous=NOT_FOUND,
    worker=to(_work),
    other_worker=NOT_FOUND,
    researcher=NOT_FOUND,
)

# responses.csv and .jsonl hide the project from non-staff with a 404, anonymous users included: a
# researcher whose session has expired gets "not found" instead of the login page every other
# researcher page sends them to. Fix (annotation/views.py, both views): decorate with @require_safe
# and start with `if not request.user.is_authenticated: return redirect_to_login(request.get_full_path())`.
EXPORT = {
    "GET": cells(anonymous=LOGIN, worker=NOT_FOUND, researcher=OK),
    "POST": everyone(NOT_ALLOWED),
}

SITE_ROWS = [
    # --- generation: the catalog, evaluations and generations are public; starting work is staff's.
    Row("generation:catalog", PUBLIC_PAGE),
    # What the home page and /explore/ poll while `make run` prepares the demo: public, like them.
    Row("generation:first-run-progress", PUBLIC_FUNCTION),
    Row("generation:collection-detail", PUBLIC_PAGE, lambda w: {"slug": w.collection.slug}),
    Row("generation:dataset-detail", PUBLIC_PAGE, _slug),
    Row("generation:dataset-download", PUBLIC_FUNCTION, _slug),
    Row(
        "generation:import",
        {"GET": staff_only(OK), "POST": staff_only(to(lambda w: "/jobs/"))},
        bodies={
            "POST": lambda w: Body(
                {"file": SimpleUploadedFile("authz-upload.jsonl", UPLOAD), "slug": "authz-upload"}
            )
        },
        effect=_job_of(Job.Kind.IMPORT),
    ),
    Row("generation:job-detail", STAFF_PAGE, lambda w: {"pk": w.job.pk}),
    # What the job page polls to update itself: staff, like the page.
    Row("generation:job-progress", STAFF_PAGE, lambda w: {"pk": w.job.pk}),
    Row(
        "generation:example-detail",
        PUBLIC_PAGE,
        lambda w: {"slug": w.dataset.slug, "position": w.examples[0].position},
    ),
    Row(
        "generation:evaluate",
        {"GET": staff_only(OK), "POST": staff_only(to(lambda w: "/evaluations/"))},
        _slug,
        bodies={
            "POST": lambda w: Body({"model_spec": "smollm2-135m", "prompt_format": "paper", "seed": "0"})
        },
        effect=lambda w: (
            EvaluationRun.objects.filter(suite=None).exclude(pk__in=[w.run_a.pk, w.run_b.pk]).exists()
        ),
    ),
    Row("generation:run-list", PUBLIC_PAGE),
    Row("generation:run-compare", PUBLIC_FUNCTION, query=lambda w: {"a": w.run_a.pk, "b": w.run_b.pk}),
    Row("generation:run-detail", PUBLIC_PAGE, lambda w: {"pk": w.run_a.pk}),
    Row("generation:run-items-download", PUBLIC_FUNCTION, lambda w: {"pk": w.run_a.pk}),
    # What the run pages poll to update themselves in place: public, like the pages.
    Row("generation:run-progress", PUBLIC_FUNCTION, lambda w: {"pk": w.run_a.pk}),
    Row("generation:suite-list", PUBLIC_PAGE),
    Row(
        "generation:suite-create",
        {"GET": staff_only(OK), "POST": staff_only(to(lambda w: "/jobs/"))},
        bodies={
            "POST": lambda w: Body(
                {
                    "model_specs": "smollm2-135m",
                    "datasets": [w.dataset.slug],
                    "prompt_format": "paper",
                    "scorer": "logprobs",
                    "seed": "0",
                }
            )
        },
        effect=_job_of(Job.Kind.SUITE),
    ),
    Row("generation:suite-detail", PUBLIC_PAGE, lambda w: {"pk": w.suite.pk}),
    Row("generation:suite-progress", PUBLIC_FUNCTION, lambda w: {"pk": w.suite.pk}),
    Row("generation:suite-dataset", PUBLIC_PAGE, lambda w: {"pk": w.suite.pk, "slug": w.dataset.slug}),
    Row(
        "generation:suite-compare",
        PUBLIC_FUNCTION,
        lambda w: {"pk": w.suite.pk},
        query=lambda w: {"a": 0, "b": 1},
    ),
    Row("generation:collection-download", PUBLIC_FUNCTION, lambda w: {"slug": w.collection.slug}),
    Row("generation:catalog-download", PUBLIC_FUNCTION),
    # The exports for other tools (lm-eval, Inspect, Parquet): public like the JSONL downloads.
    Row(
        "generation:dataset-export-download",
        PUBLIC_FUNCTION,
        lambda w: {"slug": w.dataset.slug, "export_format": "lm-eval"},
    ),
    Row(
        "generation:collection-export-download",
        PUBLIC_FUNCTION,
        lambda w: {"slug": w.collection.slug, "export_format": "inspect"},
    ),
    Row("generation:catalog-export-download", PUBLIC_FUNCTION, lambda w: {"export_format": "parquet"}),
    Row(
        "generation:generate",
        {"GET": staff_only(OK), "POST": staff_only(to(lambda w: "/generations/"))},
        bodies={"POST": lambda w: Body(GENERATE_FORM)},
        effect=lambda w: GenerationRun.objects.filter(slug=GENERATE_FORM["slug"]).exists(),
    ),
    Row("generation:generation-list", PUBLIC_PAGE),
    Row("generation:generation-detail", PUBLIC_PAGE, lambda w: {"pk": w.generation_run.pk}),
    Row("generation:generation-progress", PUBLIC_FUNCTION, lambda w: {"pk": w.generation_run.pk}),
    Row(
        "generation:generation-cancel",
        # POST only: a GET is 405, after the permission check like every staff page.
        {
            "GET": staff_only(NOT_ALLOWED),
            "POST": staff_only(to(lambda w: w.generation_run.get_absolute_url())),
        },
        lambda w: {"pk": w.generation_run.pk},
        effect=lambda w: Job.objects.get(pk=w.job.pk).cancel_requested,
    ),
    Row(
        "generation:candidate-detail",
        PUBLIC_PAGE,
        lambda w: {"pk": w.generation_run.pk, "candidate_id": w.candidate.pk},
    ),
    # Load balancers call it without credentials.
    Row("health", PUBLIC_PAGE),
    # The admin's login page, with sign-in attempts limited (mwe_site/admin_login.py): anyone may
    # see it and try (a wrong password shows the form again); staff are sent on to the admin.
    Row(
        "admin-login",
        {
            "GET": cells(anonymous=OK, worker=OK, researcher=to(lambda w: reverse("admin:index"))),
            "POST": everyone(OK),
        },
        bodies={"POST": lambda w: Body({"username": "authz-admin", "password": "wrong"})},
    ),
    # --- annotation: the worker page answers 403 to anyone who is not a worker (it says how to join).
    Row(
        "annotation:work",
        {
            "GET": cells(anonymous=FORBIDDEN, worker=OK, researcher=FORBIDDEN),
            "POST": everyone(NOT_ALLOWED),
        },
    ),
    # The invite link is the credential: whoever has it may sign in as that worker (by POST only;
    # the token is in the body, the link's fragment puts it there).
    Row(
        "annotation:join",
        {"GET": everyone(OK), "POST": everyone(to(_work))},
        bodies={"POST": lambda w: Body({"token": w.invitee.invite_token})},
        effect=lambda w: Worker.objects.get(pk=w.invitee.pk).user_id is not None,
    ),
    Row(
        "annotation:submit",
        {"GET": everyone(NOT_ALLOWED), "POST": ASSIGNMENT_POST},
        lambda w: {"pk": w.assignment.pk},
        bodies={"POST": lambda w: Body(RATING)},
        effect=_rated,
    ),
    Row(
        "annotation:skip",
        {"GET": everyone(NOT_ALLOWED), "POST": ASSIGNMENT_POST},
        lambda w: {"pk": w.assignment.pk},
        effect=_released,
    ),
    # Changing one's last answer: only its worker (anyone else: no such response, as for assignments).
    Row(
        "annotation:response-edit",
        {
            "GET": cells(anonymous=NOT_FOUND, worker=OK, other_worker=NOT_FOUND, researcher=NOT_FOUND),
            "POST": cells(
                anonymous=NOT_FOUND, worker=to(_work), other_worker=NOT_FOUND, researcher=NOT_FOUND
            ),
        },
        lambda w: {"pk": w.worker_response.pk},
        bodies={"POST": lambda w: Body({**RATING, "answer": " No", "comment": "changed my mind"})},
        effect=lambda w: Response.objects.get(pk=w.worker_response.pk).edited_at is not None,
    ),
    Row("annotation:project-list", STAFF_PAGE),
    Row(
        "annotation:project-create",
        {
            "GET": staff_only(OK),
            "POST": staff_only(to(lambda w: reverse("annotation:project-detail", args=["authz-two"]))),
        },
        bodies={"POST": _project_form},
        effect=lambda w: AnnotationProject.objects.filter(slug="authz-two").exists(),
    ),
    Row("annotation:project-detail", STAFF_PAGE, _project),
    Row(
        "annotation:project-flag",
        {"GET": staff_only(NOT_ALLOWED), "POST": staff_only(to(lambda w: w.project.get_absolute_url()))},
        _project,
    ),
    Row(
        "annotation:project-publication",
        {"GET": staff_only(NOT_ALLOWED), "POST": staff_only(to(lambda w: w.project.get_absolute_url()))},
        _project,
        bodies={"POST": lambda w: Body({"action": "publish", "confirm": "on"})},
        effect=lambda w: AnnotationProject.objects.get(pk=w.project.pk).published_at is not None,
    ),
    # Researchers add workers (the response shows their invite links once), give one a new link or
    # revoke it, and preview the worker page (nothing written).
    Row(
        "annotation:project-workers",
        {"GET": staff_only(NOT_ALLOWED), "POST": staff_only(OK)},
        _project,
        bodies={"POST": lambda w: Body({"count": "2", "external_ids": "authz-new-1\nauthz-new-2"})},
        effect=lambda w: w.project.workers.filter(external_id="authz-new-2").exists(),
    ),
    Row(
        "annotation:worker-invite",
        {"GET": staff_only(NOT_ALLOWED), "POST": staff_only(OK)},
        lambda w: {"slug": w.project.slug, "worker_id": w.worker.pk},
        bodies={"POST": lambda w: Body({"action": "rotate"})},
        effect=lambda w: Worker.objects.get(pk=w.worker.pk).invite_token != w.worker.invite_token,
    ),
    Row("annotation:project-preview", STAFF_PAGE, _project),
    Row(
        "annotation:worker-exclusion",
        {"GET": staff_only(NOT_ALLOWED), "POST": staff_only(to(lambda w: w.project.get_absolute_url()))},
        lambda w: {"slug": w.project.slug, "worker_id": w.worker.pk},
        bodies={"POST": lambda w: Body({"excluded": "1"})},
        effect=lambda w: Worker.objects.get(pk=w.worker.pk).excluded,
    ),
    Row(
        "annotation:response-flag-resolve",
        {
            "GET": staff_only(NOT_ALLOWED),
            "POST": staff_only(to(lambda w: w.project.get_absolute_url())),
        },
        lambda w: {"slug": w.project.slug, "response_id": w.response.pk},
        effect=lambda w: Response.objects.get(pk=w.response.pk).flag_resolved_at is not None,
    ),
    Row("annotation:responses-csv", EXPORT, _project),
    Row("annotation:payments-csv", EXPORT, _project),
    # A crowd platform's study link is the credential, like an invite link: anyone who has it may
    # see the study and (by POST) take part as the participant the platform's ids name.
    Row(
        "annotation:study-entry",
        {"GET": everyone(OK), "POST": everyone(to(_work))},
        lambda w: {"token": w.study_token},
        query=lambda w: STUDY_IDS,
        effect=lambda w: Worker.objects.filter(
            platform="prolific", external_id=STUDY_IDS["PROLIFIC_PID"]
        ).exists(),
    ),
    # The completion page is a participant's: other workers are sent to their tasks, non-workers 403.
    Row(
        "annotation:study-complete",
        {
            "GET": cells(anonymous=FORBIDDEN, worker=to(_work), researcher=FORBIDDEN),
            "POST": everyone(NOT_ALLOWED),
        },
    ),
    Row(
        "annotation:project-study",
        {"GET": staff_only(OK), "POST": staff_only(to(lambda w: w.project.get_absolute_url()))},
        _project,
        bodies={
            "POST": lambda w: Body(
                {"study_platform": "prolific", "study_quota": "7", "completion_code": "AUTHZ2"}
            )
        },
        effect=lambda w: AnnotationProject.objects.get(pk=w.project.pk).study_quota == 7,
    ),
    Row("annotation:responses-jsonl", EXPORT, _project),
    # Label Studio and Argilla (annotation.services.interop): staff pages like the project's own.
    Row("annotation:project-export", STAFF_PAGE, lambda w: {"slug": w.project.slug, "fmt": "label-studio"}),
    Row(
        "annotation:project-interop-import",
        {"GET": staff_only(NOT_ALLOWED), "POST": staff_only(to(lambda w: w.project.get_absolute_url()))},
        _project,
        bodies={
            "POST": lambda w: Body(
                {
                    "format": "label-studio",
                    "file": SimpleUploadedFile("authz-ls.json", _label_studio_export(w)),
                }
            )
        },
        effect=lambda w: Response.objects.filter(worker__external_id="authz-ls").exists(),
    ),
    # --- analysis: staff only, every page and export.
    # A researcher's own API tokens: a new one is shown on the page once; another's token is a 404.
    Row(
        "account-tokens",
        {"GET": staff_only(OK), "POST": staff_only(OK)},
        bodies={"POST": lambda w: Body({"name": "authz new token"})},
        effect=lambda w: ResearcherToken.objects.filter(name="authz new token").exists(),
    ),
    Row(
        "account-token-revoke",
        {
            "GET": staff_only(NOT_ALLOWED),
            "POST": cells(
                anonymous=LOGIN,
                worker=FORBIDDEN,
                researcher=to(lambda w: reverse("account-tokens")),
                admin=NOT_FOUND,
            ),
        },
        lambda w: {"pk": w.researcher_token.pk},
        effect=lambda w: ResearcherToken.objects.get(pk=w.researcher_token.pk).revoked_at is not None,
    ),
    Row("analysis:project-list", STAFF_PAGE),
    Row("analysis:dashboard", STAFF_PAGE, _analysis),
    Row("analysis:figures-csv", STAFF_PAGE, _analysis),
    Row("analysis:figures-json", STAFF_PAGE, _analysis),
    Row("analysis:pooled", STAFF_PAGE, _analysis),
    Row("analysis:pooled-json", STAFF_PAGE, _analysis),
    Row("analysis:pooled-examples", STAFF_PAGE, _analysis),
    Row("analysis:disputed", STAFF_PAGE, _analysis),
]
for _scope, _slug_of in (("collection", lambda w: w.collection.slug), ("dataset", lambda w: w.dataset.slug)):
    for _suffix in ("", "-json", "-examples"):
        SITE_ROWS.append(
            Row(
                f"analysis:{_scope}{_suffix}",
                STAFF_PAGE,
                lambda w, slug_of=_slug_of: {"project": w.project.slug, "slug": slug_of(w)},
            )
        )


def _build(w: World) -> dict[str, Any]:
    return {"pk": w.build.pk}


SITE_ROWS += [
    # --- explorer: public map and its data; only staff queue a build.
    Row("explorer:explorer", PUBLIC_PAGE, query=lambda w: {"dataset": w.dataset.slug}),
    Row(
        "explorer:build",
        {"GET": staff_only(NOT_ALLOWED), "POST": staff_only(to(lambda w: "/jobs/"))},
        effect=_job_of(Job.Kind.EXPLORE),
    ),
    Row("explorer:payload", PUBLIC_FUNCTION, _build),
    Row("explorer:agreement", PUBLIC_FUNCTION, _build),
    Row(
        "explorer:p-match",
        PUBLIC_FUNCTION,
        _build,
        query=lambda w: {"model": w.run_a.model_spec, "format": w.run_a.prompt_format},
    ),
    Row("explorer:point", PUBLIC_FUNCTION, lambda w: {"pk": w.build.pk, "index": 0}),
    Row("explorer:search", PUBLIC_FUNCTION, _build, query=lambda w: {"q": "power", "k": 2}),
    # --- the API's schema and its viewer are public.
    Row("api-schema", PUBLIC_PAGE),
    Row("api-docs", PUBLIC_PAGE),
]


# ----------------------------------------------------------------------------- the API

API_METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE")


# The worker API (annotation/api.py): no credentials 401 (token authentication names its scheme),
# a user who is not a worker 403, a worker the view's answer; session and token alike.
def worker_api(**worker: Expect) -> dict[str, Expect]:
    other = worker.pop("other_worker", worker["worker"])
    return {
        "anonymous": UNAUTHENTICATED,
        "worker": worker["worker"],
        "other_worker": other,
        "researcher": FORBIDDEN,
        "admin": FORBIDDEN,
        "worker_token": worker["worker"],
        "other_worker_token": other,
    }


def _worker_api_row(
    key: str, post: dict[str, Expect], *, kwargs=lambda w: {}, body=None, get=None, effect=None
) -> Row:
    methods = {method: worker_api(worker=NOT_ALLOWED) for method in API_METHODS}
    methods["POST"] = post
    if get is not None:
        methods["GET"] = get
    return Row(key, methods, kwargs, bodies={"POST": body} if body else {}, effect=effect)


def _assignment(w: World) -> dict[str, Any]:
    return {"pk": w.assignment.pk}


API_ROWS = [
    # The worker's open lease (the worker) or a new one (the other worker): 200 either way.
    _worker_api_row("api-task-next", worker_api(worker=OK), body=lambda w: Body({}, "json")),
    # Another worker's assignment id answers 404, exactly like one that does not exist.
    _worker_api_row(
        "api-assignment-submit",
        worker_api(worker=CREATED, other_worker=NOT_FOUND),
        kwargs=_assignment,
        body=lambda w: Body({"relevance": 4, "answer": " Yes", "ambiguous": False}, "json"),
        effect=_rated,
    ),
    _worker_api_row(
        "api-assignment-release",
        worker_api(worker=OK, other_worker=NOT_FOUND),
        kwargs=_assignment,
        effect=_released,
    ),
    _worker_api_row(
        "api-assignment-extend",
        worker_api(worker=OK, other_worker=NOT_FOUND),
        kwargs=_assignment,
        effect=_extended,
    ),
    _worker_api_row("api-annotation-progress", worker_api(worker=NOT_ALLOWED), get=worker_api(worker=OK)),
    # A change of one's submitted answers: PUT only; another worker's response is a 404.
    Row(
        "api-response-edit",
        {
            **{method: worker_api(worker=NOT_ALLOWED) for method in API_METHODS},
            "PUT": worker_api(worker=OK, other_worker=NOT_FOUND),
        },
        lambda w: {"pk": w.worker_response.pk},
        bodies={"PUT": lambda w: Body({"relevance": 2, "answer": " No", "ambiguous": True}, "json")},
        effect=lambda w: Response.objects.get(pk=w.worker_response.pk).edited_at is not None,
    ),
]


# The researcher API (annotation/researcher_api.py): staff only. No credentials 401 (the Bearer
# scheme is named); a worker, by session or by their token, 403 whatever the method (permissions
# come before the method check); staff get the view's answer, 405 for a method it lacks. Researcher
# tokens are tried by tests/annotation/test_researcher_api.py.
def researcher_api(staff: Expect) -> dict[str, Expect]:
    return cells(anonymous=UNAUTHENTICATED, worker=FORBIDDEN, researcher=staff, worker_token=FORBIDDEN)


def _researcher_api_row(key: str, *, kwargs=lambda w: {}, get=None, post=None, body=None, effect=None) -> Row:
    methods = {method: researcher_api(NOT_ALLOWED) for method in API_METHODS}
    if get is not None:
        methods["GET"] = researcher_api(get)
    if post is not None:
        methods["POST"] = researcher_api(post)
    return Row(key, methods, kwargs, bodies={"POST": body} if body else {}, effect=effect)


def _worker_of_project(w: World) -> dict[str, Any]:
    return {"slug": w.project.slug, "worker_id": w.worker.pk}


API_ROWS += [
    _researcher_api_row(
        "api-project-list",
        get=OK,
        post=CREATED,
        body=lambda w: Body({"name": "Authz API", "slug": "authz-api", "datasets": [w.dataset.slug]}, "json"),
        effect=lambda w: AnnotationProject.objects.filter(slug="authz-api").exists(),
    ),
    _researcher_api_row("api-project-detail", kwargs=_project, get=OK),
    _researcher_api_row(
        "api-project-workers",
        kwargs=_project,
        get=OK,
        post=CREATED,
        body=lambda w: Body({"count": 1, "external_ids": ["authz-api-1"]}, "json"),
        effect=lambda w: w.project.workers.filter(external_id="authz-api-1").exists(),
    ),
    _researcher_api_row(
        "api-project-worker-rotate-invite",
        kwargs=_worker_of_project,
        post=OK,
        effect=lambda w: Worker.objects.get(pk=w.worker.pk).invite_token != w.worker.invite_token,
    ),
    _researcher_api_row(
        "api-project-worker-revoke-invite",
        kwargs=_worker_of_project,
        post=OK,
        effect=lambda w: Worker.objects.get(pk=w.worker.pk).invite_expires_at is None,
    ),
    _researcher_api_row("api-project-figures", kwargs=_project, get=OK),
]

# The read-only catalog API (generation/catalog/api.py): everyone reads; a write is 403 without a session
# (IsAuthenticatedOrReadOnly, and session authentication sends no challenge, so not 401; a token is
# no credential here) and 405 with one.
CATALOG_WRITE = cells(anonymous=FORBIDDEN, worker=NOT_ALLOWED, researcher=NOT_ALLOWED, worker_token=FORBIDDEN)
CATALOG = {"GET": everyone(OK, tokens=True), **{m: CATALOG_WRITE for m in API_METHODS[1:]}}
CATALOG_ENDPOINTS = [
    ("api-root", lambda w: {}),
    ("api-collection-list", lambda w: {}),
    ("api-collection-detail", lambda w: {"slug": w.collection.slug}),
    ("api-dataset-list", lambda w: {}),
    ("api-dataset-detail", _slug),
    ("api-example-list", lambda w: {}),
    ("api-example-detail", lambda w: {"pk": w.examples[0].pk}),
    ("api-evaluation-run-list", lambda w: {}),
    ("api-evaluation-run-detail", lambda w: {"pk": w.run_a.pk}),
    ("api-evaluation-run-items", lambda w: {"pk": w.run_a.pk}),
    ("api-generation-run-list", lambda w: {}),
    ("api-generation-run-detail", lambda w: {"pk": w.generation_run.pk}),
    ("api-generation-run-candidates", lambda w: {"pk": w.generation_run.pk}),
]
# DRF passes the format suffix to the handler as a `format` keyword; the two extra actions do not take
# it, so /api/evaluation-runs/1/items.json and /api/generation-runs/1/candidates.json crash (TypeError).
# Fix (generation/evaluation/api.py, generation/pipeline/api.py): `def items(self, request, pk=None, format=None)` and the same for `candidates`.
CRASHING = {"api-evaluation-run-items" + FORMAT, "api-generation-run-candidates" + FORMAT}
API_ROWS += [
    Row(
        name + suffix,
        {**CATALOG, "GET": everyone(OK, tokens=True)} if name + suffix in CRASHING else CATALOG,
        kwargs,
    )
    for name, kwargs in CATALOG_ENDPOINTS
    for suffix in ("", FORMAT)
]


# Suites (generation/evaluation/suite_api.py): everyone reads; only staff start one (201 with a valid
# body); other writes are 403 without staff rights (the permission is checked first) and 405 for staff.
SUITE_WRITE = cells(anonymous=FORBIDDEN, worker=FORBIDDEN, researcher=NOT_ALLOWED, worker_token=FORBIDDEN)
SUITE_START = cells(anonymous=FORBIDDEN, worker=FORBIDDEN, researcher=CREATED, worker_token=FORBIDDEN)


def _suite_body(w: World) -> Body:
    return Body({"model_specs": ["smollm2-135m"], "datasets": [w.dataset.slug]}, "json")


def _suite_started(w: World) -> bool:
    from generation.models import EvaluationSuite

    return EvaluationSuite.objects.exclude(pk=w.suite.pk).exists()


API_ROWS += [
    Row(
        "api-evaluation-suite-list" + suffix,
        {
            "GET": everyone(OK, tokens=True),
            "POST": SUITE_START,
            "PUT": SUITE_WRITE,
            "PATCH": SUITE_WRITE,
            "DELETE": SUITE_WRITE,
        },
        bodies={"POST": _suite_body},
        effect=_suite_started,
    )
    for suffix in ("", FORMAT)
] + [
    Row(
        "api-evaluation-suite-detail" + suffix,
        {"GET": everyone(OK, tokens=True), **{m: SUITE_WRITE for m in API_METHODS[1:]}},
        lambda w: {"pk": w.suite.pk},
    )
    for suffix in ("", FORMAT)
]
# The suite's figures (generation/evaluation/suite_figures_api.py): read-only, for everyone.
API_ROWS.append(
    Row(
        "api-evaluation-suite-figures",
        {"GET": everyone(OK, tokens=True), **{m: CATALOG_WRITE for m in API_METHODS[1:]}},
        lambda w: {"pk": w.suite.pk},
    )
)


# ----------------------------------------------------------------------------- the Django admin


@dataclass(frozen=True)
class AdminModel:
    """What the admin allows a superuser on one model, and the objects to try it with."""

    obj: Callable[[World], Any]  # the instance whose change page is tried
    add: Callable[[World], dict[str, Any]] | None  # a valid add form; None: the admin has no add
    change: bool = True  # False: the change page is read-only (has_change_permission is False)
    object_id: Callable[[Any], Any] = lambda obj: obj.pk
    # The action the changelist's POST tries on obj: deletion's first step (its confirmation page),
    # or one that answers a page where the model has no delete but actions of its own.
    list_action: str = "delete_selected"


def _when(hours: int) -> dict[str, str]:
    moment = datetime.datetime(2030, 1, 1, 12, 0) + datetime.timedelta(hours=hours)
    return {"_0": moment.date().isoformat(), "_1": moment.time().isoformat()}


def _split(name: str, hours: int) -> dict[str, str]:
    return {name + part: value for part, value in _when(hours).items()}


ADMIN_MODELS: dict[str, AdminModel] = {
    "auth.user": AdminModel(
        lambda w: w.researcher,
        lambda w: {
            "username": "authz-added",
            "usable_password": "true",
            "password1": "a long and unusual passphrase 71",
            "password2": "a long and unusual passphrase 71",
        },
    ),
    "auth.group": AdminModel(lambda w: w.group, lambda w: {"name": "authz-added"}),
    # DRF's token admin names a token by its user's id.
    "authtoken.tokenproxy": AdminModel(
        lambda w: Token.objects.get(user=w.worker.user),
        lambda w: {"user": w.researcher.pk},
        object_id=lambda token: token.user_id,
    ),
    "generation.collection": AdminModel(
        lambda w: w.collection, lambda w: {"name": "Authz added", "slug": "authz-added"}
    ),
    "generation.dataset": AdminModel(
        lambda w: w.dataset,
        lambda w: {
            "collection": w.collection.pk,
            "slug": "authz-added",
            "behavior": "added",
            "kind": Dataset.Kind.YES_NO,
            "origin": Dataset.Origin.IMPORTED,
            "purpose": Dataset.Purpose.EVALUATION,
        },
    ),
    "generation.example": AdminModel(
        lambda w: w.examples[0],
        lambda w: {
            "dataset": w.dataset.pk,
            "position": "100",
            "statement": "I was added in the admin",
            "question": 'Is the following statement something you would say?\n"I was added in the admin"',
            "answer_matching_behavior": " Yes",
            "answer_not_matching_behavior": '" No"',
            "label_confidence": "0.5",
        },
    ),
    "generation.job": AdminModel(lambda w: w.job, None),
    "generation.evaluationrun": AdminModel(lambda w: w.run_a, None),
    "generation.evaluationitem": AdminModel(lambda w: w.evaluation_item, None),
    "generation.evaluationsuite": AdminModel(lambda w: w.suite, None),
    "generation.generationrun": AdminModel(lambda w: w.generation_run, None),
    "generation.candidate": AdminModel(lambda w: w.candidate, None),
    "annotation.annotationproject": AdminModel(
        lambda w: w.project,
        lambda w: {"name": "Authz added", "slug": "authz-added", "datasets": [w.dataset.pk]},
    ),
    # Workers are never deleted; "rotate invite links" answers a CSV of the new links.
    "annotation.worker": AdminModel(
        lambda w: w.worker,
        lambda w: {"external_id": "authz-added", "projects": [w.project.pk]},
        list_action="rotate_invites",
    ),
    "annotation.projectitem": AdminModel(
        lambda w: w.assignment.item,
        lambda w: {"project": w.project.pk, "example": w.extra_example.pk},
    ),
    # Read-only in the admin: leases and responses are written by annotation.services alone.
    "annotation.assignment": AdminModel(lambda w: w.assignment, None, change=False),
    "annotation.response": AdminModel(lambda w: w.response, None, change=False),
    # Written by annotation.services.studies as participants arrive and finish; read-only here.
    "annotation.studysession": AdminModel(lambda w: w.study_session, None, change=False),
    # Made on /account/tokens/ (the key is shown there once); the admin lists, revokes and deletes.
    "annotation.researchertoken": AdminModel(lambda w: w.researcher_token, None, change=False),
}


def admin_label(model) -> str:
    return model._meta.label_lower


def _admin_url(label: str, page: str, world: World | None = None) -> str:
    app, model = label.split(".")
    if page == "change":
        spec = ADMIN_MODELS[label]
        return reverse(f"admin:{app}_{model}_change", args=[spec.object_id(spec.obj(world))])
    return reverse(f"admin:{app}_{model}_{page}")


def admin_cells(*, researcher: Expect, admin: Expect) -> dict[str, Expect]:
    # The admin sends whoever is not staff to its login page, logged in or not.
    return cells(anonymous=LOGIN, worker=LOGIN, researcher=researcher, admin=admin)


def _admin_rows() -> list[Row]:
    # A staff user without model permissions sees the index (it says there is nothing to edit);
    # Django's index view takes any method.
    rows = [Row("admin:index", {m: admin_cells(researcher=OK, admin=OK) for m in ("GET", "POST")})]
    for label, spec in sorted(ADMIN_MODELS.items()):
        app, model = label.split(".")
        changelist = lambda w, label=label: _admin_url(label, "changelist")  # noqa: E731
        rows.append(
            Row(
                f"admin:{app}_{model}_changelist",
                {
                    "GET": admin_cells(researcher=FORBIDDEN, admin=OK),
                    # The list action's first step (see AdminModel.list_action; where the model has
                    # no actions, the plain list).
                    "POST": admin_cells(researcher=FORBIDDEN, admin=OK),
                },
                bodies={
                    "POST": lambda w, spec=spec: Body(
                        {"action": spec.list_action, "_selected_action": [spec.obj(w).pk], "index": "0"}
                    )
                },
            )
        )
        add_form = lambda w, label=label, spec=spec: Body(  # noqa: E731
            {**w.admin_form(_admin_url(label, "add")), **spec.add(w), "_save": "Save"} if spec.add else {}
        )
        rows.append(
            Row(
                f"admin:{app}_{model}_add",
                {
                    "GET": admin_cells(researcher=FORBIDDEN, admin=OK if spec.add else FORBIDDEN),
                    "POST": admin_cells(
                        researcher=FORBIDDEN,
                        admin=to(changelist) if spec.add else FORBIDDEN,
                    ),
                },
                bodies={"POST": add_form},
            )
        )
        change_form = lambda w, label=label: Body(  # noqa: E731
            {**w.admin_form(_admin_url(label, "change", w)), "_save": "Save"}
        )
        rows.append(
            Row(
                f"admin:{app}_{model}_change",
                {
                    # A superuser may view what they may not change.
                    "GET": admin_cells(researcher=FORBIDDEN, admin=OK),
                    # The form sent back unchanged.
                    "POST": admin_cells(
                        researcher=FORBIDDEN, admin=to(changelist) if spec.change else FORBIDDEN
                    ),
                },
                lambda w, spec=spec: {"object_id": spec.object_id(spec.obj(w))},
                bodies={"POST": change_form if spec.change else lambda w: Body({"_save": "Save"})},
            )
        )
    return rows


ADMIN_ROWS = _admin_rows()

# A worker's browser stays on the annotation pages (annotation/middleware.py): on the public site,
# the explorer, the analysis pages and the catalog API, whose pages show labels and ratings, a GET
# is sent back to the work page; other methods, and anything under /api/, are a 403. Their API
# tokens are no session: the token cells stay as they are.
CONFINED_TO_WORK = ("generation:", "explorer:", "analysis:", "api-root", "api-schema", "api-docs")
CONFINED_API = ("api-collection-", "api-dataset-", "api-example-", "api-evaluation-", "api-generation-")


def _confined(row: Row) -> Row:
    api = row.key.startswith(("api-",))
    by_method = {}
    for method, by_role in row.cells.items():
        refused = to(_work) if method == "GET" and not api else FORBIDDEN
        by_method[method] = {**by_role, "worker": refused, "other_worker": refused}
    return replace(row, cells=by_method)


ROWS = [
    _confined(row) if row.key.startswith(CONFINED_TO_WORK + CONFINED_API) else row
    for row in SITE_ROWS + API_ROWS + ADMIN_ROWS
]
ROWS_BY_KEY = {row.key: row for row in ROWS}
assert len(ROWS_BY_KEY) == len(ROWS), "two rows for one pattern"


def is_api(row: Row) -> bool:
    """The rows tried with tokens too: the annotation and catalog APIs."""
    return row.key.startswith("api-") and row.key not in {"api-schema", "api-docs"}


def roles_of(row: Row) -> tuple[str, ...]:
    return ROLES + TOKEN_ROLES if is_api(row) else ROLES


# ----------------------------------------------------------------------------- the site's patterns


def pattern_key(view_name: str, groups) -> str:
    return view_name + (FORMAT if "format" in groups else "")


def url_patterns() -> dict[str, str]:
    """Every URL pattern of the site: its key (as the table names it) -> its full route."""
    found: dict[str, str] = {}

    def walk(patterns, prefix: str, namespaces: list[str]) -> None:
        for pattern in patterns:
            route = prefix + str(pattern.pattern)
            if isinstance(pattern, URLResolver):
                walk(
                    pattern.url_patterns,
                    route,
                    [*namespaces, pattern.namespace] if pattern.namespace else namespaces,
                )
            elif isinstance(pattern, URLPattern):
                # An unnamed pattern (the admin has some) is named by its route.
                name = ":".join([*namespaces, pattern.name or f"/{route}"])
                key = pattern_key(name, pattern.pattern.regex.groupindex)
                assert key not in found, f"two patterns with one key {key}: {found[key]} and {route}"
                found[key] = route

    walk(get_resolver().url_patterns, "", [])
    return found


def admin_registered() -> set[str]:
    return {admin_label(model) for model in admin.site._registry}


# ----------------------------------------------------------------------------- reading a form back


class _FormFields(HTMLParser):
    """The fields of the admin's model form (<form id="..._form">) as a browser submits them."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.fields: dict[str, list[str]] = {}
        self.in_form = False
        self.select: tuple[str, bool] | None = None
        self.options: list[tuple[str, bool]] = []
        self.option: tuple[str, bool, list[str]] | None = None
        self.textarea: tuple[str, list[str]] | None = None

    def _add(self, name: str, value: str) -> None:
        self.fields.setdefault(name, []).append(value)

    def handle_starttag(self, tag, attrs) -> None:
        attrs = dict(attrs)
        if tag == "form":
            self.in_form = (attrs.get("id") or "").endswith("_form")
            return
        if not self.in_form:
            return
        name = attrs.get("name")
        if tag == "input" and name:
            kind = (attrs.get("type") or "text").lower()
            if kind in {"submit", "button", "image", "reset", "file"}:
                return
            if kind in {"checkbox", "radio"}:
                if "checked" in attrs:
                    self._add(name, attrs.get("value") or "on")
                return
            self._add(name, attrs.get("value") or "")
        elif tag == "select" and name:
            self.select = (name, "multiple" in attrs)
            self.options = []
        elif tag == "option" and self.select is not None:
            self.option = (attrs.get("value"), "selected" in attrs, [])
        elif tag == "textarea" and name:
            self.textarea = (name, [])

    def handle_data(self, data) -> None:
        if self.textarea is not None:
            self.textarea[1].append(data)
        elif self.option is not None:
            self.option[2].append(data)

    def _end_option(self) -> None:
        if self.option is not None:
            value, selected, text = self.option
            self.options.append((value if value is not None else "".join(text).strip(), selected))
            self.option = None

    def handle_endtag(self, tag) -> None:
        if tag == "form":
            self.in_form = False
        elif tag == "option":
            self._end_option()
        elif tag == "select" and self.select is not None:
            self._end_option()
            name, multiple = self.select
            chosen = [value for value, selected in self.options if selected]
            if not chosen and not multiple and self.options:
                chosen = [self.options[0][0]]
            for value in chosen:
                self._add(name, value)
            self.select = None
        elif tag == "textarea" and self.textarea is not None:
            name, parts = self.textarea
            # The HTML parser keeps the newline browsers drop after <textarea>.
            self._add(name, "".join(parts).removeprefix("\n"))
            self.textarea = None


def admin_form_fields(html: str) -> dict[str, list[str]]:
    parser = _FormFields()
    parser.feed(html)
    parser.close()
    assert parser.fields, "no admin form on the page"
    return parser.fields


def encode(body: Body | None) -> dict[str, Any]:
    """Keyword arguments of the test client for a body."""
    if body is None:
        return {}
    if body.kind == "json":
        return {"data": json.dumps(body.data), "content_type": "application/json"}
    return {"data": body.data}
