"""The researcher API: create a project, add its workers and manage their invite links, read its
agreement figures. What the project pages do, for scripts.

Researchers authenticate with a token of their own (`Authorization: Bearer mwe_...`, made on
/account/tokens/; ResearcherTokenAuthentication) or their staff session (with its CSRF token on a
POST, as any session API). A worker's token is recognised only to be refused (403): it names a
user who is not staff. A researcher's token is no credential on the worker API, whose
authentication does not read Bearer tokens. Thin views: the project page's forms validate the input
(so the page and the API refuse the same things), annotation.services writes."""

from __future__ import annotations

from django.core.exceptions import ValidationError as DjangoValidationError
from django.db.models import Count, Q
from django.shortcuts import get_object_or_404
from django.utils import timezone
from drf_spectacular.extensions import OpenApiAuthenticationExtension
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import permissions, status
from rest_framework.authentication import BaseAuthentication, SessionAuthentication, get_authorization_header
from rest_framework.exceptions import AuthenticationFailed, ValidationError
from rest_framework.generics import GenericAPIView
from rest_framework.renderers import JSONRenderer
from rest_framework.request import Request
from rest_framework.response import Response as ApiResponse
from rest_framework.throttling import ScopedRateThrottle

from analysis.agreement import selectors as agreement_selectors
from analysis.agreement.serializers import ProjectFiguresSerializer
from analysis.agreement.views import RATING_OPTIONS, rating_options
from annotation import selectors
from annotation.api import WorkerTokenAuthentication
from annotation.forms import ProjectCreateForm, WorkersAddForm
from annotation.models import AnnotationProject, Worker, external_id_problem
from annotation.researcher_serializers import (
    InviteSerializer,
    InvitesSerializer,
    ProjectCreateSerializer,
    ProjectDetailSerializer,
    ProjectSerializer,
    WorkersAddSerializer,
    WorkerSerializer,
)
from annotation.serializers import ErrorSerializer
from annotation.services import researcher_tokens, workers


class ResearcherTokenAuthentication(BaseAuthentication):
    """`Authorization: Bearer mwe_...`: a live researcher token of an active staff user. Any other
    Authorization header is left to the next authentication class."""

    keyword = "Bearer"

    def authenticate(self, request):
        auth = get_authorization_header(request).split()
        if not auth or auth[0].lower() != self.keyword.lower().encode():
            return None
        if len(auth) != 2:
            raise AuthenticationFailed("Invalid token header: give `Bearer <token>`.")
        try:
            key = auth[1].decode()
        except UnicodeError:
            raise AuthenticationFailed("Invalid token header: the token has invalid characters.") from None
        token = researcher_tokens.researcher_token_authenticate(key=key)
        if token is None:
            raise AuthenticationFailed("Invalid or revoked token.")
        if not (token.user.is_active and token.user.is_staff):
            raise AuthenticationFailed("This token's user is not an active researcher.")
        return (token.user, token)

    def authenticate_header(self, request) -> str:
        # Makes an unauthenticated request a 401 that names the scheme (not a 403).
        return f'{self.keyword} realm="api"'


class ResearcherTokenScheme(OpenApiAuthenticationExtension):
    target_class = ResearcherTokenAuthentication
    name = "researcherToken"

    def get_security_definition(self, auto_schema):
        return {
            "type": "http",
            "scheme": "bearer",
            "description": "A researcher's API token (mwe_...), made on /account/tokens/.",
        }


class IsResearcher(permissions.BasePermission):
    message = "Only researchers (staff) use this API."

    def has_permission(self, request, view) -> bool:
        user = request.user
        return bool(user and user.is_authenticated and user.is_active and user.is_staff)


ERRORS = {
    401: OpenApiResponse(ErrorSerializer, description="Not authenticated, or a revoked token."),
    403: OpenApiResponse(ErrorSerializer, description="Not a researcher (staff)."),
}
NOT_FOUND = {404: OpenApiResponse(ErrorSerializer, description="No such project (or worker in it).")}
INVALID = {
    400: OpenApiResponse(
        description="Invalid input: the field errors, {field: [messages]}; nothing was written."
    )
}


class ResearcherAPIView(GenericAPIView):
    # The worker token is read only to be refused with a 403: without it a worker's token would be
    # no credential at all (401), which hides that the endpoint exists but not for them.
    authentication_classes = [ResearcherTokenAuthentication, WorkerTokenAuthentication, SessionAuthentication]
    permission_classes = [IsResearcher]
    renderer_classes = [JSONRenderer]
    throttle_classes = [ScopedRateThrottle]
    throttle_scope = "researcher"
    # What the paths' {slug} names (for the schema's parameter types; the views look it up themselves).
    queryset = AnnotationProject.objects.all()
    lookup_field = "slug"
    # No ?search= or ?ordering= here: the lists are in a fixed order.
    filter_backends: list = []

    def project(self, slug: str) -> AnnotationProject:
        return get_object_or_404(AnnotationProject, slug=slug)


def _no_store(response: ApiResponse) -> ApiResponse:
    # Invite links are shown once: no browser or proxy keeps a copy.
    response["Cache-Control"] = "no-store"
    return response


class ProjectListView(ResearcherAPIView):
    serializer_class = ProjectSerializer
    queryset = AnnotationProject.objects.order_by("-created_at", "-pk")

    @extend_schema(
        operation_id="researcher_projects_list",
        summary="The annotation projects",
        responses={200: ProjectSerializer(many=True), **ERRORS},
        tags=["researcher"],
    )
    def get(self, request: Request) -> ApiResponse:
        page = self.paginate_queryset(self.get_queryset())
        return self.get_paginated_response(
            ProjectSerializer(page, many=True, context={"request": request}).data
        )

    @extend_schema(
        operation_id="researcher_projects_create",
        summary="Create a project",
        description="The same rules as the project page's form: a free slug, datasets with examples and "
        "answers, a sample per dataset or per label (not both), ranges of each setting. A 400 names "
        "each field's problems and creates nothing.",
        request=ProjectCreateSerializer,
        responses={201: ProjectDetailSerializer, **INVALID, **ERRORS},
        tags=["researcher"],
    )
    def post(self, request: Request) -> ApiResponse:
        body = ProjectCreateSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        form = ProjectCreateForm(data=body.form_data())
        if not form.is_valid():
            raise ValidationError(form.errors)
        project = form.create(created_by=request.user)
        if project is None:
            raise ValidationError(form.errors)
        return ApiResponse(_project_detail(request, project), status=status.HTTP_201_CREATED)


def _project_detail(request: Request, project: AnnotationProject) -> dict:
    context = {
        "request": request,
        "progress": selectors.project_progress(project=project),
        "study_url": selectors.project_study_url(project=project, base_url=request.build_absolute_uri("/")),
    }
    return ProjectDetailSerializer(project, context=context).data


class ProjectDetailView(ResearcherAPIView):
    @extend_schema(
        operation_id="researcher_projects_retrieve",
        summary="A project: its settings, counts and study link",
        responses={200: ProjectDetailSerializer, **ERRORS, **NOT_FOUND},
        tags=["researcher"],
    )
    def get(self, request: Request, slug: str) -> ApiResponse:
        return ApiResponse(_project_detail(request, self.project(slug)))


class ProjectWorkersView(ResearcherAPIView):
    serializer_class = WorkerSerializer

    @extend_schema(
        operation_id="researcher_workers_list",
        summary="The project's workers",
        responses={200: WorkerSerializer(many=True), **ERRORS, **NOT_FOUND},
        tags=["researcher"],
    )
    def get(self, request: Request, slug: str) -> ApiResponse:
        project = self.project(slug)
        found = project.workers.annotate(
            response_count=Count("responses", filter=Q(responses__project=project))
        ).order_by("pk")
        page = self.paginate_queryset(found)
        context = {"request": request, "now": timezone.now()}
        return self.get_paginated_response(WorkerSerializer(page, many=True, context=context).data)

    @extend_schema(
        operation_id="researcher_workers_create",
        summary="Add workers; their invite links, shown once",
        description="`count` new workers, with optional external ids (all or none are added). The "
        "response holds each new worker's invite link on this site's address: it is shown this once "
        "(the site keeps the secret, but no page shows it again; rotate-invite makes a new one).",
        request=WorkersAddSerializer,
        responses={201: InvitesSerializer, **INVALID, **ERRORS, **NOT_FOUND},
        tags=["researcher"],
    )
    def post(self, request: Request, slug: str) -> ApiResponse:
        project = self.project(slug)
        body = WorkersAddSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        ids = body.validated_data.get("external_ids")
        # One id a line is how the page's form (and create_workers' file) takes them; an id that
        # holds a line break itself would read as two there, so it is refused here first, with the
        # same rule the form applies to each line.
        problems = [
            f"item {number}: {value!r} {problem}"
            for number, value in enumerate(ids or [], start=1)
            if (problem := external_id_problem(value)) is not None
        ]
        if problems:
            raise ValidationError({"external_ids": problems})
        form = WorkersAddForm(
            data={"count": body.validated_data["count"], "external_ids": "\n".join(ids or [])}
        )
        if not form.is_valid():
            raise ValidationError(form.errors)
        try:
            new = workers.workers_create(project=project, external_ids=form.cleaned_data["external_ids"])
        except DjangoValidationError as exc:
            raise ValidationError({"external_ids": exc.messages}) from None
        base_url = request.build_absolute_uri("/")
        rows = [selectors.worker_invite_row(worker=worker, base_url=base_url) for worker in new]
        return _no_store(
            ApiResponse(InvitesSerializer({"workers": rows}).data, status=status.HTTP_201_CREATED)
        )


class WorkerInviteView(ResearcherAPIView):
    invite_action = "rotate"

    def worker(self, slug: str, worker_id: int) -> Worker:
        return get_object_or_404(self.project(slug).workers, pk=worker_id)

    def post(self, request: Request, slug: str, worker_id: int) -> ApiResponse:
        worker = self.worker(slug, worker_id)
        if self.invite_action == "rotate":
            worker = workers.worker_invite_rotate(worker=worker)
        else:
            worker = workers.worker_invite_revoke(worker=worker)
        row = selectors.worker_invite_row(worker=worker, base_url=request.build_absolute_uri("/"))
        return _no_store(ApiResponse(InviteSerializer(row).data))


class WorkerInviteRotateView(WorkerInviteView):
    invite_action = "rotate"

    @extend_schema(
        operation_id="researcher_worker_invite_rotate",
        summary="A new invite link for a worker, shown once",
        description="The old link stops working and every browser it signed in is signed out; the "
        "worker's API token is kept.",
        request=None,
        responses={200: InviteSerializer, **ERRORS, **NOT_FOUND},
        tags=["researcher"],
    )
    def post(self, request: Request, slug: str, worker_id: int) -> ApiResponse:
        return super().post(request, slug, worker_id)


class WorkerInviteRevokeView(WorkerInviteView):
    invite_action = "revoke"

    @extend_schema(
        operation_id="researcher_worker_invite_revoke",
        summary="Cut a worker off",
        description="Their invite link stops working (until rotated), every browser it signed in is "
        "signed out and their API token is deleted. The answer's invite_url is empty.",
        request=None,
        responses={200: InviteSerializer, **ERRORS, **NOT_FOUND},
        tags=["researcher"],
    )
    def post(self, request: Request, slug: str, worker_id: int) -> ApiResponse:
        return super().post(request, slug, worker_id)


class ProjectFiguresView(ResearcherAPIView):
    @extend_schema(
        operation_id="researcher_project_figures",
        summary="The project's agreement figures",
        description="The document of the agreement dashboard's figures.json: every dataset's, "
        "collection's and the pooled figures with bootstrap intervals; an undefined figure is null with "
        "its reason.",
        parameters=RATING_OPTIONS,
        responses={200: ProjectFiguresSerializer, **ERRORS, **NOT_FOUND},
        tags=["researcher"],
    )
    def get(self, request: Request, slug: str) -> ApiResponse:
        project = self.project(slug)
        report = agreement_selectors.project_report(project=project, options=rating_options(request))
        return ApiResponse(report.as_dict())
